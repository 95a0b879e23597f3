"""End to end: real domains, a real Ceilometer agent, real appliances.

One module-scoped rig runs a guest in every nova disk layout (plus a
Linux boot disk with a Windows data disk, and a LUKS guest) under the
rig's libvirtd.  A real Ceilometer AgentManager polls them through our
entry point with the real InspectionService and Engine; the only extra
is a counter around the engine's ``inspect``.  The tests run in order
and share the agent: pending first, then every guest's catalog record,
no byte written, no needless launch, and one re-queue after a restart.
"""

import os
import threading
import time

import pytest

from ceilometer_os_pollster.agent import engine as engine_mod
from ceilometer_os_pollster import record
from ceilometer_os_pollster.agent import service as service_mod
from tests.functional import agent as agent_mod
from tests.guests import builder
from tests.guests import catalog
from tests.rig import libvirtd
from tests.rig import rig as rig_mod

pytestmark = [pytest.mark.libvirt, pytest.mark.appliance]

METER = 'compute.instance.os.metadata'
HOST = 'e2e-compute-1'
WAIT_SECONDS = 15 * 60

# (display name, catalog guest, layout, vCPUs, data disk guest)
INSTANCES = [
    ('sql-overlay', 'win2019-sql', rig_mod.OVERLAY, 4, None),
    ('rhel-blank-base', 'rhel-9.4', rig_mod.OVERLAY_BLANK_BASE, 2, None),
    ('alma-qcow2', 'almalinux-9.4', rig_mod.QCOW2, 1, None),
    ('ubuntu-raw', 'ubuntu-22.04', rig_mod.RAW, 2, None),
    ('sles-block', 'sles-15-sp5', rig_mod.BLOCK, 3, None),
    ('win11-nbd', 'win11-pro', rig_mod.NBD, 2, None),
    ('debian-with-win-data', 'debian-12', rig_mod.OVERLAY, 2,
     'win2022-standard'),
    ('luks-qcow2', 'luks', rig_mod.QCOW2, 1, None),
]


class CountingEngine:
    """The real Engine, its inspect() calls counted per instance; a test
    may hold them at a gate before they start (``gate.clear()``), and
    sees how many have returned."""

    def __init__(self, real):
        self.real = real
        self.calls = []
        self.returned = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def inspect(self, job):
        with self._lock:
            self.calls.append(job.instance_id)
        assert self.gate.wait(WAIT_SECONDS), 'held at the gate'
        try:
            return self.real.inspect(job)
        finally:
            with self._lock:
                self.returned += 1

    def count(self):
        with self._lock:
            return len(self.calls)

    def stop(self, timeout):
        return self.real.stop(timeout)


def _guestfs_pids():
    """Pids of processes whose command line mentions guestfs."""
    found = set()
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                if b'guestfs' in f.read():
                    found.add(int(pid))
        except OSError:
            pass
    return found


class World:
    """The rig, the agent and what the tests learn along the way."""

    def __init__(self, the_rig, mgr, svc, engine, guests):
        self.rig = the_rig
        self.mgr = mgr
        self.svc = svc
        self.engine = engine
        self.guests = guests          # uuid -> catalog guest name
        self.tasks = mgr.setup_polling_tasks()
        self.before = rig_mod.disk_checksums(the_rig)
        self.domains = {d.uuid: d for d in the_rig.domains}

    def cycle(self):
        """One synchronous polling cycle; {uuid: sample dict}."""
        return agent_mod.run_cycle(self.mgr, self.tasks)

    def wait_idle(self, ids, timeout=WAIT_SECONDS):
        """Until nothing is queued or running and ``ids`` are cached."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = self.svc.scheduler.stats()
            if (not stats['queued'] and not stats['running']
                    and all(self.svc.cache.get(i) for i in ids)):
                return stats
            time.sleep(2)
        raise AssertionError('inspections not done in %d s: %s'
                             % (timeout, self.svc.scheduler.stats()))


@pytest.fixture(scope='module')
def world(libvirt_daemons, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('e2e')
    conf = agent_mod.agent_conf(tmp, libvirtd.URI, host=HOST,
                                **agent_mod.RIG_INSPECTIONS)
    with rig_mod.Rig(tmp / 'rig') as the_rig, \
            agent_mod.agent_on_rig(the_rig) as held:
        guests = {}
        for name, guest, layout, vcpus, data in INSTANCES:
            dom = the_rig.add(
                name, builder.build(guest), layout=layout, vcpus=vcpus,
                data_image=builder.build(data) if data else None)
            guests[dom.uuid] = guest
        the_rig.start_all()
        held.svc = svc = service_mod.InspectionService(conf)
        engine = CountingEngine(engine_mod.Engine(conf))
        svc._engine = engine
        mgr = agent_mod.agent_manager(conf, svc, guests, held.mp)
        yield World(the_rig, mgr, svc, engine, guests)
    # every appliance this process started is gone
    deadline = time.monotonic() + 60
    while _our_appliances() and time.monotonic() < deadline:
        time.sleep(1)
    assert _our_appliances() == set()


def _our_appliances():
    """guestfs processes descending from this one."""
    mine = str(os.getpid())
    return {pid for pid in _guestfs_pids() if _descends(pid, mine)}


def _descends(pid, ancestor):
    for _ in range(20):
        try:
            with open('/proc/%d/stat' % pid) as f:
                ppid = f.read().rsplit(')', 1)[1].split()[1]
        except (OSError, IndexError):
            return False
        if ppid == ancestor:
            return True
        if ppid in ('0', '1'):
            return False
        pid = int(ppid)
    return False


def _check_sample(world, uuid, s):
    dom = world.domains[uuid]
    assert s['counter_volume'] == dom.vcpus
    assert s['counter_unit'] == 'vcpu'
    assert s['project_id'] == dom.project_id
    assert s['user_id'] == dom.user_id
    assert set(record.METADATA_KEYS) <= set(s['resource_metadata'])


def test_first_cycle_waits_for_no_inspection_and_is_all_pending(world):
    # Every inspection is held before it starts: a cycle that waited
    # for one would never return.
    world.engine.gate.clear()
    try:
        samples = world.cycle()
        returned = world.engine.returned
        stats = world.svc.scheduler.stats()
    finally:
        world.engine.gate.set()
    # It returned while every instance's inspection was queued or held.
    assert returned == 0
    assert stats['queued'] + stats['running'] == len(world.guests), stats
    assert set(samples) == set(world.guests)
    for uuid, s in samples.items():
        _check_sample(world, uuid, s)
        assert s['resource_metadata']['os_inspection_status'] == 'pending'


def test_next_cycle_carries_every_catalog_record(world):
    world.wait_idle(list(world.guests))
    assert sorted(world.engine.calls) == sorted(world.guests)
    samples = world.cycle()
    assert set(samples) == set(world.guests)
    wrong = {}
    for uuid, s in samples.items():
        _check_sample(world, uuid, s)
        guest = world.guests[uuid]
        bad = catalog.mismatches(catalog.GUESTS[guest].expected,
                                 s['resource_metadata'])
        if bad:
            wrong[world.domains[uuid].display_name] = bad
    assert wrong == {}


def test_no_byte_of_any_guest_disk_changed(world):
    assert rig_mod.disk_checksums(world.rig) == world.before


def test_further_cycle_launches_no_appliance(world):
    calls = world.engine.count()
    samples = world.cycle()
    assert set(samples) == set(world.guests)
    assert world.svc.scheduler.stats()['queued'] == 0
    time.sleep(1)
    assert world.engine.count() == calls


def test_restart_requeues_only_that_domain_and_serves_old_record(world):
    uuid = next(u for u, g in world.guests.items() if g == 'rhel-9.4')
    old = world.svc.cache.get(uuid).record
    dom = world.rig.conn.lookupByUUIDString(uuid)
    dom.destroy()
    dom.create()
    calls = world.engine.count()
    samples = world.cycle()
    # stale-while-revalidate: the old record, not pending
    md = samples[uuid]['resource_metadata']
    assert md['os_inspection_status'] == 'ok'
    assert md['os_inspected_at'] == old.metadata()['os_inspected_at']
    world.wait_idle([uuid])
    assert world.engine.calls[calls:] == [uuid]
    fresh = world.svc.cache.get(uuid).record
    assert fresh.fingerprint != old.fingerprint
    assert catalog.mismatches(catalog.GUESTS['rhel-9.4'].expected,
                              fresh) == []
    world.cycle()
    time.sleep(1)
    assert world.engine.calls[calls:] == [uuid]
    assert rig_mod.disk_checksums(world.rig) == world.before
