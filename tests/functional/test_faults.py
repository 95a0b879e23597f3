"""Fault suite: real processes fed bad inputs, and what must still hold.

Complements test_engine_appliance.py (catalog guests, hung appliance,
rbd key handling) and test_cache_processes.py (cache crashes): here the
real Engine runs over a sequence of hostile or broken jobs, the real
pollster runs inside Ceilometer's AgentManager while its surroundings
break, and an agent is SIGKILLed mid-inspection.  Invariants checked
throughout: every record's strings are clean, guest images are never
written, no secret reaches a log or a process command line.
Appliance launches: 6 in the engine sequence + 1 killed = 7.
"""

import base64
import os
import shutil
import subprocess
import sys
import threading
import time

from oslo_messaging.notify import _impl_test
import pytest

from ceilometer_os_pollster.agent import engine as E
from ceilometer_os_pollster import record
from ceilometer_os_pollster.agent import service as service_mod
from ceilometer_os_pollster.agent import workdir
from tests.functional import faults_helpers as H
from tests.guests import builder
from tests.guests import catalog
from tests.rig import libvirtd

SECRET_UUID = '0f5a6c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b'
# A well-formed cephx key (type 1, 16 secret bytes) that is easy to grep.
KEY = bytes.fromhex('0100' + '00' * 8 + '1000') + b'fault-suite-key!'
KEY_B64 = base64.b64encode(KEY).decode()

IMAGE_GUESTS = ('data-only', 'corrupt-fs', 'hostile-registry',
                'hostile-os-release', 'rhel-9.4')


def _vanish_when_started(tmp_root, path, done):
    """Delete ``path`` as soon as an appliance's private dir exists."""
    while not done.is_set():
        if any(p.name.startswith('os-inspection-')
               for p in tmp_root.iterdir()):
            time.sleep(0.5)
            os.unlink(path)
            return
        time.sleep(0.01)


@pytest.fixture
def ceph_secret(libvirt_daemons):
    """The rbd disks' libvirt secret, in the real libvirtd."""
    with libvirtd.CephSecret(SECRET_UUID, KEY) as secret:
        yield secret


@pytest.mark.appliance
@pytest.mark.libvirt
def test_engine_survives_a_sequence_of_bad_inputs(tmp_path, caplog,
                                                  ceph_secret):
    caplog.set_level('DEBUG')
    images = builder.build_all(IMAGE_GUESTS)
    digests = {n: builder.sha256(p) for n, p in images.items()}
    tmp_root = tmp_path / 'inspection-tmp'
    tmp_root.mkdir()
    engine = H.make_engine(tmp_root, libvirt_secret_uri=libvirtd.URI)

    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    vanishing = tmp_path / 'vanishing.raw'
    shutil.copyfile(images['data-only'], vanishing)
    disk = H.DISK.format

    # (name, disks XML, check(record) or expected catalog guest)
    cases = [
        ('missing-file', disk(path=tmp_path / 'nope.raw'),
         ('failed', 'No such file or directory')),
        ('directory', disk(path=tmp_path),
         ('failed', 'not a file or block device')),
        ('fifo', disk(path=fifo), ('failed', 'not a file or block device')),
        ('no-disks', '', ('unknown', 'no disk to inspect')),
        ('cdrom-only', H.CDROM.format(path=images['rhel-9.4']),
         ('unknown', 'no disk to inspect')),
        ('rbd-no-port', H.RBD_DISK.format(
            uuid=SECRET_UUID, hosts="<host name='127.0.0.1'/>"),
         ('failed', 'cannot open disk vda')),
        ('vanishing', disk(path=vanishing), None),
    ] + [(name, disk(path=images[name]), name)
         for name in IMAGE_GUESTS]   # healthy rhel-9.4 comes last

    records = {}
    elapsed = {}
    sampler = None
    for name, disks, want in cases:
        done = threading.Event()
        if name == 'rbd-no-port':
            sampler = H.ProcSampler(tmp_path, [KEY_B64, KEY.decode(
                'latin-1')[-16:]])
        if name == 'vanishing':
            threading.Thread(target=_vanish_when_started, daemon=True,
                             args=(tmp_root, vanishing, done)).start()
        started = time.monotonic()
        rec = engine.inspect(H.job(name, disks))
        elapsed[name] = time.monotonic() - started
        done.set()
        records[name] = rec
        if sampler is not None:
            seen = sampler.finish()
            sampler = None
        H.assert_clean(rec)
        assert rec.instance_id == 'inst-' + name
        assert rec.inspected_at and rec.fingerprint
        if isinstance(want, tuple):
            assert rec.status == want[0], (name, rec)
            assert want[1] in rec.reason, (name, rec)
        elif want is None:
            assert rec.status in ('ok', 'unknown', 'failed'), rec
            if rec.status == 'failed':
                assert rec.reason, rec
        else:
            expected = catalog.GUESTS[want].expected
            assert catalog.mismatches(expected, rec) == [], (name, rec)
            if rec.status != 'ok':
                assert rec.reason, rec
        # every appliance is gone and its private files with it
        assert list(tmp_root.iterdir()) == [], name

    # The rbd drive got the default port, failed at the mount timeout
    # (no hang, no deadline), and its key was never on a command line.
    assert 'Connection timed out' in records['rbd-no-port'].reason
    assert seen['samples'] > 10
    assert seen['hits'] == []
    assert any('qemu' in p for p in seen['procs']), seen
    assert records['rhel-9.4'].os_distro == 'rhel'
    for text in (caplog.text,) + tuple(r.reason for r in records.values()):
        assert KEY_B64 not in text
        assert 'fault-suite-key' not in text
    for name, path in images.items():
        assert builder.sha256(path) == digests[name], name
    assert len(records) == len(cases) == 12
    for name, rec in records.items():
        print('%-20s %-8s %4.0f s  %s' % (name, rec.status, elapsed[name],
                                          rec.reason[:60]))


# --------------------------------------------------------------------------
# KVM unusable: the preflight names the fix


def test_preflight_names_force_tcg_when_kvm_cannot_be_opened(
        monkeypatch, tmp_path, caplog):
    missing = str(tmp_path / 'no-kvm')
    real = E.kvm_problem
    monkeypatch.setattr(E, 'kvm_problem', lambda: real(device=missing))
    engine = H.make_engine(tmp_path, libguestfs_backend_settings=[])
    caplog.set_level('WARNING')
    problems = engine.preflight()
    hint = '[os_inspection] libguestfs_backend_settings = force_tcg'
    assert [p for p in problems if missing in p and hint in p], problems
    assert hint in caplog.text and 'cannot be opened' in caplog.text
    # With TCG forced there is nothing to say about KVM.
    assert not [p for p in H.make_engine(tmp_path).preflight()
                if 'KVM' in p]


def test_service_runs_the_preflight_once_at_lazy_start(
        tmp_path, monkeypatch):
    from oslo_config import cfg

    calls = []
    monkeypatch.setattr(E.Engine, 'preflight',
                        lambda self: calls.append(self) or [])
    conf = cfg.ConfigOpts()
    conf([])
    svc = service_mod.InspectionService(conf)
    conf.set_override('cache_dir', str(tmp_path / 'c'), 'os_inspection')
    assert calls == []          # nothing at construction
    svc.scheduler
    svc.scheduler
    svc.cache
    svc.stop()
    assert len(calls) == 1 and isinstance(calls[0], E.Engine)


# --------------------------------------------------------------------------
# Agent-level faults: the real pollster inside Ceilometer's AgentManager

UUIDS = ['bbbbbbbb-0000-4000-8000-00000000000%d' % i for i in range(1, 4)]


class GatedEngine:
    """Answers with a fixed record once ``gate`` is set; may raise for
    one instance."""

    def __init__(self, raise_for=()):
        self.gate = threading.Event()
        self.gate.set()
        self.calls = []
        self.raise_for = set(raise_for)

    def inspect(self, job):
        self.gate.wait(60)
        self.calls.append(job.instance_id)
        if job.instance_id in self.raise_for:
            raise RuntimeError('engine exploded\x1b[2J for %s'
                               % job.instance_id)
        return record.OSRecord(
            instance_id=job.instance_id, status='ok', os_family='linux',
            os_distro='rhel', os_info='rhel9.4', os_version_major=9,
            os_version_minor=4, fingerprint=job.fingerprint,
            inspected_at=record.utc_timestamp())


def _build_agent(tmp_path, monkeypatch, uri, engine,
                 service_class=service_mod.InspectionService):
    """The shared in-process agent; (service, cycle) where cycle() runs
    one polling cycle and returns {resource id: metadata} published."""
    from tests.functional import agent

    a = agent.Agent(agent.agent_conf(tmp_path, uri, host='compute1'),
                    monkeypatch, engine=engine, service_class=service_class)
    return a.svc, a.cycle_metadata


def _until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _statuses(published):
    return {u: md['os_inspection_status'] for u, md in published.items()}


@pytest.fixture
def fake_libvirt_uri(tmp_path):
    """libvirt's daemon-less test driver serving one domain per UUIDS."""
    from tests.fixtures import libvirt_test_driver as tdrv
    yield tdrv.write_node(tmp_path / 'node.xml', [
        tdrv.domain(u, 'instance-%08d' % i, vcpus=i + 1)
        for i, u in enumerate(UUIDS)])
    _impl_test.reset()


def test_agent_survives_one_instance_whose_lookup_and_engine_raise(
        tmp_path, monkeypatch, fake_libvirt_uri):
    bad_lookup, bad_engine = UUIDS[0], UUIDS[1]

    class Service(service_mod.InspectionService):
        def lookup(self, job):
            if job.instance_id == bad_lookup:
                raise RuntimeError('lookup exploded')
            return super().lookup(job)

    engine = GatedEngine(raise_for=[bad_engine])
    svc, cycle = _build_agent(tmp_path, monkeypatch, fake_libvirt_uri,
                              engine, Service)
    try:
        first = cycle()
        assert set(first) == set(UUIDS[1:])
        assert _until(lambda: svc.cache.get(bad_engine) and
                      svc.cache.get(UUIDS[2]))
        second = cycle()
        assert set(second) == set(UUIDS[1:])
        assert second[UUIDS[2]]['os_inspection_status'] == 'ok'
        # the exploding engine gives a failed record with a clean reason
        md = second[bad_engine]
        assert md['os_inspection_status'] == 'failed'
        assert md['os_inspection_reason'].isprintable()
        assert md['os_inspection_reason']
    finally:
        svc.stop()


def test_agent_survives_cache_dir_turning_read_only(
        tmp_path, monkeypatch, fake_libvirt_uri):
    engine = GatedEngine()
    engine.gate.clear()         # inspections wait until the dir is RO
    svc, cycle = _build_agent(tmp_path, monkeypatch, fake_libvirt_uri,
                              engine)
    cache_dir = tmp_path / 'cache'
    mounted = False
    try:
        first = cycle()
        assert set(_statuses(first).values()) == {'pending'}
        assert set(first) == set(UUIDS)
        cache_dir.mkdir(exist_ok=True)
        # root ignores file modes: a read-only bind mount is what refuses
        subprocess.run(['mount', '--bind', str(cache_dir), str(cache_dir)],
                       check=True)
        mounted = True
        subprocess.run(['mount', '-o', 'remount,bind,ro', str(cache_dir)],
                       check=True)
        with pytest.raises(OSError):
            (cache_dir / 'probe').write_text('x')
        engine.gate.set()
        assert _until(lambda: all(svc.cache.get(u) for u in UUIDS))
        assert _until(lambda: all(
            svc.cache.get(u).record.status == 'ok' for u in UUIDS))
        for _ in range(2):
            published = cycle()
            assert _statuses(published) == {u: 'ok' for u in UUIDS}
        assert sorted(engine.calls) == sorted(UUIDS)   # no re-inspection
        assert list(cache_dir.glob('*.json')) == []
    finally:
        svc.stop()
        if mounted:
            subprocess.run(['umount', str(cache_dir)], check=True)


def test_agent_survives_corrupt_and_foreign_cache_files(
        tmp_path, monkeypatch, fake_libvirt_uri):
    cache_dir = tmp_path / 'cache'
    cache_dir.mkdir()
    garbage = {
        UUIDS[0] + '.json': b'{"schema": 1, "record": {"instance_i',
        UUIDS[1] + '.json': b'\x00\xff\xfe' * 1000,
        UUIDS[2] + '.json': b'[1, 2, 3]',
        'README': b'not ours',
        '../escape.json': None,
        'x' * 200 + '.json': b'{}',
        'subdir.json': None,
    }
    for name, data in garbage.items():
        if data is None:
            continue
        (cache_dir / name).write_bytes(data)
    (cache_dir / 'subdir.json').mkdir()
    os.symlink('/etc/passwd', cache_dir / ('%s.tmp' % UUIDS[0]))
    engine = GatedEngine()
    svc, cycle = _build_agent(tmp_path, monkeypatch, fake_libvirt_uri,
                              engine)
    try:
        first = cycle()
        assert set(first) == set(UUIDS)
        assert set(_statuses(first).values()) <= {'pending', 'ok'}
        assert _until(lambda: all(
            svc.cache.get(u) and svc.cache.get(u).record.status == 'ok'
            for u in UUIDS))
        assert _statuses(cycle()) == {u: 'ok' for u in UUIDS}
        assert (cache_dir / 'README').read_bytes() == b'not ours'
        assert os.path.exists('/etc/passwd')
    finally:
        svc.stop()


# --------------------------------------------------------------------------
# The agent SIGKILLed while its appliance runs

KILLED_AGENT = r'''
import sys
from oslo_config import cfg
from ceilometer_os_pollster.agent import service
from tests.functional import faults_helpers as H
tmp_root, cache_dir, image = sys.argv[1:4]
conf = cfg.ConfigOpts()
conf([])
svc = service.InspectionService(conf)
# allow_root_inspection: run as root on a root-owned image.
for name, value in dict(libguestfs_backend_settings=['force_tcg'],
                        tmp_dir=tmp_root, cache_dir=cache_dir,
                        inspection_deadline=900,
                        inspection_method='appliance',
                        allow_root_inspection=True).items():
    conf.set_override(name, value, 'os_inspection')
job = H.job('killed', H.DISK.format(path=image))
print(svc.scheduler.run_now([job]), flush=True)
'''


@pytest.mark.appliance
def test_agent_killed_mid_inspection_leaves_no_appliance_behind(tmp_path):
    from ceilometer_os_pollster.agent import cache as cache_mod

    image = builder.build('blank')
    digest = builder.sha256(image)
    tmp_root = tmp_path / 'tmp'
    tmp_root.mkdir()
    cache_dir = tmp_path / 'cache'
    # A healthy record from an earlier cycle must survive the crash.
    earlier = cache_mod.RecordCache(str(cache_dir))
    earlier.load()
    agent = subprocess.Popen(
        [sys.executable, '-c', KILLED_AGENT, str(tmp_root), str(cache_dir),
         str(image)], cwd=os.path.dirname(os.path.dirname(
             os.path.dirname(os.path.abspath(__file__)))),
        env=dict(os.environ, LIBGUESTFS_BACKEND_SETTINGS='force_tcg'))
    qemus = []
    try:
        assert _until(lambda: qemus.extend(
            H.proc_children(agent.pid, b'-kernel')) or qemus, 120), \
            'no appliance qemu started'
        time.sleep(2)
        agent.kill()
        agent.wait(10)
    finally:
        if agent.poll() is None:
            agent.kill()
    # libguestfs' recovery process kills qemu when its parent dies.
    gone = _until(lambda: not any(H.alive(p) for p in qemus), 20)
    leftovers = sorted(p.name for p in tmp_root.iterdir())
    # A new service start removes what the dead agent left in tmp_dir.
    from oslo_config import cfg
    conf = cfg.ConfigOpts()
    conf([])
    svc = service_mod.InspectionService(conf)
    for name, value in dict(tmp_dir=str(tmp_root),
                            cache_dir=str(cache_dir)).items():
        conf.set_override(name, value, 'os_inspection')
    try:
        assert svc.cache.get('inst-killed') is None
        reloaded = cache_mod.RecordCache(str(cache_dir))
        reloaded.load()
        assert len(reloaded) == 0
        assert all(not p.name.endswith('.json') or p.stat().st_size
                   for p in cache_dir.iterdir())
        after = sorted(p.name for p in tmp_root.iterdir())
    finally:
        svc.stop()
    for pid in qemus:
        if H.alive(pid):
            os.kill(pid, 9)
    assert gone, 'appliance qemu %s outlived the killed agent' % qemus
    assert builder.sha256(image) == digest
    print('left by the killed agent: %s; after restart: %s'
          % (leftovers, after))
    assert after == []


# --------------------------------------------------------------------------
# libvirtd restarted between polling cycles


def _stop_libvirtd(timeout=30.0):
    from tests.rig import libvirtd
    with open('/run/libvirtd.pid') as f:
        pid = int(f.read().strip())
    assert libvirtd.process_identity(pid)[0] == 'libvirtd'
    os.kill(pid, 15)
    assert _until(lambda: libvirtd.process_identity(pid) is None or
                  libvirtd.process_identity(pid)[0] != 'libvirtd', timeout)


@pytest.mark.libvirt
def test_agent_survives_libvirtd_restart(rig, tmp_path, monkeypatch):
    from tests.rig import libvirtd

    image = builder.build('blank')
    for name in ('fault-a', 'fault-b'):
        rig.add(name, image, vcpus=1)
    rig.start_all()
    uuids = {d.uuid for d in rig.domains}
    engine = GatedEngine()
    svc, cycle = _build_agent(tmp_path, monkeypatch, libvirtd.URI, engine)
    try:
        first = cycle()
        assert uuids <= set(first)
        assert _until(lambda: all(
            svc.cache.get(u) and svc.cache.get(u).record.status == 'ok'
            for u in uuids))
        _stop_libvirtd()
        try:
            during = cycle()        # must not raise; samples may be missing
            assert set(during) <= set(first)
        finally:
            libvirtd.ensure_daemons()
            # The rig's own connection died with the daemon.
            rig.reconnect()
        after = cycle()
        assert uuids <= set(after)
        assert {u: after[u]['os_inspection_status'] for u in uuids} == {
            u: 'ok' for u in uuids}
        # one inspection each: the restart did not lose the records
        assert sorted(c for c in engine.calls if c in uuids) == \
            sorted(uuids)
    finally:
        svc.stop()


def test_orphan_dir_cleanup_spares_live_foreign_and_young_dirs(tmp_path):
    live = tmp_path / 'os-inspection-live'
    dead = tmp_path / 'os-inspection-dead'
    young = tmp_path / 'os-inspection-young'      # no lock file yet
    old = tmp_path / 'os-inspection-old'          # no lock file, stale
    other = tmp_path / 'someone-else'
    for d in (live, dead, young, old, other):
        d.mkdir()
        (d / 'overlay.qcow2').write_bytes(b'x')
    (tmp_path / 'os-inspection-file').write_bytes(b'not a dir')
    os.symlink(other, tmp_path / 'os-inspection-link')
    fd = workdir._hold_owner_lock(str(live))
    os.close(workdir._hold_owner_lock(str(dead)))      # its owner died
    os.utime(old, (0, 0))
    try:
        removed = workdir.remove_orphan_dirs(str(tmp_path))
    finally:
        os.close(fd)
    assert sorted(removed) == ['os-inspection-dead', 'os-inspection-old']
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'os-inspection-file', 'os-inspection-link', 'os-inspection-live',
        'os-inspection-young', 'someone-else']
    assert (other / 'overlay.qcow2').exists()
    assert workdir.remove_orphan_dirs(str(tmp_path / 'missing')) == []
