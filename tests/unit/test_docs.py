"""README and docs: valid reStructuredText, the newcomer's commands are
the ones CI runs, and the Sphinx tree under doc/source builds without a
warning."""

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


def test_sphinx_tree_builds_without_a_warning(tmp_path):
    # Every page valid for Sphinx, in a toctree, every reference
    # resolved, the generated option and command references and the
    # release notes built: -W makes any warning fail the build.
    proc = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q',
         '-b', 'dummy', '-d', str(tmp_path / 'doctrees'),
         str(SPHINX_SOURCE), str(tmp_path / 'out')],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert (proc.returncode, proc.stderr) == (0, '')
