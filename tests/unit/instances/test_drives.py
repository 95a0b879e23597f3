"""Table tests for drives.py on the disk layouts nova writes (the
snippets of tests.unit.instances.nova_xml)."""

import dataclasses

import pytest

from ceilometer_os_pollster.instances import drives
from tests.unit.instances.nova_xml import CDROM_ISO
from tests.unit.instances.nova_xml import CONFIG_DRIVE_DISK_HDD
from tests.unit.instances.nova_xml import CONFIG_DRIVE_DISK_VDB
from tests.unit.instances.nova_xml import EMPTY_CDROM
from tests.unit.instances.nova_xml import EMPTY_DISK
from tests.unit.instances.nova_xml import FLOPPY
from tests.unit.instances.nova_xml import HTTP_DISK
from tests.unit.instances.nova_xml import INSTANCES
from tests.unit.instances.nova_xml import ISCSI_BLOCK
from tests.unit.instances.nova_xml import ISCSI_NETWORK
from tests.unit.instances.nova_xml import ISCSI_PATH
from tests.unit.instances.nova_xml import LUKS_VOLUME
from tests.unit.instances.nova_xml import LUN
from tests.unit.instances.nova_xml import LVM
from tests.unit.instances.nova_xml import NBD_TCP
from tests.unit.instances.nova_xml import NBD_TCP_DEFAULTS
from tests.unit.instances.nova_xml import NBD_UNIX
from tests.unit.instances.nova_xml import NO_DRIVER
from tests.unit.instances.nova_xml import NO_DRIVER_TYPE
from tests.unit.instances.nova_xml import RAW_FILE
from tests.unit.instances.nova_xml import RBD
from tests.unit.instances.nova_xml import RBD_NO_HOSTS
from tests.unit.instances.nova_xml import ROOT_OVERLAY
from tests.unit.instances.nova_xml import SECRET
from tests.unit.instances.nova_xml import STANDALONE_QCOW2
from tests.unit.instances.nova_xml import UUID
from tests.unit.instances.nova_xml import VDB
from tests.unit.instances.nova_xml import VOLUME_TYPE
from tests.unit.instances.nova_xml import domain
from tests.unit.instances.nova_xml import file_disk


def boot_ordered(snippet, order):
    return snippet.replace('</disk>', "  <boot order='%d'/>\n    </disk>"
                           % order)


def only(xml):
    specs = drives.drive_specs(xml)
    assert len(specs) == 1, specs
    return specs[0]


@pytest.mark.parametrize('snippet, expected', [
    (RAW_FILE, dict(kind='file', path=INSTANCES + '/disk', format='raw',
                    target='vda', bus='virtio', protocol='', hosts=())),
    # The overlay is inspected; qemu follows the backing chain itself.
    (ROOT_OVERLAY, dict(kind='file', path=INSTANCES + '/disk',
                        format='qcow2', target='vda')),
    (STANDALONE_QCOW2, dict(kind='file', path=INSTANCES + '/disk',
                            format='qcow2')),
    # libvirt itself treats a disk without a driver type as raw.
    (NO_DRIVER_TYPE, dict(format='raw')),
    (NO_DRIVER, dict(format='raw', kind='file')),
    (LVM, dict(kind='block', path='/dev/nova-vg/%s_disk' % UUID,
               format='raw')),
    (ISCSI_BLOCK, dict(kind='block', path=ISCSI_PATH, target='vdb')),
    (LUN, dict(kind='block', device='lun', path='/dev/sdx', bus='scsi')),
    (LUKS_VOLUME, dict(kind='block', encryption='luks', format='raw')),
    (RBD, dict(kind='network', protocol='rbd', path='vms/%s_disk' % UUID,
               format='raw',
               hosts=(('192.0.2.1', '6789'), ('192.0.2.2', '6789'),
                      ('2001:db8::3', '3300')),
               username='nova', secret_type='ceph', secret_uuid=SECRET,
               secret_usage='')),
    # librbd finds the monitors in ceph.conf.
    (RBD_NO_HOSTS, dict(protocol='rbd', path='volumes/volume-1234',
                        hosts=())),
    (ISCSI_NETWORK, dict(kind='network', protocol='iscsi',
                         path='iqn.2013-07.com.example:iscsi-nopool/1',
                         hosts=(('iscsi.example.com', '3260'),),
                         username='myuser', secret_type='iscsi',
                         secret_usage='libvirtiscsi', secret_uuid='')),
    (NBD_TCP, dict(protocol='nbd', path='export1',
                   hosts=(('nbd.example.org', '6000'),), socket='')),
    (NBD_TCP_DEFAULTS, dict(protocol='nbd', path='',
                            hosts=(('nbd.example.org', '10809'),))),
    (NBD_UNIX, dict(protocol='nbd', path='bar', hosts=(),
                    socket='/var/run/nbdsock', format='qcow2')),
    (CONFIG_DRIVE_DISK_HDD, dict(path=INSTANCES + '/disk.config',
                                 target='hdd', bus='ide')),
])
def test_single_disk_layouts(snippet, expected):
    spec = only(domain(snippet))
    actual = {name: getattr(spec, name) for name in expected}
    assert actual == expected
    assert spec.device in ('disk', 'lun')
    assert spec.format        # never empty: qemu must not probe


@pytest.mark.parametrize('snippet', [
    CDROM_ISO, EMPTY_CDROM, FLOPPY, EMPTY_DISK, VOLUME_TYPE, HTTP_DISK,
    # rbd without a pool/image name, iscsi without a target.
    "<disk type='network' device='disk'><source protocol='rbd'/>"
    "<target dev='vdb' bus='virtio'/></disk>",
    "<disk type='network' device='disk'><source protocol='iscsi'>"
    "<host name='h'/></source><target dev='vdb' bus='virtio'/></disk>",
    # nbd and iscsi cannot work without a server.
    "<disk type='network' device='disk'><source protocol='nbd' name='x'/>"
    "<target dev='vdb' bus='virtio'/></disk>",
    # A port that is no port, a host without a name.
    "<disk type='network' device='disk'><source protocol='rbd' name='p/i'>"
    "<host name='h' port='67a9'/></source>"
    "<target dev='vdb' bus='virtio'/></disk>",
    "<disk type='network' device='disk'><source protocol='rbd' name='p/i'>"
    "<host name='h' port='70000'/></source>"
    "<target dev='vdb' bus='virtio'/></disk>",
    "<disk type='network' device='disk'><source protocol='rbd' name='p/i'>"
    "<host port='6789'/></source><target dev='vdb' bus='virtio'/></disk>",
    # unix sockets are an nbd thing; and one nbd server only.
    "<disk type='network' device='disk'><source protocol='rbd' name='p/i'>"
    "<host transport='unix' socket='/s'/></source>"
    "<target dev='vdb' bus='virtio'/></disk>",
    "<disk type='network' device='disk'><source protocol='nbd' name='x'>"
    "<host transport='unix' socket='/s'/><host name='h'/></source>"
    "<target dev='vdb' bus='virtio'/></disk>",
    "<disk type='file' device='disk'><source file=''/>"
    "<target dev='vdb' bus='virtio'/></disk>",
    "<disk type='dir' device='disk'><source dir='/srv/x'/>"
    "<target dev='hdb' bus='ide'/></disk>",
])
def test_skipped_disks(snippet):
    # Each unusable disk is dropped; the root disk next to it is kept.
    specs = drives.drive_specs(domain(ROOT_OVERLAY, snippet))
    assert [spec.path for spec in specs] == [INSTANCES + '/disk']


def test_domain_without_disks():
    assert drives.drive_specs(domain()) == []
    assert drives.boot_drives([]) == []
    assert drives.boot_drives([], all_disks=True) == []


def test_readonly_flag():
    readonly = RAW_FILE.replace('</disk>', '<readonly/></disk>')
    assert only(domain(readonly)).readonly is True
    assert only(domain(RAW_FILE)).readonly is False


@pytest.mark.parametrize('xml', [
    '',
    '<domain><devices><disk',
    'not xml at all',
    '<domain>\x00</domain>',
    # libvirt never writes a DTD; entities are never expanded.
    '<!DOCTYPE domain [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
    '<domain><devices><disk type="file" device="disk">'
    '<source file="&b;"/><target dev="vda"/></disk></devices></domain>',
    '<!DOCTYPE domain SYSTEM "http://example.com/x.dtd"><domain/>',
    '<network><name>default</name></network>',
    b'\xff\xfe<\x00d\x00',
    None,
    42,
    'caf\udcc3',
])
def test_malformed_xml_raises(xml):
    with pytest.raises(drives.DomainXMLError) as raised:
        drives.drive_specs(xml)
    assert isinstance(raised.value, ValueError)
    assert str(raised.value)


def test_bytes_and_declaration_accepted():
    xml = "<?xml version='1.0' encoding='UTF-8'?>\n" + domain(RAW_FILE)
    assert only(xml) == only(xml.encode('utf-8'))
    assert only(xml).path == INSTANCES + '/disk'


def test_deeply_nested_xml_is_refused_not_recursed():
    xml = '<domain>' + '<a>' * 5000 + '</a>' * 5000 + '</domain>'
    with pytest.raises(drives.DomainXMLError):
        drives.drive_specs(xml)


# Boot policy -------------------------------------------------------------

def targets(specs):
    return [spec.target for spec in specs]


VDC = file_disk('disk.swap', 'vdc', fmt='raw')
SDA = LUN.replace("'sdb'", "'sda'")
VOLUME_VDA = RBD.replace('vms/%s_disk' % UUID, 'volumes/volume-root')
VOLUME_VDB = ISCSI_BLOCK


@pytest.mark.parametrize('disks, order, boot', [
    # Image-backed: root, ephemeral, swap, config drive, volume.
    ((ROOT_OVERLAY, VDB, VDC, CDROM_ISO, VOLUME_VDB.replace('vdb', 'vdd')),
     ['vda', 'vdb', 'vdc', 'vdd'], 'vda'),
    # Boot from volume: nova writes the config drive before the volumes.
    ((CONFIG_DRIVE_DISK_VDB, VOLUME_VDA), ['vda', 'vdb'], 'vda'),
    ((CONFIG_DRIVE_DISK_HDD, VOLUME_VDA), ['vda', 'hdd'], 'vda'),
    # Document order does not matter, bus position does.
    ((VDC, VDB, ROOT_OVERLAY), ['vda', 'vdb', 'vdc'], 'vda'),
    # A tie across buses goes to the disk written first.
    ((ROOT_OVERLAY, SDA), ['vda', 'sda'], 'vda'),
    ((SDA, ROOT_OVERLAY), ['sda', 'vda'], 'sda'),
    # Per-device boot order wins (nova's stable device rescue: the
    # rescue disk is added last with order 1).
    ((ROOT_OVERLAY, VDB, boot_ordered(
        file_disk('disk.rescue', 'vdc'), 1)), ['vdc', 'vda', 'vdb'], 'vdc'),
    ((boot_ordered(VDB, 2), boot_ordered(ROOT_OVERLAY, 1)),
     ['vda', 'vdb'], 'vda'),
    ((boot_ordered(ROOT_OVERLAY, 2), boot_ordered(VDB, 1)),
     ['vdb', 'vda'], 'vdb'),
    # Two-letter targets come after single-letter ones.
    ((file_disk('d27', 'vdaa'), file_disk('d26', 'vdz'), ROOT_OVERLAY),
     ['vda', 'vdz', 'vdaa'], 'vda'),
    # An unknown target name sorts last.
    ((file_disk('x', 'ubda'), VDB), ['vdb', 'ubda'], 'vdb'),
])
def test_boot_policy(disks, order, boot):
    # libvirt refuses <os><boot dev> next to per-device boot orders.
    explicit = any('<boot order' in disk for disk in disks)
    specs = drives.drive_specs(domain(*disks, os_boot=() if explicit
                                      else ('hd',)))
    assert targets(specs) == order
    assert targets(drives.boot_drives(specs)) == [boot]
    everything = drives.boot_drives(specs, all_disks=True)
    assert targets(everything) == order
    assert everything[0].target == boot


def test_boot_drives_does_not_trust_input_order():
    specs = drives.drive_specs(domain(ROOT_OVERLAY, VDB, VDC))
    shuffled = [specs[2], specs[0], specs[1]]
    assert targets(drives.boot_drives(shuffled)) == ['vda']
    assert targets(drives.boot_drives(shuffled, all_disks=True)) == [
        'vda', 'vdb', 'vdc']


def test_cdrom_boot_device_inspects_the_hard_disk():
    xml = domain(CDROM_ISO, VDB, os_boot=('cdrom', 'hd'))
    assert targets(drives.boot_drives(drives.drive_specs(xml))) == ['vdb']


@pytest.mark.parametrize('order, expected', [
    ('1', 1), ('07', 7), ('0', None), ('-1', None), ('x', None),
    ('', None), ('99999999', None),
])
def test_boot_order_attribute(order, expected):
    snippet = RAW_FILE.replace('</disk>',
                               "<boot order='%s'/></disk>" % order)
    assert only(domain(snippet)).boot_order == expected


# Labels ------------------------------------------------------------------

def test_labels_are_unique_letters_only():
    disks = (ROOT_OVERLAY, VDB, file_disk('a', 'vdb'), file_disk('b', ''),
             file_disk('c', 'sd1'), file_disk('d', 'x' * 30),
             file_disk('e', 'diska'))
    specs = drives.drive_specs(domain(*disks))
    labels = [spec.label for spec in specs]
    assert len(set(labels)) == len(labels) == len(disks)
    for label in labels:
        assert label.isascii() and label.isalpha() and len(label) <= 20
    assert specs[0].label == 'vda'
    assert specs[1].label == 'vdb'


def test_generated_labels_avoid_target_names():
    disks = (boot_ordered(file_disk('a', 'diskc'), 1),
             boot_ordered(RAW_FILE, 2), boot_ordered(file_disk('b', ''), 3))
    specs = drives.drive_specs(domain(*disks, os_boot=()))
    assert [spec.label for spec in specs] == ['diskc', 'vda', 'diskd']


# describe ----------------------------------------------------------------

@pytest.mark.parametrize('snippet, expected', [
    (ROOT_OVERLAY, 'vda (qcow2, virtio): file %s/disk' % INSTANCES),
    (LVM, 'vda (raw, virtio): block /dev/nova-vg/%s_disk' % UUID),
    (RBD, 'vda (raw, virtio): rbd vms/%s_disk via 192.0.2.1:6789 (+2)'
     % UUID),
    (NBD_UNIX, 'vdd (qcow2, virtio): nbd bar via unix:/var/run/nbdsock'),
    (NBD_TCP_DEFAULTS, 'vdc (raw, virtio): nbd (default export) via '
     'nbd.example.org:10809'),
])
def test_describe(snippet, expected):
    assert drives.describe(only(domain(snippet))) == expected


def test_describe_never_shows_auth_and_is_safe():
    spec = only(domain(RBD))
    text = drives.describe(spec)
    assert SECRET not in text and 'nova' not in text and 'ceph' not in text
    hostile = dataclasses.replace(
        spec, path='p/\x1b[31mimg\n\u202eevil' + 'x' * 1000)
    text = drives.describe(hostile)
    assert len(text) <= 255
    assert text.startswith('vda (raw, virtio): rbd p/img evil')
    assert all(ch.isprintable() for ch in text)


@pytest.mark.parametrize('target, position', [
    ('vda', 0), ('sda', 0), ('hda', 0), ('xvda', 0), ('vdb', 1),
    ('hdd', 3), ('vdz', 25), ('vdaa', 26), ('vdab', 27), ('vdba', 52),
])
def test_target_position(target, position):
    assert drives.target_position(target) == position


@pytest.mark.parametrize('target', ['', 'fda', 'ubda', 'vd1', 'VDA', None])
def test_target_position_unknown_sorts_last(target):
    assert drives.target_position(target) > drives.target_position('vdzzz')
