"""direct.rbd_image and direct.network (rbd): names, read-only opening,
the key's life, the Budget, errors as reasons.  librados and librbd are
faked here; tests/functional/test_rbd_inspection.py reads a real
cluster."""

import contextlib
import os
import sys
import types

import pytest

from ceilometer_os_pollster.instances import drives
from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct import disks as direct_disks
from ceilometer_os_pollster.direct.block import network
from ceilometer_os_pollster.direct.block import rbd_image
from ceilometer_os_pollster.direct.block import source as S
from tests import helpers

KEY = b'\x01\x02secret-key-bytes'


@pytest.mark.parametrize('name,parts', [
    ('vms/abc_disk', ('vms', '', 'abc_disk', None)),
    ('volumes/ns/volume-1', ('volumes', 'ns', 'volume-1', None)),
    ('vms/img@snap', ('vms', '', 'img', 'snap')),
])
def test_image_names(name, parts):
    assert rbd_image.image_name(name) == parts


@pytest.mark.parametrize('name', ['', 'img', '/img', 'vms/', 'a/b/c/d',
                                  'vms/img@', 'vms/img@a@b'])
def test_unusable_image_names(name):
    with pytest.raises(errors.Unsupported, match='unsupported image name'):
        rbd_image.image_name(name)


class FakeCeph:
    """Stands in for the rados and rbd modules; records what is done."""

    def __init__(self, tmp_path, fail=None):
        self.events = []
        self.fail = fail
        self.data = bytes(range(256)) * 64
        fake = self

        class Error(Exception):
            pass

        class Rados:
            def __init__(self, conffile, rados_id, conf):
                fake.events.append(('rados', conffile, rados_id, conf))
                # the keyring must exist while librados authenticates
                fake.keyring_seen = [
                    p for p in _files(tmp_path) if p.endswith('keyring')]

            def connect(self, timeout):
                fake.events.append(('connect', timeout))
                if fake.fail == 'connect':
                    raise Error('error connecting: Connection timed out')

            def open_ioctx(self, pool):
                fake.events.append(('ioctx', pool))
                return types.SimpleNamespace(
                    close=lambda: fake.events.append('ioctx.close'),
                    set_namespace=lambda ns: fake.events.append(('ns', ns)))

            def shutdown(self):
                fake.events.append('shutdown')

        class Image:
            def __init__(self, ioctx, name, snapshot=None, read_only=False):
                fake.events.append(('image', name, snapshot, read_only))
                fake.files_at_open = _files(tmp_path)
                if fake.fail == 'image':
                    raise Error('[errno 2] RBD image not found')

            def size(self):
                return len(fake.data)

            def read(self, offset, length):
                fake.events.append(('read', offset, length))
                if fake.fail == 'read':
                    raise Error('[errno 5] error reading')
                return fake.data[offset:offset + length]

            def close(self):
                fake.events.append('image.close')

        self.rados = types.SimpleNamespace(Rados=Rados, Error=Error)
        self.rbd = types.SimpleNamespace(Image=Image, Error=Error)


def _files(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root)
                  for f in fs)


@pytest.fixture
def ceph(tmp_path, monkeypatch):
    def make(fail=None):
        fake = FakeCeph(tmp_path, fail)
        monkeypatch.setitem(sys.modules, 'rados', fake.rados)
        monkeypatch.setitem(sys.modules, 'rbd', fake.rbd)
        return fake
    return make


def rbd_spec(name='vms/abc_disk'):
    disk = helpers.network_disk(
        'rbd', name, hosts=[('10.0.0.1', 6789), ('::1', None)],
        auth="<auth username='nova'><secret type='ceph' uuid='0000-1'/>"
             "</auth>")
    return drives.drive_specs(helpers.domain_xml(disk, name='d'))[0]


def opts(**over):
    values = dict(inspection_deadline=300, ceph_user='',
                  ceph_conf='/etc/ceph/ceph.conf', libvirt_secret_uri='',
                  ceph_client_mount_timeout=7)
    values.update(over)
    return types.SimpleNamespace(**values)


def open_disk(o, tmp_path, budget=None, read_secret=None, stack=None):
    stack = stack or contextlib.ExitStack()
    disks = network.NetworkDisks(o, str(tmp_path),
                                 read_secret=read_secret or (
                                     lambda uri, spec: KEY))
    disk = direct_disks.disk_source(rbd_spec(), budget or S.Budget(),
                                    stack, disks)
    return disk, stack


def test_route_a_read_only_with_the_operators_conf(ceph, tmp_path,
                                                   monkeypatch):
    fake = ceph()
    monkeypatch.setenv('CEPH_CONF', '/decoy/ceph.conf')
    monkeypatch.setenv('CEPH_ARGS', '--keyring /decoy')
    budget = S.Budget(8192)
    disk, stack = open_disk(opts(), tmp_path, budget)
    with stack:
        assert disk.read_at(300, 10) == fake.data[300:310]
        with pytest.raises(errors.LimitReached):
            disk.read_at(0, 8192)
        assert budget.used == 10
    assert fake.events[0] == (
        'rados', '/etc/ceph/ceph.conf', 'nova',
        {'client_mount_timeout': '7', 'rados_mon_op_timeout': '600',
         'rados_osd_op_timeout': '600',
         'mon_host': '10.0.0.1:6789,[::1]:6789'})
    assert ('image', 'abc_disk', None, True) in fake.events
    # closed in reverse order of opening
    assert fake.events[-3:] == ['image.close', 'ioctx.close', 'shutdown']
    assert 'CEPH_CONF' not in os.environ and 'CEPH_ARGS' not in os.environ


def test_route_b_key_in_a_private_file_removed_once_connected(
        ceph, tmp_path):
    fake = ceph()
    disk, stack = open_disk(opts(libvirt_secret_uri='qemu:///system'),
                            tmp_path)
    with stack:
        conffile = fake.events[0][1]
        assert conffile.startswith(str(tmp_path))
        assert len(fake.keyring_seen) == 1
        # gone before the image is opened and read
        assert fake.files_at_open == []
        assert disk.read_at(0, 4) == fake.data[:4]
    assert all(KEY.hex() not in repr(e) for e in fake.events)


@pytest.mark.parametrize('fail,match', [
    ('connect', 'cannot open: error connecting: Connection timed out'),
    ('image', 'cannot open: .errno 2. RBD image not found'),
])
def test_failures_are_reasons_and_leave_no_key(ceph, tmp_path, fail, match):
    fake = ceph(fail)
    # as direct.inspect does: what was opened is closed on the way out
    with pytest.raises(errors.DirectError, match=match), \
            contextlib.ExitStack() as stack:
        open_disk(opts(libvirt_secret_uri='qemu:///system'), tmp_path,
                  stack=stack)
    assert _files(tmp_path) == []
    assert 'shutdown' in fake.events


def test_read_errors_are_reasons(ceph, tmp_path):
    ceph('read')
    disk, stack = open_disk(opts(), tmp_path)
    with stack, pytest.raises(errors.DirectError,
                              match='read error at offset 0'):
        disk.read_at(0, 16)


def test_secret_that_cannot_be_read(ceph, tmp_path):
    def refuse(uri, spec):
        raise RuntimeError('Secret not found: no secret with matching uuid')
    ceph()
    with pytest.raises(errors.DirectError,
                       match='vda: cannot read the rbd secret: Secret not'):
        open_disk(opts(libvirt_secret_uri='qemu:///system'), tmp_path,
                  read_secret=refuse)


def test_ceph_user_reads_as_the_operators_user(ceph, tmp_path):
    fake = ceph()
    disk, stack = open_disk(opts(ceph_user='reader',
                                 libvirt_secret_uri='qemu:///system'),
                            tmp_path, read_secret=lambda *a: 1 / 0)
    with stack:
        assert fake.events[0][1:3] == ('/etc/ceph/ceph.conf', 'reader')
