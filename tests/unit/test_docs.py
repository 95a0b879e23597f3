"""README and docs: valid reStructuredText, the newcomer's commands are
the ones CI runs, and the Sphinx tree under doc/source builds without a
warning."""

import argparse
import os
import pathlib
import re
import subprocess
import sys

import docutils.core
import docutils.utils
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Plain reStructuredText, read as they are (on a forge, by docutils).
DOCS = ['README.rst', 'benchmarks/README.rst']
SPHINX_SOURCE = ROOT / 'doc' / 'source'


@pytest.mark.parametrize('name', DOCS)
def test_document_is_valid_rst(name):
    text = (ROOT / name).read_text()
    messages = []

    class Collect:
        def write(self, msg):
            messages.append(msg)

    docutils.core.publish_doctree(
        text, source_path=str(ROOT / name),
        settings_overrides={'report_level': docutils.utils.Reporter.INFO_LEVEL,
                            'warning_stream': Collect(),
                            'halt_level': 5})
    problems = [m for m in messages
                if re.search(r'\((WARNING|ERROR|SEVERE)/', m)]
    assert problems == []


def readme_commands():
    # A newcomer types the README's first commands as they stand.
    text = (ROOT / 'README.rst').read_text()
    block = text.split('::', 1)[1].split('\n\n')[1]
    commands = [line.split('#')[0].strip() for line in block.splitlines()
                if line.strip() and not line.strip().startswith('#')]
    return [c for c in commands if c]


def test_readme_quick_start_commands_exist_and_run():
    commands = readme_commands()
    assert commands
    for c in commands:
        assert (ROOT / c).stat().st_mode & 0o111, c


def test_ci_runs_the_readmes_test_command():
    ci = (ROOT / '.ci' / 'run').read_text()
    ran = re.findall(r'^(tools/\S+)', ci, re.M)
    assert ran and set(ran) <= set(readme_commands())


def test_readme_links_to_pages_that_exist():
    targets = re.findall(r'^\.\. _[^:]+: (\S+)$',
                         (ROOT / 'README.rst').read_text(), re.M)
    local = [t for t in targets if '://' not in t]
    assert local
    for target in local:
        assert (ROOT / target).is_file(), target


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """doc/source built as plain text, warnings as errors."""
    out = tmp_path_factory.mktemp('docs')
    proc = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q',
         '-b', 'text', '-d', str(out / 'doctrees'),
         str(SPHINX_SOURCE), str(out / 'text')],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    return proc, out / 'text'


def test_sphinx_tree_builds_without_a_warning(built):
    # Every page valid for Sphinx, in a toctree, every reference
    # resolved, the generated option and command references and the
    # release notes built: -W makes any warning fail the build.
    proc, _ = built
    assert (proc.returncode, proc.stderr) == (0, '')


def sections(text):
    """{title: body} of a page built as text."""
    lines = text.splitlines()
    heads = [i for i in range(len(lines) - 1)
             if lines[i] and re.fullmatch(r'([=~^"-])\1*', lines[i + 1])
             and len(lines[i + 1]) == len(lines[i])]
    return {lines[i]: '\n'.join(lines[i + 2:j])
            for i, j in zip(heads, heads[1:] + [len(lines)])}


def test_references_list_every_option_and_argument(built, monkeypatch):
    from ceilometer_os_pollster.commands import cli
    from ceilometer_os_pollster import options
    _, text = built
    # each option is a described object: its name alone on a line
    configuration = (text / 'configuration.txt').read_text()
    for opt in options.list_opts()[0][1]:
        assert re.search('^%s$' % opt.name, configuration, re.M), opt.name
    reference = sections((text / 'cli.txt').read_text())
    # as the directive builds it: keystoneauth's default plugin
    for name in [k for k in os.environ if k.startswith('OS_')]:
        monkeypatch.delenv(name)
    top = cli.build_parser(argv=[])
    parsers = [(top, set())]
    for parser, shared in parsers:
        # one section per command and subcommand, each listing its own
        # options and arguments (those of the top level once, at the top)
        terms = ' '.join(re.findall(r'^"(.+)"$', reference[parser.prog],
                                    re.M))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend((sub, {'-h'} | {
                    o for a in top._actions for o in a.option_strings})
                    for sub in action.choices.values())
                continue
            names = action.option_strings or [action.metavar or action.dest]
            for name in names:
                if name not in shared:
                    assert re.search(r'(^|[ ,])%s\b' % re.escape(name),
                                     terms), (parser.prog, name)
