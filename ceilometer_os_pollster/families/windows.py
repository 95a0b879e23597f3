"""Windows and SQL Server billing policy: registry values to OS fields.

Owns the Windows vocabulary the bill is written in: the libosinfo id of
each release (by build number), Server versus client, the edition names
of every EditionID, Windows 11's ProductName, and the SQL Server edition
ranking (the highest-priced edition of all instances is billed).
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
import unicodedata

from ceilometer_os_pollster.families import guest_formats
from ceilometer_os_pollster.families import raw_facts
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


# Builds no Windows client ever had: Server 2022 and Server 23H2 (the
# other LTSC builds are shared with Windows 10/11 releases).
SERVER_ONLY_BUILDS = {20348: 'Windows Server 2022',
                      25398: 'Windows Server 23H2'}

# Cyrillic, Greek and other letters drawn like Latin ones, as they come
# out of NFKC + casefold: 'Sеrver' with a Cyrillic 'е' must still read
# as 'server' when deciding what a value claims to be.
_LOOKALIKES = str.maketrans(
    # Cyrillic a b e e i i j k m h o p c t y x s d q w y h l, Greek a b e
    # n i k v o p t u x z, Armenian o u, Latin script g, dotless i.
    '\u0430\u0432\u0435\u0451\u0456\u0457\u0458\u043a'
    '\u043c\u043d\u043e\u0440\u0441\u0442\u0443\u0445'
    '\u0455\u0501\u051b\u051d\u04af\u04bb\u04cf\u03b1'
    '\u03b2\u03b5\u03b7\u03b9\u03ba\u03bd\u03bf\u03c1'
    '\u03c4\u03c5\u03c7\u03b6\u0585\u057d\u0261\u0131',
    'abeeiijkmhopctyxsdqwyhlabenikvoptuxzougi')


def edition_key(value):
    """A registry value as compared: Unicode NFKC (fullwidth and other
    compatibility forms become plain letters), case-folded."""
    return unicodedata.normalize('NFKC', value).casefold()


def _looks_like(value):
    """What a value looks like to a reader: edition_key with look-alike
    letters read as the Latin ones they imitate."""
    return edition_key(value).translate(_LOOKALIKES)


def _edition_id_says_server(edition_id):
    # 'ServerRdsh' is the *client* Enterprise multi-session.
    key = _looks_like(edition_id)
    return key.startswith('server') and key != 'serverrdsh'


def _server_sources(installation_type, edition_id, product_variant,
                    product_names, build):
    """Names of the values that say Windows Server."""
    sources = []
    if 'server' in _looks_like(installation_type):
        sources.append('InstallationType')
    if edition_id and _edition_id_says_server(edition_id):
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
    'cloud': 'S',                  # Windows 10 S
    'cloudedition': 'SE',          # Windows 11 SE
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

EVALUATION = ' Evaluation'
# Billed when EditionID names no known edition of the product line.
TOP_SERVER_EDITION = 'Datacenter'
TOP_CLIENT_EDITION = 'Enterprise'

# Edition words of a ProductName (look-alike-folded), dearest first:
# 'Storage' first because Storage Server names the edition after it.
_SERVER_NAME_EDITIONS = (('storage', 'Storage'),
                         ('datacenter', 'Datacenter'),
                         ('standard', 'Standard'),
                         ('essentials', 'Essentials'),
                         ('web', 'Web'),
                         ('foundation', 'Foundation'),
                         ('enterprise', 'Enterprise'))
_CLIENT_NAME_EDITIONS = (('enterprise', 'Enterprise'),
                         ('education', 'Education'),
                         ('pro', 'Professional'),
                         ('professional', 'Professional'),
                         ('home', 'Home'))

# Ranks within a product line, for the dearer of two readings.  Server:
# Datacenter > Standard > other paid > Hyper-V (free) > Evaluation.
# Client, by the family word of the edition.  An edition in neither
# table ranks with the dearest: a guess is never the cheaper reading.
_SERVER_RANKS = {'Datacenter': 6, 'Datacenter: Azure Edition': 6,
                 'Standard': 5, 'Enterprise': 4, 'Web': 4,
                 'Foundation': 4, 'Essentials': 4, 'Storage': 4,
                 'Azure Stack HCI': 4, 'Hyper-V': 1}
_CLIENT_RANKS = (('Enterprise', 4), ('IoT', 4), ('Ultimate', 4),
                 ('Education', 3), ('Professional', 2), ('Business', 2),
                 ('Home', 1), ('Starter', 1), ('S', 1), ('SE', 1))


def top_edition(server):
    """The edition billed for an EditionID that names none."""
    return TOP_SERVER_EDITION if server else TOP_CLIENT_EDITION


def is_evaluation(edition):
    return edition.endswith(EVALUATION)


def edition_rank(edition, server=True):
    """How dear an os_edition is within its product line (higher is
    dearer; -1 for no edition, 0 for Evaluation media)."""
    if not edition:
        return -1
    if is_evaluation(edition):
        return 0
    if server:
        return _SERVER_RANKS.get(edition, _SERVER_RANKS[TOP_SERVER_EDITION])
    words = edition.split()
    for word, rank in _CLIENT_RANKS:
        if word in words:
            return rank
    return _CLIENT_RANKS[0][1]


def windows_edition(edition_id, server=False, product_name=''):
    """os_edition from EditionID alone, e.g. 'ServerDatacenter' ->
    'Datacenter'.

    EditionID is compared after Unicode NFKC and case folding.
    Evaluation media keep the edition they evaluate ('Standard
    Evaluation', 'Datacenter Evaluation', and for clients 'Enterprise
    Evaluation', 'Enterprise LTSC Evaluation'): a hashmap can price both,
    and 'Evaluation' alone would hide which one it is.  All Storage Server
    IDs are 'Storage'.  An EditionID that is not a known edition
    (non-ASCII look-alikes included) is the top edition of its product
    line (top_edition): a raw string would match no price.  With no
    EditionID at all the edition word of the product name is used ('' if
    none).  What is billed also weighs the other values (fields()).
    """
    edition_id = sanitize.clean_text(edition_id, 64)
    if not edition_id:
        return _edition_from_name(server, product_name)
    name, _ = _known_edition(edition_key(edition_id))
    return name or top_edition(server or _edition_id_says_server(edition_id))


def _known_edition(key):
    """(os_edition, is a Server edition) of a normalised EditionID, or
    ('', None) when it is not a known edition."""
    if not key.isascii():
        return '', None
    name = _client_edition(key)
    if name:
        return name, False
    if key.endswith('eval'):
        # Client evaluation media: EnterpriseEval, EnterpriseSEval...
        name = _client_edition(key[:-len('eval')])
        if name:
            return name + EVALUATION, False
    match = _SERVER_EDITION_RE.fullmatch(key)
    if match:
        base, evaluation = match.group(1), match.group(2)
        if base.startswith('storage'):
            name = 'Storage'
        else:
            name = _SERVER_EDITIONS.get(base)
        if name:
            return (name + EVALUATION if evaluation else name), True
    return '', None


def _client_edition(key):
    """A client EditionID (lowercase, 'N' suffix allowed) or ''."""
    if key in _CLIENT_EDITIONS:
        return _CLIENT_EDITIONS[key]
    if key.endswith('n') and key[:-1] in _CLIENT_EDITIONS:
        return _CLIENT_EDITIONS[key[:-1]] + ' N'
    return ''


def _edition_from_name(server, product_name):
    """The dearest edition word of a product name ('' if none), with
    ' Evaluation' when the name says so."""
    text = _looks_like(product_name)
    words = _SERVER_NAME_EDITIONS if server else _CLIENT_NAME_EDITIONS
    for word, edition in words:
        if re.search(r'\b%s\b' % word, text):
            if re.search(r'\bevaluation\b', text):
                return edition + EVALUATION
            return edition
    return ''


def _shown(value, limit=32):
    """A guest value for the reason, in ASCII: other characters as
    <U+0430>, so that a look-alike is visible as one."""
    return ''.join(char if char.isascii() else '<U+%04X>' % ord(char)
                   for char in value[:limit])


def _base(edition):
    return edition[:-len(EVALUATION)] if is_evaluation(edition) else edition


def billed_edition(server, edition_id, product_names=(), legacy=False):
    """(os_edition, [notes]): the edition billed from EditionID and the
    product names, each note saying a value that was not taken at its
    word.

    - EditionID not a known edition (after NFKC and case folding; any
      non-ASCII character left is a look-alike), or a client edition on
      a Server: the top edition of the line (top_edition);
    - the product names naming a dearer edition than EditionID: that one;
    - Evaluation only when EditionID and every product name say the same
      Evaluation edition; otherwise the dearest reading without it;
    - no EditionID: the product names' edition; with none either, the top
      edition, unless ``legacy`` (no registry read, or Windows before
      Vista / Server 2008, which had no EditionID): ''.
    """
    top = top_edition(server)
    named = [r for r in dict.fromkeys(_edition_from_name(server, name)
                                      for name in product_names) if r]

    def rank(edition):
        return edition_rank(edition, server)

    if not edition_id:
        if not named:
            if legacy:
                return '', []
            return top, ['no EditionID: billed as %s' % top]
        billed = max((_base(r) for r in named), key=rank)
        if any(map(is_evaluation, named)):
            return billed, ['Evaluation not confirmed by EditionID '
                            '(none): billed as %s' % billed]
        return billed, []
    shown = _shown(edition_id)
    normalised = unicodedata.normalize('NFKC', edition_id)
    known, server_edition = _known_edition(edition_key(edition_id))
    if not known:
        return top, ['EditionID %s not a known edition: billed as %s'
                     % (shown, top)]
    if server and not server_edition:
        return top, ['EditionID %s is not a Windows Server edition: '
                     'billed as %s' % (shown, top)]
    notes = []
    if normalised != edition_id:
        notes.append('EditionID written in compatibility characters, '
                     'read as %s' % _shown(normalised))
    readings = [known] + named
    if any(map(is_evaluation, readings)) and not (
            named and all(is_evaluation(r) for r in readings)
            and len({rank(_base(r)) for r in readings}) == 1):
        billed = max((_base(r) for r in readings), key=rank)
        notes.append('Evaluation not confirmed by both EditionID (%s) and '
                     'ProductName (%s): billed as %s'
                     % (shown, ', '.join(named) or 'no edition', billed))
        return billed, notes
    billed = max(readings, key=rank)   # ties: EditionID's reading
    if billed != known:
        notes.append('ProductName says %s, EditionID %s: billed as %s'
                     % (billed, shown, billed))
    return billed, notes


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
    edition, edition_notes = billed_edition(server, edition_id, names,
                                            legacy)
    fields = dict(
        os_info=windows_osinfo(server, major, minor, build_number, product),
        os_version_major=major,
        os_version_minor=minor,
        os_build=build,
        os_product_name=windows_product_name(product, server, build_number),
        os_product_variant=variant,
        os_edition=edition,
        sql_server_edition=sql_billed_edition(root.sql_editions,
                                              root.sql_complete),
    )
    return fields, notes + edition_notes


def fields(root):
    """The OSRecord fields a Windows root adds (all values clean)."""
    return _reading(root)[0]


def billing_notes(root):
    """Short reason parts, one per registry value not taken at its word
    (empty for a guest whose values agree)."""
    return _reading(root)[1]


# InstallationType of Windows desktops; any other (Server, Server Core,
# or unknown) is billed as Windows Server.
CLIENT_VARIANTS = ('Client',)
