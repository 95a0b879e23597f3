"""Stopping the service ends every inspection it started (issue 28).

With real processes: each round starts a service, has it inspect two
instances whose disk is an NBD export on a listener that accepts and
never answers (the real worker's own NBD client blocks there, killably),
and stops it at a different moment of the inspections' start: before
the worker is spawned, while it is being spawned, while it imports,
while its NBD client waits.  One round stops it exactly between the worker's
fork+exec and the moment the supervisor records its pid, the window a
worker escaped the kill through.  After every stop() nothing is left.
"""

import logging
import os
import threading
import time

from ceilometer_os_pollster.agent import engine as engine_mod
from ceilometer_os_pollster.agent import service as service_mod
from ceilometer_os_pollster.inspection import supervisor
from tests.functional import conftest
from tests.functional import faults_helpers as H

# Seconds between the first inspect() call and stop(), one round each.
DELAYS = (0.0, 0.0, 0.002, 0.01, 0.03, 0.06, 0.1, 0.2, 0.4, 0.8, 1.5, 3.0)


class Signalling:
    """The real Engine; ``entered`` is set when an inspection begins."""

    def __init__(self, real):
        self.real = real
        self.entered = threading.Event()

    def inspect(self, job):
        self.entered.set()
        return self.real.inspect(job)

    def stop(self, timeout):
        return self.real.stop(timeout)


def start_service(tmp_path, n, disk):
    tmp_root = tmp_path / ('tmp-%d' % n)
    tmp_root.mkdir()
    conf = H.inspection_conf(
        libguestfs_backend_settings=['force_tcg'], concurrency=2,
        inspection_deadline=120, tmp_dir=str(tmp_root),
        cache_dir=str(tmp_path / ('cache-%d' % n)))
    engine = Signalling(engine_mod.Engine(conf))
    svc = service_mod.InspectionService(conf, engine=engine)
    for name in ('a-%d' % n, 'b-%d' % n):
        svc.lookup(H.job(name, disk))
    return svc, engine, tmp_root


def assert_nothing_left(svc, tmp_root, caplog):
    left = svc.stop()
    assert left == []
    # Right after stop() returned: no worker, qemu-img or qemu, neither
    # our descendant nor orphaned in a worker's session.
    assert H.proc_children(os.getpid(), b'.worker') == []
    assert H.proc_children(os.getpid(), b'qemu') == []
    assert conftest.inspection_processes() == {}
    assert list(tmp_root.iterdir()) == []
    assert not [r for r in caplog.records if r.levelname == 'WARNING'
                and 'still alive' in r.getMessage()]
    # Stopped for good: a later poll queues nothing.
    svc.lookup(H.job('late', ''))
    assert svc.scheduler.stats()['queued'] == 0


def test_stop_while_inspections_start_leaves_nothing(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger='ceilometer_os_pollster')
    hole = H.BlackHole()
    killed = []
    try:
        for n, delay in enumerate(DELAYS):
            svc, engine, tmp_root = start_service(tmp_path, n,
                                                  H.nbd_disk(hole))
            assert engine.entered.wait(30)
            time.sleep(delay)
            caplog.clear()
            assert_nothing_left(svc, tmp_root, caplog)
            killed.append(any('killed at shutdown' in r.getMessage()
                              for r in caplog.records))
    finally:
        hole.close()
    # The late rounds caught workers running (their NBD client connected).
    print('rounds that killed a running worker:', killed)
    assert killed[-1], killed
    assert hole.accepted >= 1


def test_worker_spawned_while_stop_runs_is_killed(tmp_path, caplog,
                                                  monkeypatch):
    """The worker exists (fork+exec done) but its pid is not recorded
    yet when stop() runs: it is killed as soon as it is, and stop()
    returns only when it is gone."""
    hole = H.BlackHole()
    spawned = threading.Event()
    stopping = threading.Event()
    pids = []
    real_popen = supervisor.subprocess.Popen

    def popen(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        pids.append(proc.pid)
        spawned.set()
        stopping.wait(30)
        # Hand the pid over only once stop() has closed the set.
        end = time.monotonic() + 30
        while not workers().stopped and time.monotonic() < end:
            time.sleep(0.01)
        return proc

    monkeypatch.setattr(supervisor.subprocess, 'Popen', popen)
    try:
        svc, engine, tmp_root = start_service(tmp_path, 0, H.nbd_disk(hole))

        def workers():
            return engine.real._workers
        assert spawned.wait(30)
        stopping.set()
        caplog.clear()
        assert_nothing_left(svc, tmp_root, caplog)
    finally:
        stopping.set()
        hole.close()
    assert pids
    for pid in pids:
        assert not H.alive(pid)
    # The shared leak check knew these workers (same module object).
    assert set(pids) <= conftest._SESSIONS
    # The record of a cancelled inspection is not cached.
    assert len(svc.cache) == 0
