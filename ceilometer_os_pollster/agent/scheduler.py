"""The background inspections: priority queue, workers, locks.

Owns the threads around the policy (``policy``: what to inspect, at
which priority, and the cache entry an inspection leaves): the poll
path's lookup (serve what the cache has, queue work if needed, never
wait), the priority queue, the worker pool, the cross-process
inspection locks and the synchronous ``run_now`` of the CLI.
"""

import concurrent.futures
import dataclasses
import heapq
import itertools
import random
import threading
import time

from oslo_log import log

from ceilometer_os_pollster.agent import policy
from ceilometer_os_pollster import record as record_mod

LOG = log.getLogger(__name__)

# How long run_now waits for another process's inspection beyond the
# deadline that process enforces.
_LOCK_WAIT_MARGIN = 60.0
_LOCK_POLL = 0.5


@dataclasses.dataclass
class _Queued:
    priority: int
    seq: int
    job: object
    rank: tuple = ()        # policy.queue_rank: the heap's sort key


class Scheduler:
    """Serves cached records and inspects in the background."""

    def __init__(self, conf_group_or_settings, cache, inspect,
                 clock=time.time, rng=None):
        self.settings = policy.as_settings(conf_group_or_settings)
        self.cache = cache
        self._inspect = inspect
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._cond = threading.Condition()
        self._queued = {}       # id -> _Queued
        self._heap = []         # (rank, seq, id); stale ones skipped
        self._jumped = {}       # id -> when last queued INVALIDATED
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
        now = self._clock()
        priority = policy.decide(
            entry, job, now, self._settled,
            jumped_at=self._jumped.get(job.instance_id),
            requeue_interval=self.settings.changed_requeue_interval)
        if priority is not None:
            rank = policy.queue_rank(priority, entry)
            if (self._enqueue(job, priority, rank)
                    and priority == policy.INVALIDATED):
                self._jumped[job.instance_id] = now
        return policy.served(entry, job)

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
            for instance_id in [i for i in self._jumped if i not in alive]:
                del self._jumped[instance_id]
            if len(self._heap) > 2 * len(self._queued) + 64:
                self._heap = [(q.rank, q.seq, i)
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

    def _enqueue(self, job, priority, rank=None):
        instance_id = job.instance_id
        rank = rank if rank is not None else (priority,)
        with self._cond:
            if self._stopping or instance_id in self._running:
                return False
            item = self._queued.get(instance_id)
            if item is None:
                item = _Queued(priority, next(self._seq), job, rank)
                self._queued[instance_id] = item
            else:
                item.job = job  # always inspect the newest snapshot
                if priority >= item.priority:
                    return False
                item.priority, item.seq = priority, next(self._seq)
                item.rank = rank
            heapq.heappush(self._heap, (item.rank, item.seq, instance_id))
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
                    _rank, seq, instance_id = heapq.heappop(self._heap)
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
            if not force and policy.decide(previous, job,
                                           self._clock()) is None:
                return previous.record
            started = time.monotonic()
            record = self._safe_inspect(job)
            if self._stopping:
                # Most likely killed by the service's stop(): not the
                # guest's doing, nothing to remember.
                return record
            seconds = time.monotonic() - started
            fraction = self._rng.random()
            for _attempt in range(3):
                entry = policy.next_entry(previous, record, self._clock(),
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
            # policy.decide() compares against the job's fingerprint; any other
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

    def close(self):
        """Start no inspection from now on and drop the queued ones;
        results that arrive afterwards are not written to the cache.
        Returns the background threads (for stop() to join)."""
        with self._cond:
            self._stopping = True
            self._queued.clear()
            self._heap.clear()
            self._cond.notify_all()
            return list(self._workers)

    def stop(self, timeout=5.0):
        """Stop taking work and let the workers exit; True if they did.

        Queued work is dropped.  Each worker exits after its current
        inspection, so this returns once in-flight inspections finish
        (the engine kills an appliance at inspection_deadline) or when
        timeout seconds have passed, whichever is first; workers are
        daemon threads, so a timed-out one does not block process exit.
        lookup() keeps serving the cache afterwards, queuing nothing.
        """
        workers = self.close()
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
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix='os-inspection-now')
        try:
            futures = {pool.submit(self._run_one, job, force): n
                       for n, job in enumerate(jobs)}
            done = concurrent.futures.as_completed(futures)
            for index, future in enumerate(done, 1):
                n = futures[future]
                results[n] = future.result()
                if progress is not None:
                    progress(jobs[n], results[n], index, len(jobs))
        except BaseException:
            # Interrupted (^C): do not wait here for the inspections
            # running; the caller's stop() kills them.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
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
                if time.monotonic() >= wait_until or self._stopping:
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
