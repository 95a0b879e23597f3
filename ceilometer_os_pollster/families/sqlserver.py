"""SQL Server: which registry keys name its instances, how their
editions are read and ranked, and what the bill says of them.

Owns the keys both inspection methods read (SQL_SERVER_KEYS and the
keys under them), the walk over the instances with its bound
(``sql_editions``, fed by either method's hive reader), the edition
ranking (the highest-priced edition of all instances is billed), the
editions that are free, and the licence product with its per-VM core
minimum.  SQL Server is found in Windows roots only (``windows``).
No I/O of its own: the registry is read through the callables given.
"""

import logging
import re

from ceilometer_os_pollster.families import guest_formats
from ceilometer_os_pollster import sanitize

# The stdlib logger, not oslo_log's adapter: the commands that only
# price records (report, licence-report) import this module, and
# oslo_log would cost them ~1.5 MiB of imports for nothing.  oslo_log
# configures the same logging tree where it is set up (agent, worker).
LOG = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# What is read

# Under SOFTWARE: 64-bit SQL Server, then 32-bit SQL Server on 64-bit
# Windows.
SQL_SERVER_KEYS = (('Microsoft', 'Microsoft SQL Server'),
                   ('WOW6432Node', 'Microsoft', 'Microsoft SQL Server'))
# Under a SQL_SERVER_KEYS key: its instances, one value per instance.
INSTANCE_NAMES = ('Instance Names', 'SQL')
# Under <key>\<instance>: the value naming its edition.
SETUP = 'Setup'
EDITION_VALUE = 'Edition'
# SQL Server instance names read per guest: eighty times the 50
# instances Microsoft supports on one computer (three to seven appliance
# calls each, ~0.15 ms per call measured under TCG: seconds at most).
# More is a hostile or broken registry, billed as the highest edition
# (SQL_ASSUMED_EDITION) rather than left partly unread.
MAX_SQL_INSTANCE_NAMES = 4096

# --------------------------------------------------------------------------
# Editions

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
# Editions that need no licence: those ranked below an unknown one.
FREE_SQL_EDITIONS = tuple(name for _, name, rank in _SQL_EDITIONS
                          if rank < _SQL_UNKNOWN_RANK)


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
# The walk over the instances, whichever method reads the hive


def sql_editions(instance_names, edition_of, unreadable=(),
                 on_unreadable=None):
    """(Setup\\Edition of every SQL Server instance, deduplicated;
    whether every instance was read), whichever method reads the hive.

    ``instance_names`` yields (server key, INSTANCE_NAMES value as
    guest_formats.registry_value gives it) in registry order over
    SQL_SERVER_KEYS, lazily: it is not read past the bound.
    ``edition_of(server, instance)`` is that instance's SETUP\\
    EDITION_VALUE value or None.  Exceptions of the ``unreadable`` types
    mean the registry could not be read (``on_unreadable(exc)`` may
    re-raise when the reader itself is gone).

    Every instance is read, in registry order, and ranked afterwards by
    sql_server_edition.  The work stops early at an edition nothing can
    outrank (complete: no later one can change the result), or after
    MAX_SQL_INSTANCE_NAMES names or at an unreadable list (incomplete,
    logged): the caller then bills as if the unread rest held the
    highest edition, so no edition is hidden by listing it late.
    """
    editions = []
    seen = set()
    budget = MAX_SQL_INSTANCE_NAMES
    try:
        for server, name in instance_names:
            if budget <= 0:
                LOG.warning('more than %d SQL Server instance names in '
                            'the registry: billed as the highest '
                            'edition', MAX_SQL_INSTANCE_NAMES)
                return editions, False
            budget -= 1
            instance = guest_formats.registry_text(name)
            if not instance or instance in seen:
                continue
            seen.add(instance)
            edition = edition_of(server, instance)
            if edition and edition not in editions:
                editions.append(edition)
                if sql_edition(edition)[0] >= SQL_TOP_RANK:
                    return editions, True
    except unreadable as exc:
        if on_unreadable is not None:
            on_unreadable(exc)
        LOG.warning('SQL Server instances unreadable (%s): billed as the '
                    'highest edition', sanitize.clean_text(exc, 120))
        return editions, False
    return editions, True


# --------------------------------------------------------------------------
# Licence

SQL_SERVER = 'SQL Server'
# Microsoft Product Terms, licensing an individual virtual machine by
# core (SPLA likewise): SQL Server counts at least 4 cores per VM.
SQL_SERVER_MIN_CORES_PER_VM = 4


def products(record, minimum=SQL_SERVER_MIN_CORES_PER_VM):
    """[(SQL_SERVER, edition, per-VM minimum)] of a record with SQL
    Server ([] without); free editions have no minimum."""
    edition = record.sql_server_edition
    if not edition:
        return []
    return [(SQL_SERVER, edition,
             0 if edition in FREE_SQL_EDITIONS else minimum)]
