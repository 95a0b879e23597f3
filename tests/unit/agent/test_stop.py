"""Stopping ends every inspection: supervisor.Workers, the worker's guard
and the service's stop() (issue 28).  Small real processes (python,
sleep) stand in for workers and qemu-img."""

import logging
import os
import subprocess
import sys
import threading
import time

from oslo_config import cfg

from ceilometer_os_pollster import options
from ceilometer_os_pollster import record
from ceilometer_os_pollster.agent import service as service_mod
from ceilometer_os_pollster.inspection import supervisor

# A "worker" that starts a child in its group, writes the child's pid
# to the file named by its argument, and waits.
WORKER = ('import subprocess, sys, time; '
          'p = subprocess.Popen(["sleep", "300"]); '
          'open(sys.argv[1], "w").write(str(p.pid)); time.sleep(300)')


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            return f.read().rsplit(b')', 1)[1].split()[0] != b'Z'
    except OSError:
        return False


def until(predicate, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def start(workers, tmp_path, label='inst-1'):
    """Run the worker in a thread; (thread, result, child pid getter)."""
    pid_file = tmp_path / 'child.pid'
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        outcome=supervisor.run([sys.executable, '-c', WORKER,
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


def test_worker_guard_kills_the_group_when_the_worker_dies(tmp_path):
    pid_file = tmp_path / 'child.pid'
    code = ('from ceilometer_os_pollster.inspection import '
            'worker_process; worker_process.guard_group(); ' + WORKER)
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


class StoppableEngine:
    def __init__(self, left):
        self.left = left
        self.stopped = []

    def inspect(self, job):
        return record.OSRecord.failed(job.instance_id, 'x')

    def stop(self, timeout):
        self.stopped.append(timeout)
        return 2, self.left


def make_service(tmp_path, engine):
    conf = cfg.ConfigOpts()
    options.register_opts(conf)
    conf([])
    conf.set_override('cache_dir', str(tmp_path), options.GROUP)
    svc = service_mod.InspectionService(conf, engine=engine)
    svc.scheduler
    return svc


def test_service_stop_warns_once_naming_what_is_left(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    engine = StoppableEngine(['41 qemu-img (inst-1)', '40 python3 (inst-1)'])
    svc = make_service(tmp_path, engine)
    assert svc.stop(timeout=3) == engine.left
    assert engine.stopped == [3]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING']
    assert warnings == [
        'OS inspection: 2 process(es) still alive 3 s after being killed '
        'at shutdown (stuck in the kernel, e.g. on hung storage): '
        '41 qemu-img (inst-1), 40 python3 (inst-1)']


def test_service_stop_is_quiet_when_all_is_gone(tmp_path, caplog):
    svc = make_service(tmp_path, StoppableEngine([]))
    assert svc.stop() == []
    assert not [r for r in caplog.records if r.levelname == 'WARNING']
