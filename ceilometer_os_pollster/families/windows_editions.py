"""Windows editions: what EditionID and ProductName say the edition is.

Owns the edition vocabulary the bill is written in: the edition name of
every EditionID (client, Server, Evaluation media), the edition words
of a ProductName, the ranking within a product line (the dearer of two
readings is billed) and the look-alike folding that keeps a value
written with letters of other scripts from reading as something
cheaper.  ``billed_edition`` weighs EditionID against the product names;
``windows`` decides Server versus client and builds the record's fields.
Pure code.
"""

import re
import unicodedata

from ceilometer_os_pollster import sanitize

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


def looks_like(value):
    """What a value looks like to a reader: edition_key with look-alike
    letters read as the Latin ones they imitate."""
    return edition_key(value).translate(_LOOKALIKES)


def edition_id_says_server(edition_id):
    # 'ServerRdsh' is the *client* Enterprise multi-session.
    key = looks_like(edition_id)
    return key.startswith('server') and key != 'serverrdsh'


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
    return name or top_edition(server or edition_id_says_server(edition_id))


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
    text = looks_like(product_name)
    words = _SERVER_NAME_EDITIONS if server else _CLIENT_NAME_EDITIONS
    for word, edition in words:
        if re.search(r'\b%s\b' % word, text):
            if re.search(r'\bevaluation\b', text):
                return edition + EVALUATION
            return edition
    return ''


def visible(value, limit=32):
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
    shown = visible(edition_id)
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
                     'read as %s' % visible(normalised))
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
