"""The Windows facts of one filesystem read directly: a RootFacts, as the
appliance path would have filled it.

``windows_root(fs, device, disk_index)`` follows the appliance path for
a Windows filesystem step by step:

1. libguestfs 1.48's inspection (daemon/inspect_fs_windows.ml): the
   systemroot is the first of /windows, /winnt, /win32, /win, /reactos
   (or a boot.ini entry) holding system32, system32/config and
   system32/cmd.exe; type and distro 'windows'; the arch from cmd.exe's
   PE header as file(1) names it (PE32: i386, PE32+: x86_64); when both
   the SOFTWARE and SYSTEM hives exist, ProductName, InstallationType
   and the version (CurrentMajor/MinorVersionNumber, else the
   CurrentVersion string) from SOFTWARE; osinfo computed from them as
   lib/inspect-osinfo.c does.
2. Where that inspection would fail (cmd.exe is not a PE file file(1)
   recognises, a value of a type hivex will not convert, a string that
   is not UTF-16), libguestfs fails inspect_os and the appliance path
   scans the filesystem by hand (``inspection.guest_files
   .scanned_root``): a Windows root with only the SOFTWARE hive's
   values.  So does this module (``scanned_root``).
3. The billing inputs (CurrentVersion values, SQL Server editions over
   every instance with the bound and fail-safe of
   ``sqlserver.sql_editions``) are read by ``windows_hives`` with the
   lists ``windows`` and ``sqlserver`` keep for both methods, so the
   policy sees the same RootFacts whichever method read the disk.

Hives are opened by ``windows_hives`` and read by ``direct.hives.regf``.
Names are looked up through the filesystem, which for NTFS folds case
as Windows (and libguestfs' case_sensitive_path) does.

Any DirectError (a corrupt hive, a bound) propagates: the caller falls
back to the appliance, which then gives its own answer; nothing here
guesses.  A dirty hive is read as it is (as hivex reads it);
``dirty_hives(root)`` names the ones that were, for the reason.
"""

import re
import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.hives import regf
from ceilometer_os_pollster.direct import linux_release
from ceilometer_os_pollster.direct import windows_hives
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster.families import windows

UNKNOWN = raw_facts.UNKNOWN
# libguestfs' order; lookups fold case.
SYSTEMROOT_PATHS = ('/windows', '/winnt', '/win32', '/win', '/reactos')
# file(1) looks at the PE header through e_lfanew; real ones are within
# the first KiB.
PE_READ = 64 * 1024
_BOOT_INI_OS = re.compile(r'^(multi|scsi)\(([0-9]+)\)disk\(([0-9]+)\)'
                          r'rdisk\(([0-9]+)\)partition\(([0-9]+)\)([^=]+)=')
_HIVEX_STRING_TYPES = (regf.REG_SZ, regf.REG_EXPAND_SZ, regf.REG_LINK)
_HIVEX_DWORD_TYPES = (regf.REG_DWORD, regf.REG_DWORD_BIG_ENDIAN)
_SCANNED = '_direct_inspection_fails'


class _InspectionFails(Exception):
    """libguestfs' inspection of this filesystem would raise, failing
    inspect_os: the appliance path then scans by hand."""


def inspection_fails(root):
    """Whether libguestfs' inspection would have failed on this root's
    filesystem (so this RootFacts is the hand scan's).  In the appliance
    that failure is inspect_os' for the whole handle: every other root
    of the instance is then found by the scan too, which the caller may
    mirror."""
    return bool(getattr(root, _SCANNED, False))


# The hives' own (read by the caller here, beside inspection_fails).
dirty_hives = windows_hives.dirty_hives


# ---------------------------------------------------------------- files

def _kind(fs, path):
    """The kind of ``path``, its last component not followed (lstat)."""
    return fs_mod.kind_at(fs, path, follow_last=False)


def _is_systemroot(fs, systemroot):
    # lstat, as libguestfs' Is: a symlink is neither a file nor a dir.
    return (_kind(fs, systemroot + '/system32') == fs_mod.DIRECTORY
            and _kind(fs, systemroot + '/system32/config') == fs_mod.DIRECTORY
            and _kind(fs, systemroot + '/system32/cmd.exe') == fs_mod.FILE)


def find_systemroot(fs):
    """The systemroot path libguestfs would choose, or None."""
    for path in SYSTEMROOT_PATHS:
        if _is_systemroot(fs, path):
            return path
    return _boot_ini_systemroot(fs)


def _boot_ini_systemroot(fs):
    inode = fs_mod.resolve(fs, '/boot.ini')
    if (inode is None or fs.kind_of(inode) != fs_mod.FILE
            or fs.size(inode) > linux_release.MAX_RELEASE_FILE):
        return None
    lines = fs.read(inode, linux_release.MAX_RELEASE_FILE).decode(
        'latin-1').split('\n')
    try:
        start = next(i for i, line in enumerate(lines)
                     if line.startswith('[operating systems]'))
    except StopIteration:
        return None
    for line in lines[start + 1:]:
        if not line.startswith(('multi(', 'scsi(')):
            break
        match = _BOOT_INI_OS.match(line[:linux_release.MAX_MATCHED])
        if not match:
            continue
        if any(int(match.group(n)) > linux_release.MAX_VERSION
               for n in range(2, 6)):
            # int_of_string overflows: libguestfs' inspection fails.
            raise _InspectionFails()
        path = match.group(6).replace('\\', '/')
        if _is_systemroot(fs, path):
            return path
    return None


def pe_arch(header):
    """'i386' or 'x86_64' as libguestfs reads file(1)'s answer for a PE
    image, or None (file(1) would not say PE32/PE32+ executable)."""
    if len(header) < 0x40 or header[:2] != b'MZ':
        return None
    (lfanew,) = struct.unpack_from('<I', header, 0x3c)
    if lfanew + 26 > len(header):
        return None
    if header[lfanew:lfanew + 4] != b'PE\0\0':
        return None
    (magic,) = struct.unpack_from('<H', header, lfanew + 24)
    return {0x10b: 'i386', 0x20b: 'x86_64'}.get(magic)


def _cmd_arch(fs, systemroot):
    inode = fs_mod.resolve(fs, systemroot + '/system32/cmd.exe')
    size = fs.size(inode)
    header = fs.read(inode, PE_READ)
    arch = pe_arch(header)
    if arch is None:
        if size > PE_READ and header[:2] == b'MZ':
            (lfanew,) = struct.unpack_from('<I', header.ljust(0x40), 0x3c)
            if lfanew + 26 > PE_READ and lfanew < size:
                raise errors.Unsupported(
                    'windows: cmd.exe has its PE header past %d KiB'
                    % (PE_READ // 1024))
        raise _InspectionFails()
    return arch


# ------------------------------------------------- libguestfs' answers

def _hivex_string(value):
    """Hivex.value_string: strings only, up to the first UTF-16 NUL."""
    vtype, data = value
    if vtype not in _HIVEX_STRING_TYPES:
        raise _InspectionFails()
    end = 0
    while end + 2 <= len(data) and data[end:end + 2] != b'\0\0':
        end += 2
    try:
        return data[:end].decode('utf-16-le')
    except UnicodeError:
        raise _InspectionFails() from None


def _hivex_dword(value):
    """Hivex.value_dword as OCaml's Int32.to_int: signed."""
    vtype, data = value
    if vtype not in _HIVEX_DWORD_TYPES or len(data) < 4:
        raise _InspectionFails()
    order = 'little' if vtype == regf.REG_DWORD else 'big'
    return int.from_bytes(data[:4], order, signed=True)


class _Data:
    product_name = None
    product_variant = None
    version = None


def _software_registry(hive, data):
    """check_windows_software_registry: exact (case-sensitive) value
    names, the first of each; every value name of CurrentVersion is
    decoded, as its List.map does."""
    node = hive.key(windows.CURRENT_VERSION)
    if node is None:
        return
    values = {}
    for value in hive.values(node):
        if not value.long:      # never one of the names below
            values.setdefault(value.name, value)

    def get(name):
        found = values.get(name)
        if found is None:
            raise KeyError(name)
        return found.type, hive.data(found)

    try:
        try:
            data.product_name = _hivex_string(get('ProductName'))
        except KeyError:
            pass
        try:
            major = _hivex_dword(get('CurrentMajorVersionNumber'))
            minor = _hivex_dword(get('CurrentMinorVersionNumber'))
            data.version = (major, minor)
        except KeyError:
            linux_release.parse_version_from_major_minor(
                _hivex_string(get('CurrentVersion')), data)
        try:
            data.product_variant = _hivex_string(get('InstallationType'))
        except KeyError:
            pass
    except KeyError:
        pass        # no version at all: InstallationType is not read


def osinfo(product_name, product_variant, major, minor):
    """lib/inspect-osinfo.c for type 'windows'."""
    server = 'Server' in product_variant
    if major == 5 and minor == 1:
        return 'winxp'
    if major == 5 and minor == 2:
        if 'XP' in product_name:
            return 'winxp'
        return 'win2k3r2' if 'R2' in product_name else 'win2k3'
    if major == 6 and minor in (0, 1, 2, 3):
        return (('win2k8', 'win2k8r2', 'win2k12', 'win2k12r2')[minor]
                if server else
                ('winvista', 'win7', 'win8', 'win8.1')[minor])
    if major == 10 and minor == 0:
        if not server:
            return 'win10'
        if '2022' in product_name:
            return 'win2k22'
        if '2019' in product_name:
            return 'win2k19'
        return 'win2k16'
    return UNKNOWN


# ----------------------------------------------------------- the root

# libguestfs' check_filesystem tests, in its order, before Windows: a
# filesystem matching one is never a Windows root there.  Each is
# (what, directories, files, directories that must not be, files that
# must not be).
_EARLIER_ROLES = (
    ('a Grub /boot', (), ('/grub/menu.lst',), (), ()),
    ('a Grub /boot', (), ('/grub/grub.conf',), (), ()),
    ('a Grub /boot', (), ('/grub2/grub.cfg',), (), ()),
    ('a Hurd root', (), ('/hurd/console', '/hurd/hello', '/hurd/null'),
     (), ()),
    ('a CoreOS root', ('/etc', '/root', '/home', '/usr'),
     ('/etc/coreos/update.conf',), (), ()),
    ('a Linux /usr/local', ('/etc', '/bin', '/share'), (), ('/local',),
     ('/etc/fstab',)),
    ('a Linux /usr', ('/bin', '/local', '/share', '/src'), (), (),
     ('/etc/fstab',)),
    ('a CoreOS /usr', ('/bin', '/share', '/local', '/share/coreos'), (),
     (), ()),
    ('a Linux /var', ('/log', '/run', '/spool'), (), (), ()),
)


def _earlier_role(fs):
    """What libguestfs would take ``fs`` for before looking for Windows
    (a Linux or BSD root, Grub's /boot, a Linux /usr or /var), or None.
    The BSD and Minix roots' tests all include the Linux one's."""
    if (_kind(fs, '/etc') == fs_mod.DIRECTORY
            and (_kind(fs, '/bin') == fs_mod.DIRECTORY
                 or fs_mod.readlink_at(fs, '/bin') == b'usr/bin')
            and (_kind(fs, '/etc/fstab') == fs_mod.FILE
                 or _kind(fs, '/etc/hosts') == fs_mod.FILE)):
        return 'a Linux root'
    for what, dirs, files, no_dirs, no_files in _EARLIER_ROLES:
        if (all(_kind(fs, d) == fs_mod.DIRECTORY for d in dirs)
                and all(_kind(fs, f) == fs_mod.FILE for f in files)
                and not any(_kind(fs, d) == fs_mod.DIRECTORY
                            for d in no_dirs)
                and not any(_kind(fs, f) == fs_mod.FILE for f in no_files)):
            return what
    return None


def windows_root(fs, device, disk_index):
    """The RootFacts of ``fs`` when the appliance path would find a
    Windows root on it, else None.  Raises the readers' DirectError when
    the filesystem or a hive cannot be read to the end."""
    try:
        systemroot = find_systemroot(fs)
        if systemroot is None:
            return None
        earlier = _earlier_role(fs)
        if earlier:
            # libguestfs would not call it Windows; names on NTFS fold
            # case here and not in the appliance: the appliance decides.
            raise errors.Unsupported(
                'windows: a Windows systemroot on what libguestfs takes '
                'for %s' % earlier)
        root, software = _inspected_root(fs, systemroot, device,
                                         disk_index)
    except _InspectionFails:
        root = scanned_root(fs, device, disk_index)
        if root is not None:
            setattr(root, _SCANNED, True)
        return root
    if software is not None:
        # _read_details: hivex_open of inspect_get_windows_software_hive
        # (without a SOFTWARE hive it fails, and the details stay empty).
        (root.windows, root.sql_editions,
         root.sql_complete) = windows_hives.read_software_hive(software,
                                                               root)
    return root


def _inspected_root(fs, systemroot, device, disk_index):
    arch = _cmd_arch(fs, systemroot)
    config = systemroot + '/system32/config/'
    software = windows_hives.hive_file(fs, config + 'software')
    system = windows_hives.hive_file(fs, config + 'system')
    root = raw_facts.RootFacts(device=device, disk_index=disk_index,
                               type=windows.NAME, distro=windows.DISTRO,
                               arch=arch)
    hive = None
    data = _Data()
    if software is not None:
        hive = windows_hives.open_hive(fs, software, 'SOFTWARE')
    if hive is not None and system is not None:
        # with_hive opens SYSTEM too: one hivex cannot open fails the
        # inspection, here the caller's fallback.
        windows_hives.open_hive(fs, system, 'SYSTEM', head_only=True)
        _software_registry(hive, data)
    major, minor = data.version or (0, 0)
    root.product_name = (data.product_name if data.product_name is not None
                         else UNKNOWN)
    root.product_variant = (data.product_variant
                            if data.product_variant is not None else UNKNOWN)
    root.major, root.minor = major, minor
    root.osinfo = osinfo(root.product_name, root.product_variant, major,
                         minor)
    return root, hive


def scanned_root(fs, device, disk_index):
    """inspection.guest_files.scanned_root for Windows: a root found by
    its SOFTWARE hive alone, with no libguestfs answers (no arch, product
    or version from it), or None."""
    inode = windows_hives.find_software_hive(fs)
    if inode is None:
        return None
    root = windows.scanned_root(device, disk_index)
    hive = windows_hives.open_hive(fs, inode, 'SOFTWARE')
    (root.windows, root.sql_editions,
     root.sql_complete) = windows_hives.read_software_hive(hive, root)
    return root
