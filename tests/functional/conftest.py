"""Every functional test ends with no inspection process of its own left.

An inspection's processes are its worker (a session leader, started by
``supervisor``) and what it started: qemu-img, the appliance's qemu,
libguestfs' helpers.  They keep the worker's session id even when the
worker is gone and they were re-parented to init, so "left" is: a live
process in the session of a worker this test process started, unless
that worker is still running for a service nobody stopped (a module's
shared agent between two of its tests).  Checked after each test and
after each module (its shared fixtures' teardown), so a leak is
reported by the test or module that caused it, once.
"""

import os
import time
import weakref

import pytest

from ceilometer_os_pollster.inspection import supervisor

# Killed processes normally go in milliseconds; a loaded CI machine
# gets this long before a test is blamed.
GRACE = 15.0

_SESSIONS = set()               # worker pids (= session ids) ever admitted
_SETS = weakref.WeakSet()       # every supervisor.Workers that admitted one
_REPORTED = set()               # (pid, start time) already blamed


@pytest.fixture(scope='session', autouse=True)
def _track_workers():
    real_admit = supervisor.Workers._admit

    def admit(self, pgid, label):
        _SESSIONS.add(pgid)
        _SETS.add(self)
        return real_admit(self, pgid, label)

    patch = pytest.MonkeyPatch()
    patch.setattr(supervisor.Workers, '_admit', admit)
    yield
    patch.undo()


def _stat(pid):
    with open('/proc/%s/stat' % pid, 'rb') as f:
        stat = f.read()
    # pid (name) state ppid pgrp session ... starttime (field 22)
    fields = stat[stat.rfind(b')') + 2:].split()
    return fields[0], int(fields[3]), fields[19]


def inspection_processes():
    """{(pid, start time): command line} of live processes in the session
    of a worker started here whose service is not running it any more."""
    running = set()
    for workers in list(_SETS):
        if not workers.stopped:
            running.update(workers._running)
    sessions = _SESSIONS - running
    found = {}
    if not sessions:
        return found
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            state, session, start = _stat(pid)
            if state == b'Z' or session not in sessions:
                continue
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmdline = f.read(300).replace(b'\0', b' ')
        except (OSError, ValueError, IndexError):
            continue
        found[(int(pid), start)] = cmdline.decode('utf-8', 'replace')
    return found


def assert_none_left(what):
    """Wait up to GRACE for inspection processes to go; fail naming those
    that stay (each process is blamed once)."""
    end = time.monotonic() + GRACE
    while True:
        left = {k: v for k, v in inspection_processes().items()
                if k not in _REPORTED}
        if not left or time.monotonic() >= end:
            break
        time.sleep(0.2)
    _REPORTED.update(left)
    assert not left, '%s left inspection processes running: %s' % (
        what, '; '.join('%d %s' % (pid, cmd)
                        for (pid, _), cmd in sorted(left.items())))


@pytest.fixture(scope='module', autouse=True)
def no_inspection_left_by_module(request):
    yield
    assert_none_left('module %s (its shared fixtures)'
                     % request.module.__name__)


@pytest.fixture(autouse=True)
def no_inspection_left(request):
    """Fails the test that leaves an inspection's process behind."""
    yield
    assert_none_left(request.node.nodeid)
