"""The cache's files: what one record file holds, how it is read back,
and which directories root may keep them in.

Pure code.  ``<cache_dir>/<instance_id>.json`` holds one ``Entry``::

    {"schema": record.SCHEMA_VERSION, "record": OSRecord.to_dict(),
     "expires_at": float, "failures": int, "retry_at": float,
     "last_seen": float}

(scheduling state lives beside the record, not in it).  A file is not
ours alone (a CLI, another agent, an operator may write it): whatever
is decoded is checked field by field, its record cleaned again like
guest data and its times clamped to what the scheduler can write.
"""

import dataclasses
import json
import math
import re
import stat

from ceilometer_os_pollster import record as record_mod

SUFFIX = '.json'
LOCK_DIR = '.locks'
# A record is a few KiB at most (17 fields of <= 255 characters).
MAX_FILE_BYTES = 64 * 1024
FILE_MODE = 0o644
DIR_MODE = 0o750
# Run as root, cache_dir must be ours alone (see root_refusal).
_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH

_ID_RE = re.compile(r'\A[A-Za-z0-9][A-Za-z0-9-]{0,63}\Z')
_FIELDS = frozenset(('schema', 'record', 'expires_at', 'failures',
                     'retry_at', 'last_seen'))
_TIMES = ('expires_at', 'retry_at', 'last_seen')


def valid_instance_id(instance_id):
    """UUID-like: letters, digits and dashes, at most 64 characters.

    Instance ids become file names, so nothing else may pass.
    """
    return isinstance(instance_id, str) and bool(_ID_RE.match(instance_id))


def root_refusal(uid, mode, sticky_ok=False, owner=None):
    """Why root must not use a directory with this owner and mode
    (st_uid, st_mode), or None.

    Root uses cache_dir and every directory above it only if no other
    user can rename, replace or add entries there: owned by root and
    writable by neither its group nor others.  ``sticky_ok`` accepts a
    parent like /tmp (root's, sticky): others may add entries but not
    rename root's.  ``owner`` names uid in the reason.
    """
    if not stat.S_ISDIR(mode):
        return 'is not a directory'
    if uid != 0:
        return 'is owned by %s, not root' % (
            'uid %d' % uid if owner is None else '%s (uid %d)' % (owner, uid))
    if mode & _WRITABLE_BY_OTHERS and not (sticky_ok
                                           and mode & stat.S_ISVTX):
        who = {stat.S_IWGRP: 'its group',
               stat.S_IWOTH: 'others'}.get(mode & _WRITABLE_BY_OTHERS,
                                           'its group and others')
        return 'is writable by %s (mode %04o)' % (who,
                                                  stat.S_IMODE(mode))
    return None


@dataclasses.dataclass(frozen=True)
class Entry:
    """A record plus the scheduling state the cache keeps beside it."""

    record: record_mod.OSRecord
    expires_at: float = 0.0   # ok/encrypted: refresh after this
    failures: int = 0         # consecutive failed/unknown inspections
    retry_at: float = 0.0     # failures > 0: retry after this
    last_seen: float = 0.0    # last time the instance was on this host

    @property
    def instance_id(self):
        return self.record.instance_id

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def encode_entry(entry):
    """The file content of an entry (UTF-8 JSON bytes)."""
    doc = {
        'schema': record_mod.SCHEMA_VERSION,
        'record': entry.record.to_dict(),
        'expires_at': float(entry.expires_at),
        'failures': int(entry.failures),
        'retry_at': float(entry.retry_at),
        'last_seen': float(entry.last_seen),
    }
    return json.dumps(doc, ensure_ascii=False, sort_keys=True,
                      allow_nan=False).encode('utf-8')


def _number(doc, name):
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError('%s is not a number' % name)
    if not math.isfinite(value):
        raise ValueError('%s is not finite' % name)
    return float(value)


def decode_entry(data, instance_id):
    """Parse file content; ValueError says why it is not a usable entry."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError('larger than %d bytes' % MAX_FILE_BYTES)
    try:
        doc = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError('not JSON (%s)' % type(exc).__name__)
    if not isinstance(doc, dict):
        raise ValueError('not a JSON object')
    if set(doc) != _FIELDS:
        raise ValueError('unexpected keys')
    schema = doc['schema']
    if isinstance(schema, bool) or schema != record_mod.SCHEMA_VERSION:
        raise ValueError('schema %r, expected %d'
                         % (schema, record_mod.SCHEMA_VERSION))
    times = {name: _number(doc, name) for name in _TIMES}
    failures = doc['failures']
    if (isinstance(failures, bool) or not isinstance(failures, int)
            or failures < 0):
        raise ValueError('failures is not a count')
    try:
        rec = record_mod.OSRecord.from_dict(doc['record'])
    except (TypeError, ValueError) as exc:
        raise ValueError('bad record (%s)' % exc)
    if rec.instance_id != instance_id:
        raise ValueError('record of another instance')
    if rec.status == record_mod.STATUS_PENDING:
        raise ValueError('pending record')
    return Entry(record=rec, failures=failures, **times)


def read_back(entry, mtime):
    """An entry decoded from a file, as the cache may publish it.

    A file written by an older agent that did not persist last_seen
    recently still proves the instance existed at its mtime.  What is
    published is cleaned again: the file is not ours alone.
    """
    return entry.replace(record=entry.record.cleaned(),
                         last_seen=max(entry.last_seen, mtime))


def clamp(entry, now, horizon=None):
    """The entry with its times within [0, now + horizon] (last_seen
    within [0, now]); no upper bound but now for last_seen when horizon
    is None."""
    latest = now + horizon if horizon is not None else None

    def bound(value, upper):
        value = max(0.0, value)
        return value if upper is None else min(value, upper)
    return entry.replace(expires_at=bound(entry.expires_at, latest),
                         retry_at=bound(entry.retry_at, latest),
                         last_seen=bound(entry.last_seen, now))
