"""The normalised OS record: the one type every module hands on.

The engine produces it, the cache stores it, the pollster renders it as
sample metadata and the CLI prints it as JSON.  A field is added here and
nowhere else: its one line in ``OSRecord`` gives its type, default, how
it is cleaned and its sample metadata key; ``metadata()``, ``cleaned()``,
``METADATA_KEYS``, ``to_dict()`` and ``from_dict()`` are derived from
those lines.  The operator files under etc/ that name the metadata keys
(Gnocchi, CloudKitty, the dynamic pollster) are kept in step by a test.
"""

import dataclasses
import datetime
import math
import operator
import re

from ceilometer_os_pollster import sanitize

STATUS_OK = 'ok'
STATUS_PENDING = 'pending'
STATUS_UNKNOWN = 'unknown'
STATUS_ENCRYPTED = 'encrypted'
STATUS_FAILED = 'failed'
STATUSES = (STATUS_OK, STATUS_PENDING, STATUS_UNKNOWN, STATUS_ENCRYPTED,
            STATUS_FAILED)

# How the disks were read: by our own readers in the worker, or by a
# libguestfs appliance; '' when neither decided (pending, or a failure
# before any disk was read).
METHOD_DIRECT = 'direct'
METHOD_APPLIANCE = 'appliance'
METHODS = ('', METHOD_DIRECT, METHOD_APPLIANCE)

# Bump when the meaning or the set of fields changes; the cache treats
# records of another schema as misses.
SCHEMA_VERSION = 1

_TIMESTAMP_FORMAT = '%Y-%m-%dT%H:%M:%SZ'
_TIMESTAMP_RE = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}'
                           r':[0-9]{2}Z')
_FINGERPRINT_RE = re.compile(r'[A-Za-z0-9._-]{0,64}')


def utc_timestamp(moment=None):
    """ISO 8601 UTC with a Z suffix, to the second.

    A naive datetime is UTC (OpenStack's convention, e.g. oslo.utils'
    utcnow()), never the host's local time: a record must not move by
    the host's UTC offset.
    """
    moment = moment or datetime.datetime.now(datetime.timezone.utc)
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc).strftime(
        _TIMESTAMP_FORMAT)


def parse_timestamp(text):
    """Seconds since the epoch of a utc_timestamp() string, or None."""
    if not isinstance(text, str) or not _TIMESTAMP_RE.fullmatch(text):
        return None
    try:
        moment = datetime.datetime.strptime(text, _TIMESTAMP_FORMAT)
    except ValueError:
        return None
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


# The longest reason a record carries (the engine's bound on what a
# worker sends; carried-over reasons are cut to it too).
REASON_LIMIT = 200


def _text(limit):
    return lambda value: sanitize.clean_text(value, limit)


def _token(default=''):
    return lambda value: sanitize.clean_token(value) or default


def _status(value):
    return value        # __post_init__ refuses any other


def _method(value):
    return value if value in METHODS else ''


def _timestamp(value):
    return value if parse_timestamp(value) is not None else ''


def _fingerprint(value):
    return value if _FINGERPRINT_RE.fullmatch(value) else ''


def _duration(value):
    return float(value if math.isfinite(value) and 0 <= value < 1e6
                 else 0.0)


def _field(clean, key=None, default=dataclasses.MISSING):
    """A record field: ``clean`` bounds it as guest data (cleaned()),
    ``key`` is its sample metadata key (None: not published)."""
    return dataclasses.field(default=default,
                             metadata={'clean': clean, 'key': key})


@dataclasses.dataclass(frozen=True)
class OSRecord:
    """What is known about the operating system of one instance.

    String fields are already sanitised guest data (see sanitize.py);
    unknown strings are '' except os_family/os_distro/os_info, which use
    'unknown' like libguestfs.  Versions are integers, 0 when unknown.

    The published fields come in the order of their metadata keys
    (``METADATA_KEYS``).  Never 'os_type': Ceilometer's standard
    metadata already uses it ("hvm").
    """

    instance_id: str = _field(_text(64))
    os_family: str = _field(_token('unknown'), 'os_family', 'unknown')
    os_distro: str = _field(_token('unknown'), 'os_distro', 'unknown')
    os_info: str = _field(_token('unknown'), 'os_info', 'unknown')
    os_version_major: int = _field(sanitize.clean_int, 'os_version_major', 0)
    os_version_minor: int = _field(sanitize.clean_int, 'os_version_minor', 0)
    os_build: str = _field(_token(), 'os_build', '')
    os_product_name: str = _field(_text(255), 'os_product_name', '')
    os_product_variant: str = _field(_text(64), 'os_product_variant', '')
    os_edition: str = _field(_text(64), 'os_edition', '')
    os_arch: str = _field(_token(), 'os_arch', '')
    sql_server_edition: str = _field(_text(64), 'sql_server_edition', '')
    status: str = _field(_status, 'os_inspection_status', STATUS_PENDING)
    reason: str = _field(_text(REASON_LIMIT), 'os_inspection_reason', '')
    # How the disks were read (METHODS).
    inspection_method: str = _field(_method, 'os_inspection_method', '')
    inspected_at: str = _field(_timestamp, 'os_inspected_at', '')
    # What the record was computed from (see identity.fingerprint); a
    # change means the guest may have a different OS now.
    fingerprint: str = _field(_fingerprint, default='')
    # Seconds the inspection took (0 for pending); for logs/benchmarks.
    duration: float = _field(_duration, default=0.0)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError('unknown inspection status %r' % self.status)

    @classmethod
    def pending(cls, instance_id, fingerprint=''):
        return cls(instance_id=instance_id, status=STATUS_PENDING,
                   fingerprint=fingerprint)

    @classmethod
    def failed(cls, instance_id, reason, fingerprint='', duration=0.0,
               status=STATUS_FAILED):
        """A record for an inspection that produced no OS facts."""
        return cls(instance_id=instance_id, status=status, reason=reason,
                   fingerprint=fingerprint, duration=duration,
                   inspected_at=utc_timestamp())

    def metadata(self):
        """The sample metadata: exactly METADATA_KEYS, every time."""
        return dict(zip(METADATA_KEYS, _published_values(self)))

    def summary(self):
        """A short human summary for tables and logs: 'windows win2k22
        Datacenter + SQL Server Standard', or '(reason)'."""
        if self.status in (STATUS_OK, STATUS_ENCRYPTED):
            parts = [self.os_distro, self.os_info, self.os_edition]
            if self.sql_server_edition:
                parts.append('+ SQL Server ' + self.sql_server_edition)
            text = ' '.join(p for p in parts if p and p != 'unknown')
            if self.status == STATUS_ENCRYPTED and self.reason:
                text = ' '.join(filter(None, (text, '(%s)' % self.reason)))
            return text
        return '(%s)' % self.reason if self.reason else ''

    def to_dict(self):
        """Every field, JSON-ready (the cache file's payload)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Inverse of to_dict; raises ValueError/TypeError on bad data."""
        if not isinstance(data, dict):
            raise TypeError('record must be a JSON object')
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise ValueError('unknown record fields: %s'
                             % ', '.join(sorted(unknown)))
        kwargs = {}
        for name, field in names.items():
            if name not in data:
                continue
            value = data[name]
            expected = {'int': int, 'float': (int, float),
                        'str': str}[field.type if isinstance(field.type, str)
                                    else field.type.__name__]
            if isinstance(value, bool) or not isinstance(value, expected):
                raise TypeError('record field %s has type %s'
                                % (name, type(value).__name__))
            kwargs[name] = value
        if 'instance_id' not in kwargs:
            raise ValueError('record without instance_id')
        return cls(**kwargs)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def cleaned(self):
        """The record with every field bounded and cleaned as guest data.

        For records that cross a process boundary (from the worker, or
        from disk: another process, an older version or an edit may have
        put anything there), so that what is published is as clean as
        what normalise() produces.  A record normalise() made comes out
        unchanged.
        """
        return self.replace(**{f.name: f.metadata['clean'](
            getattr(self, f.name)) for f in dataclasses.fields(self)})


_PUBLISHED = tuple(f for f in dataclasses.fields(OSRecord)
                   if f.metadata['key'])

# Sample metadata keys, in a fixed order and always all present: the
# Prometheus exporter refuses a meter whose label set changes.
METADATA_KEYS = tuple(f.metadata['key'] for f in _PUBLISHED)


def metadata_getter(keys):
    """A function that gives a record's values of these metadata keys,
    as a tuple in their order, without building metadata() (for the
    Prometheus labels, built for every instance on every poll)."""
    names = {f.metadata['key']: f.name for f in _PUBLISHED}
    getter = operator.attrgetter(*(names[k] for k in keys))
    if len(keys) == 1:
        return lambda rec: (getter(rec),)
    return getter


# Their values, in the same order, in one call (metadata() runs for
# every instance on every poll).
_published_values = metadata_getter(METADATA_KEYS)
