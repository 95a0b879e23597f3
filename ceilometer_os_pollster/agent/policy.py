"""The inspection policy: when to inspect which instance (pure).

Owns the decisions behind every sample: whether the poll path queues an
instance and at which priority (``decide``), what it publishes
meanwhile (``served``), and the cache entry after an inspection
(``next_entry``: expiry with jitter, retry backoff, carrying good facts
over a transient failure).  Plain functions over plain values (cache
entries, jobs, records, times), tested on tables; ``scheduler`` is the
threads, queue and locks around them.

Policy in short (the operations guide, "What is billed after each
event", is the operator's version):

* never inspected -> queue ARRIVED when first seen after this process's
  first poll cycle (migration, evacuation, unshelve, a new VM), NEW when
  already there at start-up (a cold cache); both serve a pending record;
* fingerprint changed (boot disk, image or qemu restart; data volumes do
  not count) -> queue INVALIDATED at once, even during a retry backoff,
  and keep serving the old record (stale-while-revalidate); but at most
  once per changed_requeue_interval per instance: a guest restarted in a
  loop is then queued as REFRESH, after its retry backoff if it has one;
* ok/encrypted past expires_at -> queue REFRESH, serve the old record;
* failed/unknown -> retried with exponential backoff (retry_at) capped
  at retry_max_delay (failed) or unknown_retry_max_delay (unknown), and
  never sooner than the failed inspection took, so one instance that
  keeps running into the deadline holds a slot at most half the time;
* within a priority, instances with fewer consecutive failures go first
  (``queue_rank``): a repeatedly failing one waits behind the others;
* a failed/unknown result for the same boot disk as a good record keeps
  the good facts, with a reason saying so, for carry_over_max_age after
  the good inspection: a torn read must not unbill a Windows VM.
"""

import dataclasses

from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster.instances import identity
from ceilometer_os_pollster import options
from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster import sanitize

# Queue priorities, most urgent first.
ARRIVED = 0      # first seen after start-up: its samples say "pending"
NEW = 1          # no record at start-up (cold cache): "pending" too
INVALIDATED = 2  # something changed; the old record is still served
REFRESH = 3      # TTL expiry or a retry after failures

_GOOD = (record_mod.STATUS_OK, record_mod.STATUS_ENCRYPTED)
# How far in the future a good inspection's date may be (clock skew
# between the agent and the CLI) and still count as recent.
_CLOCK_SLACK = 3600.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """The [os_inspection] options the scheduler uses (their defaults
    are the options' own)."""

    concurrency: int = options.DEFAULTS['concurrency']
    record_ttl: float = options.DEFAULTS['record_ttl']
    record_ttl_jitter: float = options.DEFAULTS['record_ttl_jitter']
    retry_initial_delay: float = options.DEFAULTS['retry_initial_delay']
    retry_max_delay: float = options.DEFAULTS['retry_max_delay']
    unknown_retry_max_delay: float = options.DEFAULTS[
        'unknown_retry_max_delay']
    carry_over_max_age: float = options.DEFAULTS['carry_over_max_age']
    forget_after: float = options.DEFAULTS['forget_after']
    inspection_deadline: float = options.DEFAULTS['inspection_deadline']
    changed_requeue_interval: float = options.DEFAULTS[
        'changed_requeue_interval']

    @property
    def horizon(self):
        """The furthest in the future a time this policy writes can be."""
        return max(self.record_ttl * (1.0 + self.record_ttl_jitter),
                   self.retry_max_delay, self.unknown_retry_max_delay,
                   self.inspection_deadline)

    @classmethod
    def from_conf(cls, group):
        """From conf.os_inspection (or anything with those attributes)."""
        return cls(**{f.name: getattr(group, f.name)
                      for f in dataclasses.fields(cls)})


def as_settings(conf_group_or_settings):
    if isinstance(conf_group_or_settings, Settings):
        return conf_group_or_settings
    return Settings.from_conf(conf_group_or_settings)


# -- policy (pure) ---------------------------------------------------

def decide(entry, job, now, settled=True, jumped_at=None,
           requeue_interval=None):
    """The priority to queue the job at, or None if the cache will do.

    ``settled`` is False during this process's first poll cycle: an
    instance without a record then is backlog (NEW), afterwards it has
    just arrived on the host (ARRIVED).  ``jumped_at`` is when this
    instance was last queued INVALIDATED (None: never); within
    ``requeue_interval`` seconds of it a change does not jump again.
    """
    if entry is None:
        return ARRIVED if settled else NEW
    if entry.record.fingerprint != job.fingerprint:
        if not jumped_recently(jumped_at, now, requeue_interval):
            # Not held back by a backoff: a rebuilt "unknown" VM may be
            # a Windows VM now.
            return INVALIDATED
        # A guest restarted in a loop: a qemu restart each time, and
        # each a launch that may run to the deadline.  Its turn comes
        # with the retries, after its backoff.
        if entry.failures:
            return REFRESH if now >= entry.retry_at else None
        return REFRESH
    if entry.failures:
        return REFRESH if now >= entry.retry_at else None
    if now >= entry.expires_at:
        return REFRESH
    return None


def jumped_recently(jumped_at, now, interval):
    """Whether an INVALIDATED queuing at ``jumped_at`` is less than
    ``interval`` seconds old (a time in the future counts as old: a
    clock set back must not hold an instance back for long)."""
    if jumped_at is None or not interval:
        return False
    return 0.0 <= now - jumped_at < interval


def queue_rank(priority, entry):
    """The queue's sort key before arrival order: the priority, then the
    consecutive failures, so that within a priority an instance that
    keeps failing goes behind those that do not."""
    return (priority, entry.failures if entry is not None else 0)


def served(entry, job):
    """What the poll path publishes for the job."""
    if entry is None:
        return record_mod.OSRecord.pending(job.instance_id, job.fingerprint)
    # Stale-while-revalidate: the fingerprint changes on every qemu
    # restart (hard reboot, stop/start) while the OS almost never does;
    # a pending record meanwhile would be a gap in the billed meter.
    return entry.record


def retry_delay(failures, initial, maximum):
    """initial, 2*initial, 4*initial, ... capped at maximum."""
    exponent = min(max(failures - 1, 0), 62)
    return float(min(initial * (2 ** exponent), maximum))


def expiry(now, ttl, jitter, fraction):
    """now + ttl lengthened by up to jitter*ttl (fraction in [0, 1)).

    Lengthened, not shortened: record_ttl is then the shortest life of a
    record, so an unchanged VM costs at most one launch per record_ttl.
    """
    return now + ttl * (1.0 + jitter * fraction)


def carries_over(previous, record, now, max_age):
    """Whether a failed/unknown ``record`` keeps ``previous``'s facts.

    Only a good record of the same boot disk and image (a qemu restart
    may differ), inspected less than max_age ago: a torn read of a live
    disk says nothing about its OS, but a rebuilt disk may really be
    blank now.
    """
    if previous is None or previous.record.status not in _GOOD:
        return False
    if not identity.same_disks(previous.record.fingerprint,
                               record.fingerprint):
        return False
    good_at = record_mod.parse_timestamp(previous.record.inspected_at)
    # A good inspection dated in the future (the clock was wrong then)
    # has no age to bound: not carried.
    return (good_at is not None
            and -_CLOCK_SLACK <= now - good_at < max_age)


def carried_reason(good, record):
    """The reason published while ``good``'s facts are carried over."""
    latest = record.status + (': ' + record.reason if record.reason else '')
    return sanitize.clean_text(
        'carried over from the inspection of %s; latest inspection %s'
        % (good.inspected_at, latest), record_mod.REASON_LIMIT)


def next_entry(previous, record, now, settings, fraction):
    """The cache entry after an inspection produced ``record``."""
    if record.status in _GOOD:
        return cache_format.Entry(
            record=record,
            expires_at=expiry(now, settings.record_ttl,
                              settings.record_ttl_jitter, fraction),
            failures=0, retry_at=0.0, last_seen=now)
    failures = (previous.failures if previous else 0) + 1
    # 'unknown' is an answer (the disks were read): look again soon in
    # case an OS is being installed.  'failed' is not: the appliance
    # could not read them.
    cap = (settings.unknown_retry_max_delay
           if record.status == record_mod.STATUS_UNKNOWN
           else settings.retry_max_delay)
    # Never sooner than the failure took: a guest whose disk runs every
    # inspection into the deadline must not hold a slot most of the time.
    took = min(max(record.duration, 0.0), settings.inspection_deadline)
    retry_at = now + max(retry_delay(failures, settings.retry_initial_delay,
                                     cap), took)
    if carries_over(previous, record, now, settings.carry_over_max_age):
        # The job's fingerprint, so the backoff (not an invalidation)
        # decides the next look; same_disks() keeps holding.
        kept = previous.record.replace(
            fingerprint=record.fingerprint,
            reason=carried_reason(previous.record, record))
        return previous.replace(record=kept, failures=failures,
                                retry_at=retry_at, last_seen=now)
    return cache_format.Entry(record=record, expires_at=retry_at,
                              failures=failures, retry_at=retry_at,
                              last_seen=now)
