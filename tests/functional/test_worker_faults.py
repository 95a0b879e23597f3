"""Nothing a guest disk or its storage does can stall the agent.

Every inspection runs in a worker process of its own; the agent only
waits on its pipe.  Here, with real processes: an instance whose disk is
an NBD export whose server was frozen with SIGSTOP (the kernel still
accepts connections, nothing answers) among healthy instances, polled by
a real Ceilometer AgentManager every few seconds; a worker SIGKILLed in
the middle of an inspection; a worker that raises.
Appliance launches: 2 healthy + 1 killed + 1 after it.
"""

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from ceilometer_os_pollster import engine as engine_mod
from tests.functional import agent as agent_mod
from tests.functional import conftest
from tests.functional import faults_helpers as H
from tests.guests import builder
from tests.guests import catalog
from tests.rig import libvirtd
from tests.rig import rig as rig_mod

pytestmark = [pytest.mark.libvirt, pytest.mark.appliance]

REPO = pathlib.Path(__file__).resolve().parents[2]
DEADLINE = 90           # a healthy TCG inspection takes 30-60 s
POLL_EVERY = 3


class CountingEngine:
    """The real Engine, its inspect() calls counted per instance."""

    def __init__(self, real):
        self.real = real
        self.calls = []
        self.in_flight = set()

    def inspect(self, job):
        self.calls.append(job.instance_id)
        self.in_flight.add(job.instance_id)
        try:
            return self.real.inspect(job)
        finally:
            self.in_flight.discard(job.instance_id)

    def stop(self, timeout):
        return self.real.stop(timeout)


def leftovers():
    """{pid: command line} of the qemu, qemu-img and worker processes
    descending from this one, or orphaned in a worker's session."""
    found = {}
    for marker in (b'qemu', b'.worker'):
        for pid in H.proc_children(os.getpid(), marker):
            if H.alive(pid):
                try:
                    with open('/proc/%d/cmdline' % pid, 'rb') as f:
                        found[pid] = f.read(200).replace(b'\0', b' ')
                except OSError:
                    pass
    found.update((pid, cmd) for (pid, _), cmd
                 in conftest.inspection_processes().items())
    return found


def _parent(pid):
    with open('/proc/%d/stat' % pid, 'rb') as f:
        return int(f.read().rsplit(b')', 1)[1].split()[1])


def _until(predicate, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def test_frozen_nbd_storage_never_stalls_the_agent(rig, tmp_path,
                                                   monkeypatch):
    guests = {'healthy-linux': ('ubuntu-22.04', rig_mod.RAW),
              'healthy-windows': ('win2022-standard', rig_mod.OVERLAY),
              'frozen-nbd': ('rhel-9.4', rig_mod.NBD)}
    doms = {name: rig.add(name, builder.build(guest), layout=layout,
                          vcpus=1)
            for name, (guest, layout) in guests.items()}
    rig.start_all()
    frozen = doms['frozen-nbd'].uuid
    healthy = {doms[n].uuid: guests[n][0] for n in guests
               if n != 'frozen-nbd'}
    # The running domain keeps its connection; every new one is accepted
    # by the kernel and never answered.
    nbd_pid = rig._state['nbd'][0]['pid']
    os.kill(nbd_pid, signal.SIGSTOP)
    tmp_root = tmp_path / 'tmp'
    tmp_root.mkdir()
    conf = agent_mod.agent_conf(
        tmp_path, libvirtd.URI, concurrency=2, inspection_deadline=DEADLINE,
        retry_initial_delay=10, tmp_dir=str(tmp_root))
    engine = CountingEngine(engine_mod.Engine(conf))
    agent = agent_mod.Agent(conf, monkeypatch, engine=engine,
                            only=[d.uuid for d in doms.values()])
    cycles = []

    def done(samples):
        status = {u: s['resource_metadata']['os_inspection_status']
                  for u, s in samples.items()}
        return (all(status[u] == 'ok' for u in healthy)
                and status[frozen] == 'failed'
                and engine.calls.count(frozen) >= 2)     # retried

    try:
        end = time.monotonic() + 4 * DEADLINE + 300
        while time.monotonic() < end:
            during = frozen in engine.in_flight
            samples = agent.cycle()
            if not samples:
                # Ceilometer's discovery gave up on this cycle (another
                # process removed a domain while it listed them): no
                # pollster ran, ours included.
                time.sleep(POLL_EVERY)
                continue
            # Did this whole cycle run while the frozen disk's inspection
            # was in flight?
            cycles.append(during and frozen in engine.in_flight)
            # Every cycle publishes every instance, whatever is running.
            assert set(samples) == set(d.uuid for d in doms.values())
            if done(samples):
                break
            time.sleep(POLL_EVERY)
        frozen_record = agent.svc.cache.get(frozen).record
        healthy_records = {u: agent.svc.cache.get(u).record
                           for u in healthy}
    finally:
        left_at_stop = agent.svc.stop()
        os.kill(nbd_pid, signal.SIGCONT)
    assert done(samples), (samples, engine.calls)
    # Cycles ran, one after the other, while the frozen inspection was in
    # flight: none waited for it.
    assert sum(cycles) >= 5, cycles
    assert frozen_record.reason == (
        'deadline: inspection killed after %d s while opening disks'
        % DEADLINE)
    for uuid, guest in healthy.items():
        rec = healthy_records[uuid]
        assert catalog.mismatches(catalog.GUESTS[guest].expected,
                                  rec) == [], rec
    # The retry in flight (started just before stop(): done() counts its
    # inspect() call) was killed with the agent's service, and stop()
    # waited until its processes were gone; nothing it or the first
    # attempt started is left, nor any private file.  Nothing that
    # stop() killed may outlive an inspection's deadline.
    assert left_at_stop == []
    assert _until(lambda: leftovers() == {}, DEADLINE), (
        'left %d s after stop(): %s' % (DEADLINE, leftovers()))
    assert list(tmp_root.iterdir()) == []


def test_killed_and_raising_workers_are_failed_records(tmp_path):
    blank = builder.build('blank')
    tmp_root = tmp_path / 'tmp'
    tmp_root.mkdir()
    # The appliance method: the worker is killed while it launches one
    # (the direct readers would answer for a blank disk at once).
    engine = H.make_engine(tmp_root, inspection_method='appliance')
    job = H.job('killed', H.DISK.format(path=blank))
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(rec=engine.inspect(job)))
    thread.start()
    try:
        assert _until(lambda: H.proc_children(os.getpid(), b'-kernel'),
                      300), 'no appliance started'
        # Our direct child; libguestfs' recovery process, forked by the
        # worker, has the same command line.
        workers = [pid for pid in H.proc_children(os.getpid(), b'.worker')
                   if _parent(pid) == os.getpid()]
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)
    finally:
        thread.join(DEADLINE)
    rec = result['rec']
    assert rec.status == 'failed'
    assert rec.reason == ('inspection worker killed by SIGKILL while '
                          'launching the appliance (out of memory?)')
    assert _until(lambda: leftovers() == {}, 30), leftovers()
    assert list(tmp_root.iterdir()) == []
    # A worker whose code raises: a failed record naming the error.
    raising = H.make_engine(tmp_root, worker_argv=[sys.executable, '-c',
                                                   RAISING_WORKER])
    rec = raising.inspect(job)
    assert (rec.status, rec.reason) == (
        'failed', 'inspection worker failed (exit 1): RuntimeError: '
        'inspection bug')
    # The next inspection works.
    rec = engine.inspect(job)
    assert catalog.mismatches(catalog.GUESTS['blank'].expected, rec) == []
    assert list(tmp_root.iterdir()) == []


RAISING_WORKER = '''
from ceilometer_os_pollster import worker
def broken(*args, **kwargs):
    raise RuntimeError('inspection bug')
worker.inspect = broken
raise SystemExit(worker.main())
'''


@pytest.fixture
def stuck_fs(tmp_path):
    """A FUSE mount whose disk.raw never answers a look-up; the daemon is
    killed (and the mount dropped) at the end, which frees whatever is
    blocked on it."""
    mountpoint = tmp_path / 'stuck'
    mountpoint.mkdir()
    daemon = subprocess.Popen([sys.executable, '-m', 'tests.rig.stuckfs',
                               str(mountpoint)], cwd=REPO)
    try:
        assert _until(lambda: os.path.ismount(mountpoint), 30), \
            'FUSE mount did not appear (is /dev/fuse usable?)'
        yield mountpoint / 'disk.raw'
    finally:
        daemon.kill()
        daemon.wait(30)
        subprocess.run(['umount', '-l', str(mountpoint)], check=False,
                       stderr=subprocess.DEVNULL)


def test_disk_on_storage_that_never_answers_costs_only_a_deadline(
        tmp_path, stuck_fs, caplog):
    tmp_root = tmp_path / 'tmp'
    tmp_root.mkdir()
    engine = H.make_engine(tmp_root)
    engine.deadline = 30
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.1)

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    try:
        rec = engine.inspect(H.job('stuck', H.DISK.format(path=stuck_fs)))
    finally:
        stop.set()
        thread.join()
    # The direct readers (auto, the default) are the first to wait for
    # the file system.
    assert (rec.status, rec.reason) == (
        'failed', 'deadline: inspection killed after 30 s while reading '
        'disks directly')
    # The worker sits in the kernel waiting for the file system: even
    # SIGKILL cannot end it, yet the call returned, said so once, and the
    # agent's other threads kept running meanwhile (a held GIL would have
    # allowed a tick or two in those 30 s, not hundreds).
    lingering = [r for r in caplog.records if r.levelname == 'ERROR'
                 and 'did not die after SIGKILL' in r.getMessage()]
    assert len(lingering) == 1
    assert len(ticks) >= 50
    assert list(tmp_root.iterdir()) == []
    # The slot is free: the next inspection runs while that worker is
    # still stuck.
    rec = engine.inspect(H.job('after-stuck', ''))
    assert (rec.status, rec.reason) == ('unknown', 'no disk to inspect')
