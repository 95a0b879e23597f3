"""When to inspect which instance, and the workers that do it.

Owns the decision the poll path makes for every sample (serve what the
cache has, queue work if needed, never wait), the priority queue, the
background worker pool and the retry/expiry policy stored beside each
record in the cache.  The policy is plain functions (``decide``,
``next_entry``, ``retry_delay``, ``expiry``); ``Scheduler`` is the
threads and locks around them.

Policy in short (README "What is billed after each event" is the
operator's version):

* never inspected -> queue ARRIVED when first seen after this process's
  first poll cycle (migration, evacuation, unshelve, a new VM), NEW when
  already there at start-up (a cold cache); both serve a pending record;
* fingerprint changed (boot disk, image or qemu restart; data volumes do
  not count) -> queue INVALIDATED at once, even during a retry backoff,
  and keep serving the old record (stale-while-revalidate);
* ok/encrypted past expires_at -> queue REFRESH, serve the old record;
* failed/unknown -> retried with exponential backoff (retry_at) capped
  at retry_max_delay (failed) or unknown_retry_max_delay (unknown);
* a failed/unknown result for the same boot disk as a good record keeps
  the good facts, with a reason saying so, for carry_over_max_age after
  the good inspection: a torn read must not unbill a Windows VM.
"""

import concurrent.futures
import dataclasses
import heapq
import itertools
import random
import threading
import time

from oslo_log import log

from ceilometer_os_pollster import cache_format
from ceilometer_os_pollster import drives
from ceilometer_os_pollster import options
from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster import sanitize

LOG = log.getLogger(__name__)

# Queue priorities, most urgent first.
ARRIVED = 0      # first seen after start-up: its samples say "pending"
NEW = 1          # no record at start-up (cold cache): "pending" too
INVALIDATED = 2  # something changed; the old record is still served
REFRESH = 3      # TTL expiry or a retry after failures
PRIORITY_NAMES = {ARRIVED: 'arrived', NEW: 'new',
                  INVALIDATED: 'invalidated', REFRESH: 'refresh'}

_GOOD = (record_mod.STATUS_OK, record_mod.STATUS_ENCRYPTED)
# How long run_now waits for another process's inspection beyond the
# deadline that process enforces.
_LOCK_WAIT_MARGIN = 60.0
# How far in the future a good inspection's date may be (clock skew
# between the agent and the CLI) and still count as recent.
_CLOCK_SLACK = 3600.0
_LOCK_POLL = 0.5


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

    @property
    def horizon(self):
        """The furthest in the future a time this policy writes can be."""
        return max(self.record_ttl * (1.0 + self.record_ttl_jitter),
                   self.retry_max_delay, self.unknown_retry_max_delay)

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

def decide(entry, job, now, settled=True):
    """The priority to queue the job at, or None if the cache will do.

    ``settled`` is False during this process's first poll cycle: an
    instance without a record then is backlog (NEW), afterwards it has
    just arrived on the host (ARRIVED).
    """
    if entry is None:
        return ARRIVED if settled else NEW
    if entry.record.fingerprint != job.fingerprint:
        # Never held back by a backoff: a rebuilt "unknown" VM may be a
        # Windows VM now.
        return INVALIDATED
    if entry.failures:
        return REFRESH if now >= entry.retry_at else None
    if now >= entry.expires_at:
        return REFRESH
    return None


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
    if not drives.same_disks(previous.record.fingerprint,
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
        % (good.inspected_at, latest))


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
    retry_at = now + retry_delay(failures, settings.retry_initial_delay,
                                 cap)
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


@dataclasses.dataclass
class _Queued:
    priority: int
    seq: int
    job: object


class Scheduler:
    """Serves cached records and inspects in the background."""

    def __init__(self, conf_group_or_settings, cache, inspect,
                 clock=time.time, rng=None):
        self.settings = as_settings(conf_group_or_settings)
        self.cache = cache
        self._inspect = inspect
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._cond = threading.Condition()
        self._queued = {}       # id -> _Queued
        self._heap = []         # (priority, seq, id); stale ones skipped
        self._seq = itertools.count()
        self._running = {}      # id -> number of threads inspecting it
        self._workers = []
        self._stopping = False
        self._settled = False   # True once the first poll cycle ended
        # Times read back from disk are clamped to what this policy can
        # write (a clock that was in the future must not stick).
        self.cache.set_horizon(self.settings.horizon)

    # -- poll path -----------------------------------------------------

    def lookup(self, job):
        """The record to publish now; queues work, never waits for it."""
        entry = self.cache.get(job.instance_id)
        priority = decide(entry, job, self._clock(), self._settled)
        if priority is not None:
            self._enqueue(job, priority)
        return served(entry, job)

    def end_cycle(self, alive_ids):
        """After each poll: pick up other processes' writes, prune."""
        alive = set(alive_ids)
        self._settled = True
        try:
            self.cache.refresh()
            self.cache.prune(alive, self._clock(),
                             self.settings.forget_after)
        except Exception:
            LOG.exception('OS inspection cache maintenance failed')
        with self._cond:
            for instance_id in [i for i in self._queued if i not in alive]:
                del self._queued[instance_id]
            if len(self._heap) > 2 * len(self._queued) + 64:
                self._heap = [(q.priority, q.seq, i)
                              for i, q in self._queued.items()]
                heapq.heapify(self._heap)
        stats = self.stats()
        if stats['queued'] or stats['running']:
            LOG.info('OS inspection: %(queued)d queued, %(running)d '
                     'running, %(cached)d cached', stats)

    def stats(self):
        with self._cond:
            return {'queued': len(self._queued),
                    'running': sum(self._running.values()),
                    'cached': len(self.cache)}

    def _enqueue(self, job, priority):
        instance_id = job.instance_id
        with self._cond:
            if self._stopping or instance_id in self._running:
                return False
            item = self._queued.get(instance_id)
            if item is None:
                item = _Queued(priority, next(self._seq), job)
                self._queued[instance_id] = item
            else:
                item.job = job  # always inspect the newest snapshot
                if priority >= item.priority:
                    return False
                item.priority, item.seq = priority, next(self._seq)
            heapq.heappush(self._heap, (item.priority, item.seq,
                                        instance_id))
            self._start_workers()
            self._cond.notify()
            return True

    # -- workers -------------------------------------------------------

    def _start_workers(self):
        # Caller holds _cond.  Lazy: no thread exists before real work.
        if self._workers:
            return
        for n in range(self.settings.concurrency):
            worker = threading.Thread(target=self._work, daemon=True,
                                      name='os-inspection-%d' % n)
            self._workers.append(worker)
            worker.start()

    def _pop(self):
        with self._cond:
            while not self._stopping:
                while self._heap:
                    priority, seq, instance_id = heapq.heappop(self._heap)
                    item = self._queued.get(instance_id)
                    if item is None or item.seq != seq:
                        continue  # superseded by an upgrade or dropped
                    del self._queued[instance_id]
                    self._mark_running(instance_id)
                    return item.job
                self._cond.wait()
            return None

    def _mark_running(self, instance_id):
        self._running[instance_id] = self._running.get(instance_id, 0) + 1

    def _done_running(self, instance_id):
        with self._cond:
            left = self._running.get(instance_id, 0) - 1
            if left > 0:
                self._running[instance_id] = left
            else:
                self._running.pop(instance_id, None)

    def _work(self):
        while True:
            job = self._pop()
            if job is None:
                return
            try:
                self._process(job, force=False)
            except Exception:
                LOG.exception('OS inspection worker: unexpected error for '
                              'instance %s', job.instance_id)
            finally:
                self._done_running(job.instance_id)

    def _process(self, job, force):
        """Inspect under the instance's lock; None if the lock is busy."""
        instance_id = job.instance_id
        with self.cache.inspection_lock(instance_id) as locked:
            if not locked:
                LOG.debug('Instance %s is being inspected elsewhere; '
                          'skipping it for now', instance_id)
                return None
            # Another process may have inspected it since our last look.
            previous = self.cache.reload(instance_id)
            if not force and decide(previous, job, self._clock()) is None:
                return previous.record
            started = time.monotonic()
            record = self._safe_inspect(job)
            seconds = time.monotonic() - started
            fraction = self._rng.random()
            for _attempt in range(3):
                entry = next_entry(previous, record, self._clock(),
                                   self.settings, fraction)
                if self.cache.put(entry):
                    break
                # Written underneath us (a writer that ignores the lock):
                # decide again from what is on disk now.
                previous = self.cache.reload(instance_id)
            self._log_result(job, record, entry, seconds)
            return record

    def _safe_inspect(self, job):
        try:
            record = self._inspect(job)
        except Exception as exc:
            LOG.exception('Inspection of instance %s (%s) raised; '
                          'recording it as failed', job.instance_id,
                          job.domain_name)
            return record_mod.OSRecord.failed(
                job.instance_id, 'internal error: %s' % type(exc).__name__,
                fingerprint=job.fingerprint)
        if (not isinstance(record, record_mod.OSRecord)
                or record.instance_id != job.instance_id
                or record.status == record_mod.STATUS_PENDING):
            LOG.error('Inspection of instance %s returned an invalid '
                      'record: %r', job.instance_id, record)
            return record_mod.OSRecord.failed(
                job.instance_id, 'internal error: invalid record',
                fingerprint=job.fingerprint)
        if record.fingerprint != job.fingerprint:
            # decide() compares against the job's fingerprint; any other
            # value would re-queue the instance on every poll.
            record = record.replace(fingerprint=job.fingerprint)
        return record

    def _log_result(self, job, record, entry, seconds):
        message = ('Inspected instance %(id)s (%(domain)s): '
                   'status=%(status)s %(what)s in %(secs).1fs')
        args = {'id': job.instance_id, 'domain': job.domain_name,
                'status': record.status, 'what': record.summary(),
                'secs': seconds}
        if entry.failures:
            message += '; retry in %(retry)ds'
            args['retry'] = max(0, entry.retry_at - self._clock())
            if entry.record is not record:
                message += ', still serving the previous %(kept)s record'
                args['kept'] = entry.record.status
        LOG.info(message, args)

    def stop(self, timeout=5.0):
        """Stop taking work and let the workers exit; True if they did.

        Queued work is dropped.  Each worker exits after its current
        inspection, so this returns once in-flight inspections finish
        (the engine kills an appliance at inspection_deadline) or when
        timeout seconds have passed, whichever is first; workers are
        daemon threads, so a timed-out one does not block process exit.
        lookup() keeps serving the cache afterwards, queuing nothing.
        """
        with self._cond:
            self._stopping = True
            self._queued.clear()
            self._heap.clear()
            self._cond.notify_all()
            workers = list(self._workers)
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in workers:
            if worker is threading.current_thread():
                continue
            worker.join(None if deadline is None
                        else max(0.0, deadline - time.monotonic()))
        return not any(w.is_alive() for w in workers
                       if w is not threading.current_thread())

    # -- synchronous use (CLI) ------------------------------------------

    def run_now(self, jobs, progress=None, force=True):
        """Inspect jobs now, at most ``concurrency`` at once.

        Same cache and locks as the background workers.  With force
        False an instance whose cached record is still valid is not
        inspected again.  If another process is inspecting an instance
        its result is waited for and returned.  ``progress(job, record,
        index, total)`` is called in this thread as each job finishes
        (index counts finished jobs from 1).  Returns the records in job
        order.
        """
        jobs = list(jobs)
        results = [None] * len(jobs)
        if not jobs:
            return results
        workers = min(self.settings.concurrency, len(jobs))
        with concurrent.futures.ThreadPoolExecutor(
                max_workers=workers,
                thread_name_prefix='os-inspection-now') as pool:
            futures = {pool.submit(self._run_one, job, force): n
                       for n, job in enumerate(jobs)}
            done = concurrent.futures.as_completed(futures)
            for index, future in enumerate(done, 1):
                n = futures[future]
                results[n] = future.result()
                if progress is not None:
                    progress(jobs[n], results[n], index, len(jobs))
        return results

    def _run_one(self, job, force):
        instance_id = job.instance_id
        with self._cond:
            self._mark_running(instance_id)
        try:
            wait_until = (time.monotonic() + self.settings.inspection_deadline
                          + _LOCK_WAIT_MARGIN)
            waited = False
            while True:
                try:
                    record = self._process(job, force=force and not waited)
                except Exception:
                    LOG.exception('Inspection of instance %s failed',
                                  instance_id)
                    return record_mod.OSRecord.failed(
                        instance_id, 'internal error',
                        fingerprint=job.fingerprint)
                if record is not None:
                    return record
                # Someone else is inspecting it: their result will be as
                # fresh as ours, so wait for it instead of inspecting.
                if time.monotonic() >= wait_until:
                    break
                waited = True
                time.sleep(_LOCK_POLL)
            entry = self.cache.reload(instance_id)
            if entry is not None:
                return entry.record
            return record_mod.OSRecord.failed(
                instance_id, 'another process is inspecting this instance',
                fingerprint=job.fingerprint)
        finally:
            self._done_running(instance_id)
