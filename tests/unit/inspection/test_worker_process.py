"""worker_process: the inspection worker's CPU and I/O priority, and its
guard (its process group dies with it, issue 28)."""

import errno
import os
import subprocess
import sys

import pytest

from ceilometer_os_pollster.inspection import worker_process as WP
from tests.helpers import GROUP_WORKER
from tests.helpers import alive
from tests.helpers import until


def test_priority_is_lowered_for_the_worker_and_what_it_starts():
    code = ('import os, subprocess; from ceilometer_os_pollster.inspection '
            'import worker_process as wp; '
            'print(repr(wp.lower_priority(12, "idle"))); '
            'p = subprocess.run(["ionice", "-p", str(os.getpid())], '
            'capture_output=True, text=True); print(p.stdout.strip()); '
            'print(os.getpriority(os.PRIO_PROCESS, 0)); '
            'c = subprocess.run(["sh", "-c", "ionice -p $$; nice"], '
            'capture_output=True, text=True); print(c.stdout.strip()); '
            'print(open("/proc/self/autogroup").read().split()[-1])')
    # A session of its own, as the agent starts workers.
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True,
                         start_new_session=True).stdout.splitlines()
    assert out == ["''", 'idle', '12', 'idle', '12', '12']


def test_priority_unchanged_when_asked():
    assert WP.lower_priority(0, 'none') == ''


def _failing_writes(monkeypatch, *errnos):
    """Make the autogroup write fail with each errno in turn, then work."""
    left = list(errnos)
    written = []

    def write(path, text):
        if left:
            code = left.pop(0)
            raise OSError(code, os.strerror(code))
        written.append(text)
    monkeypatch.setattr(WP, '_write_line', write)
    monkeypatch.setattr(WP.time, 'sleep', lambda s: None)
    return written


@pytest.mark.parametrize('code', [errno.EINVAL, errno.ENOENT])
def test_no_autogroup_to_weigh_is_not_a_problem(monkeypatch, code):
    # EINVAL: autogroups switched off, or a process left in the root
    # group (as CI's session is); its own nice level applies.
    written = _failing_writes(monkeypatch, code)
    assert WP.set_autogroup_nice('/proc/self/autogroup', 10) == ''
    assert written == []


def test_autogroup_rate_limit_is_retried(monkeypatch):
    # Unprivileged agents: the kernel allows ten changes a second.
    written = _failing_writes(monkeypatch, errno.EAGAIN, errno.EAGAIN)
    assert WP.set_autogroup_nice('/proc/self/autogroup', 10) == ''
    assert written == ['10']


def test_autogroup_refusal_is_reported(monkeypatch):
    _failing_writes(monkeypatch, errno.EPERM)
    assert WP.set_autogroup_nice('/x', 10) == (
        'autogroup nice 10: Operation not permitted')
    _failing_writes(monkeypatch, *[errno.EAGAIN] * 5)
    assert WP.set_autogroup_nice('/x', 10) == (
        'autogroup nice 10: Resource temporarily unavailable')


# -- the guard: the worker's process group dies with it (issue 28) --------

def test_worker_guard_kills_the_group_when_the_worker_dies(tmp_path):
    pid_file = tmp_path / 'child.pid'
    code = ('from ceilometer_os_pollster.inspection import '
            'worker_process; worker_process.guard_group(); ' + GROUP_WORKER)
    proc = subprocess.Popen([sys.executable, '-c', code, str(pid_file)],
                            start_new_session=True)
    assert until(lambda: pid_file.exists() and pid_file.read_text())
    child = int(pid_file.read_text())
    os.kill(proc.pid, 9)         # as PR_SET_PDEATHSIG does with the agent
    proc.wait()
    assert until(lambda: not alive(child))


def test_worker_guard_spares_a_group_it_does_not_lead():
    code = ('from ceilometer_os_pollster.inspection import '
            'worker_process; worker_process.guard_group(); print("ok")')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout == 'ok\n'      # and this test process still runs
