"""qemu_nodes: pinned node trees, qcow2 headers, the command-line check
(pure: tables of cases, headers made by the real qemu-img)."""

import json
import struct
import subprocess

import pytest

from ceilometer_os_pollster.instances import drives
from ceilometer_os_pollster.storage import qemu_nodes as Q
from tests.rig.disks import encrypted_qcow2


def qemu_img(*args):
    subprocess.run(('qemu-img',) + args, check=True,
                   stdout=subprocess.DEVNULL)


def header(path):
    with open(path, 'rb') as f:
        return Q.parse_qcow2_header(f.read(Q.HEADER_BYTES))


def test_header_of_a_nova_overlay(tmp_path):
    base = tmp_path / 'base'
    base.write_bytes(b'\0' * 65536)
    qemu_img('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', str(base),
             str(tmp_path / 'disk'), '1G')
    h = header(tmp_path / 'disk')
    assert (h.version, h.size, h.backing_file, h.backing_format) == (
        3, 1 << 30, str(base), 'raw')
    assert not h.data_file and not h.encrypted


def test_header_without_backing_and_v2(tmp_path):
    qemu_img('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10',
             str(tmp_path / 'v2'), '1M')
    h = header(tmp_path / 'v2')
    assert (h.version, h.backing_file, h.backing_format) == (2, '', '')


def test_header_with_an_external_data_file_is_flagged(tmp_path):
    qemu_img('create', '-q', '-f', 'qcow2', '-o',
             'data_file=%s' % (tmp_path / 'data'), str(tmp_path / 'img'),
             '1M')
    assert header(tmp_path / 'img').data_file


@pytest.mark.parametrize('method', [1, 2])
def test_encrypted_header_is_flagged(tmp_path, method):
    encrypted_qcow2(tmp_path / 'enc', method)
    assert header(tmp_path / 'enc').encrypted


@pytest.mark.parametrize('data,reason', [
    (b'', 'not a qcow2 image'),
    (b'\0' * 512, 'not a qcow2 image'),
    (b'QFI\xfb' + struct.pack('>I', 9) + b'\0' * 100,
     'qcow2 version 9 not supported'),
    (b'QFI\xfb' + struct.pack('>IQI', 3, 200, 5000) + b'\0' * 100,
     'qcow2 backing file name out of bounds'),
])
def test_bad_headers_are_refused(data, reason):
    with pytest.raises(Q.Refused) as err:
        Q.parse_qcow2_header(data)
    assert str(err.value) == reason


@pytest.mark.parametrize('image,name,expected', [
    ('/v/i/disk', '/v/_base/abc', '/v/_base/abc'),
    ('/v/i/disk', '../_base/abc', '/v/_base/abc'),
    ('/v/i/disk', 'base', '/v/i/base'),
    ('/v/i/disk', '/odd:name', '/odd:name'),
])
def test_backing_paths(image, name, expected):
    assert Q.backing_path(image, name) == expected


@pytest.mark.parametrize('name', [
    'nbd://10.0.0.1:10809/x', 'json:{"driver":"file"}', 'http://h/x',
    'rbd:pool/img', 'nbd+unix:///x?socket=/s', ''])
def test_protocol_backing_names_are_refused(name):
    with pytest.raises(Q.Refused):
        Q.backing_path('/v/i/disk', name)


@pytest.mark.parametrize('recorded,pinned', [
    ('', 'raw'), ('raw', 'raw'), ('qcow2', 'qcow2')])
def test_backing_format_is_recorded_or_raw(recorded, pinned):
    h = Q.Qcow2Header(version=3, size=1, backing_file='/b',
                      backing_format=recorded)
    assert Q.backing_format(h) == pinned


@pytest.mark.parametrize('fmt', ['vmdk', 'vpc', 'luks', '', 'qed'])
def test_formats_other_than_raw_and_qcow2_are_refused(fmt):
    with pytest.raises(Q.Refused):
        Q.check_format(fmt)


def test_qcow2_nodes_always_name_their_backing():
    raw = Q.format_node('raw', Q.file_node('/b', False))
    assert raw == {'driver': 'raw', 'file': {
        'driver': 'file', 'filename': '/b', 'locking': 'off'}}
    top = Q.format_node('qcow2', Q.file_node('/dev/vg/lv', True), raw,
                        has_backing=True)
    assert top['backing'] is raw
    assert top['file']['driver'] == 'host_device'
    alone = Q.format_node('qcow2', Q.file_node('/d', False))
    assert 'backing' in alone and alone['backing'] is None


def spec(**kwargs):
    kwargs.setdefault('target', 'vda')
    kwargs.setdefault('kind', drives.KIND_NETWORK)
    return drives.DriveSpec(**kwargs)


@pytest.mark.parametrize('drive,expected', [
    (spec(path='exp', protocol='nbd', hosts=(('10.0.0.5', '10809'),)),
     {'driver': 'nbd', 'export': 'exp',
      'server': {'type': 'inet', 'host': '10.0.0.5', 'port': '10809'}}),
    (spec(path='', protocol='nbd', socket='/run/n.sock'),
     {'driver': 'nbd', 'server': {'type': 'unix', 'path': '/run/n.sock'}}),
])
def test_nbd_nodes(drive, expected):
    assert Q.nbd_node(drive) == expected


def test_iscsi_node():
    node = Q.iscsi_node(spec(path='iqn.2024-01.x:tgt/1', protocol='iscsi',
                             hosts=(('10.0.0.6', '3260'),)))
    assert node == {'driver': 'iscsi', 'transport': 'tcp',
                    'portal': '10.0.0.6:3260',
                    'target': 'iqn.2024-01.x:tgt', 'lun': 1}


RBD = dict(protocol='rbd', path='volumes/volume-1', username='cinder',
           hosts=(('10.0.0.1', '6789'), ('fd00::2', '3300')))


def test_rbd_filename_names_conf_user_monitors_and_timeout_never_a_key():
    name = Q.rbd_filename(spec(**RBD), '/etc/ceph/ceph.conf', 20)
    assert name == ('rbd:volumes/volume-1:id=cinder:mon_host=10.0.0.1\\:6789'
                    '\\;[fd00\\:\\:2]\\:3300:conf=/etc/ceph/ceph.conf'
                    ':client_mount_timeout=20')


@pytest.mark.parametrize('changes,conf', [
    (dict(path='pool/img:conf=/evil'), '/c'),
    (dict(path='pool/img,x'), '/c'),
    (dict(path=''), '/c'),
    (dict(username='u:key=x'), '/c'),
    (dict(hosts=(('h;x', '1'),)), '/c'),
    ({}, '/etc/ceph:x/ceph.conf'),
    ({}, ''),
])
def test_rbd_values_that_would_inject_options_are_refused(changes, conf):
    with pytest.raises(Q.Refused):
        Q.rbd_filename(spec(**dict(RBD, **changes)), conf, 20)


def test_backing_string_is_canonical_json():
    tree = {'file': {'filename': '/a,b', 'driver': 'file'}, 'driver': 'raw'}
    text = Q.backing_string(tree)
    assert text == ('json:{"driver":"raw","file":{"driver":"file",'
                    '"filename":"/a,b"}}')
    assert json.loads(text[5:]) == tree


APPLIANCE = ('file=/var/tmp/.guestfs-0/appliance.d/root,snapshot=on,'
             'id=appliance,cache=unsafe,if=none,format=raw')


def argv(*drives_):
    result = ['/usr/bin/qemu-system-x86_64', '-kernel', 'k']
    for drive in drives_:
        result += ['-drive', drive]
    return result


@pytest.mark.parametrize('line,problems', [
    (argv('file=/p/vda.qcow2,cache=writeback,format=qcow2,id=hd0,if=none',
          APPLIANCE), []),
    # What libguestfs 1.48 does for a read-only drive: no top format.
    (argv('file.file.filename=/p/ov1,file.driver=qcow2,id=hd0,if=none',
          APPLIANCE),
     ['a -drive without format= (qemu would probe it)']),
    (argv('file=/etc/shadow,format=raw,id=hd0', APPLIANCE),
     ['a -drive that is not one of our overlays']),
    (argv('file=/p/vda.qcow2,format=raw,id=hd0', APPLIANCE),
     ['a -drive that is not one of our overlays']),
    (argv('file=/p/vda.qcow2,format=qcow2,id=hd0',
          APPLIANCE.replace(',format=raw', '')),
     ['appliance root disk without format=raw']),
    (argv('file=/p/vda.qcow2,format=qcow2') + ['-blockdev', 'x'],
     ['unexpected -blockdev option']),
])
def test_drive_problems(line, problems):
    assert Q.drive_problems(line, ['/p/vda.qcow2']) == problems


def test_drive_options_understand_doubled_commas():
    line = argv('file=/p/a,,b.qcow2,format=qcow2,id=hd0', APPLIANCE)
    assert Q.drive_problems(line, ['/p/a,b.qcow2']) == []


def test_private_ceph_files():
    assert Q.ceph_keyring('cinder', bytes(range(1, 29))) == (
        '[client.cinder]\n\tkey = AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHA==\n')
    assert Q.ceph_conf((('fd00::1', '6789'), ('mon1', '3300')), '/k', 7) == (
        '[global]\nmon_host = [fd00::1]:6789,mon1:3300\nkeyring = /k\n'
        'client_mount_timeout = 7\n')
