"""The normalised OS record: the one type every module hands on.

The engine produces it, the cache stores it, the pollster renders it as
sample metadata and the CLI prints it as JSON.  A field is added here and
nowhere else; every rendering is derived from ``METADATA_KEYS``.
"""

import dataclasses
import datetime

STATUS_OK = 'ok'
STATUS_PENDING = 'pending'
STATUS_UNKNOWN = 'unknown'
STATUS_ENCRYPTED = 'encrypted'
STATUS_FAILED = 'failed'
STATUSES = (STATUS_OK, STATUS_PENDING, STATUS_UNKNOWN, STATUS_ENCRYPTED,
            STATUS_FAILED)

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
    'os_inspected_at',
)


def utc_timestamp(moment=None):
    """ISO 8601 UTC with a Z suffix, to the second."""
    moment = moment or datetime.datetime.now(datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc).strftime(
        '%Y-%m-%dT%H:%M:%SZ')


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
            'os_inspected_at': self.inspected_at,
        }

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
