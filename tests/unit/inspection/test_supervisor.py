"""supervisor.Workers: stopping ends every worker this owner runs, with
the children in its process group (issue 28).  Small real processes
(python, sleep) stand in for workers and qemu-img."""

import os
import signal
import sys
import threading

from ceilometer_os_pollster.inspection import supervisor
from tests.helpers import GROUP_WORKER
from tests.helpers import alive
from tests.helpers import until


def start(workers, tmp_path, label='inst-1'):
    """Run the worker in a thread; (thread, result, child pid getter)."""
    pid_file = tmp_path / 'child.pid'
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        outcome=supervisor.run([sys.executable, '-c', GROUP_WORKER,
                                str(pid_file)], b'', 300,
                               workers=workers, label=label)))
    thread.start()

    def child():
        try:
            return int(pid_file.read_text())
        except (OSError, ValueError):
            return None
    return thread, result, child


def test_stop_kills_running_workers_and_their_children(tmp_path):
    workers = supervisor.Workers()
    thread, result, child = start(workers, tmp_path)
    assert until(child)
    assert workers.stop(10) == (1, [])
    # stop() returned once the worker was reaped and its group was empty.
    assert not alive(child())
    thread.join(10)
    assert result['outcome'].cancelled


def test_nothing_starts_after_stop():
    workers = supervisor.Workers()
    assert workers.stop(1) == (0, [])
    outcome = supervisor.run(['/nonexistent-worker'], b'', 10,
                             workers=workers)
    assert outcome.cancelled and outcome.start_error == ''


def test_stop_names_what_stays_after_the_bounded_wait(tmp_path,
                                                      monkeypatch):
    workers = supervisor.Workers()
    thread, result, child = start(workers, tmp_path, label='inst-7')
    assert until(child)
    # As if the processes were stuck in the kernel: the kill is lost.
    monkeypatch.setattr(supervisor, '_killpg', lambda pgid: None)
    monkeypatch.setattr(supervisor, 'KILL_GRACE', 0.1)
    killed, left = workers.stop(1.0)
    monkeypatch.undo()
    try:
        assert killed == 1
        assert '%d sleep (inst-7)' % child() in left
        assert any(' python' in item and item.endswith('(inst-7)')
                   for item in left), left
    finally:
        for item in left:
            os.kill(int(item.split()[0]), 9)
        thread.join(10)


def _run_group_worker(tmp_path, deadline, workers=None, label='inst-1'):
    """A worker with a child in its group, run to its deadline; (outcome,
    the child's pid)."""
    pid_file = tmp_path / 'child.pid'
    outcome = supervisor.run([sys.executable, '-c', GROUP_WORKER,
                              str(pid_file)], b'', deadline,
                             workers=workers, label=label)
    return outcome, int(pid_file.read_text())


def test_a_run_returns_once_every_process_of_its_group_is_gone(
        tmp_path, monkeypatch):
    """On a busy host a killed qemu can die after the worker: the run
    waits for it.  Here the kill reaches the worker at once and the rest
    of its group half a second later."""
    late = []

    def worker_first(pgid):
        try:
            os.kill(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not late:
            late.append(threading.Timer(
                0.5, lambda: os.killpg(pgid, signal.SIGKILL)))
            late[0].start()

    monkeypatch.setattr(supervisor, '_killpg', worker_first)
    outcome, child = _run_group_worker(tmp_path, 3)
    assert outcome.timed_out and not outcome.lingering
    assert outcome.returncode == -signal.SIGKILL
    assert not alive(child)


def test_a_group_member_that_outlives_the_grace_is_said_and_kept_for_stop(
        tmp_path, monkeypatch):
    """As if qemu were stuck in the kernel: the worker dies, its child
    does not.  The run returns after the grace, says so, and stop()
    names the child."""
    workers = supervisor.Workers()
    monkeypatch.setattr(supervisor, '_killpg',
                        lambda pgid: os.kill(pgid, signal.SIGKILL))
    monkeypatch.setattr(supervisor, 'KILL_GRACE', 0.2)
    outcome, child = _run_group_worker(tmp_path, 3, workers, 'inst-9')
    monkeypatch.undo()
    try:
        assert outcome.timed_out and outcome.lingering
        # The worker itself was reaped; its group lives on in the child.
        assert outcome.returncode == -signal.SIGKILL
        assert alive(child)
        killed, left = workers.stop(0.5)
        assert (killed, left) == (0, ['%d sleep (inst-9)' % child])
    finally:
        os.kill(child, signal.SIGKILL)
