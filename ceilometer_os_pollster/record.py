"""The normalised OS record: the one type every module hands on.

The engine produces it, the cache stores it, the pollster renders it as
sample metadata and the CLI prints it as JSON.  A field is added here and
nowhere else; every rendering is derived from ``METADATA_KEYS``.
"""

import dataclasses
import datetime
import math
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

# Sample metadata keys, in a fixed order and always all present: the
# Prometheus exporter refuses a meter whose label set changes.  Never
# 'os_type': Ceilometer's standard metadata already uses it ("hvm").
METADATA_KEYS = (
    'os_family',
    'os_distro',
    'os_info',
    'os_version_major',
    'os_version_minor',
    'os_build',
    'os_product_name',
    'os_product_variant',
    'os_edition',
    'os_arch',
    'sql_server_edition',
    'os_inspection_status',
    'os_inspection_reason',
    'os_inspection_method',
    'os_inspected_at',
)


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


@dataclasses.dataclass(frozen=True)
class OSRecord:
    """What is known about the operating system of one instance.

    String fields are already sanitised guest data (see sanitize.py);
    unknown strings are '' except os_family/os_distro/os_info, which use
    'unknown' like libguestfs.  Versions are integers, 0 when unknown.
    """

    instance_id: str
    status: str = STATUS_PENDING
    reason: str = ''
    os_family: str = 'unknown'
    os_distro: str = 'unknown'
    os_info: str = 'unknown'
    os_version_major: int = 0
    os_version_minor: int = 0
    os_build: str = ''
    os_product_name: str = ''
    os_product_variant: str = ''
    os_edition: str = ''
    os_arch: str = ''
    sql_server_edition: str = ''
    inspection_method: str = ''
    inspected_at: str = ''
    # What the record was computed from (see drives.fingerprint); a
    # change means the guest may have a different OS now.
    fingerprint: str = ''
    # Seconds the inspection took (0 for pending); for logs/benchmarks.
    duration: float = 0.0

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
        return {
            'os_family': self.os_family,
            'os_distro': self.os_distro,
            'os_info': self.os_info,
            'os_version_major': self.os_version_major,
            'os_version_minor': self.os_version_minor,
            'os_build': self.os_build,
            'os_product_name': self.os_product_name,
            'os_product_variant': self.os_product_variant,
            'os_edition': self.os_edition,
            'os_arch': self.os_arch,
            'sql_server_edition': self.sql_server_edition,
            'os_inspection_status': self.status,
            'os_inspection_reason': self.reason,
            'os_inspection_method': self.inspection_method,
            'os_inspected_at': self.inspected_at,
        }

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

        For records that come back from disk: another process, an older
        version or an edit may have put anything there, and what is
        published must be as clean as what normalise() produces.  A
        record normalise() made comes out unchanged.
        """
        def token(value, default=''):
            return sanitize.clean_token(value) or default

        def text(value, limit=255):
            return sanitize.clean_text(value, limit)

        fingerprint = self.fingerprint if _FINGERPRINT_RE.fullmatch(
            self.fingerprint) else ''
        duration = self.duration if (
            math.isfinite(self.duration) and 0 <= self.duration < 1e6) else 0.0
        return self.replace(
            instance_id=text(self.instance_id, 64),
            reason=text(self.reason),
            os_family=token(self.os_family, 'unknown'),
            os_distro=token(self.os_distro, 'unknown'),
            os_info=token(self.os_info, 'unknown'),
            os_version_major=sanitize.clean_int(self.os_version_major),
            os_version_minor=sanitize.clean_int(self.os_version_minor),
            os_build=token(self.os_build),
            os_product_name=text(self.os_product_name),
            os_product_variant=text(self.os_product_variant, 64),
            os_edition=text(self.os_edition, 64),
            os_arch=token(self.os_arch),
            sql_server_edition=text(self.sql_server_edition, 64),
            inspection_method=(self.inspection_method
                               if self.inspection_method in METHODS
                               else ''),
            inspected_at=(self.inspected_at if parse_timestamp(
                self.inspected_at) is not None else ''),
            fingerprint=fingerprint,
            duration=float(duration))
