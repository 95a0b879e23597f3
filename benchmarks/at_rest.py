"""At rest: appliance launches per VM per day once the cache is warm.

Simulated days: a fake clock drives the real Scheduler and RecordCache
(files in a temporary directory, real worker thread) with a counting
engine that answers at once.  Every poll interval each instance's job is
built by identity.make_job from its domain XML, domain id and the host
boot id, exactly as the pollster does; a "restart" (stop/start, hard
reboot, live migration) gives the domain a new id, hence a new boot
identity and fingerprint.  After each poll the benchmark waits until the
queue is empty before the clock moves on.

Scenarios (operator defaults from options.py: record_ttl 1 day, jitter
0.1, retries from 5 min doubling to 6 h):

* ``steady``: nothing changes;
* ``restarts_R``: each VM restarts R times a day on average (Poisson);
* ``unknown_P``: P% of the VMs have a boot disk with no recognisable OS
  (status unknown: retried with backoff, like failures);
* ``agent_restart``: after the warm-up day the agent restarts (a new
  Scheduler and RecordCache over the same directory); the first poll of
  the new agent must queue nothing, and its next day must cost what a
  day without restart costs.

The cold start (the first poll: every VM once) is reported apart;
launches per VM per day count everything after it over the simulated
days.  Target: <= 1 with no change.  Also counted: record
files (re)written per VM per day (inspections plus the cache's
``last_seen`` bookkeeping).

Usage: python -m benchmarks.at_rest [--instances N] [--days N]
"""

import argparse
import dataclasses
import math
import os
import pathlib
import random
import tempfile
import threading
import time
import uuid


from ceilometer_os_pollster.agent import cache as cache_mod
from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster import options
from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster.agent import policy
from ceilometer_os_pollster.agent import scheduler as scheduler_mod
from ceilometer_os_pollster.instances import identity

from benchmarks import common

TARGET = 1.0
POLL_INTERVAL = 300       # Ceilometer's default polling.yaml interval
BOOT_ID = 'a1b2c3d4-0000-4000-8000-000000000001'

_XML = """<domain type='kvm'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/nova/instances/{uuid}/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
"""


class FakeClock:
    def __init__(self, start):
        self.start = start
        self.now = start

    def __call__(self):
        return self.now

    def day(self):
        return int((self.now - self.start) // common.DAY)


class CountingEngine:
    """Answers at once; remembers on which simulated day it was called."""

    def __init__(self, clock, unknown_ids=()):
        self.clock = clock
        self.unknown = set(unknown_ids)
        self.calls = []           # (day, instance id)
        self._lock = threading.Lock()

    def inspect(self, job):
        with self._lock:
            self.calls.append((self.clock.day(), job.instance_id))
        if job.instance_id in self.unknown:
            return record_mod.OSRecord.failed(
                job.instance_id, 'no operating system found',
                fingerprint=job.fingerprint,
                status=record_mod.STATUS_UNKNOWN)
        return record_mod.OSRecord(
            instance_id=job.instance_id, status=record_mod.STATUS_OK,
            os_family='linux', os_distro='rhel', os_info='rhel9.4',
            os_version_major=9, os_version_minor=4, os_arch='x86_64',
            inspected_at=record_mod.utc_timestamp(),
            fingerprint=job.fingerprint)


def default_settings():
    """The scheduler settings an operator gets without configuring."""
    from tests.functional import faults_helpers
    conf = faults_helpers.inspection_conf()
    return policy.Settings.from_conf(conf[options.GROUP])


class Host:
    """Instances of one compute host and the agent polling them."""

    def __init__(self, count, directory, clock, engine, seed):
        self.ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, 'at-rest/%d' % n))
                    for n in range(count)]
        self.xml = {i: _XML.format(name='instance-%08x' % n, uuid=i)
                    for n, i in enumerate(self.ids)}
        self.domain_id = {i: n + 1 for n, i in enumerate(self.ids)}
        self._next_domain_id = count + 1
        self._jobs = {}
        self.directory = directory
        self.clock = clock
        self.engine = engine
        self.seed = seed
        self.restarts = 0
        self.scheduler = None
        self.start_agent()

    def start_agent(self):
        if self.scheduler is not None:
            self.scheduler.stop()
        cache = cache_mod.RecordCache(self.directory, clock=self.clock)
        self.scheduler = scheduler_mod.Scheduler(
            default_settings(), cache, self.engine.inspect,
            clock=self.clock, rng=random.Random(self.seed))

    def job(self, instance_id):
        # make_job is pure: the same inputs give the same job, so the
        # simulation builds it again only after a restart.
        key = (instance_id, self.domain_id[instance_id])
        job = self._jobs.get(key)
        if job is None:
            job = identity.make_job(
                instance_id, 'instance', self.xml[instance_id],
                self.domain_id[instance_id], 'image-1', BOOT_ID)
            self._jobs[key] = job
        return job

    def restart(self, instance_id):
        self._jobs.pop((instance_id, self.domain_id[instance_id]), None)
        self.domain_id[instance_id] = self._next_domain_id
        self._next_domain_id += 1
        self.restarts += 1

    def poll(self):
        """One polling cycle, then wait for the queue to drain."""
        statuses = []
        for instance_id in self.ids:
            statuses.append(self.scheduler.lookup(
                self.job(instance_id)).status)
        self.scheduler.end_cycle(self.ids)
        self.wait_idle()
        return statuses

    def wait_idle(self, timeout=120.0):
        deadline = time.monotonic() + timeout
        while True:
            stats = self.scheduler.stats()
            if not stats['queued'] and not stats['running']:
                return
            if time.monotonic() > deadline:
                raise RuntimeError('scheduler does not drain: %s' % stats)
            time.sleep(0.0005)


class FileWatch:
    """Counts record files (re)written since the last look: every
    write is an atomic rename, so it shows as a new inode."""

    def __init__(self, directory):
        self.directory = directory
        self.inodes = {}

    def changes(self):
        try:
            items = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        changed = 0
        for item in items:
            if item.name.endswith(cache_format.SUFFIX):
                inode = item.inode()
                if self.inodes.get(item.name) != inode:
                    self.inodes[item.name] = inode
                    changed += 1
        return changed


def launches_by_day(engine, days, ids=None):
    counts = [0] * days
    for day, instance_id in engine.calls:
        if day < days and (ids is None or instance_id in ids):
            counts[day] += 1
    return counts


def simulate(name, count, days, seed, restart_rate=0.0, unknown=0.0,
             agent_restart_day=None):
    """Run one scenario; its numbers as a dict."""
    rng = random.Random(seed)
    # tmpfs when there is one: the simulation counts, it does not time
    # the disk, and thousands of fsyncs would only slow it down.
    shm = '/dev/shm' if os.path.isdir('/dev/shm') else None
    with tempfile.TemporaryDirectory(prefix='bench-at-rest-',
                                     dir=shm) as tmp:
        clock = FakeClock(time.time())
        ids_unknown = set()
        host_ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, 'at-rest/%d' % n))
                    for n in range(count)]
        if unknown:
            ids_unknown = set(rng.sample(host_ids,
                                         int(round(unknown * count))))
        engine = CountingEngine(clock, ids_unknown)
        host = Host(count, pathlib.Path(tmp) / 'cache', clock, engine, seed)
        p_restart = restart_rate * POLL_INTERVAL / common.DAY
        polls = int(days * common.DAY // POLL_INTERVAL)
        first_poll_after_restart = None
        pending_polls = 0
        writes = 0
        files = FileWatch(pathlib.Path(tmp) / 'cache')
        began = time.perf_counter()
        for n in range(polls):
            clock.now = clock.start + n * POLL_INTERVAL
            if (agent_restart_day is not None
                    and n == int(agent_restart_day * common.DAY
                                 // POLL_INTERVAL)):
                # Same instant as the previous poll's successor: anything
                # queued now is caused by the restart alone.
                before = len(engine.calls)
                clock.now -= POLL_INTERVAL
                host.start_agent()
                host.poll()
                first_poll_after_restart = len(engine.calls) - before
                clock.now += POLL_INTERVAL
            if p_restart:
                for instance_id in host.ids:
                    if rng.random() < p_restart:
                        host.restart(instance_id)
            statuses = host.poll()
            writes += files.changes()
            if n == 0:
                cold = len(engine.calls)
            elif record_mod.STATUS_PENDING in statuses:
                pending_polls += 1
        wall = common.elapsed(began)
        host.scheduler.stop()
    per_day = launches_by_day(engine, days)
    known = set(host_ids) - ids_unknown

    def rate(ids):
        total = sum(1 for _, i in engine.calls[cold:] if i in ids)
        return total / (len(ids) * days)
    result = {
        'scenario': name, 'instances': count, 'days': days,
        'poll_interval_s': POLL_INTERVAL, 'restart_rate_per_vm_day':
        restart_rate, 'unknown_fraction': unknown,
        'restarts': host.restarts,
        'launches_cold_start': cold,
        'launches_per_day': per_day,
        'launches_per_vm_day': rate(set(host_ids)),
        'max_launches_per_vm_day': max(per_day[1:] or [0]) / count,
        'cache_file_writes_per_vm_day': writes / (count * days),
        'polls_serving_pending_after_first': pending_polls,
        'wall_s': wall,
    }
    if ids_unknown:
        result['launches_per_unknown_vm_day'] = rate(ids_unknown)
        result['launches_per_ok_vm_day'] = rate(known)
    if agent_restart_day is not None:
        result['agent_restart_day'] = agent_restart_day
        result['launches_first_poll_after_agent_restart'] = \
            first_poll_after_restart
        day = int(math.ceil(agent_restart_day))
        result['launches_per_vm_day_after_agent_restart'] = (
            per_day[day] / count if day < days else math.nan)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.at_rest')
    parser.add_argument('--instances', type=int, default=200)
    parser.add_argument('--days', type=int, default=21)
    parser.add_argument('--seed', type=int, default=7)
    args = parser.parse_args(argv)
    common.quiet()
    n, days, seed = args.instances, args.days, args.seed
    results = [
        simulate('steady', n, days, seed),
        simulate('restarts_0.1', n, days, seed, restart_rate=0.1),
        simulate('restarts_1', n, days, seed, restart_rate=1.0),
        simulate('unknown_10pct', n, days, seed, unknown=0.10),
        simulate('agent_restart', n, days, seed, agent_restart_day=1.5),
    ]
    rows = []
    for r in results:
        note = ''
        if 'launches_per_unknown_vm_day' in r:
            note = 'unknown VMs %.2f/day, ok VMs %.2f/day' % (
                r['launches_per_unknown_vm_day'],
                r['launches_per_ok_vm_day'])
        if 'launches_first_poll_after_agent_restart' in r:
            note = ('first poll after agent restart: %d launches' %
                    r['launches_first_poll_after_agent_restart'])
        if r['restarts']:
            note = '%d domain restarts' % r['restarts']
        verdict = ''
        if r['scenario'] in ('steady', 'agent_restart'):
            verdict = ('yes' if r['launches_per_vm_day'] <= TARGET
                       else 'NO')
        rows.append([r['scenario'], r['instances'],
                     r['launches_cold_start'],
                     '%.3f' % r['launches_per_vm_day'],
                     '%.3f' % r['max_launches_per_vm_day'], verdict,
                     '%.1f' % r['cache_file_writes_per_vm_day'], note])
    print('At rest: %d VMs, %d simulated days, a poll every %d s; '
          '"worst day" excludes day 0' % (n, days, POLL_INTERVAL))
    print(common.table(['scenario', 'VMs', 'cold', 'launch/VM/day',
                        'worst day', '<=1', 'writes/VM/day', 'notes'],
                       rows))
    path = common.write_result('at_rest', {
        'target_launches_per_vm_day': TARGET,
        'settings': dataclasses.asdict(default_settings()),
        'results': results})
    print('-> %s' % path)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
