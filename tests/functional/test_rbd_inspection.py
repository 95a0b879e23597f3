"""rbd disks inspected through a real Ceph cluster by a real agent.

The session's one-node cluster (tests.rig.ceph) holds the disks of
running libvirt domains attached the way nova (``vms/<uuid>_disk``) and
Cinder (``volumes/volume-<id>``) attach them, with a libvirt ``ceph``
secret.  A real Ceilometer AgentManager polls them through our entry
point, once per authentication route:

(a) ``[os_inspection] ceph_conf``: a client conf naming a keyring with
    the users' keys, as on a compute node with /etc/ceph set up;
(b) ``[os_inspection] libvirt_secret_uri``: the key of each disk's own
    libvirt secret.

The good guests (Windows on a nova ephemeral disk whose first monitor is
down, Linux on a Cinder volume whose only live monitor is the v2 address)
must come out ``ok``, read by the direct method (librbd, read-only) with
the default ``inspection_method = auto``, and by the appliance when
``inspection_method = appliance`` is forced; in the same cycles, four
broken instances (key rotated, caps revoked, image deleted, pool deleted
after the domain started) must come out ``failed`` with a reason an
operator can act on, costing the good ones nothing.  Then every monitor
goes down for a fifth instance.  Throughout, a sampler reads every
/proc/*/cmdline and environ for the keys, DEBUG logs are captured, and a
decoy ceph.conf sits in the working directory and in CEPH_CONF.  At the
end nothing may have been written to the cluster and no key may be left
in a file.

Only the public surface is used: options, the AgentManager and its
samples, the record cache through the ``cache list`` CLI.
"""

import json
import logging
import os
import re
import stat
import subprocess
import sys
import threading
import time

from oslo_messaging.notify import _impl_test
import pytest

from ceilometer.compute import discovery
from ceilometer.compute import pollsters as compute_pollsters

from ceilometer_os_pollster.agent import service as service_mod
from tests.functional import agent as agent_mod
from tests.guests import builder
from tests.guests import catalog
from tests.rig import ceph as ceph_mod
from tests.rig import libvirtd
from tests.rig import rig as rig_mod

pytestmark = [pytest.mark.libvirt, pytest.mark.appliance, pytest.mark.ceph]

HOST = 'rbd-compute-1'
WAIT_SECONDS = 20 * 60
SCRATCH = 'scratch'

GOOD = {'win-eph': 'win2022-standard', 'linux-vol': 'ubuntu-22.04'}
# broken instance -> what its failure reason must say
BAD = {
    'key-rotated': r'permission denied|not permitted|authenticat|'
                   r'auth|key',
    'caps-revoked': r'permission denied|not permitted|access',
    'image-deleted': r'no such|not found|does not exist|missing',
    'pool-missing': r'no such|not found|does not exist|missing|pool',
}
MONS_DOWN = 'mons-down'
MONS_DOWN_REASON = r'timed out|timeout|monitor|connect'


class Agent(agent_mod.Agent):
    """The shared in-process agent; discovery is limited to the rig's
    visible domains by the world fixture (that set grows)."""

    def cycle(self):
        """One polling cycle; {uuid: resource_metadata}."""
        return {rid: s['resource_metadata']
                for rid, s in super().cycle().items()}

    def until_settled(self, ids, timeout=WAIT_SECONDS):
        """Cycles until none of ``ids`` is pending; the last samples."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.cycle()
            states = {i: samples.get(i, {}).get('os_inspection_status')
                      for i in ids}
            if all(s not in (None, 'pending') for s in states.values()):
                return samples
            if time.monotonic() > deadline:
                raise AssertionError('not settled in %d s: %s'
                                     % (timeout, states))
            time.sleep(3)


class KeySampler(threading.Thread):
    """Reads every process's cmdline and environ for the keys, all along;
    notes whether an appliance or qemu-img was seen while sampling."""

    def __init__(self, needles):
        super().__init__(daemon=True)
        self.needles = needles
        self.hits = set()
        self.samples = 0
        self.saw_inspection = 0
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.hits.update(ceph_mod.processes_showing(self.needles))
            self.samples += 1
            if _inspection_running():
                self.saw_inspection += 1
            # qemu-img lives for a fraction of a second on a bad disk
            self._stop_event.wait(0.05)

    def stop(self):
        self._stop_event.set()
        self.join(10)


def _inspection_running():
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    line = f.read()
            except OSError:
                continue
            if b'guestfs' in line or line.startswith(b'qemu-img'):
                return True
    return False


class LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        try:
            self.lines.append(self.format(record))
        except Exception:       # a broken record must not stop the test
            self.lines.append(repr(record.__dict__))


class World:
    pass


def _sabotage(cluster, the_rig, doms):
    """Break the bad instances after their domains started, as it happens
    in a cloud: a key rotated, caps revoked, an image force-deleted, a
    pool deleted.  The domains keep running."""
    cluster.rotate_key('rotated')
    cluster.set_caps('revoked', ceph_mod.USERS['stranger'])
    disk = doms['image-deleted'].boot_disk
    cluster.remove_image(disk.pool, disk.image, force=True)
    cluster.delete_pool(SCRATCH)


@pytest.fixture(scope='module')
def world(ceph_cluster, libvirt_daemons, tmp_path_factory):
    cluster = ceph_cluster
    tmp = tmp_path_factory.mktemp('rbd-inspection')
    w = World()
    w.cluster = cluster
    w.began = time.time()
    w.tmp = tmp
    nova_caps = ceph_mod.USERS['nova']
    users = [cluster.users['nova'],
             cluster.add_user('rotated', nova_caps),
             cluster.add_user('revoked', nova_caps),
             cluster.add_user('scratchy', {'mon': 'profile rbd',
                                           'osd': 'profile rbd pool=%s'
                                                  % SCRATCH})]
    if SCRATCH not in cluster.pools():
        cluster.create_pool(SCRATCH)
    # Route (a): one keyring with every user's key as it is now, so the
    # rotated user's entry goes stale when its key is rotated.
    keys = tmp / 'etc-ceph'
    keys.mkdir(mode=0o700)
    keyring = cluster.write_keyring(keys / 'ceph.client.keyring', users)
    w.route_a_conf = cluster.client_conf(
        keys / 'ceph.conf', user=ceph_mod.User('nova', '', keyring))
    # Route (c): the operator's own read-only user (ceph_user), with the
    # least caps the installation guide (doc/source/install.rst) documents.
    w.route_c_conf = cluster.client_conf(
        keys / 'ceph-reader.conf', user=cluster.users['reader'])
    w.own_files = {str(keys), str(cluster.dir)}

    closed = ceph_mod.closed_port()
    v1 = (ceph_mod.HOST, cluster.v1_port)
    v2 = (ceph_mod.HOST, cluster.v2_port)
    down = (ceph_mod.HOST, closed)
    linux = builder.build('ubuntu-22.04')
    plan = [
        # name, image, layout, user, hosts, pool
        ('win-eph', builder.build('win2022-standard'),
         rig_mod.RBD_EPHEMERAL, 'nova', [down, v2, v1], None),
        # the v2 address is its only live monitor
        ('linux-vol', linux, rig_mod.RBD_VOLUME, 'nova', [v2, down], None),
        ('key-rotated', linux, rig_mod.RBD_EPHEMERAL, 'rotated', [v1], None),
        ('caps-revoked', linux, rig_mod.RBD_EPHEMERAL, 'revoked', [v1],
         None),
        ('image-deleted', linux, rig_mod.RBD_VOLUME, 'nova', [v1], None),
        ('pool-missing', linux, rig_mod.RBD_EPHEMERAL, 'scratchy', [v1],
         SCRATCH),
        (MONS_DOWN, linux, rig_mod.RBD_VOLUME, 'nova', [v2, v1], None),
    ]
    mp = pytest.MonkeyPatch()
    capture = LogCapture()
    root = logging.getLogger()
    old_level = root.level
    sampler = None
    with rig_mod.Rig(tmp / 'rig') as the_rig:
        try:
            doms = {}
            for name, image, layout, user, hosts, pool in plan:
                doms[name] = the_rig.add_rbd(name, image, cluster,
                                             layout=layout, user=user,
                                             hosts=hosts, pool=pool)
            the_rig.start_all()
            _sabotage(cluster, the_rig, doms)
            w.rig = the_rig
            w.doms = doms
            w.ids = {name: d.uuid for name, d in doms.items()}
            w.visible = {d.uuid for n, d in doms.items() if n != MONS_DOWN}
            w.good_sources = {doms[n].boot_disk.source for n in GOOD}
            w.before = rig_mod.rbd_usage(the_rig, cluster,
                                         w.good_sources)
            needles = []
            for user in list(cluster.users.values()):
                needles += ceph_mod.key_forms(user.key)
            needles += ceph_mod.key_forms(
                ceph_mod.read_key(cluster.admin_keyring))
            needles += ceph_mod.key_forms(
                ceph_mod.read_key(cluster.dir / 'keys' /
                                  'client.rotated.rotated'))
            w.needles = needles

            # A decoy ceph.conf where librados looks by default: the
            # working directory and CEPH_CONF.  Reading either leaves a
            # log file behind.
            decoy = tmp / 'cwd'
            decoy.mkdir()
            w.decoy = decoy
            for name in ('ceph.conf', 'env-ceph.conf'):
                (decoy / name).write_text(
                    '[global]\nmon host = 127.0.0.1:%d\n'
                    'client mount timeout = 3\n'
                    'log file = %s/picked-up-%s.$pid.log\n'
                    'admin socket = %s/picked-up-%s.$pid.asok\n'
                    % (closed, decoy, name, decoy, name))
            # the decoys work: a client left to its defaults reads them
            env = {k: v for k, v in os.environ.items()
                   if k != 'CEPH_CONF'}
            for extra in ({}, {'CEPH_CONF': str(decoy / 'env-ceph.conf')}):
                probe = subprocess.run(
                    ['rbd', 'ls', 'vms'], cwd=decoy, capture_output=True,
                    env=dict(env, **extra), timeout=60)
                assert probe.returncode != 0
            assert sorted({n.split('.conf.')[0] for n in _picked_up(
                decoy)}) == ['picked-up-ceph', 'picked-up-env-ceph'], \
                _picked_up(decoy)
            for path in decoy.glob('picked-up-*'):
                path.unlink()
            mp.chdir(decoy)
            mp.setenv('CEPH_CONF', str(decoy / 'env-ceph.conf'))

            mp.delattr(compute_pollsters.GenericComputePollster,
                       '_inspector', raising=False)
            discover = discovery.InstanceDiscovery.discover
            mp.setattr(discovery.InstanceDiscovery, 'discover',
                       lambda self, *a, **kw: [
                           i for i in discover(self, *a, **kw)
                           if i.id in w.visible])
            w.logs = capture
            sampler = KeySampler(needles)
            sampler.start()
            w.sampler = sampler
            w.mp = mp
            w.agents = []
            w.agent_b = None
            yield w
        finally:
            if sampler is not None:
                sampler.stop()
            root.removeHandler(capture)
            root.setLevel(old_level)
            for agent in getattr(w, 'agents', ()):
                agent.stop()
            service_mod.reset_service()
            mp.undo()
            _impl_test.reset()
            if not cluster.running():
                cluster.start()
            problems = the_rig.teardown()
            for name in ('rotated', 'revoked', 'scratchy'):
                cluster.run(['ceph', 'auth', 'rm', 'client.' + name],
                            check=False)
    assert problems == []


def _picked_up(decoy):
    return sorted(p.name for p in decoy.glob('picked-up-*'))


def _by_name(world, samples):
    return {name: samples.get(uuid) for name, uuid in world.ids.items()
            if uuid in samples}


def _run_route(world, **inspection):
    service_mod.reset_service()
    for name in ('cache_dir', 'tmp_dir'):
        os.makedirs(inspection[name], exist_ok=True)
    conf = agent_mod.agent_conf(
        world.tmp, libvirtd.URI, host=HOST, concurrency=2,
        appliance_memory_mb=768, inspection_deadline=900, **inspection)
    # after prepare_service: its logging setup replaces the root handlers
    root = logging.getLogger()
    root.addHandler(world.logs)
    root.setLevel(logging.DEBUG)
    agent = Agent(conf, world.mp)
    world.agents.append(agent)
    first = agent.cycle()
    samples = agent.until_settled(sorted(world.visible))
    return agent, first, samples


@pytest.fixture(scope='module')
def route_a(world):
    """Route (a): keys from the keyring named by [os_inspection]
    ceph_conf; no libvirt secret is read."""
    agent, first, samples = _run_route(
        world, cache_dir=str(world.tmp / 'cache-a'),
        tmp_dir=str(world.tmp / 'guestfs-a'), ceph_conf=world.route_a_conf,
        libvirt_secret_uri='')
    world.cache_a = str(world.tmp / 'cache-a')
    agent.stop()
    service_mod.reset_service()
    return first, _by_name(world, samples)


@pytest.fixture(scope='module')
def route_b(world, route_a):
    """Route (b): each disk's key read from its libvirt secret; the
    ceph_conf option left at its default (no such file here)."""
    agent, first, samples = _run_route(
        world, cache_dir=str(world.tmp / 'cache-b'),
        tmp_dir=str(world.tmp / 'guestfs-b'),
        libvirt_secret_uri=libvirtd.URI)
    world.agent_b = agent
    world.cache_b = str(world.tmp / 'cache-b')
    return first, _by_name(world, samples)


@pytest.fixture(scope='module')
def mons_down(world, route_b):
    """Every monitor stops; a never-inspected instance is discovered.

    The cluster is started again afterwards (its data kept)."""
    agent = world.agent_b
    assert world.cluster.stop() == []
    try:
        world.visible.add(world.ids[MONS_DOWN])
        samples = agent.until_settled(sorted(world.visible))
    finally:
        world.cluster.start()
    return _by_name(world, samples)


def _check_good(by_name, method='direct'):
    """{name: what is wrong} of the good guests' records; ``method``:
    what must have read them (auto reads rbd disks directly)."""
    wrong = {}
    for name, guest in GOOD.items():
        md = by_name.get(name)
        if md is None:
            wrong[name] = 'no sample'
            continue
        bad = catalog.mismatches(catalog.GUESTS[guest].expected, md)
        if md.get('os_inspection_method') != method:
            bad.append(('os_inspection_method',
                        md.get('os_inspection_method')))
        if bad:
            wrong[name] = (md['os_inspection_status'],
                           md['os_inspection_reason'], bad)
    return wrong


def _check_bad(world, by_name, expected):
    wrong = {}
    for name, pattern in expected.items():
        md = by_name.get(name)
        if md is None:
            wrong[name] = 'no sample'
            continue
        status = md['os_inspection_status']
        reason = md['os_inspection_reason'] or ''
        problems = []
        if status != 'failed':
            problems.append('status %s' % status)
        if not re.search(pattern, reason, re.IGNORECASE):
            problems.append('reason does not say why')
        if 'deadline' in reason.lower():
            problems.append('ran into the inspection deadline')
        if any(n.decode('latin-1') in reason for n in world.needles):
            problems.append('key in reason')
        if problems:
            wrong[name] = (status, reason, problems)
    return wrong


# -- route (a): client keyring through ceph_conf --------------------------

def test_route_a_first_cycle_is_pending_for_every_instance(world, route_a):
    first, _ = route_a
    assert {world.ids[n] for n in list(GOOD) + list(BAD)} <= set(first)
    assert {md['os_inspection_status'] for md in first.values()} == {
        'pending'}


def test_route_a_keyring_windows_and_linux_ok(route_a):
    # win-eph: first of three monitors down; linux-vol: only v2 answers
    assert _check_good(route_a[1]) == {}


def test_route_a_bad_cases_fail_clearly(world, route_a):
    assert _check_bad(world, route_a[1], BAD) == {}


# -- route (b): the domain's libvirt secret --------------------------------

def test_route_b_libvirt_secret_windows_and_linux_ok(route_b):
    assert _check_good(route_b[1]) == {}


def test_route_b_bad_cases_fail_clearly(world, route_b):
    assert _check_bad(world, route_b[1], BAD) == {}


# -- every monitor down ---------------------------------------------------

def test_all_monitors_down_fails_by_the_mount_timeout(world, mons_down):
    assert _check_bad(world, mons_down, {MONS_DOWN: MONS_DOWN_REASON}) == {}


def test_all_monitors_down_costs_the_others_nothing(world, mons_down):
    # the good records stay served from the cache while Ceph is down
    assert _check_good(mons_down) == {}


# -- nothing written, nothing left ----------------------------------------

def _usage(world):
    return rig_mod.rbd_usage(world.rig, world.cluster, world.good_sources)


def _assert_nothing_written_or_left(world):
    """Every good image is as it was before the first route: no byte
    written, no snapshot or lock taken, and its one watcher is still the
    domain's own qemu (the same client as before)."""
    # The domains' qemu re-register their watch once the restarted
    # cluster answers them again: give them a minute.
    deadline = time.monotonic() + 90
    after = _usage(world)
    while after != world.before and time.monotonic() < deadline:
        time.sleep(3)
        after = _usage(world)
    assert after == world.before
    for facts in after.values():
        assert len(facts['watchers']) == 1


def test_no_byte_written_no_snapshot_lock_or_watcher_left(world, mons_down):
    _assert_nothing_written_or_left(world)


def test_no_key_in_any_process_cmdline_or_environ(world, mons_down):
    world.sampler.stop()
    assert world.sampler.saw_inspection > 0    # sampled while inspecting
    assert sorted(world.sampler.hits) == []


def test_no_key_in_debug_logs(world, mons_down):
    lines = world.logs.lines
    assert lines
    leaked = [line[:200] for line in lines
              if any(n.decode('latin-1') in line for n in world.needles)]
    assert leaked == []


def _other_mounts(roots):
    """Mount points below ``roots``, from /proc/mounts (no syscall into
    them: another test's filesystem may be hung on purpose)."""
    with open('/proc/mounts') as mounts:
        points = [line.split()[1].encode().decode('unicode_escape')
                  for line in mounts]
    return {p for p in points for r in roots if p.startswith(r + '/')}


def _other_test_sessions(tmp):
    """The base directories of other pytest sessions on this host
    (pytest-of-USER/pytest-N beside this session's): another test suite
    running beside this one keeps its own files there (the canaries
    test_hostile_headers watches with inotify among them), which this
    session never gives to an inspection; reading them would be seen
    there as an inspection opening its canaries."""
    session = tmp.parent
    return {str(p) for p in session.parent.glob('pytest-*')
            if p != session}


def test_no_key_in_any_file_left_behind(world, mons_down):
    needles = world.needles
    roots = ['/tmp', '/var/tmp', '/dev/shm', '/run', str(world.tmp),
             os.getcwd()]
    skip = (_other_mounts(roots) | world.own_files
            | _other_test_sessions(world.tmp))
    leaked = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames
                           if os.path.join(dirpath, d) not in skip]
            if dirpath in skip:
                dirnames[:] = []
                continue
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    info = os.lstat(path)
                    # regular files only: a FIFO would block the open
                    if (not stat.S_ISREG(info.st_mode)
                            or info.st_mtime < world.began - 1):
                        continue
                    with open(path, 'rb') as f:
                        head = f.read(4 << 20)
                except OSError:
                    continue
                if any(n in head for n in needles):
                    leaked.append(path)
    assert leaked == []


def test_no_stray_ceph_conf_picked_up(world, mons_down):
    assert _picked_up(world.decoy) == []


def _cli(world, *args):
    config = world.tmp / 'cli.conf'
    config.write_text('[os_inspection]\ncache_dir = %s\n' % world.cache_b)
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable),
                      'ceilometer-os-pollster'),
         '--config-file', str(config)] + list(args),
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cache_list_shows_each_failure(world, mons_down):
    listing = _cli(world, 'cache', 'list')
    print(listing)
    for names, status in ((list(BAD) + [MONS_DOWN], 'failed'),
                          (list(GOOD), 'ok')):
        for name in names:
            line = next((ln for ln in listing.splitlines()
                         if world.ids[name] in ln), '')
            assert line.split()[1:2] == [status], (name, listing)


def test_cache_show_gives_the_published_failure_reason(world, mons_down):
    for name in list(BAD) + [MONS_DOWN]:
        shown = json.loads(_cli(world, 'cache', 'show', world.ids[name]))
        print(name, shown['record']['reason'])
        assert shown['record']['status'] == 'failed'
        assert shown['record']['reason']
        assert shown['record']['reason'] == mons_down[name][
            'os_inspection_reason']
        assert shown['retry_at']


# -- route (c): the operator's own read-only user (ceph_user) --------------

@pytest.fixture(scope='module')
def route_c(world, mons_down):
    """Route (c): every rbd disk read as client.reader (read-only caps),
    its keyring through ceph_conf; neither nova's key nor a secret."""
    agent, first, samples = _run_route(
        world, cache_dir=str(world.tmp / 'cache-c'),
        tmp_dir=str(world.tmp / 'guestfs-c'), ceph_conf=world.route_c_conf,
        ceph_user='reader', libvirt_secret_uri=libvirtd.URI)
    service_mod.reset_service()
    return _by_name(world, samples)


def test_route_c_read_only_user_windows_and_linux_ok(route_c):
    assert _check_good(route_c) == {}


def test_route_c_does_not_care_about_novas_key_or_caps(world, route_c):
    # The instances whose nova user lost its key or caps are read with
    # the inspector's own user: Linux, as the catalog says.
    for name in ('key-rotated', 'caps-revoked'):
        md = route_c[name]
        assert catalog.mismatches(
            catalog.GUESTS['ubuntu-22.04'].expected, md) == [], (name, md)
    for name in ('image-deleted', 'pool-missing'):
        assert route_c[name]['os_inspection_status'] == 'failed'


def test_route_c_wrote_nothing(world, route_c):
    _assert_nothing_written_or_left(world)


# -- the same disks through the appliance, forced --------------------------

@pytest.fixture(scope='module')
def route_appliance(world, route_c):
    """Route (a) again with ``inspection_method = appliance``: qemu's
    rbd driver reads the disks, as before the direct method existed."""
    agent, first, samples = _run_route(
        world, cache_dir=str(world.tmp / 'cache-appliance'),
        tmp_dir=str(world.tmp / 'guestfs-appliance'),
        ceph_conf=world.route_a_conf, libvirt_secret_uri='',
        inspection_method='appliance')
    agent.stop()
    service_mod.reset_service()
    return _by_name(world, samples)


def test_forced_appliance_reads_rbd_disks_through_qemu(world,
                                                       route_appliance):
    assert _check_good(route_appliance, method='appliance') == {}
    assert _check_bad(world, route_appliance, BAD) == {}


def test_forced_appliance_wrote_nothing(world, route_appliance):
    _assert_nothing_written_or_left(world)


# -- the direct rbd source, byte for byte ----------------------------------

def test_direct_rbd_source_reads_exactly_the_image(world):
    """Every byte of a good guest's image, read by the direct method's
    librbd source as the worker opens it (route (a)'s conf), equals what
    ``rbd export`` gives; the image is not written."""
    import contextlib
    import hashlib
    import types

    from ceilometer_os_pollster.instances import drives
    from ceilometer_os_pollster.direct import disks as direct_disks
    from ceilometer_os_pollster.direct.block import network
    from ceilometer_os_pollster.direct.block import source as source_mod

    dom = world.doms['linux-vol']
    live = world.rig.conn.lookupByUUIDString(dom.uuid)
    spec = drives.boot_drives(drives.drive_specs(live.XMLDesc(0)))[0]
    disk = dom.boot_disk
    expected = world.cluster.export_sha256(disk.pool, disk.image)
    opts = types.SimpleNamespace(
        inspection_deadline=300, ceph_user='', libvirt_secret_uri='',
        ceph_conf=world.route_a_conf, ceph_client_mount_timeout=15)
    private = world.tmp / 'direct-private'
    private.mkdir()
    digest = hashlib.sha256()
    with contextlib.ExitStack() as stack:
        source = direct_disks.disk_source(
            spec, source_mod.Budget(1 << 40), stack,
            network.NetworkDisks(opts, str(private)))
        step = 8 << 20
        for offset in range(0, source.size, step):
            digest.update(source.read_at(offset,
                                         min(step, source.size - offset)))
    assert digest.hexdigest() == expected
    assert world.cluster.export_sha256(disk.pool, disk.image) == expected
    assert list(private.iterdir()) == []
