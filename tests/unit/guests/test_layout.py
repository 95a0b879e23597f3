"""tests/guests/layout.py: PE images and the disk plans of every catalog
guest; the few build checks use host tools that take milliseconds
(sfdisk, mkfs.xfs, lvm reading a loop device).  No appliance."""

import json
import os
import struct
import subprocess
import uuid

import pytest

from tests.guests import builder
from tests.guests import catalog
from tests.guests import hive
from tests.guests import layout


def _pe_fields(data):
    assert data[:2] == b'MZ'
    pe, = struct.unpack_from('<I', data, 0x3c)
    signature, machine = struct.unpack_from('<4sH', data, pe)
    magic, = struct.unpack_from('<H', data, pe + 24)
    subsystem, = struct.unpack_from('<H', data, pe + 24 + 68)
    return signature, machine, magic, subsystem


@pytest.mark.parametrize('subsystem', [2, 3, 10])
def test_pe_image_headers(subsystem):
    data = layout.pe_image(subsystem=subsystem)
    assert _pe_fields(data) == (b'PE\0\0', 0x8664, 0x20b, subsystem)
    assert len(data) % 0x200 == 0


def test_pe_image_recognised_by_file(tmp_path):
    (tmp_path / 'cmd.exe').write_bytes(layout.pe_image())
    (tmp_path / 'stub.exe').write_bytes(layout.dos_stub())
    out = subprocess.run(['file', '-b', 'cmd.exe', 'stub.exe'],
                         cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout.splitlines()
    # What libguestfs 1.48's file_architecture matches on.
    assert 'PE32+ executable' in out[0] and 'x86-64' in out[0]
    assert 'PE32' not in out[1]


# --------------------------------------------------------------------------
# Disk plans

ALL = sorted(catalog.GUESTS)


@pytest.mark.parametrize('name', ALL)
def test_plan_partitions_fit_and_do_not_overlap(name):
    disk = layout.plan(catalog.GUESTS[name])
    end = 1 if disk.table == 'gpt' else 0     # room for the backup GPT
    previous = 0
    for part in disk.partitions:
        assert part.start_mib >= max(previous, 1)
        previous = part.start_mib + part.size_mib
    assert previous + end <= disk.size_mib <= 200
    assert layout.plan(catalog.GUESTS[name]) == disk      # deterministic


@pytest.mark.parametrize('name', catalog.WINDOWS)
def test_plan_windows_c_drive(name):
    guest = catalog.GUESTS[name]
    disk = layout.plan(guest)
    c_drive = disk.partitions[-1]
    files = dict(c_drive.fs.files)
    assert c_drive.fs.kind == 'ntfs'
    cmd = files['/Windows/System32/cmd.exe']
    assert (cmd == layout.pe_image()) == guest.windows.cmd_exe_is_pe
    assert (('/Windows/System32/config/SOFTWARE' in files)
            == guest.windows.software_hive)
    system = files['/Windows/System32/config/SYSTEM'].as_dict()
    assert system['Select']['Current'] == hive.dword(1)
    assert system['ControlSet001\\Control\\ComputerName\\ComputerName'][
        'ComputerName'] == hive.sz(guest.windows.hostname)
    blob = system['MountedDevices']['\\DosDevices\\C:'][1]
    if disk.table == 'gpt':
        assert blob == b'DMIO:ID:' + uuid.UUID(c_drive.uuid).bytes_le
    else:
        assert blob == struct.pack('<IQ', int(disk.label_id, 16),
                                   c_drive.offset)


@pytest.mark.parametrize('name', [n for n in catalog.WINDOWS
                                  if catalog.GUESTS[n].windows.software_hive])
def test_plan_windows_software_values(name):
    spec = catalog.GUESTS[name].windows
    files = dict(layout.plan(catalog.GUESTS[name]).partitions[-1].fs.files)
    keys = files['/Windows/System32/config/SOFTWARE'].as_dict()
    current = keys['Microsoft\\Windows NT\\CurrentVersion']
    assert current['ProductName'] == hive.sz(spec.product_name)
    assert current['EditionID'] == hive.sz(spec.edition_id)
    assert current['CurrentBuildNumber'] == hive.sz(spec.build)
    if spec.nt_version >= (10, 0):
        assert current['CurrentMajorVersionNumber'] == hive.dword(10)
    else:
        assert 'CurrentMajorVersionNumber' not in current
        assert current['CurrentVersion'] == hive.sz('%d.%d'
                                                    % spec.nt_version)
    for override, value in spec.current_version_overrides:
        assert current[override] == value
    sql = 'Microsoft\\Microsoft SQL Server'
    names = keys.get(sql + '\\Instance Names\\SQL', {})
    real = {k: v for k, v in names.items() if not k.startswith('FAKE')}
    assert real == {i.name: hive.sz(i.instance_id) for i in spec.sql}
    assert len(names) - len(real) == spec.sql_fake_names
    for inst in spec.sql:
        assert keys['%s\\%s\\Setup' % (sql, inst.instance_id)][
            'Edition'] == hive.sz(inst.edition)


PLAIN_LINUX = tuple(n for n in catalog.LINUX
                    if not (catalog.GUESTS[n].linux.btrfs
                            or catalog.GUESTS[n].linux.separate_usr
                            or catalog.GUESTS[n].linux.xfs_lvm))


@pytest.mark.parametrize('name', PLAIN_LINUX)
def test_plan_linux_root(name):
    guest = catalog.GUESTS[name]
    disk = layout.plan(guest)
    roots = [p for p in disk.partitions if p.fs.label == 'root']
    assert len(roots) == 1
    files = dict(roots[0].fs.files)
    fstab = files['/etc/fstab'].decode()
    for part in disk.partitions:
        assert 'UUID=%s ' % part.fs.uuid in fstab
    assert files['/usr/bin/ls'] is layout.HOST_ELF
    assert (files.get('/bin') == layout.Symlink('usr/bin')) == (
        guest.linux.merged_usr)
    release = files['/etc/os-release']
    if isinstance(release, layout.Symlink):
        assert files['/usr/lib/os-release'] == guest.linux.os_release
    else:
        assert guest.hostile and release == guest.linux.os_release


def test_plan_suse_btrfs():
    guest = catalog.GUESTS['sles-15-sp5-btrfs']
    (part,) = layout.plan(guest).partitions
    plan = {sub.path: sub for sub in part.fs.subvolume_plan}
    default = [sub.path for sub in plan.values() if sub.default]
    assert default == ['@/.snapshots/1/snapshot']
    root = dict(plan['@/.snapshots/1/snapshot'].files)
    fstab = root['/etc/fstab'].decode()
    assert 'UUID=%s /  btrfs  defaults' % part.fs.uuid in fstab
    for sub in layout.SUSE_SUBVOLUMES:
        assert '@/' + sub in plan
        assert 'subvol=/@/%s ' % sub in fstab
    snapshots = [sub for sub in plan.values() if sub.snapshot_of]
    assert len(snapshots) == len(guest.linux.snapshots) == 3
    assert all(s.readonly and s.snapshot_of == '@/.snapshots/1/snapshot'
               for s in snapshots)
    assert dict(snapshots[0].files)['/usr/lib/os-release'] == (
        guest.linux.snapshots[0][0])


def test_plan_fedora_btrfs():
    (part,) = layout.plan(catalog.GUESTS['fedora-39-btrfs']).partitions
    root, home = part.fs.subvolume_plan
    assert (root.path, home.path, root.default) == ('root', 'home', False)
    assert b'subvol=root' in dict(root.files)['/etc/fstab']


def test_plan_separate_usr():
    root, usr = layout.plan(
        catalog.GUESTS['sles-15-sp5-separate-usr']).partitions
    files = dict(root.fs.files)
    assert 'UUID=%s /usr ' % usr.fs.uuid in files['/etc/fstab'].decode()
    assert not any(p.startswith('/usr/') for p in files)
    usr_files = dict(usr.fs.files)
    assert usr_files['/lib/os-release'] == catalog.GUESTS[
        'sles-15-sp5-separate-usr'].linux.os_release
    assert {'/local', '/src', '/bin/ls'} <= set(usr_files)


def test_plan_xfs_lvm():
    guest = catalog.GUESTS['rhel-9.4-xfs-lvm']
    boot, pv = layout.plan(guest).partitions
    assert (boot.fs.kind, boot.bootable, pv.fs.kind, pv.type) == (
        'xfs', True, 'lvm-pv', layout.MBR_LVM)
    assert pv.fs.label == 'rhel'
    root, swap = pv.fs.volumes
    assert [(lv.name, lv.fs.kind) for lv in (root, swap)] == [
        ('root', 'xfs'), ('swap', 'swap')]
    files = dict(root.fs.files)
    assert files['/etc/fstab'].split(b'\n')[1:4] == [
        b'/dev/mapper/rhel-root   /      xfs   defaults  0 0',
        b'UUID=%s /boot xfs defaults 0 0' % boot.fs.uuid.encode(),
        b'/dev/mapper/rhel-swap   none   swap  defaults  0 0']
    assert files['/usr/lib/os-release'] == catalog.GUESTS[
        'rhel-9.4'].linux.os_release
    assert guest.expected == catalog.GUESTS['rhel-9.4'].expected
    placed, pe_count = layout.lvm_extents(pv.fs, pv.size)
    assert [offset for _, offset in placed] == [1 << 20, 65 << 20]
    assert pe_count == 18


def _lvm_report(dev, *args):
    out = subprocess.run(
        ('lvm', *args, '--devices', dev, '--driverloaded', 'n',
         '--config', 'backup{backup=0 archive=0}', '--reportformat', 'json',
         '--units', 'b', '--nosuffix'),
        check=True, capture_output=True, text=True,
        env=dict(os.environ, LVM_SUPPRESS_FD_WARNINGS='1')).stdout
    return next(iter(json.loads(out)['report'][0].values()))


def test_build_xfs_lvm_image(tmp_path):
    """lvm itself reads the PV written byte by byte (checksums, VG
    metadata), and each LV and /boot hold the planned filesystem."""
    path = builder.build('rhel-9.4-xfs-lvm', tmp_path)
    boot, pv = layout.plan(catalog.GUESTS['rhel-9.4-xfs-lvm']).partitions
    dev = subprocess.run(
        ('losetup', '-f', '--show', '-r', '-o', str(pv.offset),
         '--sizelimit', str(pv.size), str(path)),
        check=True, capture_output=True, text=True).stdout.strip()
    try:
        lvs = _lvm_report(dev, 'lvs', '-o',
                          'vg_name,lv_name,lv_size,lv_uuid,seg_pe_ranges')
        (pvs,) = _lvm_report(dev, 'pvs', '-o', 'pv_uuid,pe_start,vg_uuid')
    finally:
        subprocess.run(('losetup', '-d', dev), check=False)
    assert [(lv['vg_name'], lv['lv_name'], int(lv['lv_size']),
             lv['seg_pe_ranges']) for lv in lvs] == [
        ('rhel', 'root', 64 << 20, dev + ':0-15'),
        ('rhel', 'swap', 8 << 20, dev + ':16-17')]
    assert pvs['pv_uuid'].replace('-', '') == pv.fs.uuid
    assert pvs['vg_uuid'].replace('-', '') == pv.fs.vg_id
    assert int(pvs['pe_start']) == layout.LVM_PE_START
    placed, _ = layout.lvm_extents(pv.fs, pv.size)
    for fs, offset in [(boot.fs, boot.offset)] + [
            (lv.fs, pv.offset + at) for lv, at in placed]:
        probe = subprocess.run(
            ('blkid', '-p', '-o', 'export', '-O', str(offset), str(path)),
            check=True, capture_output=True, text=True).stdout
        assert 'TYPE=%s\n' % fs.kind in probe
        assert 'UUID=%s\n' % fs.uuid in probe
    # The PV's label and metadata are the same bytes on every build.
    with open(path, 'rb') as image:
        for offset, data in layout.lvm_pv_areas(pv.fs, pv.size):
            image.seek(pv.offset + offset)
            assert image.read(len(data)) == data


def test_sfdisk_script():
    disk = layout.Disk(64, 'dos', '0x12345678', (
        layout.Partition(1, 16, '83', bootable=True),
        layout.Partition(17, 47, '7')))
    assert layout.sfdisk_script(disk) == (
        'label: dos\nlabel-id: 0x12345678\nunit: sectors\n\n'
        'start=2048, size=32768, type=83, bootable\n'
        'start=34816, size=96256, type=7\n')


# --------------------------------------------------------------------------
