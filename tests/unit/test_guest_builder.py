"""The phony guest builder (tests/guests): hive writer, disk plans,
catalog expectations, cache and qcow2 helpers.

Pure parts are checked on their structure; the few build checks use
Linux/blank guests only (no FUSE mount) and host tools that take
milliseconds (sfdisk, mkfs.ext4, mkfs.xfs and a loop mount, lvm reading
a loop device, qemu-img, hivexregedit).  No appliance.
"""

import dataclasses
import functools
import json
import operator
import os
import struct
import subprocess
import uuid

import pytest

from tests.guests import builder
from tests.guests import catalog
from tests.guests import hive
from tests.guests import layout


# --------------------------------------------------------------------------
# Hive writer

def _cells(data, start, end):
    """[(offset, size, used)] of the cells of one hbin, in order."""
    cells = []
    offset = start
    while offset < end:
        size, = struct.unpack_from('<i', data, offset)
        assert size != 0 and abs(size) % 8 == 0, offset
        cells.append((offset, abs(size), size < 0))
        offset += abs(size)
    assert offset == end
    return cells


def _sid_string(data, offset):
    revision, count = data[offset], data[offset + 1]
    authority = int.from_bytes(data[offset + 2:offset + 8], 'big')
    subs = struct.unpack_from('<%dI' % count, data, offset + 8)
    return 'S-%d-%d-%s' % (revision, authority, '-'.join(map(str, subs)))


def test_empty_hive_base_block():
    data = hive.empty_hive('ROOT', 'SOFTWARE')
    assert len(data) == 0x2000          # hivex refuses anything smaller
    magic, seq1, seq2, _, major, minor, ftype, fmt, root, size = (
        struct.unpack_from('<4sIIqIIIIII', data, 0))
    assert (magic, seq1 == seq2, major, minor) == (b'regf', True, 1, 3)
    assert (ftype, fmt, root, size) == (0, 1, 0x20, 0x1000)
    assert data[0x30:0x40] == 'SOFTWARE'.encode('utf-16-le')
    words = struct.unpack_from('<127I', data, 0)
    assert struct.unpack_from('<I', data, 0x1fc)[0] == functools.reduce(
        operator.xor, words)


def test_empty_hive_bin_and_cells():
    data = hive.empty_hive('ROOT')
    magic, first, size = struct.unpack_from('<4sII', data, 0x1000)
    assert (magic, first, size) == (b'hbin', 0, 0x1000)
    cells = _cells(data, 0x1020, 0x2000)
    assert [used for _, _, used in cells] == [True, True, False]
    (nk_off, _, _), (sk_off, _, _), _ = cells
    assert nk_off - 0x1000 == 0x20      # the base block's root offset
    nk = data[nk_off + 4:]
    assert nk[:2] == b'nk'
    flags, = struct.unpack_from('<H', nk, 2)
    assert flags & 0x04 and flags & 0x20         # hive entry, ASCII name
    subkeys, _, subkey_list = struct.unpack_from('<III', nk, 0x14)
    values, value_list, sk_ref = struct.unpack_from('<III', nk, 0x24)
    assert (subkeys, subkey_list, values, value_list) == (
        0, 0xffffffff, 0, 0xffffffff)
    assert sk_ref + 0x1000 == sk_off
    name_len, = struct.unpack_from('<H', nk, 0x48)
    assert nk[0x4c:0x4c + name_len] == b'ROOT'
    sk = data[sk_off + 4:]
    assert sk[:2] == b'sk'
    next_, prev, refcount, length = struct.unpack_from('<IIII', sk, 4)
    assert (next_ + 0x1000, prev + 0x1000, refcount) == (sk_off, sk_off, 1)
    assert sk[20:20 + length] == hive.security_descriptor()


def test_security_descriptor_owner_group():
    sd = hive.security_descriptor()
    revision, _, control, owner, group, sacl, dacl = struct.unpack_from(
        '<BBHIIII', sd, 0)
    assert (revision, control & 0x8000, control & 0x0004) == (1, 0x8000, 4)
    assert _sid_string(sd, owner) == 'S-1-5-32-544'
    assert _sid_string(sd, group) == 'S-1-5-18'
    assert sacl == 0
    acl_revision, _, acl_size, ace_count = struct.unpack_from(
        '<BBHH', sd, dacl)
    assert (acl_revision, ace_count, dacl + acl_size) == (2, 2, len(sd))


def test_empty_hive_is_deterministic_and_name_bounded():
    assert hive.empty_hive('ROOT', 'SYSTEM') == hive.empty_hive('ROOT',
                                                                'SYSTEM')
    with pytest.raises(ValueError):
        hive.empty_hive('R' * 5000)


@pytest.mark.parametrize('value,reg_type,data', [
    (hive.sz('Ab'), hive.REG_SZ, b'A\0b\0\0\0'),
    (hive.sz(''), hive.REG_SZ, b'\0\0'),
    (hive.dword(10), hive.REG_DWORD, b'\x0a\0\0\0'),
    (hive.qword(1), hive.REG_QWORD, b'\x01' + b'\0' * 7),
    (hive.multi_sz('a', 'b'), hive.REG_MULTI_SZ, b'a\0\0\0b\0\0\0\0\0'),
    (hive.binary(b'\x01\x02'), hive.REG_BINARY, b'\x01\x02'),
    (hive.raw(hive.REG_SZ, b'\x00\xd8'), hive.REG_SZ, b'\x00\xd8'),
])
def test_value_encodings(value, reg_type, data):
    assert value == (reg_type, data)


@pytest.mark.parametrize('name,value,line', [
    ('N', hive.dword(0x1a), '"N"=dword:0000001a'),
    ('N', hive.sz('A'), '"N"=hex(1):41,00,00,00'),
    ('N', hive.binary(b'\xff'), '"N"=hex(3):ff'),
    ('a"b\\c', hive.dword(1), '"a\\"b\\\\c"=dword:00000001'),
    ('', hive.sz('d'), '""=hex(1):64,00,00,00'),
])
def test_reg_text_value_lines(name, value, line):
    text = hive.reg_text({'K': {name: value}})
    assert text.splitlines()[2:] == ['[\\K]', line]


def test_reg_text_creates_ancestors_first():
    text = hive.reg_text({'A\\B\\C': {'v': hive.dword(1)},
                          'A\\b2': {}, 'Z': {}})
    sections = [line for line in text.splitlines() if line.startswith('[')]
    assert sections == ['[\\A]', '[\\A\\B]', '[\\A\\B\\C]', '[\\A\\b2]',
                        '[\\Z]']
    assert text.startswith('Windows Registry Editor Version 5.00\n')


@pytest.mark.parametrize('keys', [
    {'': {}}, {'\\A': {}}, {'A\\\\B': {}},
    {'A': {'caf\u00e9': hive.dword(1)}}, {'A': {'a\nb': hive.dword(1)}},
])
def test_reg_text_rejects_bad_paths_and_names(keys):
    with pytest.raises(ValueError):
        hive.reg_text(keys)


def test_hivexregedit_merges_into_empty_hive(tmp_path):
    """The real hivex library accepts the hive and the regedit text."""
    path = tmp_path / 'SOFTWARE'
    path.write_bytes(hive.empty_hive('ROOT', 'SOFTWARE'))
    reg = tmp_path / 'in.reg'
    reg.write_text(hive.reg_text({
        'Microsoft\\Windows NT\\CurrentVersion': {
            'ProductName': hive.sz('Windows\x1b[31m \u202e'),
            'CurrentMajorVersionNumber': hive.dword(10)}}))
    subprocess.run(['hivexregedit', '--merge', str(path), str(reg)],
                   check=True)
    out = subprocess.run(
        ['hivexregedit', '--export', str(path),
         '\\Microsoft\\Windows NT\\CurrentVersion'],
        check=True, capture_output=True, text=True).stdout
    assert '"CurrentMajorVersionNumber"=dword:0000000a' in out
    product = hive.sz('Windows\x1b[31m \u202e')[1]
    assert ('"ProductName"=hex(1):%s' % ','.join('%02x' % b for b in product)
            in out)


# --------------------------------------------------------------------------
# PE images

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
# Catalog expectations follow the billing policy

SERVER_BUILDS = {'9600': 'win2k12r2', '14393': 'win2k16', '17763': 'win2k19',
                 '20348': 'win2k22', '26100': 'win2k25'}
EDITIONS = {'ServerStandard': 'Standard', 'ServerDatacenter': 'Datacenter',
            'ServerStandardEval': 'Standard Evaluation',
            'Professional': 'Professional', 'Enterprise': 'Enterprise'}


@pytest.mark.parametrize('name', [n for n in catalog.WINDOWS
                                  if catalog.GUESTS[n].expected.status
                                  == 'ok' and catalog.GUESTS[n].windows
                                  .software_hive
                                  and n not in catalog.ODD_REGISTRY])
def test_catalog_windows_expectations(name):
    guest = catalog.GUESTS[name]
    spec, exp = guest.windows, guest.expected
    if spec.installation_type.startswith('Server'):
        assert exp.os_info == SERVER_BUILDS[spec.build]
    else:
        assert exp.os_info == ('win11' if int(spec.build) >= 22000
                               else 'win10')
    assert exp.os_build == spec.build
    assert (exp.os_version_major, exp.os_version_minor) == spec.nt_version
    assert exp.os_product_variant == spec.installation_type
    if not guest.hostile:
        assert exp.os_edition == EDITIONS[spec.edition_id]


def test_catalog_sql_expectation():
    guest = catalog.GUESTS['win2019-sql']
    assert {i.edition.split()[0] for i in guest.windows.sql} == {
        'Enterprise', 'Express'}
    assert guest.expected.sql_server_edition == 'Enterprise'


@pytest.mark.parametrize('result,expected', [
    ({'os_inspection_status': 'ok', 'os_family': 'linux'}, []),
    ({'os_inspection_status': 'failed', 'os_family': 'linux'},
     [('status', 'ok', 'failed')]),
    ({'status': 'ok', 'os_family': 'windows'},
     [('os_family', 'linux', 'windows')]),
])
def test_mismatches(result, expected):
    unscored = {f.name: catalog.ANY
                for f in dataclasses.fields(catalog.Expected)
                if f.name not in ('status', 'os_family')}
    want = catalog.Expected(status='ok', os_family='linux', **unscored)
    assert catalog.mismatches(want, result) == expected


def test_mismatches_of_an_object():
    class Record:
        status = 'unknown'
        os_family = 'unknown'

    assert catalog.mismatches(catalog.GUESTS['blank'].expected,
                              Record()) == [
        (field, value, None)
        for field, value in catalog.GUESTS['blank'].expected.scored().items()
        if field not in ('status', 'os_family')]


# --------------------------------------------------------------------------
# Cache and images (Linux/blank guests: no FUSE needed)

def test_cache_key_stable_and_distinct():
    keys = {name: builder.cache_key(name) for name in ALL}
    assert keys == {name: builder.cache_key(name) for name in ALL}
    assert len(set(keys.values())) == len(ALL)
    assert all(len(k) == 16 for k in keys.values())


def test_cache_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(builder.CACHE_ENV, str(tmp_path / 'c'))
    assert builder.cache_root() == tmp_path / 'c'
    assert builder.image_path('blank').parent == tmp_path / 'c'
    assert builder.cache_root(tmp_path / 'd') == tmp_path / 'd'


def test_build_is_cached_and_atomic(tmp_path):
    path = builder.build('data-only', tmp_path)
    assert path == builder.image_path('data-only', tmp_path)
    stamp = path.stat().st_mtime_ns
    assert builder.build('data-only', tmp_path) == path
    assert path.stat().st_mtime_ns == stamp
    assert os.listdir(tmp_path) == [path.name]    # no temporary left over
    stale = tmp_path / ('data-only-%s.raw' % ('0' * 16))
    stale.write_bytes(b'')
    path.unlink()
    builder.build('data-only', tmp_path)
    assert os.listdir(tmp_path) == [path.name]


def test_build_linux_image(tmp_path):
    path = builder.build('debian-12', tmp_path)
    table = json.loads(subprocess.run(
        ['sfdisk', '--json', str(path)], check=True, capture_output=True,
        text=True).stdout)['partitiontable']
    disk = layout.plan(catalog.GUESTS['debian-12'])
    assert table['label'] == 'dos'
    assert int(table['id'], 16) == int(disk.label_id, 16)
    assert [(p['start'] * 512, p['type']) for p in table['partitions']] == [
        (p.offset, p.type) for p in disk.partitions]
    root = disk.partitions[0]
    fs = tmp_path / 'root.img'
    with open(path, 'rb') as src:
        src.seek(root.offset)
        fs.write_bytes(src.read(root.size))
    release = subprocess.run(
        ['debugfs', '-R', 'cat /usr/lib/os-release', str(fs)],
        check=True, capture_output=True).stdout
    assert release == catalog.GUESTS['debian-12'].linux.os_release
    # ext4 guests are byte-for-byte reproducible (NTFS and LUKS are not:
    # ntfs-3g stamps the current time, cryptsetup draws random salts).
    again = builder.build('debian-12', tmp_path / 'again')
    assert builder.sha256(again) == builder.sha256(path)


def test_blank_image_is_zero_and_sparse(tmp_path):
    path = builder.build('blank', tmp_path)
    assert path.stat().st_size == 64 << 20
    assert path.stat().st_blocks == 0
    assert path.stat().st_mode & 0o222 == 0      # cached images: read-only


def _qemu_info(path):
    return json.loads(subprocess.run(
        ['qemu-img', 'info', '--output=json', str(path)], check=True,
        capture_output=True, text=True).stdout)


def test_qcow2_helpers(tmp_path):
    base = builder.build('rocky-9.3', tmp_path / 'cache')
    overlay = builder.qcow2_overlay(base, tmp_path / 'o.qcow2')
    info = _qemu_info(overlay)
    assert (info['format'], info['backing-filename-format'],
            info['full-backing-filename']) == ('qcow2', 'raw', str(base))
    standalone = builder.standalone_qcow2(base, tmp_path / 's.qcow2')
    info = _qemu_info(standalone)
    assert info['format'] == 'qcow2' and 'backing-filename' not in info
    subprocess.run(['qemu-img', 'compare', '-q', '-f', 'qcow2', '-F', 'raw',
                    str(standalone), str(base)], check=True)


def test_os_only_in_overlay(tmp_path):
    blank, overlay = builder.os_only_in_overlay(
        'ubuntu-22.04', tmp_path / 'out', tmp_path / 'cache')
    source = builder.image_path('ubuntu-22.04', tmp_path / 'cache')
    assert blank.stat().st_size == source.stat().st_size
    assert blank.stat().st_blocks == 0                  # all zeros
    info = _qemu_info(overlay)
    assert info['backing-filename-format'] == 'raw'
    assert info['full-backing-filename'] == str(blank.resolve())
    subprocess.run(['qemu-img', 'compare', '-q', '-f', 'qcow2', '-F', 'raw',
                    str(overlay), str(source)], check=True)
    # The OS is really in the overlay: without its base it still differs
    # from an empty disk wherever the guest wrote.
    allocated = json.loads(subprocess.run(
        ['qemu-img', 'map', '--output=json', str(overlay)], check=True,
        capture_output=True, text=True).stdout)
    assert any(e['data'] and e['depth'] == 0 for e in allocated)
