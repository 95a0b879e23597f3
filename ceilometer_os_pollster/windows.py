"""Windows and SQL Server billing policy: registry values to OS fields.

Owns the Windows vocabulary the bill is written in: the libosinfo id of
each release (by build number), Server versus client, the edition names
of every EditionID, Windows 11's ProductName, and the SQL Server edition
ranking (the highest-priced edition of all instances is billed).
``fields(root)`` turns one Windows root's raw facts into OSRecord fields.
Pure code.
"""

import re

from ceilometer_os_pollster import guest_formats
from ceilometer_os_pollster import raw_facts
from ceilometer_os_pollster import sanitize

UNKNOWN = raw_facts.UNKNOWN

# --------------------------------------------------------------------------
# Windows releases


def windows_build(value):
    """CurrentBuildNumber as a string of digits ('' when unusable)."""
    match = re.match(r'[0-9]{1,9}', guest_formats.registry_text(value, 64))
    number = int(match.group()) if match else 0
    return str(number) if number else ''


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
    text = guest_formats.registry_text(raw, 64)
    if not text:
        return 0, ''
    for pattern, name, rank in _SQL_EDITIONS:
        if re.search(pattern, text, re.IGNORECASE):
            return rank, name
    return _SQL_UNKNOWN_RANK, text


# Billed when the instance list could not be read to its end: the
# highest edition sold today (Datacenter ended with SQL Server 2008 R2,
# and reading stops at it anyway).
SQL_ASSUMED_EDITION = 'Enterprise'


def sql_billed_edition(editions, complete):
    """The edition billed for a root: the highest among those read, or
    SQL_ASSUMED_EDITION when some were not read (fail safe: an edition
    listed late in a hostile registry is never hidden)."""
    if complete is not True:
        editions = list(editions if isinstance(editions, (list, tuple))
                        else ()) + [SQL_ASSUMED_EDITION]
    return sql_server_edition(editions)


def sql_note(root):
    """The reason part saying the SQL Server edition was assumed ('' when
    every instance was read)."""
    if root.sql_complete is True:
        return ''
    return ('SQL Server instance list not read to its end (too many '
            'names, or unreadable): billed as %s' % SQL_ASSUMED_EDITION)


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
# Fields


def fields(root):
    """The OSRecord fields a Windows root adds (all values clean)."""
    reg = raw_facts.mapping(root.windows)
    text, dword = guest_formats.registry_text, guest_formats.registry_dword
    edition_id = text(reg.get('editionid'), 64)
    installation = text(reg.get('installationtype'), 64)
    product = text(reg.get('productname')) or raw_facts.text(root.product_name)
    libguestfs_variant = raw_facts.text(root.product_variant, 64)
    variant = installation or libguestfs_variant
    build = (windows_build(reg.get('currentbuildnumber'))
             or windows_build(reg.get('currentbuild')))
    major = dword(reg.get('currentmajorversionnumber'))
    minor = dword(reg.get('currentminorversionnumber'))
    if major is None:
        major = sanitize.clean_int(root.major)
        minor = sanitize.clean_int(root.minor)
    major, minor = sanitize.clean_int(major), sanitize.clean_int(minor or 0)
    server = windows_is_server(installation, edition_id, libguestfs_variant,
                               product)
    build_number = int(build or 0)
    return dict(
        os_info=windows_osinfo(server, major, minor, build_number, product),
        os_version_major=major,
        os_version_minor=minor,
        os_build=build,
        os_product_name=windows_product_name(product, server, build_number),
        os_product_variant=variant,
        os_edition=windows_edition(edition_id, server, product),
        sql_server_edition=sql_billed_edition(root.sql_editions,
                                              root.sql_complete),
    )


# --------------------------------------------------------------------------
# Choosing between Windows roots

# InstallationType of Windows desktops; any other (Server, Server Core,
# or unknown) is billed as Windows Server.
CLIENT_VARIANTS = ('Client',)
# The dearest Windows Server edition: billed when an edition cannot be
# trusted or a bound hid part of the disks.
TOP_SERVER_EDITION = 'Datacenter'


def edition_rank(edition):
    """How much an os_edition costs, for choosing the dearest of several
    Windows roots: free (Evaluation, Hyper-V Server) < none read < other
    paid editions < Standard < Enterprise < Datacenter."""
    edition = sanitize.clean_text(edition, 64)
    if 'Evaluation' in edition or edition == 'Hyper-V':
        return 0
    if not edition:
        return 1
    if edition.startswith('Datacenter'):
        return 5
    if edition.startswith('Enterprise'):
        return 4
    if edition == 'Standard':
        return 3
    return 2
