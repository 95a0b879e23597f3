"""libguestfs 1.48's Linux release files, read directly: what its
inspection learns of a root's distro, product name and version.

``check_tests(reader, data)`` tries the release files in libguestfs'
order (os-release, lsb-release, the distro files: LINUX_ROOT_TESTS),
each parse keeping what it set even when it gives up, as libguestfs'
does.  ``Reader`` reads a filesystem's small files once, with
libguestfs' bounds; ``linux_root`` decides what a root is and builds
its RootFacts.

Everything read is guest data: numbers that do not fit are ignored, and
a regex looks at no more than MAX_MATCHED characters.
"""

import re

from ceilometer_os_pollster.direct.filesystem import fs as fs_mod

# libguestfs' is_small_file: a release file larger than this is ignored.
MAX_RELEASE_FILE = 2 * 1048 * 1024
# Versions are OCaml ints there; a larger number fails its parse.
MAX_VERSION = (1 << 62) - 1
# Characters of one value or line a regex looks at: searches like
# '([0-9]+)\.([0-9]+)' are quadratic in Python's re, and a real release
# line is far shorter.
MAX_MATCHED = 1024

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


class Data:
    """What libguestfs' inspection collects for one root."""

    def __init__(self):
        self.distro = None
        self.product_name = None
        self.version = None
        self.arch = None


class Reader:
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
