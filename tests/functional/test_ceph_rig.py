"""The Ceph half of the test rig: a real cluster and rbd-backed domains.

One session cluster (tests.rig.fixtures.ceph_cluster) and one module
rig with a Windows guest on a nova ephemeral rbd disk (monitor list:
a closed port first, then the v2 and v1 addresses) and a Linux guest on
a Cinder rbd volume (v2 first).  The tests check what the rbd
inspection tests rely on: cephx is enforced, the domains run on their
rbd disks, the read-only user reads every byte but cannot change any,
exports are stable, and no key shows in any process.
"""

import base64
import json
import subprocess

from lxml import etree
import pytest

from ceilometer_os_pollster.instances import drives
from tests.guests import builder
from tests.rig import ceph as ceph_mod
from tests.rig import domains
from tests.rig import rig as rig_mod

pytestmark = [pytest.mark.libvirt, pytest.mark.ceph]

GUESTS = (('win-eph', 'win2022-standard', rig_mod.RBD_EPHEMERAL),
          ('linux-vol', 'ubuntu-22.04', rig_mod.RBD_VOLUME))


# -- pure: the XML and the caps -------------------------------------------

def test_rbd_disk_xml_reads_back_as_nova_writes_it():
    disk = domains.Disk('vda', 'network', 'vms/u_disk', 'raw',
                        cache='writeback', protocol='rbd',
                        hosts=(('10.0.0.1', 6789), ('10.0.0.2', 3300)),
                        auth_username='nova', secret_uuid='s-uuid')
    spec = domains.DomainSpec(
        uuid='11111111-2222-4333-8444-555555555555', name='instance-1',
        display_name='vm', flavor=domains.flavor_for(2), project_id='p',
        user_id='u', image_id='i', disks=(disk,))
    specs = drives.drive_specs(domains.domain_xml(spec))
    assert len(specs) == 1
    spec = specs[0]
    assert (spec.kind, spec.protocol, spec.path, spec.format) == (
        'network', 'rbd', 'vms/u_disk', 'raw')
    assert [tuple(h) for h in spec.hosts] == [('10.0.0.1', '6789'),
                                              ('10.0.0.2', '3300')]
    assert (spec.username, spec.secret_type, spec.secret_uuid) == (
        'nova', 'ceph', 's-uuid')


def test_reader_caps_are_read_only_on_data_and_name_each_pool():
    caps = ceph_mod.reader_caps(('vms', 'volumes'))
    assert caps['mon'] == 'profile rbd'
    assert caps['osd'] == (
        'profile rbd-read-only pool=vms, allow rw pool=vms object_prefix '
        'rbd_header., profile rbd-read-only pool=volumes, allow rw '
        'pool=volumes object_prefix rbd_header.')


def test_ceph_secret_xml_is_a_readable_ceph_secret():
    secret = etree.fromstring(domains.ceph_secret_xml(
        'a-uuid', 'client.nova secret'))
    assert (secret.get('ephemeral'), secret.get('private')) == ('no', 'no')
    assert secret.findtext('uuid') == 'a-uuid'
    assert secret.find('usage').get('type') == 'ceph'
    assert secret.findtext('usage/name') == 'client.nova secret'


def test_qemu_source_names_user_and_conf_never_a_key():
    source = ceph_mod.qemu_source('vms', 'x_disk', 'reader', '/p/c.conf')
    assert source.startswith('json:')
    assert json.loads(source[5:]) == {
        'driver': 'raw', 'file': {'driver': 'rbd', 'pool': 'vms',
                                  'image': 'x_disk', 'user': 'reader',
                                  'conf': '/p/c.conf'}}


def test_key_forms_are_the_text_and_the_raw_secret():
    key = base64.b64encode(bytes(range(28))).decode()
    assert ceph_mod.key_forms(key) == (key.encode(), bytes(range(28)))


# -- live -----------------------------------------------------------------

class World:
    def __init__(self, cluster, the_rig, tmp, images):
        self.cluster = cluster
        self.rig = the_rig
        self.tmp = tmp
        self.images = images            # uuid -> local raw image
        self.domains = {d.uuid: d for d in the_rig.domains}

    def conf_for(self, user, name=None):
        """A client conf whose keyring holds ``user`` (a User)."""
        name = name or user.name
        keyring = self.tmp / ('%s.keyring' % name)
        self.cluster.write_keyring(keyring, [user])
        return self.cluster.client_conf(self.tmp / ('%s.conf' % name),
                                        user=ceph_mod.User(
                                            user.name, user.key,
                                            str(keyring)))


@pytest.fixture(scope='module')
def world(ceph_cluster, libvirt_daemons, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('ceph-rig')
    closed = ceph_mod.closed_port()
    v2 = (ceph_mod.HOST, ceph_cluster.v2_port)
    v1 = (ceph_mod.HOST, ceph_cluster.v1_port)
    hosts = {rig_mod.RBD_EPHEMERAL: [(ceph_mod.HOST, closed), v2, v1],
             rig_mod.RBD_VOLUME: [v2, v1]}
    with rig_mod.Rig(tmp / 'rig') as the_rig:
        images = {}
        for name, guest, layout in GUESTS:
            image = builder.build(guest)
            dom = the_rig.add_rbd(name, image, ceph_cluster, layout=layout,
                                  hosts=hosts[layout])
            images[dom.uuid] = image
        the_rig.start_all()
        yield World(ceph_cluster, the_rig, tmp, images)
        problems = the_rig.teardown()
    assert problems == []


def _qemu_img(*args, timeout=120):
    return subprocess.run(('qemu-img',) + args, capture_output=True,
                          text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _qemu_read(world, disk, user, conf, dest):
    """qemu-img's copy of the rbd disk read as ``user``; its sha256."""
    result = _qemu_img('convert', '-f', 'raw', '-O', 'raw',
                       ceph_mod.qemu_source(disk.pool, disk.image, user,
                                            conf), str(dest))
    assert result.returncode == 0, result.stderr
    try:
        return builder.sha256(dest)
    finally:
        dest.unlink()


def test_cluster_enforces_cephx(world):
    cluster = world.cluster
    assert cluster.running()
    assert set(cluster.pools()) >= {'vms', 'volumes'}
    # no key at all: refused, not let in as an anonymous client
    empty = world.tmp / 'empty.keyring'
    empty.write_text('')
    result = cluster.run(['ceph', 'health'], keyring=empty, check=False,
                         timeout=60)
    assert result.returncode != 0
    # a key the cluster never issued: refused
    wrong = cluster.wrong_key_keyring('nova', world.tmp / 'wrong.keyring')
    result = cluster.run(['rbd', 'ls', 'vms'], user='nova',
                         keyring=wrong.keyring, check=False, timeout=60)
    assert result.returncode != 0
    assert 'Operation not permitted' in result.stderr or \
        'Permission denied' in result.stderr
    # the right key: served
    assert cluster.run(['rbd', 'ls', 'vms'], user='nova').strip()


def test_domains_run_on_their_rbd_disks(world):
    assert set(world.rig.states().values()) == {'running'}
    for uuid, dom in world.domains.items():
        disk = dom.boot_disk
        assert disk.protocol == 'rbd'
        live = world.rig.conn.lookupByUUIDString(uuid).XMLDesc()
        [spec] = drives.drive_specs(live)
        assert (spec.protocol, spec.path, spec.username, spec.secret_type,
                spec.secret_uuid) == ('rbd', disk.source, 'nova', 'ceph',
                                      disk.secret_uuid)
        assert [(h, int(p)) for h, p in spec.hosts] == list(disk.hosts)
        if dom.layout == rig_mod.RBD_EPHEMERAL:
            assert disk.source == 'vms/%s_disk' % uuid
        else:
            assert disk.pool == 'volumes'
            assert disk.image.startswith('volume-')
        # the domain's qemu has the image open: one watcher, no lock
        usage = world.cluster.usage(disk.pool, disk.image)
        assert len(usage['watchers']) == 1
        assert usage['snapshots'] == [] and usage['locks'] == []


def test_export_checksum_is_stable_and_is_the_guest_image(world):
    for uuid, dom in world.domains.items():
        disk = dom.boot_disk
        first = world.cluster.export_sha256(disk.pool, disk.image)
        assert first == world.cluster.export_sha256(disk.pool, disk.image)
        assert first == builder.sha256(world.images[uuid])


def test_reader_reads_every_byte_through_qemu(world):
    conf = world.conf_for(world.cluster.users['reader'])
    for uuid, dom in world.domains.items():
        disk = dom.boot_disk
        got = _qemu_read(world, disk, 'reader', conf, world.tmp / 'copy.raw')
        assert got == builder.sha256(world.images[uuid])


def test_reader_cannot_write_snapshot_lock_or_resize(world):
    cluster = world.cluster
    reader = cluster.users['reader']
    conf = world.conf_for(reader)
    disk = next(iter(world.domains.values())).boot_disk
    before = rig_mod.rbd_usage(world.rig, cluster)
    write = subprocess.run(
        ['qemu-io', '-c', 'write -P 0x55 0 4096',
         ceph_mod.qemu_source(disk.pool, disk.image, 'reader', conf)],
        capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL)
    assert 'Operation not permitted' in write.stdout + write.stderr
    name = '%s/%s' % (disk.pool, disk.image)
    for argv in (['rbd', 'snap', 'create', name + '@by-reader'],
                 ['rbd', 'lock', 'add', name, 'by-reader'],
                 ['rbd', 'resize', '--size', '128M', name],
                 ['rbd', 'import', '--dest-pool', disk.pool,
                  str(world.images[next(iter(world.images))]),
                  'by-reader'],
                 ['rbd', 'rm', name]):
        result = cluster.run(argv, user='reader', check=False, timeout=120)
        assert result.returncode != 0, argv
    assert rig_mod.rbd_usage(world.rig, cluster) == before
    assert 'by-reader' not in cluster.images(disk.pool)


def test_rbd_read_only_profile_alone_cannot_open_through_qemu(world):
    # Why reader_caps grants rw on header objects: qemu opens read-write
    # in librbd, which registers a watch (an OSD write) on the header.
    cluster = world.cluster
    user = cluster.add_user('ro-profile-only', {
        'mon': 'profile rbd',
        'osd': 'profile rbd-read-only pool=vms, '
               'profile rbd-read-only pool=volumes'})
    conf = world.conf_for(user)
    disk = next(iter(world.domains.values())).boot_disk
    result = _qemu_img('info', ceph_mod.qemu_source(
        disk.pool, disk.image, user.name, conf))
    assert result.returncode != 0
    assert 'Operation not permitted' in result.stderr


def test_stranger_and_wrong_key_cannot_read(world):
    cluster = world.cluster
    disk = next(iter(world.domains.values())).boot_disk
    stranger = world.conf_for(cluster.users['stranger'])
    wrong = world.conf_for(cluster.wrong_key_keyring(
        'reader', world.tmp / 'reader-wrong.keyring'), name='reader-wrong')
    # cephx lets the stranger in but the OSD refuses; a wrong key is
    # refused at the monitor
    for user, conf, error in (
            ('stranger', stranger, 'Operation not permitted'),
            ('reader', wrong, 'error connecting: Permission denied')):
        result = _qemu_img('info', ceph_mod.qemu_source(
            disk.pool, disk.image, user, conf))
        assert result.returncode != 0
        assert error in result.stderr, user


def test_no_key_in_any_process(world):
    needles = []
    for user in world.cluster.users.values():
        needles.extend(ceph_mod.key_forms(user.key))
    needles.extend(ceph_mod.key_forms(
        ceph_mod.read_key(world.cluster.admin_keyring)))
    # the domains' qemu and the cluster's daemons are among those scanned
    qemu = subprocess.run(['pgrep', '-f', 'qemu-system'],
                          capture_output=True, text=True).stdout.split()
    assert len(qemu) >= len(world.domains)
    assert world.cluster.pids()
    assert ceph_mod.processes_showing(needles) == []


def test_cluster_restarts_with_its_data(world):
    before = rig_mod.rbd_usage(world.rig, world.cluster)
    assert world.cluster.stop() == []
    assert not world.cluster.running()
    world.cluster.start()
    assert world.cluster.running()
    after = rig_mod.rbd_usage(world.rig, world.cluster)
    assert {k: v['sha256'] for k, v in after.items()} == {
        k: v['sha256'] for k, v in before.items()}
