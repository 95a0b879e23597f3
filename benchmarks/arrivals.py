"""Arrivals: how long a migrated-in instance publishes "pending".

An instance arriving on this host (live or cold migration, evacuation,
unshelve, a new VM) has no record here: its samples say ``pending``
until it is inspected, and a pending sample bills no licence.  The
scheduler queues such arrivals first (``ARRIVED``); this measures what
that buys while the queue is full:

* ``due_N``: N records of this host have expired (REFRESH) when the
  instance arrives;
* ``changed_N``: N instances were restarted (INVALIDATED), e.g. after a
  host maintenance;
* ``backlog_N``: the agent started with an empty cache and N instances
  are waiting for their first inspection (NEW).

Each runs the real Scheduler and RecordCache (files on tmpfs, real
worker threads) with an engine that takes a fixed time per inspection,
standing in for an appliance launch.  The arrival's pending time is
measured from the poll that first served it ``pending`` until its record
is in the cache (the next poll publishes it), and reported in
inspections' worth (pending time / inspection time).  The same run also
measures the scheduler without arrival priority (every instance without
a record queued as backlog, in FIFO order, as before this priority
existed).  Target: at most 2.5 inspections' worth whatever N: the
bound is 2 (the inspection in flight plus its own), plus 0.5 for thread
wake-ups and the measurement's own polling of the cache; the number of
inspections finished when its record lands is reported too.

Usage: python -m benchmarks.arrivals [--inspection-ms MS] [--reps N]
"""

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
import uuid

from ceilometer_os_pollster.agent import cache as cache_mod
from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster.agent import policy
from ceilometer_os_pollster.agent import scheduler as scheduler_mod
from ceilometer_os_pollster.instances import identity

from benchmarks import common

TARGET = 2.5
BOOT_ID = 'a1b2c3d4-0000-4000-8000-000000000002'
_XML = ("<domain type='kvm'><uuid>{uuid}</uuid><devices>"
        "<disk type='file' device='disk'><driver type='qcow2'/>"
        "<source file='/var/lib/nova/instances/{uuid}/disk'/>"
        "<target dev='vda' bus='virtio'/></disk></devices></domain>")


class TimedEngine:
    """Takes ``seconds`` per inspection, like an appliance would."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.calls = 0
        self._lock = threading.Lock()

    def inspect(self, job):
        time.sleep(self.seconds)
        with self._lock:
            self.calls += 1
        return record_mod.OSRecord(
            instance_id=job.instance_id, status=record_mod.STATUS_OK,
            os_family='windows', os_distro='windows', os_info='win2k22',
            os_edition='Datacenter', fingerprint=job.fingerprint,
            inspected_at=record_mod.utc_timestamp())


class WithoutArrivalPriority(scheduler_mod.Scheduler):
    """The same scheduler, but every instance without a record is queued
    as backlog (NEW, first come first served)."""

    def end_cycle(self, alive_ids):
        super().end_cycle(alive_ids)
        self._settled = False


def job(instance_id, domain_id):
    return identity.make_job(instance_id, 'instance',
                             _XML.format(uuid=instance_id), domain_id,
                             'image-1', BOOT_ID)


def settings(concurrency):
    return policy.Settings(concurrency=concurrency)


def one_run(kind, count, concurrency, seconds, scheduler_class, seed):
    """Seconds the arrival published pending; the queue it met."""
    ids = [str(uuid.UUID(int=random.Random(seed * 100003 + n)
                         .getrandbits(128), version=4))
           for n in range(count)]
    arrival = str(uuid.uuid4())
    shm = '/dev/shm' if os.path.isdir('/dev/shm') else None
    with tempfile.TemporaryDirectory(prefix='bench-arrivals-',
                                     dir=shm) as tmp:
        cache = cache_mod.RecordCache(os.path.join(tmp, 'cache'))
        now = time.time()
        if kind in ('due', 'changed'):
            for n, instance_id in enumerate(ids):
                rec = TimedEngine(0).inspect(job(instance_id, n + 1))
                cache.put(cache_format.Entry(
                    record=rec, last_seen=now,
                    expires_at=now - 1 if kind == 'due' else now + 3600))
        engine = TimedEngine(seconds)
        scheduler = scheduler_class(settings(concurrency), cache,
                                    engine.inspect)
        try:
            # The poll cycle that finds the work; "changed" instances run
            # in a new qemu (another domain id).
            shift = count if kind == 'changed' else 0
            for n, instance_id in enumerate(ids):
                scheduler.lookup(job(instance_id, n + 1 + shift))
            scheduler.end_cycle(ids)
            queued = scheduler.stats()['queued']
            # The next poll lists the arrival too.
            arrival_job = job(arrival, 10 ** 6)
            began = time.perf_counter()
            served = scheduler.lookup(arrival_job)
            assert served.status == record_mod.STATUS_PENDING, served
            while cache.get(arrival) is None:
                time.sleep(seconds / 50)
            pending = time.perf_counter() - began
            assert scheduler.lookup(arrival_job).status == 'ok'
            done_before = engine.calls
        finally:
            scheduler.stop(timeout=seconds * (count + 2))
    return pending, queued, done_before


def measure(kind, count, concurrency, seconds, reps):
    rows = {}
    for name, cls in (('arrival first', scheduler_mod.Scheduler),
                      ('without priority', WithoutArrivalPriority)):
        runs = [one_run(kind, count, concurrency, seconds, cls, seed)
                for seed in range(reps)]
        rows[name] = {
            'pending_s': common.summary(r[0] for r in runs),
            'inspections_worth': statistics.median(
                r[0] / seconds for r in runs),
            'queued_when_it_arrived': runs[0][1],
            'inspections_before_its_record': statistics.median(
                r[2] for r in runs),
        }
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.arrivals')
    parser.add_argument('--inspection-ms', type=float, default=20.0,
                        help='time one inspection takes (default 20 ms; '
                             'a real appliance takes 3-60 s)')
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--sizes', default='10,100,500')
    args = parser.parse_args(argv)
    common.quiet()
    seconds = args.inspection_ms / 1000.0
    sizes = [int(s) for s in args.sizes.split(',')]
    results = []
    rows = []
    for concurrency in (1, 2):
        for kind in ('due', 'changed', 'backlog'):
            for count in sizes:
                r = measure(kind, count, concurrency, seconds, args.reps)
                first = r['arrival first']
                other = r['without priority']
                results.append({'scenario': '%s_%d' % (kind, count),
                                'concurrency': concurrency, **r})
                worth = first['inspections_worth']
                rows.append([
                    '%s_%d' % (kind, count), concurrency,
                    first['queued_when_it_arrived'],
                    '%.0f' % (first['pending_s']['median'] * 1000),
                    '%.2f' % worth,
                    '%d' % first['inspections_before_its_record'],
                    'yes' if worth <= TARGET else 'NO',
                    '%.0f' % (other['pending_s']['median'] * 1000),
                    '%.2f' % other['inspections_worth'],
                    '%.3f' % common.ratio(first['pending_s']['median'],
                                          other['pending_s']['median'])])
    print('Arrivals: pending time of an instance arriving while N others '
          'are queued; one inspection = %.0f ms; median of %d runs'
          % (args.inspection_ms, args.reps))
    print(common.table(
        ['scenario', 'conc', 'queued', 'pending ms', 'inspections',
         'done', '<=2.5', 'no priority ms', 'no priority insp.',
         'ratio'], rows))
    path = common.write_result('arrivals', {
        'target_inspections_worth': TARGET,
        'inspection_s': seconds, 'reps': args.reps, 'results': results})
    print('-> %s' % path)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
