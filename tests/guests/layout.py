"""What goes on each phony guest's disk: catalog entry -> disk plan.

Pure: ``plan(guest)`` returns a ``Disk`` (partition table, partitions,
filesystems and the files in them, registry keys of each hive) as plain
frozen data; builder.py carries it out with mkfs/sfdisk/hivexregedit.
Identifiers (disk ids, filesystem and partition UUIDs) derive from the
guest's name, so a plan, and the image, is the same on every build.

A btrfs Filesystem holds ``subvolumes`` empty subvolumes instead of
files; an LVM physical volume (kind 'lvm-pv') holds ``volumes``, each a
linear LogicalVolume with a Filesystem of its own, and its label and
metadata are bytes made here (``lvm_pv_areas``).  File contents in a
plan are bytes, or one of the markers below: a ``Symlink``, a ``Hive``
(built by hivexregedit), ``HOST_ELF`` (a copy of the host's /bin/ls, so
libguestfs finds a real ELF for the arch), or ``DIRECTORY``.
"""

import dataclasses
import hashlib
import struct
import uuid
import zlib

from tests.guests import catalog
from tests.guests import hive

MIB = 1 << 20
SECTOR = 512

# Partition type codes, as sfdisk takes them.
MBR_LINUX = '83'
MBR_SWAP = '82'
MBR_LVM = '8e'
MBR_NTFS = '7'
GPT_ESP = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B'
GPT_MSR = 'E3C9E316-0B5C-4DB8-817D-F92DF00215AE'
GPT_BASIC_DATA = 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7'
GPT_LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4'

_NAMESPACE = uuid.UUID('0b6b2a4e-0d3c-4c43-9f0e-6f5f1c1a7e11')


@dataclasses.dataclass(frozen=True)
class Symlink:
    target: str


@dataclasses.dataclass(frozen=True)
class Hive:
    """A registry hive: an empty regf file merged with ``keys``
    (((key path, ((value name, (type, bytes)), ...)), ...))."""

    root_name: str
    file_name: str
    keys: tuple

    def as_dict(self):
        return {path: dict(values) for path, values in self.keys}


@dataclasses.dataclass(frozen=True)
class _Marker:
    name: str


HOST_ELF = _Marker('host-elf')
DIRECTORY = _Marker('directory')


@dataclasses.dataclass(frozen=True)
class Filesystem:
    # ext4, xfs, ntfs, vfat, swap, luks, btrfs, lvm-pv (label: the VG's
    # name, uuid: the PV's LVM id), or corrupt-ext4 (superblock garbage)
    kind: str
    label: str = ''
    uuid: str = ''
    files: tuple = ()            # ((path, content), ...)
    subvolumes: int = 0          # btrfs: empty subvolumes sv0001, ...
    # btrfs: Subvolume..., made in this order (instead of ``files``).
    subvolume_plan: tuple = ()
    volumes: tuple = ()          # lvm-pv: LogicalVolume..., in PE order
    vg_id: str = ''              # lvm-pv: the VG's LVM id


@dataclasses.dataclass(frozen=True)
class LogicalVolume:
    """A linear LV of ``size_mib`` (a whole number of extents), placed
    after the ones before it in its PV."""

    name: str
    size_mib: int
    fs: Filesystem
    lv_id: str = ''


@dataclasses.dataclass(frozen=True)
class Subvolume:
    """A btrfs subvolume: ``path`` from the top level ('' is the top
    level itself, for its files), created empty or as a snapshot of an
    earlier one, then ``files`` written in it."""

    path: str
    files: tuple = ()
    snapshot_of: str = ''
    default: bool = False        # btrfs subvolume set-default
    readonly: bool = False       # as snapper's snapshots are


@dataclasses.dataclass(frozen=True)
class Partition:
    start_mib: int
    size_mib: int
    type: str
    fs: Filesystem = None        # None: left zeroed (e.g. Microsoft reserved)
    bootable: bool = False
    uuid: str = ''               # GPT partition GUID
    name: str = ''               # GPT partition name

    @property
    def offset(self):
        return self.start_mib * MIB

    @property
    def size(self):
        return self.size_mib * MIB


@dataclasses.dataclass(frozen=True)
class Disk:
    size_mib: int
    table: str = ''              # 'dos', 'gpt' or '' (no partition table)
    label_id: str = ''           # MBR disk signature (0x...) or GPT GUID
    partitions: tuple = ()


def stable_uuid(guest_name, what):
    return str(uuid.uuid5(_NAMESPACE, '%s/%s' % (guest_name, what)))


def lvm_id(guest_name, what):
    """An LVM id: 32 characters of its alphabet (hex is a subset)."""
    return uuid.UUID(stable_uuid(guest_name, what)).hex


def disk_signature(guest_name):
    """The 32-bit MBR disk signature (what Windows' MountedDevices
    holds), never 0."""
    digest = hashlib.sha256(guest_name.encode()).digest()
    return struct.unpack('<I', digest[:4])[0] | 1


def sfdisk_script(disk):
    """The sfdisk input that writes ``disk``'s partition table."""
    lines = ['label: %s' % disk.table, 'label-id: %s' % disk.label_id,
             'unit: sectors', '']
    for part in disk.partitions:
        fields = ['start=%d' % (part.offset // SECTOR),
                  'size=%d' % (part.size // SECTOR),
                  'type=%s' % part.type]
        if part.uuid:
            fields.append('uuid=%s' % part.uuid)
        if part.name:
            fields.append('name="%s"' % part.name)
        if part.bootable:
            fields.append('bootable')
        lines.append(', '.join(fields))
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------
# LVM2 physical volumes, written as pvcreate/vgcreate/lvcreate would,
# but with fixed ids and times (the tools draw random ones) and without
# device-mapper (the build host has none).

LVM_EXTENT_MIB = 4                  # vgcreate's default extent size
LVM_PE_START = 1 * MIB              # pvcreate's default data alignment
_LVM_MDA_START = 4096
_LVM_MDA_MAGIC = b' LVM2 x[5A%r0N*>'
_LVM_CRC_SEED = 0xf597a6cf


def _lvm_crc(data):
    # lvm2's calc_crc: CRC-32 with its own seed, no final inversion.
    return zlib.crc32(data, _LVM_CRC_SEED ^ 0xffffffff) ^ 0xffffffff


def _dashed(lvm_id):
    parts, start = [], 0
    for width in (6, 4, 4, 4, 4, 4, 6):
        parts.append(lvm_id[start:start + width])
        start += width
    return '-'.join(parts)


def lvm_extents(fs, size):
    """[(logical volume, byte offset in the PV)], and the PV's extent
    count, for an lvm-pv Filesystem in a partition of ``size`` bytes."""
    extent = LVM_EXTENT_MIB * MIB
    pe_count = (size - LVM_PE_START) // extent
    placed, pe = [], 0
    for lv in fs.volumes:
        if lv.size_mib % LVM_EXTENT_MIB:
            raise ValueError('LV %s: not whole extents' % lv.name)
        placed.append((lv, LVM_PE_START + pe * extent))
        pe += lv.size_mib // LVM_EXTENT_MIB
    if pe > pe_count:
        raise ValueError('VG %s: LVs larger than the PV' % fs.label)
    return placed, pe_count


def lvm_metadata(fs, size, device):
    """The VG's metadata text, as lvm2 writes it (NUL-terminated)."""
    placed, pe_count = lvm_extents(fs, size)
    lines = ['%s {' % fs.label, 'id = "%s"' % _dashed(fs.vg_id),
             'seqno = 1', 'format = "lvm2"',
             'status = ["RESIZEABLE", "READ", "WRITE"]', 'flags = []',
             'extent_size = %d' % (LVM_EXTENT_MIB * MIB // SECTOR),
             'max_lv = 0', 'max_pv = 0', 'metadata_copies = 0', '',
             'physical_volumes {', '', 'pv0 {',
             'id = "%s"' % _dashed(fs.uuid), 'device = "%s"' % device,
             'status = ["ALLOCATABLE"]', 'flags = []',
             'dev_size = %d' % (size // SECTOR),
             'pe_start = %d' % (LVM_PE_START // SECTOR),
             'pe_count = %d' % pe_count, '}', '}', '',
             'logical_volumes {', '']
    for lv, offset in placed:
        lines += ['%s {' % lv.name, 'id = "%s"' % _dashed(lv.lv_id),
                  'status = ["READ", "WRITE", "VISIBLE"]', 'flags = []',
                  'creation_time = 1704067200',
                  'creation_host = "localhost"', 'segment_count = 1', '',
                  'segment1 {', 'start_extent = 0',
                  'extent_count = %d' % (lv.size_mib // LVM_EXTENT_MIB), '',
                  'type = "striped"', 'stripe_count = 1', '',
                  'stripes = [', '"pv0", %d' % (
                      (offset - LVM_PE_START) // (LVM_EXTENT_MIB * MIB)),
                  ']', '}', '}', '']
    lines += ['}', '}',
              '# Generated by LVM2 version 2.03.16(2) (2022-05-18)', '',
              'contents = "Text Format Volume Group"', 'version = 1', '',
              'description = ""', '', 'creation_host = "localhost"',
              'creation_time = 1704067200', '']
    return '\n'.join(lines).encode() + b'\0'


def lvm_pv_areas(fs, size, device='/dev/sda2'):
    """[(offset, bytes)] to write into a zeroed partition of ``size``
    bytes to make it an lvm-pv Filesystem's PV: its label (sector 1),
    and its metadata area (at 4 KiB, up to the first extent)."""
    text = lvm_metadata(fs, size, device)
    mda_size = LVM_PE_START - _LVM_MDA_START
    if SECTOR + len(text) > mda_size:
        raise ValueError('VG %s: metadata too large' % fs.label)
    pv_header = (fs.uuid.encode() + struct.pack('<Q', size)
                 + struct.pack('<4Q', LVM_PE_START, 0, 0, 0)
                 + struct.pack('<4Q', _LVM_MDA_START, mda_size, 0, 0)
                 # extension: version 2, PV_EXT_USED, no bootloader area
                 + struct.pack('<II2Q', 2, 1, 0, 0))
    label = bytearray(SECTOR)
    label[0:32] = struct.pack('<8sQII8s', b'LABELONE', 1, 0, 32,
                              b'LVM2 001')
    label[32:32 + len(pv_header)] = pv_header
    struct.pack_into('<I', label, 16, _lvm_crc(bytes(label[20:])))
    mda = bytearray(SECTOR)
    mda[4:] = (struct.pack('<16sIQQ', _LVM_MDA_MAGIC, 1, _LVM_MDA_START,
                           mda_size)
               + struct.pack('<QQII', SECTOR, len(text), _lvm_crc(text), 0)
               ).ljust(SECTOR - 4, b'\0')
    struct.pack_into('<I', mda, 0, _lvm_crc(bytes(mda[4:])))
    return [(SECTOR, bytes(label)), (_LVM_MDA_START, bytes(mda)),
            (_LVM_MDA_START + SECTOR, text)]


# ---------------------------------------------------------------------------
# PE images

def pe_image(machine=0x8664, subsystem=3):
    """A minimal PE32+ file (one .text section holding a 'ret').

    file(1) reports it as "PE32+ executable (console) x86-64, for MS
    Windows" (subsystem 3; 10 is an EFI application), which is all
    libguestfs looks at to decide the architecture.
    """
    dos = bytearray(0x40)
    dos[0:2] = b'MZ'
    struct.pack_into('<I', dos, 0x3c, len(dos))
    coff = struct.pack('<4sHHIIIHH', b'PE\0\0', machine, 1,
                       0, 0, 0,         # time stamp, symbol table, symbols
                       0xf0, 0x22)      # optional header size, flags
    optional = struct.pack(
        '<HBBIIIIIQIIHHHHHHIIIIHHQQQQII',
        0x20b, 14, 0,                   # PE32+, linker 14.0
        0x200, 0, 0,                    # code, data, bss sizes
        0x1000, 0x1000,                 # entry point, base of code
        0x140000000,                    # image base
        0x1000, 0x200,                  # section, file alignment
        10, 0, 10, 0, 10, 0, 0,         # OS, image, subsystem versions
        0x2000, 0x200, 0,               # image size, headers size, csum
        subsystem, 0x8160,              # DLL characteristics: NX, ASLR
        0x100000, 0x1000, 0x100000, 0x1000,   # stack and heap
        0, 16) + bytes(16 * 8)          # loader flags, data directories
    section = struct.pack('<8sIIIIIIHHI', b'.text', 1, 0x1000, 0x200,
                          0x200, 0, 0, 0, 0, 0x60000020)
    headers = (bytes(dos) + coff + optional + section).ljust(0x200, b'\0')
    return headers + b'\xc3'.ljust(0x200, b'\xcc')


def dos_stub():
    """An 'MZ' file that is not PE: file(1) says "MS-DOS executable"."""
    return b'MZ'.ljust(0x200, b'\0')


# ---------------------------------------------------------------------------
# Windows

def _software_keys(spec):
    current = {
        'ProductName': hive.sz(spec.product_name),
        'EditionID': hive.sz(spec.edition_id),
        'CompositionEditionID': hive.sz(spec.edition_id),
        'InstallationType': hive.sz(spec.installation_type),
        'CurrentBuildNumber': hive.sz(spec.build),
        'CurrentBuild': hive.sz(spec.build),
        # Frozen at 6.3 since Windows 8.1 for old programs' sake.
        'CurrentVersion': hive.sz('%d.%d' % min(spec.nt_version, (6, 3))),
        'CurrentType': hive.sz('Multiprocessor Free'),
        'UBR': hive.dword(spec.ubr),
        'SystemRoot': hive.sz('C:\\Windows'),
        'PathName': hive.sz('C:\\Windows'),
        'SoftwareType': hive.sz('System'),
        'RegisteredOwner': hive.sz('Windows User'),
        'InstallDate': hive.dword(1704067200),
    }
    if spec.nt_version >= (10, 0):
        # Windows 10 added these; before it CurrentVersion is the version.
        current['CurrentMajorVersionNumber'] = hive.dword(spec.nt_version[0])
        current['CurrentMinorVersionNumber'] = hive.dword(spec.nt_version[1])
    if spec.display_version:
        current['DisplayVersion'] = hive.sz(spec.display_version)
    if spec.release_id:
        current['ReleaseId'] = hive.sz(spec.release_id)
    current.update(dict(spec.current_version_overrides))
    keys = {
        'Microsoft\\Windows NT\\CurrentVersion': current,
        'Microsoft\\Windows\\CurrentVersion': {
            'ProgramFilesDir': hive.sz('C:\\Program Files'),
            'CommonFilesDir': hive.sz('C:\\Program Files\\Common Files'),
        },
    }
    if spec.sql:
        base = 'Microsoft\\Microsoft SQL Server'
        keys[base] = {'InstalledInstances':
                      hive.multi_sz(*(i.name for i in spec.sql))}
        names = {'FAKE%05d' % n: hive.sz('MSSQL16.FAKE%05d' % n)
                 for n in range(spec.sql_fake_names)}
        names.update((i.name, hive.sz(i.instance_id)) for i in spec.sql)
        keys[base + '\\Instance Names\\SQL'] = names
        for inst in spec.sql:
            root = '%s\\%s' % (base, inst.instance_id)
            keys[root] = {'': hive.sz(inst.name)}
            keys[root + '\\Setup'] = {
                'Edition': hive.sz(inst.edition),
                'EditionType': hive.sz(inst.edition_type or inst.edition),
                'Version': hive.sz(inst.version),
                'PatchLevel': hive.sz(inst.version),
                'SQLPath': hive.sz(_sql_dir(inst)),
            }
            keys[root + '\\MSSQLServer\\CurrentVersion'] = {
                'CurrentVersion': hive.sz(inst.version)}
    return keys


def _sql_dir(inst):
    return ('C:\\Program Files\\Microsoft SQL Server\\%s\\MSSQL'
            % inst.instance_id)


def _mounted_device(guest_name, spec, c_drive):
    """HKLM\\SYSTEM\\MountedDevices blob for C: (what libguestfs maps
    to a drive letter): MBR disk signature + partition byte offset, or
    'DMIO:ID:' + the GPT partition GUID."""
    if spec.firmware == 'uefi':
        return b'DMIO:ID:' + uuid.UUID(c_drive.uuid).bytes_le
    return struct.pack('<IQ', disk_signature(guest_name), c_drive.offset)


def _system_keys(guest_name, spec, c_drive):
    server = spec.installation_type.lower().startswith('server')
    return {
        'Select': {'Current': hive.dword(1), 'Default': hive.dword(1),
                   'Failed': hive.dword(0),
                   'LastKnownGood': hive.dword(1)},
        'ControlSet001\\Control\\ComputerName\\ComputerName': {
            'ComputerName': hive.sz(spec.hostname)},
        'ControlSet001\\Control\\ProductOptions': {
            'ProductType': hive.sz('ServerNT' if server else 'WinNT')},
        'ControlSet001\\Control\\Session Manager\\Environment': {
            'PROCESSOR_ARCHITECTURE': hive.sz('AMD64'),
            'OS': hive.sz('Windows_NT')},
        'ControlSet001\\Services\\Tcpip\\Parameters': {
            'Hostname': hive.sz(spec.hostname),
            'NV Hostname': hive.sz(spec.hostname),
            'Domain': hive.sz('')},
        'MountedDevices': {
            '\\DosDevices\\C:': hive.binary(
                _mounted_device(guest_name, spec, c_drive))},
    }


def _hive(file_name, keys):
    return Hive(root_name='ROOT', file_name=file_name,
                keys=tuple((path, tuple(sorted(values.items())))
                           for path, values in sorted(keys.items())))


def _windows_files(guest_name, spec, c_drive):
    files = {
        '/Windows/System32/cmd.exe':
            pe_image() if spec.cmd_exe_is_pe else dos_stub(),
        '/Windows/System32/config/SYSTEM': _hive(
            'SYSTEM', _system_keys(guest_name, spec, c_drive)),
        '/Windows/explorer.exe': pe_image(subsystem=2),
        '/Windows/System32/drivers/etc/hosts':
            b'127.0.0.1       localhost\r\n',
        '/Program Files/Common Files': DIRECTORY,
        '/Program Files (x86)': DIRECTORY,
        '/ProgramData': DIRECTORY,
        '/Users/Public': DIRECTORY,
        '/pagefile.sys': b'',
    }
    if spec.software_hive:
        files['/Windows/System32/config/SOFTWARE'] = _hive(
            'SOFTWARE', _software_keys(spec))
    for inst in spec.sql:
        path = _sql_dir(inst)[2:].replace('\\', '/') + '/Binn/sqlservr.exe'
        files[path] = pe_image()
    return tuple(sorted(files.items()))


def _windows_disk(guest):
    spec = guest.windows
    name = guest.name
    ntfs_uuid = stable_uuid(name, 'ntfs')
    if spec.firmware == 'uefi':
        c_drive = Partition(
            40, 56, GPT_BASIC_DATA, uuid=stable_uuid(name, 'part-c'),
            name='Basic data partition',
            fs=Filesystem('ntfs', label='Windows', uuid=ntfs_uuid))
        esp_files = (
            ('/EFI/Boot/bootx64.efi', pe_image(subsystem=10)),
            ('/EFI/Microsoft/Boot/bootmgfw.efi', pe_image(subsystem=10)),
            ('/EFI/Microsoft/Boot/BCD', _hive('BCD', {})))
        boot = (
            Partition(1, 31, GPT_ESP, uuid=stable_uuid(name, 'part-esp'),
                      name='EFI system partition',
                      fs=Filesystem('vfat', label='SYSTEM',
                                    uuid=stable_uuid(name, 'esp'),
                                    files=esp_files)),
            Partition(32, 8, GPT_MSR, uuid=stable_uuid(name, 'part-msr'),
                      name='Microsoft reserved partition'),
        )
        table, label_id, size = 'gpt', stable_uuid(name, 'disk'), 97
    else:
        c_drive = Partition(
            9, 55, MBR_NTFS,
            fs=Filesystem('ntfs', label='Windows', uuid=ntfs_uuid))
        boot = (
            Partition(1, 8, MBR_NTFS, bootable=True,
                      fs=Filesystem('ntfs', label='System Reserved',
                                    uuid=stable_uuid(name, 'sysres'),
                                    files=(('/bootmgr', b'BOOTMGR'),
                                           ('/Boot/BCD', _hive('BCD', {})),
                                           )),),
        )
        table, label_id, size = ('dos', '0x%08x' % disk_signature(name),
                                 64)
    return Disk(size_mib=size, table=table, label_id=label_id,
                partitions=boot + (_with_windows_files(name, spec,
                                                       c_drive),))


def _with_windows_files(guest_name, spec, c_drive):
    files = _windows_files(guest_name, spec, c_drive)
    return dataclasses.replace(
        c_drive, fs=dataclasses.replace(c_drive.fs, files=files))


# ---------------------------------------------------------------------------
# Linux

_MERGED_USR_LINKS = (('/bin', 'usr/bin'), ('/sbin', 'usr/sbin'),
                     ('/lib', 'usr/lib'), ('/lib64', 'usr/lib64'))


def _linux_files(seed, spec, hostile, root_uuid, boot_uuid, swap_uuid,
                 fstab=None):
    """Files of a Linux root; ``seed`` names it (machine-id); ``fstab``:
    its lines, when not the plain ext4 ones."""
    if fstab is None:
        fstab = ['UUID=%s /     ext4 defaults 1 1' % root_uuid]
        if boot_uuid:
            fstab.append('UUID=%s /boot ext4 defaults 1 2' % boot_uuid)
        if swap_uuid:
            fstab.append('UUID=%s none  swap sw 0 0' % swap_uuid)
    fstab = ['# /etc/fstab: static file system information.'] + fstab
    machine_id = uuid.UUID(stable_uuid(seed, 'machine-id')).hex
    files = {
        '/etc/fstab': ('\n'.join(fstab) + '\n').encode(),
        '/etc/hostname': spec.hostname.encode() + b'\n',
        '/etc/hosts': b'127.0.0.1   localhost\n::1         localhost\n',
        '/etc/machine-id': machine_id.encode() + b'\n',
        '/etc/passwd': b'root:x:0:0:root:/root:/bin/bash\n',
        '/usr/bin/ls': HOST_ELF,
        '/usr/sbin': DIRECTORY,
        '/usr/lib64': DIRECTORY,
        '/boot': DIRECTORY,
        '/home': DIRECTORY,
        '/root': DIRECTORY,
        '/tmp': DIRECTORY,
        '/var/log': DIRECTORY,
    }
    if hostile:
        files['/etc/os-release'] = spec.os_release
    else:
        # As shipped by systemd distros: the file lives in /usr.
        files['/usr/lib/os-release'] = spec.os_release
        files['/etc/os-release'] = Symlink('../usr/lib/os-release')
    if spec.merged_usr:
        for path, target in _MERGED_USR_LINKS:
            files[path] = Symlink(target)
    else:
        files['/bin/ls'] = HOST_ELF
        files['/sbin'] = DIRECTORY
    for path, content in spec.release_files:
        path = path.decode()
        if content.startswith(b'->'):
            files[path] = Symlink(content[2:].decode())
        else:
            files[path] = content
    return tuple(sorted(files.items()))


def _grub_boot_files():
    """A /boot filesystem as libguestfs recognises it (grub2)."""
    return (('/grub2/grub.cfg', b'set default=0\nset timeout=5\n'),
            ('/loader/entries', DIRECTORY),
            ('/vmlinuz-0-rescue', b'\0' * 64))


# SUSE's installer: subvolumes under @ (SLES 15), each mounted by fstab.
SUSE_SUBVOLUMES = ('home', 'opt', 'root', 'srv', 'tmp', 'usr/local', 'var')


def _suse_btrfs(guest, fs_uuid):
    """SLES 15's btrfs: @, @/.snapshots, the root in snapper's snapshot
    1 (the default subvolume), @/home..., snapshots 2... of the root."""
    spec = guest.linux
    fstab = ['UUID=%s /  btrfs  defaults  0  0' % fs_uuid] + [
        'UUID=%s /%s  btrfs  subvol=/@/%s  0  0' % (fs_uuid, sub, sub)
        for sub in SUSE_SUBVOLUMES + ('.snapshots',)]
    root = dict(_linux_files(guest.name, spec, False, fs_uuid, '', '',
                             fstab))
    for sub in SUSE_SUBVOLUMES + ('.snapshots',):
        root.setdefault('/' + sub, DIRECTORY)
    infos = _snapper_info(1, 'first root filesystem') + sum(
        (_snapper_info(number, 'zypp(zypper)')
         for number in range(2, len(spec.snapshots) + 2)), ())
    plan = [Subvolume('@', (('/usr', DIRECTORY), ('/boot/grub2', DIRECTORY))),
            Subvolume('@/.snapshots', infos),
            Subvolume('@/.snapshots/1/snapshot', tuple(sorted(root.items())),
                      default=True)]
    plan += [Subvolume('@/' + sub, (('/.keep', b''),))
             for sub in SUSE_SUBVOLUMES]
    for number, (release, files) in enumerate(spec.snapshots, 2):
        changed = dict(files)
        changed[b'/usr/lib/os-release'] = release
        plan.append(Subvolume(
            '@/.snapshots/%d/snapshot' % number,
            tuple(sorted((p.decode(), _content(c))
                         for p, c in changed.items())),
            snapshot_of='@/.snapshots/1/snapshot', readonly=True))
    return tuple(plan)


def _content(content):
    if content.startswith(b'->'):
        return Symlink(content[2:].decode())
    return content


def _snapper_info(number, description):
    return (('/%d/info.xml' % number,
             b'<?xml version="1.0"?>\n<snapshot>\n  <type>single</type>\n'
             b'  <num>%d</num>\n  <date>2024-01-01 00:00:00</date>\n'
             b'  <description>%s</description>\n</snapshot>\n'
             % (number, description.encode())),)


def _fedora_btrfs(guest, fs_uuid):
    """Fedora's btrfs: the top level is the default subvolume and holds
    only the subvolumes root and home, mounted by subvol=."""
    fstab = ['UUID=%s /      btrfs subvol=root,compress=zstd:1 0 0'
             % fs_uuid,
             'UUID=%s /home  btrfs subvol=home,compress=zstd:1 0 0'
             % fs_uuid]
    root = _linux_files(guest.name, guest.linux, False, fs_uuid, '', '',
                        fstab)
    return (Subvolume('root', root),
            Subvolume('home', (('/fedora/.bashrc', b'# .bashrc\n'),)))


def _btrfs_linux_disk(guest):
    name = guest.name
    fs_uuid = stable_uuid(name, 'root')
    plan = (_suse_btrfs if guest.linux.btrfs == 'suse' else _fedora_btrfs)(
        guest, fs_uuid)
    fs = Filesystem('btrfs', 'ROOT', fs_uuid, subvolume_plan=plan)
    return Disk(size_mib=64, table='dos',
                label_id='0x%08x' % disk_signature(name),
                partitions=(Partition(1, 63, MBR_LINUX, fs,
                                      bootable=True),))


def _separate_usr_disk(guest):
    """A root partition and a /usr partition (ext4 both), the root's
    fstab mounting the second at /usr."""
    name = guest.name
    root_uuid = stable_uuid(name, 'root')
    usr_uuid = stable_uuid(name, 'usr')
    fstab = ['UUID=%s /     ext4 defaults 1 1' % root_uuid,
             'UUID=%s /usr  ext4 defaults 1 2' % usr_uuid]
    files = _linux_files(name, guest.linux, False, root_uuid, '', '', fstab)
    root = tuple((p, c) for p, c in files if not p.startswith('/usr/'))
    usr = tuple((p[len('/usr'):], c) for p, c in files
                if p.startswith('/usr/'))
    usr += (('/local', DIRECTORY), ('/share/misc', DIRECTORY),
            ('/src', DIRECTORY))
    return Disk(size_mib=64, table='dos',
                label_id='0x%08x' % disk_signature(name),
                partitions=(
                    Partition(1, 31, MBR_LINUX, Filesystem(
                        'ext4', 'root', root_uuid,
                        root + (('/usr', DIRECTORY),)), bootable=True),
                    Partition(32, 31, MBR_LINUX, Filesystem(
                        'ext4', 'usr', usr_uuid, tuple(sorted(usr))))))


def _xfs_lvm_disk(guest):
    """As Anaconda lays out RHEL: /boot on an XFS partition, then a PV
    whose VG rhel holds LVs root (XFS) and swap."""
    name = guest.name
    root_uuid = stable_uuid(name, 'root')
    boot_uuid = stable_uuid(name, 'boot')
    swap_uuid = stable_uuid(name, 'swap')
    fstab = ['/dev/mapper/rhel-root   /      xfs   defaults  0 0',
             'UUID=%s /boot xfs defaults 0 0' % boot_uuid,
             '/dev/mapper/rhel-swap   none   swap  defaults  0 0']
    root = Filesystem('xfs', 'root', root_uuid, _linux_files(
        name, guest.linux, guest.hostile, root_uuid, boot_uuid, swap_uuid,
        fstab))
    pv = Filesystem('lvm-pv', 'rhel', lvm_id(name, 'pv'),
                    vg_id=lvm_id(name, 'vg'), volumes=(
                        LogicalVolume('root', 64, root,
                                      lvm_id(name, 'lv-root')),
                        LogicalVolume('swap', 8, Filesystem(
                            'swap', 'swap', swap_uuid),
                            lvm_id(name, 'lv-swap'))))
    return Disk(size_mib=107, table='dos',
                label_id='0x%08x' % disk_signature(name),
                partitions=(
                    Partition(1, 32, MBR_LINUX, bootable=True,
                              fs=Filesystem('xfs', 'boot', boot_uuid,
                                            _grub_boot_files())),
                    Partition(33, 73, MBR_LVM, fs=pv)))


def _linux_disk(guest):
    spec = guest.linux
    name = guest.name
    if spec.xfs_lvm:
        return _xfs_lvm_disk(guest)
    if spec.btrfs:
        return _btrfs_linux_disk(guest)
    if spec.separate_usr:
        return _separate_usr_disk(guest)
    root_uuid = stable_uuid(name, 'root')
    boot_uuid = stable_uuid(name, 'boot') if spec.boot_partition else ''
    swap_uuid = stable_uuid(name, 'swap') if spec.swap else ''
    parts = []
    start = 1
    if boot_uuid:
        parts.append(Partition(start, 16, MBR_LINUX, bootable=True,
                               fs=Filesystem('ext4', 'boot', boot_uuid,
                                             _grub_boot_files())))
        start += 16
    root_size = 63 - start - (8 if swap_uuid else 0)
    parts.append(Partition(
        start, root_size, MBR_LINUX, bootable=not boot_uuid,
        fs=Filesystem('ext4', 'root', root_uuid,
                      _linux_files(name, spec, guest.hostile, root_uuid,
                                   boot_uuid, swap_uuid))))
    if swap_uuid:
        parts.append(Partition(start + root_size, 8, MBR_SWAP,
                               fs=Filesystem('swap', 'swap', swap_uuid)))
    return Disk(size_mib=64, table='dos',
                label_id='0x%08x' % disk_signature(name),
                partitions=tuple(parts))


# ---------------------------------------------------------------------------
# Several systems side by side on one GPT disk

SYSTEM_SIZES_MIB = {'windows': 56, 'linux': 4, 'btrfs': 24}


def _system_partition(guest_name, index, spec, start):
    """Partition ``index`` (1-based) of a ``systems`` guest."""
    part_uuid = stable_uuid(guest_name, 'part-%d' % index)
    fs_uuid = stable_uuid(guest_name, 'fs-%d' % index)
    if isinstance(spec, catalog.Windows):
        if spec.firmware != 'uefi':
            # MountedDevices names C: by its GPT partition GUID.
            raise ValueError('%s: Windows system %d must be uefi'
                             % (guest_name, index))
        part = Partition(start, SYSTEM_SIZES_MIB['windows'], GPT_BASIC_DATA,
                         uuid=part_uuid, name='Basic data partition',
                         fs=Filesystem('ntfs', label='Windows',
                                       uuid=fs_uuid))
        return _with_windows_files(guest_name, spec, part)
    if isinstance(spec, catalog.Linux):
        files = _linux_files('%s/%d' % (guest_name, index), spec, False,
                             fs_uuid, '', '')
        return Partition(start, SYSTEM_SIZES_MIB['linux'], GPT_LINUX,
                         uuid=part_uuid, name='root%d' % index,
                         fs=Filesystem('ext4', 'root', fs_uuid, files))
    if isinstance(spec, catalog.Subvolumes):
        return Partition(start, SYSTEM_SIZES_MIB['btrfs'], GPT_LINUX,
                         uuid=part_uuid, name='data',
                         fs=Filesystem('btrfs', 'data', fs_uuid,
                                       subvolumes=spec.count))
    raise ValueError('%s: unknown system %r' % (guest_name, spec))


def _systems_disk(guest):
    parts = []
    start = 1
    for index, spec in enumerate(guest.systems, 1):
        part = _system_partition(guest.name, index, spec, start)
        parts.append(part)
        start += part.size_mib
    return Disk(size_mib=start + 1, table='gpt',
                label_id=stable_uuid(guest.name, 'disk'),
                partitions=tuple(parts))


# ---------------------------------------------------------------------------
# No operating system

def _data_files():
    rows = b''.join(b'%d,host-%03d,%d\n' % (i, i, i * 37 % 1000)
                    for i in range(2000))
    return (('/README.txt', b'Quarterly exports. Nothing to boot here.\n'),
            ('/exports/2024-q1.csv', b'id,host,value\n' + rows),
            ('/exports/2024-q2.csv', b'id,host,value\n' + rows[::-1]),
            ('/backups', DIRECTORY))


def _chain_loader_files(guest):
    """An EFI system partition whose GRUB only chain-loads Windows Boot
    Manager from the second disk's EFI system partition."""
    volume_id = uuid.UUID(stable_uuid(guest.second_disk, 'esp')).hex[:8]
    grub = ('search --no-floppy --set=root --fs-uuid %s-%s\n'
            'chainloader ($root)/EFI/Microsoft/Boot/bootmgfw.efi\n'
            'boot\n' % (volume_id[:4].upper(), volume_id[4:].upper()))
    return (('/EFI/BOOT/BOOTX64.EFI', pe_image(subsystem=10)),
            ('/EFI/BOOT/grub.cfg', grub.encode()))


def _other_disk(guest):
    name = guest.name
    label_id = '0x%08x' % disk_signature(name)
    if guest.kind == 'blank':
        return Disk(size_mib=64)
    if guest.kind == 'data':
        fs = Filesystem('ext4', 'data', stable_uuid(name, 'data'),
                        _data_files())
        return Disk(64, 'dos', label_id, (Partition(1, 63, MBR_LINUX, fs),))
    if guest.kind == 'corrupt':
        fs = Filesystem('corrupt-ext4', 'root', stable_uuid(name, 'root'),
                        _data_files())
        return Disk(64, 'dos', label_id, (Partition(1, 63, MBR_LINUX, fs),))
    if guest.kind == 'luks':
        boot = Filesystem('ext4', 'boot', stable_uuid(name, 'boot'),
                          _grub_boot_files())
        luks = Filesystem('luks', '', stable_uuid(name, 'luks'))
        return Disk(64, 'dos', label_id, (
            Partition(1, 16, MBR_LINUX, boot, bootable=True),
            Partition(17, 47, MBR_LINUX, luks)))
    if guest.kind == 'bootloader':
        esp = Filesystem('vfat', 'ESP', stable_uuid(name, 'esp'),
                         _chain_loader_files(guest))
        return Disk(34, 'gpt', stable_uuid(name, 'disk'), (
            Partition(1, 32, GPT_ESP, esp, uuid=stable_uuid(name, 'part-1'),
                      name='EFI system partition'),))
    raise ValueError('guest %s: unknown kind %r' % (name, guest.kind))


def plan(guest):
    """The Disk to build for a catalog entry."""
    if guest.windows:
        return _windows_disk(guest)
    if guest.linux:
        return _linux_disk(guest)
    if guest.systems:
        return _systems_disk(guest)
    return _other_disk(guest)
