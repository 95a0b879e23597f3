"""Nothing a guest disk or its storage does can stall the agent.

Every inspection runs in a worker process of its own; the agent only
waits on its pipe.  Here, with real processes: an instance whose disk is
an NBD export whose server was frozen with SIGSTOP (the kernel still
accepts connections, nothing answers) among healthy instances, polled by
a real Ceilometer AgentManager every few seconds; a worker SIGKILLed in
the middle of an inspection (launching an appliance; reading an NBD disk
directly); a worker that raises; storage that never answers a look-up,
or stops in the middle of the direct readers' reads.  The direct method
(``auto``) reads nbd disks itself, so the frozen NBD server holds our
own client, and the deadline ends it as it ends the appliance.
Appliance launches: 1 killed + 1 after it.
"""

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from ceilometer_os_pollster.agent import engine as engine_mod
from tests.functional import agent as agent_mod
from tests.functional import conftest
from tests.functional import faults_helpers as H
from tests import helpers
from tests.guests import builder
from tests.guests import catalog
from tests.rig import libvirtd
from tests.rig import rig as rig_mod

pytestmark = [pytest.mark.libvirt, pytest.mark.appliance]

REPO = pathlib.Path(__file__).resolve().parents[2]
# The healthy guests are read directly (well under a second of CPU);
# the frozen one waits for this, twice.
DEADLINE = 30
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
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            return int(f.read().rsplit(b')', 1)[1].split()[1])
    except OSError:
        return None         # gone meanwhile


def _until(predicate, timeout):
    return helpers.until(predicate, timeout, interval=0.5)


def _our_workers():
    """Pids of the inspection workers this process started."""
    return [pid for pid in H.proc_children(os.getpid(), b'.worker')
            if _parent(pid) == os.getpid()]


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
    # Our own NBD client waited for the greeting until the deadline.
    assert frozen_record.reason == (
        'deadline: inspection killed after %d s while reading disks '
        'directly' % DEADLINE)
    for uuid, guest in healthy.items():
        rec = healthy_records[uuid]
        assert catalog.mismatches(catalog.GUESTS[guest].expected,
                                  rec) == [], rec
        assert rec.inspection_method == 'direct', rec
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
        workers = _our_workers()
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
from ceilometer_os_pollster.inspection import worker
def broken(*args, **kwargs):
    raise RuntimeError('inspection bug')
worker.inspect = broken
raise SystemExit(worker.main())
'''


class StuckMount:
    """A tests.rig.stuckfs mount; ``release()`` kills the daemon and
    drops the mount, which frees whatever is blocked on it."""

    def __init__(self, mountpoint, *args):
        mountpoint.mkdir()
        self.mountpoint = mountpoint
        self.disk = mountpoint / 'disk.raw'
        self.daemon = subprocess.Popen(
            [sys.executable, '-m', 'tests.rig.stuckfs', str(mountpoint)]
            + list(args), cwd=REPO)
        if not _until(lambda: os.path.ismount(mountpoint), 30):
            self.release()
            pytest.fail('FUSE mount did not appear (is /dev/fuse usable?)')

    def release(self):
        if self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait(30)
        subprocess.run(['umount', '-l', str(self.mountpoint)], check=False,
                       stderr=subprocess.DEVNULL)


@pytest.fixture
def stuck_fs(tmp_path):
    """A FUSE mount whose disk.raw never answers a look-up."""
    mount = StuckMount(tmp_path / 'stuck')
    try:
        yield mount.disk
    finally:
        mount.release()


# A disk whose first partition starts here: the partition table is read,
# the partition's first read never answered.
PARTITION_AT = 1 << 20


@pytest.fixture
def stuck_mid_read(tmp_path):
    """A FUSE mount whose disk.raw (an MBR disk) answers look-ups, open
    and the reads of its partition table, then never answers a read of
    its partition; the reads are logged."""
    image = tmp_path / 'mbr.raw'
    with open(image, 'wb') as f:
        f.truncate(8 * PARTITION_AT)
    subprocess.run(['sfdisk', '-q', str(image)], check=True,
                   input=b'start=%d, type=83\n' % (PARTITION_AT // 512))
    log = tmp_path / 'reads.log'
    mount = StuckMount(tmp_path / 'stuck', '--serve', str(image),
                       '--block-from', str(PARTITION_AT), '--log', str(log))
    try:
        yield mount, log
    finally:
        mount.release()


def test_disk_on_storage_that_never_answers_costs_only_a_deadline(
        tmp_path, stuck_fs, caplog):
    tmp_root = tmp_path / 'tmp'
    tmp_root.mkdir()
    engine = H.make_engine(tmp_root)
    engine.deadline = 30
    stuck_returned = threading.Event()
    meanwhile = {}

    def another_inspection():
        # Once the stuck inspection's worker runs, another thread of the
        # agent inspects an instance of its own, start to end.
        if helpers.until(_our_workers, 30):
            meanwhile['rec'] = engine.inspect(H.job('meanwhile', ''))
            meanwhile['stuck_had_returned'] = stuck_returned.is_set()

    thread = threading.Thread(target=another_inspection, daemon=True)
    thread.start()
    try:
        rec = engine.inspect(H.job('stuck', H.DISK.format(path=stuck_fs)))
    finally:
        stuck_returned.set()
        thread.join(DEADLINE)
    # The direct readers (auto, the default) are the first to wait for
    # the file system.
    assert (rec.status, rec.reason) == (
        'failed', 'deadline: inspection killed after 30 s while reading '
        'disks directly')
    # The worker sits in the kernel waiting for the file system: even
    # SIGKILL cannot end it, yet the call returned and said so once; and
    # while it waited, another thread of the agent ran a whole inspection
    # (a held GIL or a shared lock would have kept it waiting too).
    lingering = [r for r in caplog.records if r.levelname == 'ERROR'
                 and 'did not die after SIGKILL' in r.getMessage()]
    assert len(lingering) == 1
    assert meanwhile, 'the stuck inspection started no worker'
    assert (meanwhile['rec'].status, meanwhile['rec'].reason) == (
        'unknown', 'no disk to inspect')
    assert meanwhile['stuck_had_returned'] is False
    assert list(tmp_root.iterdir()) == []
    # The slot is free: the next inspection runs while that worker is
    # still stuck.
    rec = engine.inspect(H.job('after-stuck', ''))
    assert (rec.status, rec.reason) == ('unknown', 'no disk to inspect')


def test_storage_that_stops_mid_read_costs_only_a_deadline(
        tmp_path, stuck_mid_read):
    mount, log = stuck_mid_read
    tmp_root = tmp_path / 'tmp'
    tmp_root.mkdir()
    engine = H.make_engine(tmp_root)
    engine.deadline = DEADLINE
    rec = engine.inspect(H.job('stuck-mid-read',
                               H.DISK.format(path=mount.disk)))
    # The direct readers opened the disk, read its partition table and
    # waited for the partition until the deadline, as the appliance
    # would have waited in its own stage.
    assert (rec.status, rec.reason) == (
        'failed', 'deadline: inspection killed after %d s while reading '
        'disks directly' % DEADLINE)
    reads = [line.split() for line in log.read_text().splitlines()]
    assert ['served', '0'] in [r[:2] for r in reads], reads
    assert any(r[0] == 'blocked' and int(r[1]) + int(r[2]) > PARTITION_AT
               for r in reads), reads
    assert list(tmp_root.iterdir()) == []
    # The storage goes away: the worker, stuck in the kernel until now,
    # goes too, and nothing of the inspection is left.
    mount.release()
    assert _until(lambda: leftovers() == {}, DEADLINE), leftovers()
    assert list(tmp_root.iterdir()) == []


def test_worker_killed_mid_read_leaves_nothing(tmp_path):
    server = H.SilentNbd()
    tmp_root = tmp_path / 'tmp'
    tmp_root.mkdir()
    engine = H.make_engine(tmp_root)
    engine.deadline = DEADLINE
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        rec=engine.inspect(H.job('killed-mid-read', H.nbd_disk(server)))))
    thread.start()
    try:
        # Our own NBD client sent a read and waits for its reply.
        assert server.reading.wait(DEADLINE), 'no read request arrived'
        workers = _our_workers()
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)
    finally:
        thread.join(DEADLINE + 30)
        server.close()
    rec = result['rec']
    assert (rec.status, rec.reason) == (
        'failed', 'inspection worker killed by SIGKILL while reading disks '
        'directly (out of memory?)')
    assert _until(lambda: leftovers() == {}, DEADLINE), leftovers()
    assert list(tmp_root.iterdir()) == []
