"""Loop devices for the direct reader tests (detached however a test
ends)."""

import contextlib
import subprocess


@contextlib.contextmanager
def loop_device(path, *args):
    """``losetup -f --show`` on ``path``; detached at the end."""
    dev = subprocess.run(('losetup', '-f', '--show', *args, str(path)),
                         check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(('losetup', '-d', dev), check=False,
                       capture_output=True)
