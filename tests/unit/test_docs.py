"""README and docs: valid reStructuredText, and the newcomer's commands
are the ones CI runs."""

import pathlib
import re

import docutils.core
import docutils.utils
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ['README.rst', 'doc/architecture.rst', 'benchmarks/README.rst']
if (ROOT / 'doc/faults.rst').exists():
    DOCS.append('doc/faults.rst')


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


def test_readme_quick_start_commands_exist_and_run():
    # A newcomer types the README's first commands as they stand.
    text = (ROOT / 'README.rst').read_text()
    block = text.split('::', 1)[1].split('\n\n')[1]
    commands = [line.split('#')[0].strip() for line in block.splitlines()
                if line.strip() and not line.strip().startswith('#')]
    commands = [c for c in commands if c]
    assert commands
    for c in commands:
        assert (ROOT / c).stat().st_mode & 0o111, c
