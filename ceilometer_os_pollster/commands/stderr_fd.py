"""File descriptor 2 during a ``--json`` run.

C libraries (libvirt, libxml2, libguestfs) write warnings straight to
fd 2, past Python's logging, and Ceilometer's ``host_command`` merges
stderr into stdout: it would read them as part of the JSON.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def silenced_stderr_fd(json_mode, err):
    """With --json, point file descriptor 2 at /dev/null for the run.

    Yields the stream for our own fatal-error line, which still reaches
    the real stderr.  Only when err is the process's fd 2.
    """
    try:
        real = json_mode and err.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    if not real:
        yield err
        return
    err.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with open(saved, 'w', closefd=False) as stream:
            yield stream
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
