"""A guest's disk data must never choose what the appliance opens.

Running domains whose disks' guest-visible data starts with a qcow2
header naming: a host file holding a Windows image, a host block device
holding a Linux image, an ``nbd://`` URL served by a listener of this
test that counts connections, and a ``json:`` backing spec naming
another host file.  Each header sits once under a raw-declared and once
under a qcow2-declared disk, in every drive kind (file, block device,
nbd).  The real engine inspects every disk of each domain; what must
hold: the records are ``unknown`` (the header is only data), the canary
files and device are never opened (inotify), the listener sees no
connection, and no guest byte changed.  The normal layouts still
inspect ``ok``, a 3-level backing chain included.
Appliance launches: 5 hostile domains + 1 chain + 1 rbd image (on the
session's Ceph cluster).
"""

import ctypes
import ctypes.util
import os
import stat
import struct
import subprocess

import pytest

from ceilometer_os_pollster.instances import identity
from tests import helpers
from tests.functional import faults_helpers as H
from tests.guests import builder
from tests.guests import catalog
from tests.rig import disks as disks_mod
from tests.rig import rig as rig_mod

pytestmark = [pytest.mark.libvirt, pytest.mark.appliance]

IN_ACCESS, IN_OPEN = 0x1, 0x20
MiB = 1 << 20


class Watch:
    """inotify: counts opens and reads of the watched paths."""

    def __init__(self, paths):
        self._libc = ctypes.CDLL(ctypes.util.find_library('c'),
                                 use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        self.names = {}
        for path in paths:
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path),
                                              IN_OPEN | IN_ACCESS)
            assert wd >= 0, path
            self.names[wd] = path

    def events(self):
        seen = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return seen
            offset = 0
            while offset < len(data):
                wd, mask, _, length = struct.unpack_from('iIII', data,
                                                         offset)
                seen.append((self.names.get(wd), mask))
                offset += 16 + length

    def close(self):
        os.close(self.fd)


def hostile_image(tmp_path, name, backing):
    """A qcow2 wrapping 64 MiB of guest data that begin with a qcow2
    header whose backing file is ``backing`` (never opened here: -u)."""
    header = tmp_path / (name + '.header')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-u', '-F',
                    'raw', '-b', backing, str(header), '64M'], check=True)
    data = tmp_path / (name + '.raw')
    content = header.read_bytes()
    data.write_bytes(content + b'\0' * (64 * MiB - len(content)))
    # The rig probes its input images: give it a qcow2 whose *content*
    # is the hostile bytes.
    wrapped = tmp_path / (name + '.qcow2')
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                    str(data), str(wrapped)], check=True)
    return wrapped


def make_engine(tmp_root):
    return H.make_engine(tmp_root, inspect_all_disks=True)


def test_header_in_guest_data_is_only_data(rig, tmp_path):
    canaries = tmp_path / 'canaries'
    canaries.mkdir()
    windows = canaries / 'windows.raw'
    disks_mod.to_raw(builder.build('win2022-standard'), windows)
    json_target = canaries / 'json-target.raw'
    disks_mod.to_raw(builder.build('win2019-sql'), json_target)
    linux = canaries / 'linux.raw'
    disks_mod.to_raw(builder.build('ubuntu-22.04'), linux)
    loop = disks_mod.attach_loop(linux)
    # The header names a block device node of its own for the loop
    # device: inotify watches that inode, which only a process following
    # the header would open, whereas any host-wide block scan (blkid,
    # lvm, mkfs.btrfs run by someone else on the host) opens /dev/loopN.
    device = str(canaries / 'linux-disk.dev')
    os.mknod(device, 0o600 | stat.S_IFBLK, os.stat(loop).st_rdev)
    listener = H.BlackHole()
    targets = {
        'host-file': str(windows),
        'block-device': device,
        'nbd-url': 'nbd://127.0.0.1:%d/export' % listener.port,
        'json': ('json:{"driver":"raw","file":{"driver":"file",'
                 '"filename":"%s"}}' % json_target),
    }
    images = {name: hostile_image(tmp_path, name, backing)
              for name, backing in targets.items()}
    # (layout of the raw- or qcow2-declared boot disk, its header; the
    # header under the qcow2 data disk)
    plan = [
        (rig_mod.RAW, 'host-file', 'block-device'),
        (rig_mod.BLOCK, 'block-device', 'host-file'),
        (rig_mod.NBD, 'json', 'nbd-url'),
        (rig_mod.RAW, 'nbd-url', 'json'),
        (rig_mod.QCOW2, 'host-file', 'nbd-url'),
    ]
    try:
        domains = [rig.add('hostile-%d' % n, images[boot], layout=layout,
                           data_image=images[data], vcpus=1)
                   for n, (layout, boot, data) in enumerate(plan)]
        rig.start_all()
        before = rig_mod.disk_checksums(rig)
        watch = Watch([windows, json_target, linux, device])
        tmp_root = tmp_path / 'tmp'
        tmp_root.mkdir()
        engine = make_engine(tmp_root)
        records = {}
        opened = {'before': watch.events()}
        for dom in domains:
            live = rig.conn.lookupByUUIDString(dom.uuid)
            job = identity.make_job(dom.uuid, live.name(), live.XMLDesc(0),
                                    live.ID(), dom.image_id, 'boot')
            records[dom.display_name] = engine.inspect(job)
            opened[dom.display_name] = watch.events()
        watch.close()
    finally:
        listener.close()
        subprocess.run(['losetup', '-d', loop], check=False)
    for name, rec in records.items():
        assert (rec.status, rec.os_family) == ('unknown', 'unknown'), (
            name, rec)
        # The direct readers saw the header as data they do not know and
        # left the disk to the appliance, which opened nothing either.
        assert rec.reason.startswith('no filesystem found on 2 disks; '
                                     'direct reading fell back: '), (
                                         name, rec)
    assert all(events == [] for events in opened.values()), (
        'host canaries were opened: %s' % opened)
    assert listener.accepted == 0
    assert rig_mod.disk_checksums(rig) == before
    assert list(tmp_root.iterdir()) == []


def test_three_level_chain_still_inspects_ok(tmp_path):
    base = tmp_path / 'base.raw'
    disks_mod.to_raw(builder.build('win2022-standard'), base)
    mid = tmp_path / 'mid.qcow2'
    top = tmp_path / 'top.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw',
                    '-b', str(base), str(mid)], check=True)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F',
                    'qcow2', '-b', 'mid.qcow2', str(top)], check=True)
    digests = [builder.sha256(p) for p in (base, mid, top)]
    tmp_root = tmp_path / 'tmp'
    tmp_root.mkdir()
    xml = helpers.domain_xml(helpers.disk(top, format='qcow2'),
                             name='chain', type='qemu')
    rec = make_engine(tmp_root).inspect(identity.InspectionJob(
        instance_id='inst-chain', domain_name='chain', domain_xml=xml))
    expected = catalog.GUESTS['win2022-standard'].expected
    assert catalog.mismatches(expected, rec) == [], rec
    assert [builder.sha256(p) for p in (base, mid, top)] == digests
    assert list(tmp_root.iterdir()) == []


@pytest.mark.ceph
def test_header_in_an_rbd_image_is_only_data(ceph_cluster, tmp_path):
    canary = tmp_path / 'windows.raw'
    disks_mod.to_raw(builder.build('win2022-standard'), canary)
    hostile = tmp_path / 'hostile.raw'
    disks_mod.to_raw(hostile_image(tmp_path, 'rbd', str(canary)), hostile)
    ceph_cluster.import_image(hostile, 'vms', 'hostile_disk')
    conf = ceph_cluster.client_conf(tmp_path / 'ceph.conf',
                                    user=ceph_cluster.users['reader'])
    tmp_root = tmp_path / 'tmp'
    tmp_root.mkdir()
    engine = H.make_engine(tmp_root, ceph_user='reader', ceph_conf=conf)
    xml = helpers.domain_xml(
        helpers.network_disk('rbd', 'vms/hostile_disk',
                             hosts=[('127.0.0.1', ceph_cluster.v1_port)]),
        name='hostile-rbd', type='qemu')
    watch = Watch([canary])
    try:
        rec = engine.inspect(identity.InspectionJob(
            instance_id='inst-hostile-rbd', domain_name='hostile-rbd',
            domain_xml=xml))
        opened = watch.events()
    finally:
        watch.close()
    # Our librbd source read the header as data (no filesystem it
    # knows), then qemu's rbd driver, pinned raw, did the same.
    assert (rec.status, rec.reason) == (
        'unknown', 'no filesystem found on 1 disk; direct reading fell '
        'back: /dev/sda: unknown filesystem or volume type')
    assert opened == []
    assert list(tmp_root.iterdir()) == []
