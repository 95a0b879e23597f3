"""Linux: what a Linux root is, what is read in it, and how libguestfs,
os-release and SUSE's base product become the bill.

Owns the Linux family: how a root scanned by hand is recognised (an
os-release that says something), which files both inspection methods
read in it (OS_RELEASE_PATHS, SUSE_BASEPRODUCT), the Linux vocabulary
the bill is written in: which distro a root is (os-release where
libguestfs is vague, SUSE's base product file where SUSE sells distinct
products), its libosinfo id, its version and its edition (SLES for SAP,
SLE HPC, SLED, RHEL 6/7 variants), and which distros are licensed per VM
and in which price order (LINUX_PRODUCTS, LICENCE_ORDER).
``fields(root)`` turns one Linux root's raw facts into OSRecord fields.
Pure code.
"""

import re

from ceilometer_os_pollster.families import guest_formats
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster import sanitize

UNKNOWN = raw_facts.UNKNOWN
# os_family of a Linux root (libguestfs' inspect_get_type).
NAME = 'linux'

# --------------------------------------------------------------------------
# What both inspection methods read

OS_RELEASE_PATHS = ('/etc/os-release', '/usr/lib/os-release')
# SUSE: a symlink to the installed base product's .prod (XML) file.
SUSE_BASEPRODUCT = '/etc/products.d/baseproduct'


def recognised(os_release):
    """Whether a filesystem scanned by hand is a Linux root, from its
    os-release (parsed, {} when absent): when it says anything."""
    return bool(os_release)


def scanned_root(device, disk_index, os_release, suse_baseproduct):
    """The RootFacts of a filesystem scanned by hand and recognised."""
    return raw_facts.RootFacts(device=device, type=NAME,
                               os_release=os_release,
                               suse_baseproduct=suse_baseproduct,
                               disk_index=disk_index)


# --------------------------------------------------------------------------
# Linux policy

# os-release IDs -> libguestfs distro names, so a guest reads the same
# whichever of the two detected it.
_OS_RELEASE_DISTROS = {
    'ol': 'oraclelinux',
    'sles_sap': 'sles',
    'sle_hpc': 'sles',
    'sled': 'sles',
    'sle-micro': 'slem',
    'sl-micro': 'slem',
    'opensuse-leap': 'opensuse',
    'opensuse-tumbleweed': 'opensuse',
    'arch': 'archlinux',
    'alpine': 'alpinelinux',
    'void': 'voidlinux',
    'kali': 'kalilinux',
    'pld': 'pldlinux',
}
# os-release ID -> os_edition: different products behind one distro.
_OS_RELEASE_EDITIONS = {
    'sles_sap': 'SAP',
    'sle_hpc': 'HPC',
    'sled': 'Desktop',
}
# SUSE base product <name> (/etc/products.d/baseproduct) -> (os_distro,
# os_edition).  SUSE prices these as distinct products: SLES for SAP
# Applications and SLE HPC are SLES with another subscription, so they
# stay 'sles' (libosinfo's id too) and the edition tells them apart.
_SUSE_PRODUCTS = {
    'sles': ('sles', ''),
    'sles_sap': ('sles', 'SAP'),
    'sle_hpc': ('sles', 'HPC'),
    'sle-hpc': ('sles', 'HPC'),
    'sled': ('sles', 'Desktop'),
    'suse_sles': ('sles', ''),          # SLE 11
    'suse_sles_sap': ('sles', 'SAP'),
    'suse_sled': ('sles', 'Desktop'),
    'sle-micro': ('slem', ''),          # SLE Micro 5.3+
    'suse-microos': ('slem', ''),       # SLE Micro 5.0-5.2
    'sl-micro': ('slem', ''),           # SUSE Linux Micro 6
    'opensuse': ('opensuse', ''),
    'leap': ('opensuse', ''),
}
# Distros a SUSE base product file may refine: a file planted in another
# distro's /etc must not turn it into a SLES.
_SUSE_DISTROS = ('sles', 'slem', 'opensuse', 'suse-based')
# RHEL 6/7 say which variant they are in os-release (VARIANT_ID).
_RHEL_VARIANTS = {
    'server': 'Server',
    'workstation': 'Workstation',
    'client': 'Client',
    'computenode': 'Compute Node',
}
# Distros libguestfs does not know well enough to name on its own.
_VAGUE_DISTROS = ('', 'unknown', 'redhat-based', 'suse-based')
# Distros whose subscription costs money per VM, by os_distro, and the
# licence product each one is; other distributions are listed under
# their os_distro.
LINUX_PRODUCTS = {'rhel': 'RHEL', 'sles': 'SLES', 'slem': 'SLE Micro'}
# The per-VM products, cheapest first, as the shipped CloudKitty rules
# price them (etc/cloudkitty/hashmap-example.sh; a unit test keeps the
# two in step): an os_distro or an os_edition, CloudKitty billing the
# dearer of the two.  Between two licensed Linux roots the dearer
# product is billed, so a decoy root cannot make a VM cheaper.
LICENCE_ORDER = ('slem', 'sles', 'rhel', 'HPC', 'SAP')


def parse_version(value):
    """(major, minor) from an os-release VERSION_ID.

    '9.4' -> (9, 4), '12' -> (12, 0), '22.04' -> (22, 4),
    '15.5.1' -> (15, 5); anything else (garbage, '9abc') -> (0, 0).
    """
    text = sanitize.clean_text(value, 64)
    match = re.fullmatch(r'([0-9]+)(?:\.([0-9]+))?'
                         r'(?:[.+~_-][0-9A-Za-z.+~_-]*)?', text)
    if not match:
        return 0, 0
    major = sanitize.clean_int(match.group(1), default=-1)
    minor = sanitize.clean_int(match.group(2) or '0', default=-1)
    if major < 0 or minor < 0:          # too big to be a version
        return 0, 0
    return major, minor


def linux_distro(distro, os_release):
    """(distro, from_os_release) for a Linux root.

    libguestfs' distro is kept unless it is vague ('redhat-based', as for
    AlmaLinux, or 'unknown'); then os-release's ID is trusted, mapped to
    libguestfs' vocabulary where the two differ ('ol' -> 'oraclelinux').
    """
    distro = raw_facts.token(distro)
    if distro not in _VAGUE_DISTROS:
        return distro, False
    release_id = raw_facts.token(raw_facts.mapping(os_release).get('id'))
    if release_id:
        return _OS_RELEASE_DISTROS.get(release_id, release_id), True
    return distro or UNKNOWN, False


def linux_osinfo(distro, major, minor, product_name='', fallback=UNKNOWN):
    """libosinfo short id of a Linux release.

    The table below wins over libguestfs (passed as fallback) so the id is
    the same whichever way the distro was found and follows libosinfo
    where libguestfs does not (Oracle 'ol9.4', SLE 15 'sle15sp5').  Other
    distros take libguestfs' id, then the generic '<distro><M>.<m>'.
    """
    name = product_name.lower()
    if distro in ('archlinux', 'gentoo', 'voidlinux'):
        return distro                                   # rolling releases
    if distro == 'opensuse' and 'tumbleweed' in name:
        return 'opensusetumbleweed'     # its VERSION_ID is a date
    if major > 0:
        derived = _LINUX_OSINFO.get(distro)
        if derived:
            return derived(major, minor, name)
    if distro in _VAGUE_DISTROS:
        return UNKNOWN                  # libguestfs says 'redhat-based9.4'
    if fallback and fallback != UNKNOWN:
        return fallback
    if major or minor:
        return '%s%d.%d' % (distro, major, minor)
    return UNKNOWN


def _centos(major, minor, name):
    if major >= 9 or 'stream' in name:
        return 'centos-stream%d' % major
    if major == 8:
        return 'centos8'
    if major == 7:
        return 'centos7.0'
    return 'centos%d.%d' % (major, minor)


def _sles(major, minor, name):
    # libosinfo renamed SLES to 'sle' from 15 on (one id for the family).
    base = '%s%d' % ('sle' if major >= 15 else 'sles', major)
    return base + ('sp%d' % minor if minor else '')


_LINUX_OSINFO = {
    'rhel': lambda major, minor, name: 'rhel%d.%d' % (major, minor),
    'centos': _centos,
    'almalinux': lambda major, minor, name: 'almalinux%d' % major,
    'rocky': lambda major, minor, name: 'rocky%d' % major,
    'oraclelinux': lambda major, minor, name: 'ol%d.%d' % (major, minor),
    'sles': _sles,
    'slem': lambda major, minor, name: 'slem%d.%d' % (major, minor),
    'opensuse': lambda major, minor, name: 'opensuse%d.%d' % (major, minor),
    'ubuntu': lambda major, minor, name: 'ubuntu%d.%02d' % (major, minor),
    'debian': lambda major, minor, name: 'debian%d' % major,
    'fedora': lambda major, minor, name: 'fedora%d' % major,
}


def suse_product(distro, baseproduct):
    """(os_distro, os_edition) from a SUSE base product, or None.

    Only for a SUSE or vague distro (see _SUSE_DISTROS) and a product
    name SUSE sells (_SUSE_PRODUCTS); anything else leaves the decision
    to libguestfs and os-release.
    """
    if distro not in _SUSE_DISTROS + _VAGUE_DISTROS:
        return None
    name = guest_formats.parse_suse_product(baseproduct).get('name')
    return _SUSE_PRODUCTS.get(raw_facts.token(name))


def linux_identity(root):
    """(os_distro, from_os_release, os_edition or None) of a Linux root.

    SUSE's base product file, which SUSE's own tools go by, outranks
    os-release (which any admin edits); os_edition None means "decide
    from os-release" (linux_edition).
    """
    distro, from_release = linux_distro(root.distro, root.os_release)
    product = suse_product(distro, root.suse_baseproduct)
    if product is not None:
        return product[0], True, product[1]
    return distro, from_release, None


def linux_edition(distro, os_release):
    """os_edition of a Linux guest: '' except where one distro sells
    distinct products (SLES for SAP, SLED, RHEL 6/7 variants)."""
    release = raw_facts.mapping(os_release)
    release_id = raw_facts.token(release.get('id'))
    if release_id in _OS_RELEASE_EDITIONS:
        return _OS_RELEASE_EDITIONS[release_id]
    if distro == 'rhel':
        variant = raw_facts.token(release.get('variant_id'))
        return _RHEL_VARIANTS.get(variant, '')
    return ''


def linux_product_name(product_name, os_release):
    """libguestfs' product name, else os-release PRETTY_NAME.

    A product name without any letter is not a name: libguestfs gives
    Debian's /etc/debian_version ('12.5'), so PRETTY_NAME wins there.
    """
    name = raw_facts.text(product_name)
    if re.search(r'[^\W\d_]', name):
        return name
    pretty = raw_facts.text(raw_facts.mapping(os_release).get('pretty_name'))
    return pretty or name


# --------------------------------------------------------------------------
# Fields


def fields(root):
    """The OSRecord fields a Linux root adds (all values clean)."""
    distro, from_release, edition = linux_identity(root)
    release = raw_facts.mapping(root.os_release)
    # The base product decided the distro: it also knows version and name.
    suse = ({} if edition is None
            else guest_formats.parse_suse_product(root.suse_baseproduct))
    major, minor = sanitize.clean_int(root.major), sanitize.clean_int(
        root.minor)
    if from_release or not (major or minor):
        parsed = parse_version(release.get('version_id'))
        if parsed != (0, 0):
            major, minor = parsed
    if not (major or minor) and edition is not None:
        major, minor = parse_version(suse.get('version'))
    product = linux_product_name(root.product_name, root.os_release)
    if not product and edition is not None:
        product = raw_facts.text(suse.get('summary'))
    if edition is None:
        edition = linux_edition(distro, root.os_release)
    # libguestfs' id is wrong whenever its distro was ('redhat-based9.4').
    fallback = (UNKNOWN if from_release
                else raw_facts.token(root.osinfo) or UNKNOWN)
    return dict(
        os_distro=distro,
        os_info=linux_osinfo(distro, major, minor, product, fallback),
        os_version_major=major,
        os_version_minor=minor,
        os_product_name=product,
        os_product_variant=raw_facts.text(root.product_variant, 64),
        os_edition=edition,
    )


def licence_rank(root):
    """How dear a Linux root's per-VM product is (0: none, then
    LICENCE_ORDER's order, 1-based)."""
    found = fields(root)
    names = (found['os_distro'], found['os_edition'])
    return max((rank for rank, name in enumerate(LICENCE_ORDER, 1)
                if name in names), default=0)


# The dearest a Linux root can be, whatever its files say.
DEAREST = (3, len(LICENCE_ORDER), 0)


def dearness(root):
    """How much a Linux root costs (see facts.dearness): licensed
    distributions above the others, then LICENCE_ORDER."""
    rank = licence_rank(root)
    return (3 if rank else 2, rank, 0)


def products(record, minimums):
    """[(product, edition, per-VM minimum)] of a Linux record: its
    LINUX_PRODUCTS name (else its os_distro), no core minimum."""
    return [(LINUX_PRODUCTS.get(record.os_distro, record.os_distro),
             record.os_edition, 0)]


def billing_notes(root):
    """Reason parts for values not taken at their word: none for Linux
    (its values only choose between products, the dearer being billed)."""
    return []
