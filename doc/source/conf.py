"""Sphinx configuration of ceilometer-os-pollster's documentation.

Built with warnings as errors by tools/test (and ``tox -e docs``)::

    sphinx-build -W --keep-going -b html doc/source doc/build/html
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# This tree's package (not an installed copy) for the generated
# configuration and command references, and our own extensions.
sys.path.insert(0, os.path.abspath(os.path.join(HERE, '..', '..')))
sys.path.insert(0, os.path.join(HERE, '_ext'))

project = 'ceilometer-os-pollster'
copyright = 'ceilometer-os-pollster authors; Apache-2.0'
author = 'ceilometer-os-pollster authors'

extensions = [
    'oslo_config.sphinxext',    # .. show-options:: (configuration.rst)
    'reno.sphinxext',           # .. release-notes:: (releasenotes.rst)
    'cli_reference',            # .. cli-reference:: (cli.rst)
]

root_doc = 'index'
exclude_patterns = ['_build']
# Every cross-reference must resolve (with -W a dangling one fails).
nitpicky = True
# Options and commands are written as typed: "--json" stays two hyphens.
smartquotes = False
html_theme = 'alabaster'
html_static_path = []
pygments_style = 'sphinx'
