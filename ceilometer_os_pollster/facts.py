"""Raw facts gathered inside the appliance, and the policy that turns
them into one normalised OSRecord.

Everything here is pure: plain data in, an OSRecord out, no guestfs, no
libvirt, no files.  Values in RootFacts/ApplianceFacts are untrusted guest
data exactly as read; normalise() is where they are cleaned and bounded.

This module owns the billing vocabulary: which root counts, the
os_info ids (libosinfo short ids), Windows build/edition names, the
SQL Server edition ranking and the Linux os-release policy.
"""

import dataclasses
import re

from lxml import etree

from ceilometer_os_pollster import record
from ceilometer_os_pollster import sanitize


@dataclasses.dataclass
class RootFacts:
    """One operating-system root found by inspection (untrusted values)."""

    device: str                      # e.g. /dev/sda2, /dev/VG/LV
    disk_index: int = 0              # index into the drives added, 0 = boot
    type: str = 'unknown'            # libguestfs inspect_get_type
    distro: str = 'unknown'          # inspect_get_distro
    osinfo: str = 'unknown'          # inspect_get_osinfo
    product_name: str = ''           # inspect_get_product_name
    product_variant: str = ''        # inspect_get_product_variant
    arch: str = ''                   # inspect_get_arch
    major: int = 0                   # inspect_get_major_version
    minor: int = 0                   # inspect_get_minor_version
    # Linux: /etc/os-release key -> value (quotes already removed).
    os_release: dict = dataclasses.field(default_factory=dict)
    # Windows: values read from SOFTWARE\Microsoft\Windows NT\CurrentVersion
    # (EditionID, CurrentBuildNumber, DisplayVersion, InstallationType,
    # ProductName, CurrentMajorVersionNumber, CurrentMinorVersionNumber),
    # as str or bytes exactly as read.
    windows: dict = dataclasses.field(default_factory=dict)
    # SQL Server: edition strings of each instance found under
    # SOFTWARE\Microsoft\Microsoft SQL Server\<InstanceID>\Setup\Edition.
    sql_editions: list = dataclasses.field(default_factory=list)
    # SUSE: /etc/products.d/baseproduct as read (bytes, bounded): the
    # installed base product's .prod XML, which zypper and SUSEConnect
    # go by.  b'' when absent.
    suse_baseproduct: bytes = b''


@dataclasses.dataclass
class ApplianceFacts:
    """Everything one appliance session learned about one instance."""

    roots: list = dataclasses.field(default_factory=list)   # [RootFacts]
    # Devices whose vfs_type says crypto_LUKS / BitLocker.
    encrypted_devices: list = dataclasses.field(default_factory=list)
    # Number of drives added and filesystems seen (for 'unknown' reasons).
    drives: int = 0
    filesystems: int = 0
    # Non-fatal problems met while gathering (short, for the reason field).
    warnings: list = dataclasses.field(default_factory=list)
    # Optional: device -> vfs_type ('crypto_LUKS', 'BitLocker') of the
    # encrypted devices, so the reason can say which kind they are.
    encrypted_types: dict = dataclasses.field(default_factory=dict)


UNKNOWN = 'unknown'

# --------------------------------------------------------------------------
# Small cleaning helpers


def _token(value):
    """A lowercase identifier ('' for nothing usable or 'unknown')."""
    text = sanitize.clean_token(value).lower()
    return '' if text == UNKNOWN else text


def _text(value, limit=255):
    """Display text; libguestfs' 'unknown' placeholder becomes ''."""
    text = sanitize.clean_text(value, limit)
    return '' if text.lower() == UNKNOWN else text


def _int(value):
    return sanitize.clean_int(value)


def _mapping(value):
    """A dict with lowercase str keys; anything else is an empty dict."""
    if not isinstance(value, dict):
        return {}
    return {k.lower(): v for k, v in value.items() if isinstance(k, str)}


def _plural(count, word):
    return '%d %s%s' % (count, word, '' if count == 1 else 's')


# --------------------------------------------------------------------------
# Windows registry values


def registry_text(value, limit=255):
    """A REG_SZ value as clean text.

    Bytes holding a NUL byte and of even length are UTF-16LE, which is how
    the registry stores strings; the text ends at the first NUL.  Other
    bytes and str go to sanitize.clean_text as they are.
    """
    if isinstance(value, bool):
        return ''
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value)
        if b'\x00' in value and len(value) % 2 == 0:
            value = value.decode('utf-16-le', 'replace').split('\x00')[0]
    return sanitize.clean_text(value, limit)


def registry_dword(value):
    """A REG_DWORD (int, 4 little-endian bytes, or decimal/0x text).

    Returns None when the value is absent or not a DWORD, so callers can
    fall back to another source.  8 bytes (REG_QWORD) are accepted too.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if 0 <= value < 2 ** 64 else None
    if isinstance(value, (bytes, bytearray)):
        if len(value) in (4, 8):
            return int.from_bytes(bytes(value), 'little')
        return None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r'[0-9]{1,10}', text):
            return int(text)
        if re.fullmatch(r'0[xX][0-9a-fA-F]{1,8}', text):
            return int(text, 16)
    return None


def windows_build(value):
    """CurrentBuildNumber as a string of digits ('' when unusable)."""
    match = re.match(r'[0-9]{1,9}', registry_text(value, 64))
    number = int(match.group()) if match else 0
    return str(number) if number else ''


# --------------------------------------------------------------------------
# Windows policy

# Long-term servicing Server releases, all NT 10.0: the build number is
# the only reliable tell (ProductName is guest-editable and libguestfs
# 1.48 reports 2025 as win2k16).  Servicing changes UBR, never the build,
# so an exact match is right; Semi-Annual Channel and future builds are
# deliberately absent (see windows_osinfo).
SERVER_BUILDS = {
    14393: 'win2k16',
    17763: 'win2k19',
    20348: 'win2k22',
    26100: 'win2k25',
}
FIRST_WIN10_BUILD = 10240
FIRST_WIN11_BUILD = 22000

# (major, minor) -> (server id, client id) for NT before 10.0.
_OLD_NT = {
    (6, 3): ('win2k12r2', 'win8.1'),
    (6, 2): ('win2k12', 'win8'),
    (6, 1): ('win2k8r2', 'win7'),
    (6, 0): ('win2k8', 'winvista'),
    (5, 1): ('winxp', 'winxp'),
    (5, 0): ('win2k', 'win2k'),
}


def windows_is_server(installation_type='', edition_id='',
                      product_variant='', product_name=''):
    """Whether a Windows root is a Server release.

    InstallationType is authoritative when present ('Server', 'Server
    Core', 'Nano Server' vs 'Client'); note EditionID 'ServerRdsh' is the
    *client* Enterprise multi-session.  Then EditionID, then libguestfs'
    product variant, then the product name.
    """
    if installation_type:
        return 'server' in installation_type.lower()
    edition = edition_id.lower()
    if edition:
        return edition.startswith('server') and edition != 'serverrdsh'
    if product_variant:
        return 'server' in product_variant.lower()
    return 'server' in product_name.lower()


def windows_osinfo(server, major, minor, build=0, product_name=''):
    """libosinfo short id of a Windows release, or 'unknown'.

    NT 10.0 Server is mapped by exact LTSC build (SERVER_BUILDS).  An
    unknown Server build (a newer release, Semi-Annual Channel, preview)
    is 'unknown' rather than the nearest known id: a wrong id would be
    billed silently, whereas 'unknown' with the true os_build and
    os_product_name shows up for review.  Without any build (registry
    unreadable) the year in the product name is used.  NT 10.0 clients
    are win11 from build 22000, win10 from 10240; without a build only a
    product name saying 'Windows 11' is trusted, because Windows 11 still
    calls itself 'Windows 10'.  libguestfs' own osinfo is never used for
    Windows: 1.48 says win2k16 for Server 2025 and win10 for Windows 11.
    """
    if (major, minor) == (10, 0):
        if server:
            if build:
                return SERVER_BUILDS.get(build, UNKNOWN)
            year = re.search(r'\b(2016|2019|2022|2025)\b', product_name)
            if year:
                return 'win2k' + year.group(1)[2:]
            return UNKNOWN
        if build >= FIRST_WIN11_BUILD:
            return 'win11'
        if build >= FIRST_WIN10_BUILD:
            return 'win10'
        if not build and re.search(r'\bWindows 11\b', product_name):
            return 'win11'
        return UNKNOWN
    if (major, minor) == (5, 2):
        # Server 2003 (R2) and XP x64 share NT 5.2.
        if not server:
            return 'winxp'
        return 'win2k3r2' if re.search(r'\bR2\b', product_name) else 'win2k3'
    ids = _OLD_NT.get((major, minor))
    if ids is None:
        return UNKNOWN
    return ids[0] if server else ids[1]


def windows_product_name(product_name, server, build):
    """The guest's ProductName, with 'Windows 10' -> 'Windows 11' for
    client builds >= 22000.

    Microsoft never updated ProductName for Windows 11; reporting
    'Windows 10 Pro' for a Windows 11 guest would mislead whoever reads
    the billing report, and the build number makes the fix certain.
    """
    if not server and build >= FIRST_WIN11_BUILD:
        return re.sub(r'\bWindows 10\b', 'Windows 11', product_name, count=1)
    return product_name


# EditionID -> os_edition for client and special IDs (lowercase keys).
# An 'N' suffix (no media player, EU) is handled generically.
_CLIENT_EDITIONS = {
    'professional': 'Professional',
    'professionalworkstation': 'Professional Workstation',
    'professionaleducation': 'Professional Education',
    'professionalsinglelanguage': 'Professional Single Language',
    'professionalcountryspecific': 'Professional China',
    'enterprise': 'Enterprise',
    'enterprises': 'Enterprise LTSC',
    'enterpriseg': 'Enterprise G',
    'education': 'Education',
    'core': 'Home',
    'coresinglelanguage': 'Home Single Language',
    'corecountryspecific': 'Home China',
    'iotenterprise': 'IoT Enterprise',
    'iotenterprises': 'IoT Enterprise LTSC',
    'serverrdsh': 'Enterprise multi-session',
    'ultimate': 'Ultimate',
    'homepremium': 'Home Premium',
    'homebasic': 'Home Basic',
    'starter': 'Starter',
    'business': 'Business',
}

# Server<Base>[Eval][ACor|Cor|Core|Nano]: Base -> os_edition.  Core/Nano
# suffixes say how it is installed (os_product_variant has that), not
# what licence it needs, so they are dropped.
_SERVER_EDITION_RE = re.compile(
    r'server([a-z]+?)(eval)?(acor|cor|core|nano)?')
_SERVER_EDITIONS = {
    'standard': 'Standard',
    'datacenter': 'Datacenter',
    'enterprise': 'Enterprise',
    'web': 'Web',
    'foundation': 'Foundation',
    'solution': 'Essentials',      # Server 2012+ Essentials
    'essentials': 'Essentials',
    'hyper': 'Hyper-V',            # free Hyper-V Server
    'azurestackhci': 'Azure Stack HCI',
    'turbine': 'Datacenter: Azure Edition',
}

# Fallback when EditionID could not be read: words of the ProductName.
_SERVER_NAME_EDITIONS = ('Datacenter', 'Standard', 'Essentials', 'Web',
                         'Foundation', 'Enterprise')
_CLIENT_NAME_EDITIONS = (('Pro', 'Professional'),
                         ('Enterprise', 'Enterprise'),
                         ('Education', 'Education'),
                         ('Home', 'Home'))


def windows_edition(edition_id, server=False, product_name=''):
    """os_edition from EditionID, e.g. 'ServerDatacenter' -> 'Datacenter'.

    Evaluation media keep the edition they evaluate ('Standard
    Evaluation', 'Datacenter Evaluation', and for clients 'Enterprise
    Evaluation', 'Enterprise LTSC Evaluation'): a hashmap can price both,
    and 'Evaluation' alone would hide which one it is.  All Storage Server
    IDs are 'Storage'.  An EditionID not in the tables is reported as the
    cleaned raw ID so nothing is silently lost.  With no EditionID at all
    the edition word of the product name is used ('' if none).
    """
    edition_id = sanitize.clean_text(edition_id, 64)
    key = edition_id.lower()
    if not key:
        return _edition_from_name(server, product_name)
    name = _client_edition(key)
    if name:
        return name
    if key.endswith('eval'):
        # Client evaluation media: EnterpriseEval, EnterpriseSEval...
        name = _client_edition(key[:-len('eval')])
        if name:
            return name + ' Evaluation'
    match = _SERVER_EDITION_RE.fullmatch(key)
    if match:
        base, evaluation = match.group(1), match.group(2)
        if base.startswith('storage'):
            name = 'Storage'
        else:
            name = _SERVER_EDITIONS.get(base)
        if name:
            return name + ' Evaluation' if evaluation else name
    return edition_id


def _client_edition(key):
    """A client EditionID (lowercase, 'N' suffix allowed) or ''."""
    if key in _CLIENT_EDITIONS:
        return _CLIENT_EDITIONS[key]
    if key.endswith('n') and key[:-1] in _CLIENT_EDITIONS:
        return _CLIENT_EDITIONS[key[:-1]] + ' N'
    return ''


def _edition_from_name(server, product_name):
    if server:
        for word in _SERVER_NAME_EDITIONS:
            if re.search(r'\b%s\b' % word, product_name):
                if re.search(r'\bEvaluation\b', product_name):
                    return word + ' Evaluation'
                return word
        return ''
    for word, edition in _CLIENT_NAME_EDITIONS:
        if re.search(r'\b%s\b' % word, product_name):
            if re.search(r'\bEvaluation\b', product_name):
                return edition + ' Evaluation'
            return edition
    return ''


# --------------------------------------------------------------------------
# SQL Server

# (pattern, canonical name, rank): the first pattern that matches names
# the edition; the highest rank is reported.  Free editions come first in
# the matching ('Enterprise Evaluation Edition' is free) and last in the
# ranking.  An unknown edition ranks below every known paid one (a known
# price beats a guess) but above the free ones (so an unrecognised,
# possibly paid, edition is not hidden behind a free one).
_SQL_EDITIONS = (
    (r'\bevaluation\b', 'Evaluation', 3),
    (r'\bdeveloper\b', 'Developer', 2),
    (r'\bexpress\b', 'Express', 1),
    (r'\bbusiness intelligence\b', 'Business Intelligence', 8),
    (r'\bdata ?center\b', 'Datacenter', 10),      # SQL Server 2008 R2
    (r'\benterprise\b', 'Enterprise', 9),
    (r'\bstandard\b', 'Standard', 7),
    (r'\bworkgroup\b', 'Workgroup', 6),           # up to 2008 R2
    (r'\bweb\b', 'Web', 5),
)
_SQL_UNKNOWN_RANK = 4
# Nothing outranks it: reading more instances cannot change the result.
SQL_TOP_RANK = max(rank for _, _, rank in _SQL_EDITIONS)


def sql_edition(raw):
    """(rank, canonical name) of one Setup\\Edition string.

    Unknown strings keep their cleaned raw value; empty ones are (0, '').
    """
    text = registry_text(raw, 64)
    if not text:
        return 0, ''
    for pattern, name, rank in _SQL_EDITIONS:
        if re.search(pattern, text, re.IGNORECASE):
            return rank, name
    return _SQL_UNKNOWN_RANK, text


def sql_server_edition(editions):
    """The highest-priced edition among all instances ('' when none).

    Ties (only possible between unknown strings) go to the
    alphabetically first name, so the result does not depend on the
    order the registry listed the instances in.
    """
    if not isinstance(editions, (list, tuple)):
        return ''
    found = [sql_edition(raw) for raw in editions]
    found = [item for item in found if item[1]]
    if not found:
        return ''
    return min(found, key=lambda item: (-item[0], item[1]))[1]


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
# Distros whose subscription costs money per VM.
LICENSED_DISTROS = ('rhel', 'sles', 'slem')


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
    distro = _token(distro)
    if distro not in _VAGUE_DISTROS:
        return distro, False
    release_id = _token(_mapping(os_release).get('id'))
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


_SUSE_PRODUCT_FIELDS = ('name', 'version', 'summary')


def parse_suse_product(data):
    """{name, version, summary} of a SUSE .prod file; {} if unusable.

    The file is guest data: no DTD, no entities, no network, lxml's size
    limits on, only the few text fields kept (still untrusted).
    """
    if not isinstance(data, (bytes, bytearray)) or not data:
        return {}
    parser = etree.XMLParser(resolve_entities=False, no_network=True,
                             huge_tree=False, load_dtd=False,
                             remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(bytes(data), parser)
    except (etree.LxmlError, ValueError):
        return {}
    if root.getroottree().docinfo.doctype or root.tag != 'product':
        return {}
    found = {}
    for field in _SUSE_PRODUCT_FIELDS:
        child = root.find(field)
        if child is not None and child.text:
            found[field] = child.text
    return found


def suse_product(distro, baseproduct):
    """(os_distro, os_edition) from a SUSE base product, or None.

    Only for a SUSE or vague distro (see _SUSE_DISTROS) and a product
    name SUSE sells (_SUSE_PRODUCTS); anything else leaves the decision
    to libguestfs and os-release.
    """
    if distro not in _SUSE_DISTROS + _VAGUE_DISTROS:
        return None
    name = _token(parse_suse_product(baseproduct).get('name'))
    return _SUSE_PRODUCTS.get(name)


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
    release = _mapping(os_release)
    release_id = _token(release.get('id'))
    if release_id in _OS_RELEASE_EDITIONS:
        return _OS_RELEASE_EDITIONS[release_id]
    if distro == 'rhel':
        return _RHEL_VARIANTS.get(_token(release.get('variant_id')), '')
    return ''


def linux_product_name(product_name, os_release):
    """libguestfs' product name, else os-release PRETTY_NAME.

    A product name without any letter is not a name: libguestfs gives
    Debian's /etc/debian_version ('12.5'), so PRETTY_NAME wins there.
    """
    name = _text(product_name)
    if re.search(r'[^\W\d_]', name):
        return name
    pretty = _text(_mapping(os_release).get('pretty_name'))
    return pretty or name


# --------------------------------------------------------------------------
# Root choice


def os_family(root):
    """Cleaned libguestfs type ('windows', 'linux', ...) or 'unknown'."""
    return _token(root.type) or UNKNOWN


def licence_weight(root):
    """How much a root's OS tends to cost: the higher, the more likely it
    is the one that needs a licence."""
    family = os_family(root)
    if family == 'windows':
        return 4
    if family == 'linux':
        distro = linux_identity(root)[0]
        return 3 if distro in LICENSED_DISTROS else 2
    return 0 if family == UNKNOWN else 1


def choose_root(roots):
    """The root that is billed, or None when no root is usable.

    Policy, in order:
    1. a root libguestfs could not even type ('unknown') is not usable;
    2. a root on the boot disk (disk_index 0) beats roots on other disks,
       so a Windows data volume attached to a Linux VM does not make it a
       Windows VM;
    3. among those, the OS that costs more: Windows, then RHEL/SLES, then
       other Linux, then other known systems (BSD, DOS, ...);
    4. ties (e.g. two Linux roots) go to the first device name, so the
       result is deterministic.
    """
    usable = [root for root in roots or ()
              if isinstance(root, RootFacts) and os_family(root) != UNKNOWN]
    if not usable:
        return None
    return min(usable, key=lambda root: (
        sanitize.clean_int(root.disk_index, default=1) != 0,
        -licence_weight(root),
        sanitize.clean_text(root.device)))


# --------------------------------------------------------------------------
# Status reasons

_ENCRYPTION_KINDS = (('crypto_luks', 'LUKS'), ('bitlocker', 'BitLocker'))


def encryption_summary(devices, types=None):
    """'1 LUKS volume', '2 LUKS volumes, 1 BitLocker volume', or
    '1 encrypted volume' when the kind is not known."""
    types = types if isinstance(types, dict) else {}
    counts = {}
    for device in devices or ():
        kind = _token(types.get(device))
        label = dict(_ENCRYPTION_KINDS).get(kind, 'encrypted')
        counts[label] = counts.get(label, 0) + 1
    order = [label for _, label in _ENCRYPTION_KINDS] + ['encrypted']
    return ', '.join(_plural(counts[label], label + ' volume')
                     for label in order if label in counts)


def unknown_reason(facts):
    """Why no OS was reported, from the counts the appliance gathered."""
    roots = [r for r in facts.roots or () if isinstance(r, RootFacts)]
    if roots:
        if len(roots) == 1:
            return ('operating system on %s not recognised'
                    % sanitize.clean_text(roots[0].device, 64))
        return 'no recognisable operating system among %d roots' % len(
            roots)
    drives = _int(facts.drives)
    filesystems = _int(facts.filesystems)
    if not drives:
        return 'no disk to inspect'
    if not filesystems:
        return 'no filesystem found on %s' % _plural(drives, 'disk')
    return 'no operating system found on %s (%s)' % (
        _plural(drives, 'disk'), _plural(filesystems, 'filesystem'))


def _reason(*parts):
    return sanitize.clean_text('; '.join(p for p in parts if p))


def _warnings(facts):
    if not isinstance(facts.warnings, (list, tuple)):
        return ''
    return '; '.join(filter(None, (sanitize.clean_text(w, 120)
                                   for w in facts.warnings)))


# --------------------------------------------------------------------------
# Per-family fields


def _windows_fields(root):
    reg = _mapping(root.windows)
    edition_id = registry_text(reg.get('editionid'), 64)
    installation = registry_text(reg.get('installationtype'), 64)
    product = (registry_text(reg.get('productname'))
               or _text(root.product_name))
    variant = installation or _text(root.product_variant, 64)
    build = (windows_build(reg.get('currentbuildnumber'))
             or windows_build(reg.get('currentbuild')))
    major = registry_dword(reg.get('currentmajorversionnumber'))
    minor = registry_dword(reg.get('currentminorversionnumber'))
    if major is None:
        major, minor = _int(root.major), _int(root.minor)
    major, minor = _int(major), _int(minor or 0)
    server = windows_is_server(installation, edition_id,
                               _text(root.product_variant, 64), product)
    build_number = int(build or 0)
    return dict(
        os_info=windows_osinfo(server, major, minor, build_number, product),
        os_version_major=major,
        os_version_minor=minor,
        os_build=build,
        os_product_name=windows_product_name(product, server, build_number),
        os_product_variant=variant,
        os_edition=windows_edition(edition_id, server, product),
        sql_server_edition=sql_server_edition(root.sql_editions),
    )


def _linux_fields(root):
    distro, from_release, edition = linux_identity(root)
    release = _mapping(root.os_release)
    major, minor = _int(root.major), _int(root.minor)
    if from_release or not (major or minor):
        parsed = parse_version(release.get('version_id'))
        if parsed != (0, 0):
            major, minor = parsed
    if not (major or minor) and edition is not None:
        major, minor = parse_version(parse_suse_product(
            root.suse_baseproduct).get('version'))
    product = linux_product_name(root.product_name, root.os_release)
    if not product and edition is not None:
        product = _text(parse_suse_product(
            root.suse_baseproduct).get('summary'))
    if edition is None:
        edition = linux_edition(distro, root.os_release)
    # libguestfs' id is wrong whenever its distro was ('redhat-based9.4').
    fallback = UNKNOWN if from_release else _token(root.osinfo) or UNKNOWN
    return dict(
        os_distro=distro,
        os_info=linux_osinfo(distro, major, minor, product, fallback),
        os_version_major=major,
        os_version_minor=minor,
        os_product_name=product,
        os_product_variant=_text(root.product_variant, 64),
        os_edition=edition,
    )


def _other_fields(root):
    return dict(
        os_info=_token(root.osinfo) or UNKNOWN,
        os_version_major=_int(root.major),
        os_version_minor=_int(root.minor),
        os_product_name=_text(root.product_name),
        os_product_variant=_text(root.product_variant, 64),
    )


def root_fields(root):
    """The OSRecord fields describing one root (all values clean)."""
    family = os_family(root)
    fields = dict(os_family=family,
                  os_distro=_token(root.distro) or UNKNOWN,
                  os_arch=_token(root.arch))
    if family == 'windows':
        fields.update(_windows_fields(root))
    elif family == 'linux':
        fields.update(_linux_fields(root))
    else:
        fields.update(_other_fields(root))
    return fields


# --------------------------------------------------------------------------


def normalise(facts, instance_id, fingerprint='', duration=0.0, now=None):
    """The one OSRecord for an instance, from what the appliance saw.

    - a usable root (see choose_root) -> 'ok', described by that root; the
      reason notes other roots, encrypted volumes and warnings;
    - no usable root but encrypted volumes -> 'encrypted', the reason
      counts them ('1 LUKS volume');
    - otherwise -> 'unknown', the reason says what was seen.
    Failures of the appliance itself are the engine's (OSRecord.failed).
    """
    base = dict(instance_id=instance_id, fingerprint=fingerprint,
                duration=duration, inspected_at=record.utc_timestamp(now))
    roots = [r for r in facts.roots or () if isinstance(r, RootFacts)]
    encrypted = encryption_summary(facts.encrypted_devices,
                                   facts.encrypted_types)
    warnings = _warnings(facts)
    root = choose_root(roots)
    if root is None:
        if encrypted:
            return record.OSRecord(status=record.STATUS_ENCRYPTED,
                                   reason=_reason(encrypted, warnings),
                                   **base)
        return record.OSRecord(status=record.STATUS_UNKNOWN,
                               reason=_reason(unknown_reason(facts),
                                              warnings),
                               **base)
    others = ''
    if len(roots) > 1:
        others = '%d operating systems found, reporting %s' % (
            len(roots), sanitize.clean_text(root.device, 64))
    if encrypted:
        encrypted += ' not inspected'
    return record.OSRecord(status=record.STATUS_OK,
                           reason=_reason(others, encrypted, warnings),
                           **base, **root_fields(root))
