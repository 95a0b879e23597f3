"""The Linux facts of one filesystem read directly: a RootFacts, as the
appliance path would have filled it.

``linux_root(fs, device, disk_index)`` decides whether a filesystem is a
Linux root the way libguestfs 1.48's inspection does (``/etc``, ``/bin``
or the ``usr/bin`` symlink, ``/etc/fstab`` or ``/etc/hosts``), or the
way the appliance path's scan does (``/etc`` and an os-release), then
answers libguestfs' questions (type, distro, product name, version,
osinfo, arch) by its rules: the release files tried in its order
(``linux_release``); the arch from the ELF header of the first of its
binaries found.  The billing inputs the appliance reads after mounting
(the os-release dict, SUSE's base product: the files ``linux`` lists)
are read with ``guest_formats``' bound and parsed by it, so the policy
(``linux``, ``facts``) sees the same RootFacts whichever method read
the disk.

Everything read is guest data: files are read through ``fs.read_file``
(symlinks resolved inside the filesystem, bounded), numbers that do not
fit are ignored.
"""

import struct

from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct import linux_release
from ceilometer_os_pollster.families import guest_formats
from ceilometer_os_pollster.families import linux
from ceilometer_os_pollster.families import raw_facts

UNKNOWN = raw_facts.UNKNOWN
ROLLING = linux_release.ROLLING
# Where libguestfs looks for the arch, in its order.
ARCH_BINARIES = ('/bin/bash', '/bin/ls', '/bin/echo', '/bin/rm', '/bin/sh')
ELF_HEADER = 20

_ELF_MACHINES = {
    (3, 1): 'i386', (62, 2): 'x86_64', (183, 2): 'aarch64',
    (40, 1): 'arm', (20, 1): 'ppc', (43, 2): 'sparc64', (2, 1): 'sparc',
    (50, 2): 'ia64', (258, 2): 'loongarch64',
}


def osinfo(distro, major, minor):
    """libguestfs 1.48's inspect_get_osinfo for a Linux root."""
    if distro == 'centos':
        if major >= 8:
            return '%s%d' % (distro, major)
        if major == 7:
            return '%s%d.0' % (distro, major)
        if major == 6:
            return '%s%d.%d' % (distro, major, minor)
    elif distro == 'rocky':
        if major >= 8:
            return '%s%d' % (distro, major)
    elif distro == 'debian':
        if major >= 4:
            return '%s%d' % (distro, major)
    elif distro in ('fedora', 'mageia'):
        return '%s%d' % (distro, major)
    elif distro == 'sles':
        if minor == 0:
            return '%s%d' % (distro, major)
        return '%s%dsp%d' % (distro, major, minor)
    elif distro == 'ubuntu':
        return '%s%d.%02d' % (distro, major, minor)
    elif distro in ROLLING:
        return distro
    elif distro == 'altlinux':
        if major >= 8:
            return 'alt%d.%d' % (major, minor)
        return '%s%d.%d' % (distro, major, minor)
    if distro != UNKNOWN and (major > 0 or minor > 0):
        return '%s%d.%d' % (distro, major, minor)
    return UNKNOWN


# ------------------------------------------------------------------- arch

def elf_arch(header):
    """libguestfs' architecture name of an ELF header, or None."""
    if len(header) < ELF_HEADER or header[:4] != b'\x7fELF':
        return None
    elf_class, encoding = header[4], header[5]
    if elf_class not in (1, 2) or encoding not in (1, 2):
        return None
    machine = struct.unpack_from('<H' if encoding == 1 else '>H',
                                 header, 18)[0]
    if machine == 8:
        return 'mips64' if elf_class == 2 else 'mips'
    if machine == 21:
        return 'ppc64le' if encoding == 1 else 'ppc64'
    if machine == 22:
        return 's390x' if elf_class == 2 else 's390'
    if machine == 243:
        return 'riscv64' if elf_class == 2 else 'riscv32'
    return _ELF_MACHINES.get((machine, elf_class))


def check_architecture(reader):
    for path in ARCH_BINARIES:
        if not reader.is_file(path):
            continue
        arch = elf_arch(fs_mod.read_file(reader.fs, path, ELF_HEADER) or b'')
        if arch:
            return arch
    return None


# ------------------------------------------------------------------- root

def is_linux_root(fs):
    """libguestfs' Linux root test, or the appliance scan's (an /etc
    with an os-release): a guest that removes its fstab and hosts is
    still billed."""
    if fs_mod.kind_at(fs, '/etc', follow_last=False) != fs_mod.DIRECTORY:
        return False
    bin_kind = fs_mod.kind_at(fs, '/bin', follow_last=False)
    has_bin = (bin_kind == fs_mod.DIRECTORY
               or (bin_kind == fs_mod.SYMLINK
                   and fs_mod.readlink_at(fs, '/bin') == b'usr/bin'))
    config = any(fs_mod.kind_at(fs, path, follow_last=False) == fs_mod.FILE
                 for path in ('/etc/fstab', '/etc/hosts'))
    if has_bin and config:
        return True
    return any(fs_mod.kind_at(fs, path) == fs_mod.FILE
               for path in linux.OS_RELEASE_PATHS)


def _utf8(value):
    """What the guestfs binding hands over: strict UTF-8 or nothing."""
    if value is None:
        return None
    try:
        return value.encode('latin-1').decode('utf-8')
    except UnicodeError:
        return None


def read_os_release(fs):
    """inspection.guest_files.read_os_release, read directly."""
    for path in linux.OS_RELEASE_PATHS:
        data = fs_mod.read_file(fs, path, guest_formats.MAX_FILE_BYTES)
        if data is not None:
            return guest_formats.parse_os_release(data)
    return {}


def read_suse_baseproduct(fs):
    data = fs_mod.read_file(fs, linux.SUSE_BASEPRODUCT,
                            guest_formats.MAX_FILE_BYTES)
    return data or b''


def check_linux_root(fs):
    """What libguestfs' check_linux_root learns of ``fs`` while it is
    mounted alone (release files, arch), or None when ``fs`` is not a
    Linux root."""
    if not is_linux_root(fs):
        return None
    reader = linux_release.Reader(fs)
    data = linux_release.Data()
    linux_release.check_tests(reader, data)
    data.arch = check_architecture(reader)
    return data


def is_linux_usr(fs):
    """libguestfs 1.48's Linux /usr test (after its /usr/local one):
    /bin, /local, /share and /src, and no /etc/fstab."""
    def is_dir(path):
        return fs_mod.kind_at(fs, path, follow_last=False) == fs_mod.DIRECTORY
    if (is_dir('/etc') and is_dir('/bin') and is_dir('/share')
            and not is_dir('/local')
            and fs_mod.kind_at(fs, '/etc/fstab', follow_last=False)
            != fs_mod.FILE):
        return False                # a /usr/local
    return (is_dir('/bin') and is_dir('/local') and is_dir('/share')
            and is_dir('/src')
            and fs_mod.kind_at(fs, '/etc/fstab', follow_last=False)
            != fs_mod.FILE)


def check_linux_usr(fs):
    """What libguestfs' check_linux_usr learns of a separate /usr (its
    lib/os-release, the arch of its binaries), or None when ``fs`` is
    not one."""
    if is_linux_root(fs) or not is_linux_usr(fs):
        return None
    reader = linux_release.Reader(fs)
    data = linux_release.Data()
    if reader.is_file('/lib/os-release'):
        linux_release.parse_os_release(reader, '/lib/os-release',
                                       data)
    data.arch = check_architecture(reader)
    return data


def merge(usr, root):
    """libguestfs' merge_inspection_data of a /usr into its root: what
    the root left unset comes from the /usr."""
    for name in ('distro', 'product_name', 'version', 'arch'):
        if getattr(root, name) is None:
            setattr(root, name, getattr(usr, name))


def root_facts(data, device, disk_index, tree):
    """The RootFacts of a Linux root: ``data`` from check_linux_root
    (merged with its /usr), the billing inputs read in ``tree`` (the
    root as the appliance mounts it, see ``mounts``; None when nothing
    is mounted at '/')."""
    distro = data.distro or UNKNOWN
    major, minor = data.version or (0, 0)
    product = _utf8(data.product_name)
    return raw_facts.RootFacts(
        device=device,
        disk_index=disk_index,
        type=linux.NAME,
        distro=distro,
        osinfo=osinfo(distro, major, minor),
        product_name=product if product is not None else UNKNOWN,
        product_variant=UNKNOWN,
        arch=data.arch or UNKNOWN,
        major=major,
        minor=minor,
        os_release=read_os_release(tree) if tree is not None else {},
        suse_baseproduct=(read_suse_baseproduct(tree)
                          if tree is not None else b''),
    )


def linux_root(fs, device, disk_index):
    """The RootFacts of ``fs`` when it is a Linux root, else None, with
    its billing inputs read in ``fs`` itself (no other filesystem).

    Raises the reader's DirectError when the filesystem cannot be read
    to the end (the caller falls back to the appliance)."""
    data = check_linux_root(fs)
    if data is None:
        return None
    return root_facts(data, device, disk_index, fs)
