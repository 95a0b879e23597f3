"""overlay: pinned trees from host headers and the overlays qemu-img
makes of them (real qemu-img on small files; no appliance)."""

import os
import stat
import subprocess
import types

import pytest

from ceilometer_os_pollster.storage import ceph_access
from ceilometer_os_pollster.instances import drives
from ceilometer_os_pollster.storage import overlay as OV
from ceilometer_os_pollster.storage import qemu_nodes as Q

MiB = 1 << 20


def qemu_img(*args):
    subprocess.run(('qemu-img',) + tuple(str(a) for a in args), check=True,
                   stdout=subprocess.DEVNULL)


def opts(**changes):
    values = dict(libvirt_secret_uri='', ceph_conf='/etc/ceph/ceph.conf',
                  ceph_client_mount_timeout=20, ceph_user='')
    values.update(changes)
    return types.SimpleNamespace(**values)


def spec(path, fmt='raw', kind=drives.KIND_FILE, **kwargs):
    return drives.DriveSpec(target='vda', label='vda', kind=kind, path=path,
                            format=fmt, **kwargs)


@pytest.fixture
def hostile(tmp_path):
    """A raw guest disk whose data starts with a qcow2 header naming a
    host file as its backing file (what a tenant can write)."""
    canary = tmp_path / 'host-secret.raw'
    canary.write_bytes(b'HOST SECRET' * 1000)
    header = tmp_path / 'header.qcow2'
    qemu_img('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', canary,
             header, '1M')
    disk = tmp_path / 'disk.raw'
    data = header.read_bytes()
    disk.write_bytes(data + b'\0' * (MiB - len(data)))
    return disk, canary


def test_raw_disk_is_read_as_raw_whatever_its_data_says(hostile):
    disk, _ = hostile
    tree = OV.local_tree(str(disk), 'raw')
    assert tree == {'driver': 'raw', 'file': {
        'driver': 'file', 'filename': str(disk), 'locking': 'off'}}


def test_qcow2_chain_is_pinned_from_the_host_headers(tmp_path):
    base = tmp_path / '_base' / 'abc'
    base.parent.mkdir()
    base.write_bytes(b'\0' * MiB)
    mid = tmp_path / 'mid.qcow2'
    top = tmp_path / 'inst' / 'disk'
    top.parent.mkdir()
    qemu_img('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', base, mid)
    # A relative backing name, as qemu-img rebase can leave.
    qemu_img('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b',
             '../mid.qcow2', top)
    tree = OV.local_tree(str(top), 'qcow2')
    assert tree['driver'] == 'qcow2'
    assert tree['file']['filename'] == str(top)
    middle = tree['backing']
    assert (middle['driver'], middle['file']['filename']) == (
        'qcow2', str(mid))
    bottom = middle['backing']
    assert bottom == {'driver': 'raw', 'file': {
        'driver': 'file', 'filename': str(base), 'locking': 'off'}}


def test_backing_without_recorded_format_is_pinned_raw(tmp_path):
    base = tmp_path / 'base.qcow2'
    qemu_img('create', '-q', '-f', 'qcow2', base, '1M')
    top = tmp_path / 'top.qcow2'
    # Older tools wrote no backing format; qemu-img 7.2 refuses to, so
    # the extension is renamed to one qemu ignores.
    qemu_img('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, top)
    data = top.read_bytes()
    ext = data.index(bytes.fromhex('e2792aca'))
    top.write_bytes(data[:ext] + bytes.fromhex('7fffff01') + data[ext + 4:])
    assert Q.parse_qcow2_header(top.read_bytes()).backing_format == ''
    assert OV.local_tree(str(top), 'qcow2')['backing']['driver'] == 'raw'


def test_backing_loops_and_long_chains_are_refused(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    qemu_img('create', '-q', '-f', 'qcow2', a, '1M')
    qemu_img('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', a, b)
    qemu_img('rebase', '-q', '-u', '-f', 'qcow2', '-F', 'qcow2', '-b', b, a)
    with pytest.raises(OV.OverlayError) as err:
        OV.local_tree(str(b), 'qcow2')
    assert 'backing chain loops' in err.value.reason
    chain = [tmp_path / ('c%d' % n) for n in range(Q.MAX_CHAIN + 2)]
    qemu_img('create', '-q', '-f', 'qcow2', chain[0], '1M')
    for below, above in zip(chain, chain[1:]):
        qemu_img('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', below,
                 above)
    with pytest.raises(OV.OverlayError) as err:
        OV.local_tree(str(chain[-1]), 'qcow2')
    assert 'backing chain longer than' in err.value.reason


@pytest.mark.parametrize('make,reason', [
    (lambda p: p.write_bytes(b'\0' * 4096), 'not a qcow2 image'),
    (lambda p: os.mkfifo(p), 'not a file or block device'),
])
def test_declared_qcow2_that_is_not_one_is_refused(tmp_path, make, reason):
    path = tmp_path / 'disk'
    make(path)
    with pytest.raises(OV.OverlayError) as err:
        OV.local_tree(str(path), 'qcow2')
    assert reason in err.value.reason


def test_missing_disk_gives_a_clear_reason(tmp_path):
    with pytest.raises(OV.OverlayError) as err:
        OV.local_tree(str(tmp_path / 'gone'), 'raw')
    assert err.value.reason == ('cannot open disk: %s: No such file or '
                                'directory' % (tmp_path / 'gone'))


def test_encrypted_qcow2_is_its_own_error(tmp_path):
    from tests.rig.disks import encrypted_qcow2
    encrypted_qcow2(tmp_path / 'enc', 2)
    with pytest.raises(OV.EncryptedImage):
        OV.local_tree(str(tmp_path / 'enc'), 'qcow2')


def test_overlay_presents_the_guest_bytes_and_never_follows_them(
        tmp_path, hostile):
    disk, canary = hostile
    private = tmp_path / 'private'
    private.mkdir()
    overlays = OV.Overlays(opts(), str(private))
    path = overlays.add(spec(str(disk)))
    assert overlays.paths == [path] == [str(private / 'vda.qcow2')]
    h = Q.parse_qcow2_header(open(path, 'rb').read())
    assert h.backing_format == 'raw'
    tree = OV.local_tree(str(disk), 'raw')
    assert h.backing_file == Q.backing_string(tree)
    # What qemu reads through the overlay is the guest's own bytes, header
    # included, not the host file the header names.
    out = tmp_path / 'out.raw'
    qemu_img('convert', '-f', 'qcow2', '-O', 'raw', path, out)
    assert out.read_bytes() == disk.read_bytes()
    assert b'HOST SECRET' not in out.read_bytes()


def test_overlay_over_a_qcow2_guest_disk_with_a_hostile_header(
        tmp_path, hostile):
    raw, _ = hostile
    disk = tmp_path / 'disk.qcow2'
    qemu_img('convert', '-f', 'raw', '-O', 'qcow2', raw, disk)
    private = tmp_path / 'private'
    private.mkdir()
    path = OV.Overlays(opts(), str(private)).add(spec(str(disk), 'qcow2'))
    out = tmp_path / 'out.raw'
    qemu_img('convert', '-f', 'qcow2', '-O', 'raw', path, out)
    assert out.read_bytes() == raw.read_bytes()


def test_guest_disk_is_never_written(tmp_path, hostile):
    disk, _ = hostile
    before = disk.read_bytes(), os.stat(disk).st_mtime_ns
    private = tmp_path / 'private'
    private.mkdir()
    path = OV.Overlays(opts(), str(private)).add(spec(str(disk)))
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x55 0 64k',
                    path], check=True, stdout=subprocess.DEVNULL)
    assert (disk.read_bytes(), os.stat(disk).st_mtime_ns) == before


def test_qemu_img_failure_is_a_short_reason(tmp_path):
    private = tmp_path / 'private'
    private.mkdir()
    overlays = OV.Overlays(opts(), str(private))
    drive = spec('exp', kind=drives.KIND_NETWORK, protocol='nbd',
                 hosts=(('127.0.0.1', '1'),))
    with pytest.raises(OV.OverlayError) as err:
        overlays.add(drive)
    assert err.value.reason.startswith('cannot open disk vda: ')
    assert 'json:' not in err.value.reason
    assert overlays.paths == []


@pytest.mark.parametrize('stderr,reason', [
    (b"qemu-img: Could not open 'json:{\"a\":1}': error connecting: "
     b"Connection timed out\n", 'error connecting: Connection timed out'),
    (b'qemu-img: warning: RBD options encoded in the filename as keyvalue '
     b'pairs is deprecated\nqemu-img: x.qcow2: Could not open '
     b"'json:{}': Permission denied\nCould not open backing image.\n",
     'Permission denied'),
    (b'qemu-img: /p/vda.qcow2: error connecting: Connection timed out\n',
     'error connecting: Connection timed out'),
    (b'', 'qemu-img failed'),
])
def test_qemu_img_reason(stderr, reason):
    assert OV.qemu_img_reason(stderr, '/p/vda.qcow2') == reason


RBD = dict(kind=drives.KIND_NETWORK, protocol='rbd',
           hosts=(('10.0.0.1', '6789'),), username='cinder',
           secret_type='ceph',
           secret_uuid='7a3c3f37-2b1b-4bd4-9fd8-2a5d8f3c1e11')
KEY = bytes(range(1, 29))


def test_rbd_without_libvirt_secret_names_the_ceph_conf_option(tmp_path):
    overlays = OV.Overlays(opts(ceph_conf='/etc/ceph/ceph.conf'),
                           str(tmp_path),
                           read_secret=lambda *a: pytest.fail('read'))
    tree = overlays.tree(spec('volumes/volume-1', **RBD))
    assert tree['driver'] == 'raw'
    assert tree['file']['driver'] == 'rbd'
    assert ':conf=/etc/ceph/ceph.conf:' in tree['file']['filename']
    assert os.listdir(tmp_path) == []


def test_rbd_key_goes_to_a_private_keyring_removed_after_use(tmp_path):
    asked = []
    overlays = OV.Overlays(
        opts(libvirt_secret_uri='qemu:///system', ceph_conf=''),
        str(tmp_path),
        read_secret=lambda uri, s: asked.append((uri, s.secret_uuid)) or KEY)
    tree = overlays.tree(spec('volumes/volume-1', **RBD))
    conf = tree['file']['filename'].split(':conf=')[1].split(':')[0]
    keyring = os.path.join(os.path.dirname(conf), 'keyring')
    key_b64 = 'AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHA=='
    assert asked == [('qemu:///system', RBD['secret_uuid'])]
    assert open(keyring).read() == '[client.cinder]\n\tkey = %s\n' % key_b64
    assert 'keyring = %s\n' % keyring in open(conf).read()
    assert [stat.S_IMODE(os.stat(p).st_mode) for p in (
        os.path.dirname(conf), conf, keyring)] == [0o700, 0o600, 0o600]
    assert key_b64 not in Q.backing_string(tree)
    overlays.forget_secrets()
    assert os.listdir(tmp_path) == []


def test_rbd_as_the_operators_own_user_never_reads_the_secret(tmp_path):
    overlays = OV.Overlays(
        opts(libvirt_secret_uri='qemu:///system', ceph_user='os-inspector',
             ceph_conf='/etc/ceph/ceph.conf'), str(tmp_path),
        read_secret=lambda *a: pytest.fail('secret read'))
    name = overlays.tree(spec('volumes/volume-1', **RBD))['file']['filename']
    assert ':id=os-inspector:' in name and ':id=cinder' not in name
    assert ':conf=/etc/ceph/ceph.conf:' in name
    assert os.listdir(tmp_path) == []


def test_rbd_connect_timeout_says_it_may_be_the_key(tmp_path):
    def qemu_img(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 1, b'', (
            b"qemu-img: %s: Could not open 'json:{}': error connecting: "
            b"Connection timed out\n" % argv[-1].encode()))
    overlays = OV.Overlays(opts(), str(tmp_path), run=qemu_img)
    with pytest.raises(OV.OverlayError) as err:
        overlays.add(spec('volumes/volume-1', **RBD))
    assert err.value.reason == (
        'cannot open disk vda: error connecting: Connection timed out (no '
        'monitor answered, or the cephx key was refused)')


def test_rbd_secret_read_failure_is_a_reason(tmp_path):
    def broken(uri, s):
        raise RuntimeError("Secret not found: no secret with matching "
                           "uuid '7a3c'")
    overlays = OV.Overlays(opts(libvirt_secret_uri='qemu:///system'),
                           str(tmp_path), read_secret=broken)
    with pytest.raises(OV.OverlayError) as err:
        overlays.tree(spec('volumes/volume-1', **RBD))
    assert err.value.reason.startswith('vda: cannot read the rbd secret: '
                                       'Secret not found')
    assert os.listdir(tmp_path) == []


def test_network_disks_we_cannot_pin_are_refused(tmp_path):
    overlays = OV.Overlays(opts(), str(tmp_path))
    for drive, reason in [
            (spec('v/p', kind=drives.KIND_NETWORK, protocol='gluster',
                  hosts=(('h', '24007'),)), 'gluster disks are not supported'),
            (spec('iqn.x:t/1', kind=drives.KIND_NETWORK, protocol='iscsi',
                  hosts=(('h', '3260'),), username='u', secret_type='iscsi',
                  secret_uuid='1'), 'iscsi disks with a secret'),
            (spec('/d', fmt='vmdk'), 'disk format vmdk not supported')]:
        with pytest.raises(OV.OverlayError) as err:
            overlays.tree(drive)
        assert reason in err.value.reason


def test_read_libvirt_secret_uses_a_read_write_connection(monkeypatch):
    opened = []

    class Conn:
        def secretLookupByUUIDString(self, uuid):
            opened.append(('uuid', uuid))
            return types.SimpleNamespace(value=lambda: KEY)

        def secretLookupByUsage(self, kind, usage):
            opened.append(('usage', kind, usage))
            return types.SimpleNamespace(value=lambda: KEY)

        def close(self):
            opened.append('closed')

    fake = types.SimpleNamespace(
        VIR_SECRET_USAGE_TYPE_CEPH=5,
        open=lambda uri: opened.append(('open', uri)) or Conn(),
        openReadOnly=lambda uri: pytest.fail('read-only connection'))
    monkeypatch.setitem(__import__('sys').modules, 'libvirt', fake)
    by_uuid = spec('p/i', **RBD)
    by_usage = spec('p/i', **dict(RBD, secret_uuid='',
                                  secret_usage='client.cinder secret'))
    assert ceph_access.read_libvirt_secret('qemu:///system', by_uuid) == KEY
    assert ceph_access.read_libvirt_secret('qemu:///system', by_usage) == KEY
    assert opened == [('open', 'qemu:///system'),
                      ('uuid', RBD['secret_uuid']), 'closed',
                      ('open', 'qemu:///system'),
                      ('usage', 5, 'client.cinder secret'), 'closed']
