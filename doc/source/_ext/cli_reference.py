"""``.. cli-reference:: module:function``: a command's reference page,
generated from the ``argparse`` parser the function returns.

The page is built from the parser the command itself runs, so it cannot
drift from what the command accepts: every subcommand becomes a section
with its usage, description, options (defaults expanded as ``--help``
expands them) and epilog.  Options that every subcommand repeats from
the top level are listed once, at the top.

The parser is built with an empty argument list and without ``OS_*``
variables, so keystoneauth's options are those of its default plugin
whatever the environment of the build.
"""

import argparse
import contextlib
import importlib
import os

from docutils import nodes
from docutils.parsers.rst import Directive


@contextlib.contextmanager
def _without_os_environment():
    saved = {k: v for k, v in os.environ.items() if k.startswith('OS_')}
    for key in saved:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)


def _load(spec):
    module, _, name = spec.partition(':')
    with _without_os_environment():
        return getattr(importlib.import_module(module), name)(argv=[])


def _invocation(action):
    if not action.option_strings:
        return action.metavar or action.dest
    if action.nargs == 0:
        return ', '.join(action.option_strings)
    metavar = action.metavar or (
        '{%s}' % ','.join(map(str, action.choices)) if action.choices
        else action.dest.upper())
    return ', '.join('%s %s' % (o, metavar) for o in action.option_strings)


def _paragraphs(text):
    """Preformatted argparse text (RawDescriptionHelpFormatter) as
    paragraphs; lines that are indented stay a literal block."""
    out = []
    for chunk in (text or '').strip().split('\n\n'):
        if any(line.startswith(' ') for line in chunk.splitlines()):
            out.append(nodes.literal_block(chunk, chunk))
        else:
            out.append(nodes.paragraph(text=' '.join(chunk.split())))
    return out


def _subcommands(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name)


def _options(parser, skip):
    """(group title, [(invocation, help)]) of the parser's own options."""
    formatter = parser._get_formatter()
    groups = []
    for group in parser._action_groups:
        rows = []
        for action in group._group_actions:
            if (action.help == argparse.SUPPRESS
                    or isinstance(action, argparse._SubParsersAction)
                    or tuple(action.option_strings) in skip):
                continue
            text = formatter._expand_help(action) if action.help else ''
            rows.append((_invocation(action), text))
        if rows:
            groups.append((group.title, rows))
    return groups


class CLIReference(Directive):
    required_arguments = 1
    has_content = False

    def run(self):
        parser = _load(self.arguments[0])
        top = {tuple(a.option_strings) for a in parser._actions
               if a.option_strings}
        return [self._section(parser, parser.prog, None, set(), top)]

    def _section(self, parser, title, summary, skip, top):
        section = nodes.section(
            ids=[nodes.make_id('cli ' + title)], names=[title])
        section += nodes.title(text=title)
        if summary:
            section += nodes.paragraph(text=summary[:1].upper() + summary[1:]
                                       + '.')
        usage = parser.format_usage().strip()
        section += nodes.literal_block(usage, usage)
        section.extend(_paragraphs(parser.description))
        if skip:
            section += nodes.paragraph(
                text='The global options (--config-file, --log-file, '
                     '--verbose, --debug) are accepted here too.')
        for group_title, rows in _options(parser, skip):
            section += nodes.rubric(text=group_title)
            items = nodes.definition_list()
            for invocation, text in rows:
                item = nodes.definition_list_item()
                term = nodes.term()
                term += nodes.literal(text=invocation)
                item += term
                definition = nodes.definition()
                definition += nodes.paragraph(text=text)
                item += definition
                items += item
            section += items
        section.extend(_paragraphs(parser.epilog))
        for name, sub, help_text in _subcommands(parser):
            section += self._section(sub, '%s %s' % (title, name),
                                     help_text, top | {('-h', '--help')},
                                     top)
        return section


def setup(app):
    app.add_directive('cli-reference', CLIReference)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
