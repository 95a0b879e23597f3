"""The Linux facts of one filesystem read directly: a RootFacts, as the
appliance path would have filled it.

``linux_root(fs, device, disk_index)`` decides whether a filesystem is a
Linux root the way libguestfs 1.48's inspection does (``/etc``, ``/bin``
or the ``usr/bin`` symlink, ``/etc/fstab`` or ``/etc/hosts``), or the
way the appliance path's scan does (``/etc`` and an os-release), then
answers libguestfs' questions (type, distro, product name, version,
osinfo, arch) by its rules: the release files tried in its order
(os-release, lsb-release, the distro files), each parse keeping what it
set even when it gives up, as libguestfs' does; the arch from the ELF
header of the first of its binaries found.  The billing inputs the
appliance reads after mounting (the os-release dict, SUSE's base
product: the files ``linux`` lists) are read with ``guest_formats``'
bound and parsed by it, so the policy (``linux``, ``facts``) sees the same
RootFacts whichever method read the disk.

Everything read is guest data: files are read through ``fs.read_file``
(symlinks resolved inside the filesystem, bounded), numbers that do not
fit are ignored.
"""

import re
import struct

from ceilometer_os_pollster.families import guest_formats
from ceilometer_os_pollster.families import linux
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod

UNKNOWN = raw_facts.UNKNOWN
# libguestfs' is_small_file: a release file larger than this is ignored.
MAX_RELEASE_FILE = 2 * 1048 * 1024
# Versions are OCaml ints there; a larger number fails its parse.
MAX_VERSION = (1 << 62) - 1
# Characters of one value or line a regex looks at: searches like
# '([0-9]+)\.([0-9]+)' are quadratic in Python's re, and a real release
# line is far shorter.
MAX_MATCHED = 1024

ARCH_BINARIES = ('/bin/bash', '/bin/ls', '/bin/echo', '/bin/rm', '/bin/sh')
ELF_HEADER = 20

_DISTRO_OS_RELEASE = {
    'alpine': 'alpinelinux', 'altlinux': 'altlinux', 'arch': 'archlinux',
    'centos': 'centos', 'coreos': 'coreos', 'debian': 'debian',
    'fedora': 'fedora', 'frugalware': 'frugalware', 'gentoo': 'gentoo',
    'kali': 'kalilinux', 'kylin': 'kylin', 'mageia': 'mageia',
    'neokylin': 'neokylin', 'openmandriva': 'openmandriva',
    'opensuse': 'opensuse', 'pardus': 'pardus', 'pld': 'pldlinux',
    'rhel': 'rhel', 'rocky': 'rocky', 'sles': 'sles', 'sled': 'sles',
    'ubuntu': 'ubuntu', 'void': 'voidlinux',
}
_DISTRO_LSB = {'CoreOS': 'coreos', 'LinuxMint': 'linuxmint',
               'Mageia': 'mageia', 'Ubuntu': 'ubuntu'}
ROLLING = ('archlinux', 'gentoo', 'voidlinux')

_MAJOR_MINOR = re.compile(r'([0-9]+)\.([0-9]+)')
_MAJOR = re.compile(r'([0-9]+)')
_NEOKYLIN = re.compile(r'^V([0-9]+)Update([0-9]+)$')


def _rex(pattern):
    return re.compile(pattern.replace(r'\d', '[0-9]'), re.DOTALL)


RE_FEDORA = _rex(r'Fedora release (\d+)')
RE_RHEL_OLD = _rex(r'Red Hat.*release (\d+).*Update (\d+)')
RE_RHEL = _rex(r'Red Hat.*release (\d+)\.(\d+)')
RE_RHEL_NO_MINOR = _rex(r'Red Hat.*release (\d+)')
RE_CENTOS_OLD = _rex(r'CentOS.*release (\d+).*Update (\d+)')
RE_CENTOS = _rex(r'CentOS.*release (\d+)\.(\d+)')
RE_CENTOS_NO_MINOR = _rex(r'CentOS.*release (\d+)')
RE_ROCKY = _rex(r'Rocky Linux.*release (\d+)\.(\d+)')
RE_ROCKY_NO_MINOR = _rex(r'Rocky Linux.*release (\d+)')
RE_SCIENTIFIC_OLD = _rex(r'Scientific Linux.*release (\d+).*Update (\d+)')
RE_SCIENTIFIC = _rex(r'Scientific Linux.*release (\d+)\.(\d+)')
RE_SCIENTIFIC_NO_MINOR = _rex(r'Scientific Linux.*release (\d+)')
RE_ORACLE_OLD = _rex(r'Oracle Linux.*release (\d+).*Update (\d+)')
RE_ORACLE = _rex(r'Oracle Linux.*release (\d+)\.(\d+)')
RE_ORACLE_NO_MINOR = _rex(r'Oracle Linux.*release (\d+)')
RE_OPENSUSE = _rex(r'^(openSUSE|SuSE Linux|SUSE LINUX) ')
RE_SLES = _rex(r'^SUSE (Linux|LINUX) Enterprise ')
RE_NLD = _rex(r'^Novell Linux Desktop ')
RE_SLES_VERSION = _rex(r'^VERSION = (\d+)')
RE_SLES_PATCHLEVEL = _rex(r'^PATCHLEVEL = (\d+)')
RE_FRUGALWARE = _rex(r'Frugalware (\d+)\.(\d+)')
RE_PLDLINUX = _rex(r'(\d+)\.(\d+) PLD Linux')
RE_OPENMANDRIVA = _rex(r'OpenMandriva.*release (\d+)\.(\d+)\.?(\d+)? .*')

_ELF_MACHINES = {
    (3, 1): 'i386', (62, 2): 'x86_64', (183, 2): 'aarch64',
    (40, 1): 'arm', (20, 1): 'ppc', (43, 2): 'sparc64', (2, 1): 'sparc',
    (50, 2): 'ia64', (258, 2): 'loongarch64',
}


class _Data:
    """What libguestfs' inspection collects for one root."""

    def __init__(self):
        self.distro = None
        self.product_name = None
        self.version = None
        self.arch = None


class _Reader:
    """Bounded reads of one filesystem, each release file read once."""

    def __init__(self, fs):
        self.fs = fs
        self._cache = {}
        self._kinds = {}

    def is_file(self, path):
        if path not in self._kinds:
            self._kinds[path] = fs_mod.kind_at(self.fs, path)
        return self._kinds[path] == fs_mod.FILE

    def small_file(self, path):
        """The bytes of a regular file of at most MAX_RELEASE_FILE bytes,
        else None (libguestfs' read_small_file)."""
        if path not in self._cache:
            inode = fs_mod.resolve(self.fs, path)
            data = None
            if (inode is not None
                    and self.fs.kind_of(inode) == fs_mod.FILE
                    and self.fs.size(inode) <= MAX_RELEASE_FILE):
                data = self.fs.read(inode, MAX_RELEASE_FILE)
            self._cache[path] = data
        return self._cache[path]

    def lines(self, path):
        data = self.small_file(path)
        return None if data is None else _text(data).split('\n')


def _text(data):
    # Byte-for-byte (OCaml strings are bytes); made UTF-8 at the end.
    return bytes(data).decode('latin-1')


def _int(text):
    value = int(text)
    if value > MAX_VERSION:
        raise ValueError(text)
    return value


# ---------------------------------------------------------------- parsing

def parse_version_from_major_minor(value, data):
    value = value[:MAX_MATCHED]
    for rex, groups in ((_MAJOR_MINOR, 2), (_MAJOR, 1)):
        match = rex.search(value)
        if match:
            try:
                major = _int(match.group(1))
                minor = _int(match.group(2)) if groups == 2 else 0
            except ValueError:
                return
            data.version = (major, minor)
            return


def shell_unquote(value):
    """libguestfs' shell_unquote: strip one pair of quotes; in double
    quotes a backslash escapes $ ` " and itself."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner, out, i = value[1:-1], [], 0
        while i < len(inner):
            char = inner[i]
            if (char == '\\' and i + 1 < len(inner)
                    and inner[i + 1] in '$`"\\'):
                out.append(inner[i + 1])
                i += 2
                continue
            out.append(char)
            i += 1
        return ''.join(out)
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    return value


def simple_unquote(value):
    if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
        return value[1:-1]
    return value


def _key_values(lines, unquote):
    for line in lines:
        if not line or line.startswith('#'):
            continue
        key, _, value = line.partition('=')
        yield key, unquote(value)


def parse_os_release(reader, path, data):
    lines = reader.lines(path)
    if lines is None:
        return False
    for key, value in _key_values(lines, shell_unquote):
        if key == 'ID':
            distro = _DISTRO_OS_RELEASE.get(value)
            if not distro and value.startswith('opensuse-'):
                distro = 'opensuse'
            if distro:
                data.distro = distro
        elif key == 'PRETTY_NAME':
            data.product_name = value
        elif key == 'VERSION_ID':
            match = _NEOKYLIN.match(value[:MAX_MATCHED])
            if match:
                major, minor = _group_int(match, 1), _group_int(match, 2)
                if major is not None and minor is not None:
                    data.version = (major, minor)
            else:
                parse_version_from_major_minor(value, data)
    if data.distro is None or data.product_name is None:
        return False
    # Debian's and CentOS' os-release carry only the major version.
    if (data.distro in ('debian', 'centos', 'rocky')
            and data.version is not None and data.version[1] == 0):
        return False
    if data.version is None and data.distro in ROLLING:
        data.version = (0, 0)
        return True
    return data.version is not None


def parse_lsb_release(reader, path, data):
    lines = reader.lines(path)
    if lines is None:
        return False
    ok = False
    for key, value in _key_values(lines, simple_unquote):
        if key == 'DISTRIB_ID':
            distro = _DISTRO_LSB.get(value)
            if distro:
                ok = True
                data.distro = distro
        elif key == 'DISTRIB_RELEASE':
            parse_version_from_major_minor(value, data)
        elif key == 'DISTRIB_DESCRIPTION':
            ok = True
            data.product_name = value
    return ok


def parse_suse_release(reader, path, data):
    lines = reader.lines(path)
    if not lines:
        return False
    product = lines[0]
    data.product_name = product
    head = product[:MAX_MATCHED]
    if RE_SLES.search(head) or RE_NLD.search(head):
        major = minor = None
        if len(lines) >= 2:
            match = RE_SLES_VERSION.search(lines[1][:MAX_MATCHED])
            major = _group_int(match, 1)
        if len(lines) >= 3:
            match = RE_SLES_PATCHLEVEL.search(lines[2][:MAX_MATCHED])
            minor = _group_int(match, 1)
        data.distro = 'sles'
        data.version = ((major, minor or 0) if major is not None
                        else None)
    elif RE_OPENSUSE.search(head):
        if len(lines) >= 2:
            parse_version_from_major_minor(lines[1], data)
        data.distro = 'opensuse'
    return True


def _group_int(match, group):
    if not match:
        return None
    try:
        text = match.group(group)
        return None if text is None else _int(text)
    except (IndexError, ValueError):
        return None


def generic(distro, rex=None):
    """libguestfs' parse_generic: product name = the first line; with a
    regex, it must match (major, minor from its groups)."""
    def parse(reader, path, data):
        content = reader.small_file(path)
        if content is None:
            return False
        product = _text(content).split('\n', 1)[0]
        if not product:
            return False
        data.product_name = product
        data.distro = distro
        if rex is None:
            parse_version_from_major_minor(product, data)
            return True
        match = rex.search(product[:MAX_MATCHED])
        if not match:
            return False
        major, minor = _group_int(match, 1), _group_int(match, 2)
        if major is not None:
            data.version = (major, minor or 0)
        return True
    return parse


def _set_distro(distro):
    def parse(reader, path, data):
        data.distro = distro
        return True
    return parse


def _br_version(reader, path, data):
    distro = ('cirros' if reader.is_file('/usr/share/cirros/logo')
              else 'buildroot')
    return generic(distro)(reader, path, data)


# libguestfs 1.48's linux_root_tests, in its order.
LINUX_ROOT_TESTS = (
    ('/etc/os-release', parse_os_release),
    ('/etc/lsb-release', parse_lsb_release),
    ('/etc/openmandriva-release', generic('openmandriva', RE_OPENMANDRIVA)),
    ('/etc/oracle-release', generic('oraclelinux', RE_ORACLE_OLD)),
    ('/etc/oracle-release', generic('oraclelinux', RE_ORACLE)),
    ('/etc/oracle-release', generic('oraclelinux', RE_ORACLE_NO_MINOR)),
    ('/etc/centos-release', generic('centos', RE_CENTOS_OLD)),
    ('/etc/centos-release', generic('centos', RE_CENTOS)),
    ('/etc/centos-release', generic('centos', RE_CENTOS_NO_MINOR)),
    ('/etc/rocky-release', generic('rocky', RE_ROCKY)),
    ('/etc/rocky-release', generic('rocky', RE_ROCKY_NO_MINOR)),
    ('/etc/altlinux-release', generic('altlinux')),
    ('/etc/redhat-release', generic('fedora', RE_FEDORA)),
    ('/etc/redhat-release', generic('rhel', RE_RHEL_OLD)),
    ('/etc/redhat-release', generic('rhel', RE_RHEL)),
    ('/etc/redhat-release', generic('rhel', RE_RHEL_NO_MINOR)),
    ('/etc/redhat-release', generic('centos', RE_CENTOS_OLD)),
    ('/etc/redhat-release', generic('centos', RE_CENTOS)),
    ('/etc/redhat-release', generic('centos', RE_CENTOS_NO_MINOR)),
    ('/etc/redhat-release', generic('rocky', RE_ROCKY)),
    ('/etc/redhat-release', generic('rocky', RE_ROCKY_NO_MINOR)),
    ('/etc/redhat-release', generic('scientificlinux', RE_SCIENTIFIC_OLD)),
    ('/etc/redhat-release', generic('scientificlinux', RE_SCIENTIFIC)),
    ('/etc/redhat-release', generic('scientificlinux',
                                    RE_SCIENTIFIC_NO_MINOR)),
    ('/etc/redhat-release', generic('redhat-based')),
    ('/etc/redhat-release', _set_distro('redhat-based')),
    ('/etc/debian_version', generic('debian')),
    ('/etc/pardus-release', generic('pardus')),
    ('/etc/arch-release', _set_distro('archlinux')),
    ('/etc/gentoo-release', generic('gentoo')),
    ('/etc/meego-release', generic('meego')),
    ('/etc/slackware-version', generic('slackware')),
    ('/etc/ttylinux-target', generic('ttylinux')),
    ('/etc/SuSE-release', parse_suse_release),
    ('/etc/SuSE-release', _set_distro('suse-based')),
    ('/etc/cirros/version', generic('cirros')),
    ('/etc/br-version', _br_version),
    ('/etc/alpine-release', generic('alpinelinux')),
    ('/etc/frugalware-release', generic('frugalware', RE_FRUGALWARE)),
    ('/etc/pld-release', generic('pldlinux', RE_PLDLINUX)),
)


def check_tests(reader, data):
    for path, parse in LINUX_ROOT_TESTS:
        if reader.is_file(path) and parse(reader, path, data):
            return


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
    reader = _Reader(fs)
    data = _Data()
    check_tests(reader, data)
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
    reader = _Reader(fs)
    data = _Data()
    if reader.is_file('/lib/os-release'):
        parse_os_release(reader, '/lib/os-release', data)
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
