"""Windows: what a Windows root is, what is read in it, and how its
registry values become the bill.

Owns the Windows family: how a root scanned by hand is recognised (a
SOFTWARE hive under SYSTEM_ROOTS) and which registry values both
inspection methods read in it (CURRENT_VERSION, WINDOWS_VALUES), the
libosinfo id of each release (by build number), Server versus client
(``billed_as_server`` is the one rule every report uses), the record's
fields and the licence products with their per-VM core minimum.
Editions are ``windows_editions``' and SQL Server ``sqlserver``'s.
``fields(root)`` turns one Windows root's raw facts into OSRecord fields
and ``billing_notes(root)`` says, for the reason, every registry value
that was not taken at its word.

Every value read here was written by the tenant, so a value that is odd
(unknown, look-alike characters) or that disagrees with another one can
only make the bill dearer: Server wins over client, the dearer edition
wins, and Evaluation is free only when every value agrees on it.
Pure code.
"""

import re

from ceilometer_os_pollster.families import guest_formats
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster.families import sqlserver
from ceilometer_os_pollster.families import windows_editions as editions
from ceilometer_os_pollster import sanitize

UNKNOWN = raw_facts.UNKNOWN
_looks_like = editions.looks_like
_shown = editions.visible
# os_family of a Windows root (libguestfs' inspect_get_type), and its
# os_distro (inspect_get_distro).
NAME = 'windows'
DISTRO = 'windows'

# --------------------------------------------------------------------------
# What both inspection methods read

# A filesystem scanned by hand is a Windows root when it holds a
# SOFTWARE hive here (names compared as the filesystem does).
SYSTEM_ROOTS = ('/Windows', '/WINNT')
SOFTWARE_HIVE = '/System32/config/SOFTWARE'
# The key under SOFTWARE, and its values read.
CURRENT_VERSION = ('Microsoft', 'Windows NT', 'CurrentVersion')
WINDOWS_VALUES = ('ProductName', 'EditionID', 'InstallationType',
                  'CurrentBuildNumber', 'CurrentBuild', 'DisplayVersion',
                  'CurrentMajorVersionNumber', 'CurrentMinorVersionNumber')


def scanned_root(device, disk_index):
    """The RootFacts of a filesystem scanned by hand that holds a
    SOFTWARE hive: a Windows root, its registry values still to read."""
    return raw_facts.RootFacts(device=device, type=NAME, distro=DISTRO,
                               disk_index=disk_index)


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


# Builds no Windows client ever had: Server 2022 and Server 23H2 (the
# other LTSC builds are shared with Windows 10/11 releases).
SERVER_ONLY_BUILDS = {20348: 'Windows Server 2022',
                      25398: 'Windows Server 23H2'}


def _server_sources(installation_type, edition_id, product_variant,
                    product_names, build):
    """Names of the values that say Windows Server."""
    sources = []
    if 'server' in _looks_like(installation_type):
        sources.append('InstallationType')
    if edition_id and editions.edition_id_says_server(edition_id):
        sources.append('EditionID')
    if any('server' in _looks_like(name) for name in product_names):
        sources.append('ProductName')
    if ('server' in _looks_like(product_variant)
            and 'InstallationType' not in sources):
        sources.append('product variant')
    if build in SERVER_ONLY_BUILDS:
        sources.append('build %d' % build)
    return sources


def windows_is_server(installation_type='', edition_id='',
                      product_variant='', product_name='', build=0):
    """Whether a Windows root is billed as a Server release.

    Server as soon as any value says so (InstallationType 'Server',
    'Server Core', 'Nano Server'; an EditionID Server*; libguestfs'
    product variant; the product name; a build only Server had): these
    values are the tenant's, and reading a server as a client would skip
    the 8-core minimum.  EditionID 'ServerRdsh' is the *client* Windows
    Enterprise multi-session.
    """
    return bool(_server_sources(installation_type, edition_id,
                                product_variant, [product_name], build))


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


# --------------------------------------------------------------------------
# Fields


_CLIENT_NAME_RE = re.compile(r'\bwindows (xp|vista|7|8|8\.1|10|11)\b')


def _server_note(sources, installation, product_variant, product_names):
    """The note when a Windows root is billed as Server although a value
    says client ('' when none does)."""
    said_client = []
    for label, value in (('InstallationType', installation),
                         ('product variant', product_variant)):
        if value and 'server' not in _looks_like(value) and value not in (
                seen for _, seen in said_client):
            said_client.append((label, value))
    said_client = ['%s %s' % (label, _shown(value))
                   for label, value in said_client]
    if 'ProductName' not in sources and any(
            _CLIENT_NAME_RE.search(_looks_like(name))
            for name in product_names):
        said_client.append('ProductName (client)')
    if not said_client:
        return ''
    return '%s, but %s say Server: billed as Windows Server' % (
        ', '.join(said_client), ', '.join(sources))


def _reading(root):
    """(OSRecord fields, notes) of one Windows root."""
    reg = raw_facts.mapping(root.windows)
    text, dword = guest_formats.registry_text, guest_formats.registry_dword
    edition_id = text(reg.get('editionid'), 64)
    installation = text(reg.get('installationtype'), 64)
    # ProductName as read here and as libguestfs read it: both must agree.
    names = [name for name in dict.fromkeys(
        (text(reg.get('productname')), raw_facts.text(root.product_name)))
        if name]
    product = names[0] if names else ''
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
    build_number = int(build or 0)
    sources = _server_sources(installation, edition_id, libguestfs_variant,
                              names, build_number)
    server = bool(sources)
    notes = []
    if server:
        note = _server_note(sources, installation, libguestfs_variant, names)
        if note:
            notes.append(note)
        elif sources == ['build %d' % build_number]:
            notes.append('build %d is %s only: billed as Windows Server'
                         % (build_number, SERVER_ONLY_BUILDS[build_number]))
        if variant and 'server' not in _looks_like(variant):
            # 'Client' would skip the Server core minimum (report.py).
            variant = 'Server'
    # EditionID exists from Vista / Server 2008 (NT 6.0) on.
    legacy = not reg or (0 < major < 6)
    edition, edition_notes = editions.billed_edition(server, edition_id,
                                                     names, legacy)
    fields = dict(
        os_info=windows_osinfo(server, major, minor, build_number, product),
        os_version_major=major,
        os_version_minor=minor,
        os_build=build,
        os_product_name=windows_product_name(product, server, build_number),
        os_product_variant=variant,
        os_edition=edition,
        sql_server_edition=sqlserver.sql_billed_edition(
            root.sql_editions, root.sql_complete),
    )
    return fields, notes + edition_notes


def fields(root):
    """The OSRecord fields a Windows root adds (all values clean)."""
    return _reading(root)[0]


def billing_notes(root):
    """Short reason parts, one per registry value not taken at its word
    (empty for a guest whose values agree)."""
    return _reading(root)[1]


# --------------------------------------------------------------------------
# Server or client, and the licence

# InstallationType of Windows desktops; any other (Server, Server Core,
# or unknown) is billed as Windows Server.  fields() says 'Client' only
# when no registry value says Server.
CLIENT_VARIANTS = ('Client',)


def billed_as_server(product_variant):
    """Whether a record's os_product_variant is billed as Windows Server
    (better over- than under-report: anything but a client variant)."""
    return product_variant not in CLIENT_VARIANTS


WINDOWS_SERVER = 'Windows Server'
WINDOWS_CLIENT = 'Windows'
# Microsoft Product Terms, licensing an individual virtual machine by
# core (SPLA likewise): Windows Server counts at least 8 cores per VM.
WINDOWS_SERVER_MIN_CORES_PER_VM = 8
# fields() says an Evaluation edition only when EditionID and
# ProductName agree.
FREE_WINDOWS_EDITIONS = ('Standard Evaluation', 'Datacenter Evaluation')


def products(record, minimums):
    """[(product, edition, per-VM minimum)] of a Windows record:
    Windows Server (``minimums.windows_server`` cores unless the edition
    is free) or a Windows client (no minimum)."""
    edition = record.os_edition
    if billed_as_server(record.os_product_variant):
        return [(WINDOWS_SERVER, edition,
                 0 if edition in FREE_WINDOWS_EDITIONS
                 else minimums.windows_server)]
    return [(WINDOWS_CLIENT, edition, 0)]


def dearness(root):
    """How much a Windows root costs (see facts.dearness): Server above
    clients, then the edition, then the SQL Server edition."""
    found = fields(root)
    server = billed_as_server(found['os_product_variant'])
    return (5 if server else 4,
            editions.edition_rank(found['os_edition'], server),
            sqlserver.sql_edition(found['sql_server_edition'])[0])
