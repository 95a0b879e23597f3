"""Poll path: what our pollster adds to one Ceilometer polling cycle.

Times ``get_samples`` over every discovered instance for

* ``ours_cached``: OSMetadataPollster, every record cached and valid
  (the steady state);
* ``ours_uncached``: OSMetadataPollster with an empty cache, so every
  instance is queued (the first cycle after deployment); the engine
  blocks until the timing is over, so no inspection competes for CPU;
* Ceilometer's own ``vcpus`` pollster (VCPUsPollster) on the same
  instances and the same shared inspector (one libvirt connection), and
  ``power.state`` (PowerStatePollster: the same inspector call,
  ``inspect_instance``, with another stats key).

Repetitions are interleaved in a shuffled order; the result is the
ratio of medians ours/Ceilometer (and the median of per-repetition
ratios).  Targets: both ratios <= 1.5, against Ceilometer's pollsters
with an empty per-cycle cache (the first instance-stats pollster of a
cycle pays for ``inspect_instance``).  For context also: the same
pollsters with the cycle cache already filled (``*_warm``: only samples
left to build), and a breakdown of our per-instance work (domain
lookup, + XMLDesc, + the whole job_for_domain).

Instances come from Ceilometer's real InstanceDiscovery
(``libvirt_metadata``) on:

* ``test``: libvirt's daemon-less test driver, 1000 domains with nova
  metadata (every libvirt call is in-process);
* ``test-rpc``: the same node file served by libvirtd
  (``test+unix:///path``): every libvirt call is an RPC, as on a real
  compute node;
* ``qemu``: real paused qemu domains of a throw-away rig
  (``qemu:///system``), when libvirtd runs.

The test driver reports no vCPU statistics (``domainListGetStats`` gives
only the state, ``memoryStats`` nothing), so there ``vcpus`` yields no
sample (and logs one warning per instance): ``power.state`` is the
comparison there.  On qemu both work.

Usage: python -m benchmarks.poll_path [--instances N] [--reps N]
                                      [--rig-domains N] [--no-rig]
"""

import argparse
import pathlib
import shutil
import tempfile
import threading
import time
import uuid

from ceilometer_os_pollster.agent import cache as cache_mod
from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster.agent import pollster as pollster_mod
from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster.agent import scheduler as scheduler_mod
from ceilometer_os_pollster.agent import service as service_mod

from benchmarks import common

TARGET_RATIO = 1.5
NAMESPACE = uuid.UUID('0b7b5a8e-5f47-4f5b-9d0e-6b3c7a6f0c11')


class BlockingEngine:
    """Stands in for the appliance: every inspect waits for release()."""

    def __init__(self):
        self.calls = 0
        self._go = threading.Event()

    def inspect(self, job):
        self.calls += 1
        self._go.wait(60)
        return record_mod.OSRecord.failed(job.instance_id, 'benchmark',
                                          fingerprint=job.fingerprint)

    def release(self):
        self._go.set()


class CountingEngine:
    """Must never be called on a fully cached poll."""

    def __init__(self):
        self.calls = 0

    def inspect(self, job):
        self.calls += 1
        return record_mod.OSRecord.failed(job.instance_id, 'benchmark',
                                          fingerprint=job.fingerprint)


def ok_record(job):
    return record_mod.OSRecord(
        instance_id=job.instance_id, status=record_mod.STATUS_OK,
        os_family='windows', os_distro='windows', os_info='win2k22',
        os_version_major=10, os_version_minor=0, os_build='20348',
        os_product_name='Windows Server 2022 Datacenter',
        os_product_variant='Server', os_edition='Datacenter',
        os_arch='x86_64', inspected_at=record_mod.utc_timestamp(),
        fingerprint=job.fingerprint, duration=42.0)


def node_domains(count):
    from tests.fixtures import libvirt_test_driver as tdrv
    return [tdrv.domain(str(uuid.uuid5(NAMESPACE, 'vm-%d' % i)),
                        'instance-%08x' % (i + 1), vcpus=1 + i % 8,
                        project='p-%d' % (i % 50), user='u-%d' % (i % 200),
                        image='img-%d' % (i % 20))
            for i in range(count)]


def jobs_for(svc, inspector, instances):
    conn = inspector.connection
    return [svc.job_for_domain(i.id, conn.lookupByUUIDString(i.id),
                               pollster_mod.image_id_of(i))
            for i in instances]


def prefill(directory, jobs):
    """A RecordCache holding a valid ok record for every job."""
    cache = cache_mod.RecordCache(directory)
    now = time.time()
    for job in jobs:
        cache.put(cache_format.Entry(record=ok_record(job),
                                     expires_at=now + 30 * common.DAY,
                                     last_seen=now))
    return cache


def measure(label, uri, reps, seed, only_ids=None, workdir=None):
    """Interleaved timings of the pollsters on one libvirt URI."""
    from ceilometer.compute.pollsters import instance_stats
    conf = common.ceilometer_conf(uri)
    inspector = common.fresh_inspector(conf)
    began = time.perf_counter()
    instances = common.discover(conf)
    discovery_s = common.elapsed(began)
    if only_ids is not None:
        instances = [i for i in instances if i.id in only_ids]
    count = len(instances)
    if not count:
        raise RuntimeError('%s: discovery found no instance' % uri)

    ours = pollster_mod.OSMetadataPollster(conf)
    ours.setup_environment()
    vcpus = instance_stats.VCPUsPollster(conf)
    vcpus.setup_environment()
    power = instance_stats.PowerStatePollster(conf)
    power.setup_environment()
    assert ours.inspector is vcpus.inspector is inspector

    workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix='bench-poll-'))
    current = {}
    saved_get_service = service_mod.get_service
    service_mod.get_service = lambda conf: current['svc']
    try:
        # (a) every record cached, fingerprints matching the live domains
        cached_engine = CountingEngine()
        probe = service_mod.InspectionService(conf, engine=cached_engine)
        began = time.perf_counter()
        jobs = jobs_for(probe, inspector, instances)
        cache = prefill(workdir / 'cached', jobs)
        prefill_s = common.elapsed(began)
        cached_sched = scheduler_mod.Scheduler(conf.os_inspection, cache,
                                               cached_engine.inspect)
        cached_svc = service_mod.InspectionService(
            conf, engine=cached_engine, cache=cache, scheduler=cached_sched)

        counts = {}
        statuses = {}
        queue_stats = []

        def run(name, poller, svc=None, warm=False):
            current['svc'] = svc
            cycle_cache = {}
            if warm:
                # Another instance-stats pollster (cpu, memory.usage...)
                # already ran this cycle: only samples are left to build.
                for _ in poller.get_samples(None, cycle_cache, instances):
                    pass
            began = time.perf_counter()
            n = 0
            for s in poller.get_samples(None, cycle_cache, instances):
                n += 1
                last = s
            seconds = common.elapsed(began)
            counts.setdefault(name, set()).add(n)
            if n and name.startswith('ours'):
                statuses.setdefault(name, set()).add(
                    last.resource_metadata['os_inspection_status'])
            return seconds

        def uncached():
            engine = BlockingEngine()
            directory = workdir / ('empty-%d' % len(queue_stats))
            empty = cache_mod.RecordCache(directory)
            sched = scheduler_mod.Scheduler(conf.os_inspection, empty,
                                            engine.inspect)
            svc = service_mod.InspectionService(conf, engine=engine,
                                                cache=empty, scheduler=sched)
            try:
                seconds = run('ours_uncached', ours, svc)
                stats = sched.stats()
                queue_stats.append(stats['queued'] + stats['running'])
            finally:
                sched.stop(timeout=0)
                engine.release()
                sched.stop(timeout=10)
                shutil.rmtree(directory, ignore_errors=True)
            return seconds

        conn = inspector.connection

        def part(step):
            # Pieces of our per-instance work, for the breakdown.
            def timed():
                began = time.perf_counter()
                for i in instances:
                    dom = conn.lookupByUUIDString(i.id)
                    if step == 'xml':
                        dom.XMLDesc(0)
                    elif step == 'job':
                        probe.job_for_domain(i.id, dom,
                                             pollster_mod.image_id_of(i))
                return common.elapsed(began)
            return timed

        variants = {
            'part_lookup': part('lookup'),
            'part_lookup_xmldesc': part('xml'),
            'part_lookup_make_job': part('job'),
            'ours_cached': lambda: run('ours_cached', ours, cached_svc),
            'ours_uncached': uncached,
            'power.state': lambda: run('power.state', power),
            'power.state_warm': lambda: run('power.state_warm', power,
                                            warm=True),
        }
        # vcpus on the test driver: no sample, one warning per instance.
        probe_n = sum(1 for _ in vcpus.get_samples(None, {}, instances[:3]))
        vcpus_works = probe_n == min(3, count)
        if vcpus_works:
            variants['vcpus'] = lambda: run('vcpus', vcpus)
            variants['vcpus_warm'] = lambda: run('vcpus_warm', vcpus,
                                                 warm=True)
        times = common.interleaved(variants, reps, seed=seed)
        cached_sched.stop()
    finally:
        service_mod.get_service = saved_get_service
        shutil.rmtree(workdir, ignore_errors=True)

    baseline = 'vcpus' if vcpus_works else 'power.state'
    medians = {name: common.summary(t)['median'] for name, t in times.items()}
    result = {
        'label': label, 'uri': uri, 'instances': count, 'reps': reps,
        'baseline': baseline,
        'vcpus_yields_samples': vcpus_works,
        'discovery_s': discovery_s, 'prefill_s': prefill_s,
        'seconds': {name: common.summary(t) for name, t in times.items()},
        'us_per_instance': {name: 1e6 * m / count
                            for name, m in medians.items()},
        'samples_per_poll': {name: sorted(n) for name, n in counts.items()},
        'statuses': {name: sorted(s) for name, s in statuses.items()},
        'queued_by_uncached_poll': sorted(set(queue_stats)),
        'inspections_during_cached_polls': cached_engine.calls,
        'ratios': {},
    }
    for ours_name in ('ours_cached', 'ours_uncached'):
        for base in ('vcpus', 'power.state', 'vcpus_warm',
                     'power.state_warm'):
            if base not in times:
                continue
            result['ratios']['%s/%s' % (ours_name, base)] = {
                'ratio_of_medians': common.ratio(medians[ours_name],
                                                 medians[base]),
                'median_paired_ratio': common.summary(common.paired_ratios(
                    times, ours_name, base))['median'],
            }
    return result


def _rig_plan(count, workdir):
    """``count`` small domains on one blank image (never inspected)."""
    image = pathlib.Path(workdir) / 'blank.raw'
    image.parent.mkdir(parents=True, exist_ok=True)
    with open(image, 'wb') as f:
        f.truncate(16 * 1024 * 1024)
    return [('bench-poll-%d' % n, str(image),
             dict(vcpus=1 + n % 4, memory_mib=32)) for n in range(count)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.poll_path')
    parser.add_argument('--instances', type=int, default=1000)
    parser.add_argument('--reps', type=int, default=11)
    parser.add_argument('--rig-domains', type=int, default=20)
    parser.add_argument('--no-rig', action='store_true',
                        help='skip the qemu:///system measurement')
    parser.add_argument('--no-libvirtd', action='store_true',
                        help='only the daemon-less test driver')
    parser.add_argument('--seed', type=int, default=1)
    args = parser.parse_args(argv)

    results = []
    skipped = {}
    daemon = 'disabled' if args.no_libvirtd else common.ensure_libvirtd()
    with tempfile.TemporaryDirectory(prefix='bench-node-') as tmp:
        from tests.fixtures import libvirt_test_driver as tdrv
        node = pathlib.Path(tmp) / 'node.xml'
        uri = tdrv.write_node(node, node_domains(args.instances))
        results.append(measure('test', uri, args.reps, args.seed))
        if not daemon:
            rpc_uri = 'test+unix://' + str(node)
            results.append(measure('test-rpc', rpc_uri, args.reps,
                                   args.seed))
        else:
            skipped['test-rpc'] = daemon
    if args.no_rig or args.rig_domains <= 0:
        skipped['qemu'] = 'disabled'
    elif daemon:
        skipped['qemu'] = daemon
    else:
        workdir = common.RIG_ROOT / 'poll-images'
        try:
            plan = _rig_plan(args.rig_domains, workdir)
            with common.bench_rig('poll', plan, pause=True) as (rig, doms):
                results.append(measure(
                    'qemu', rig.uri, args.reps, args.seed,
                    only_ids={d.uuid for d in doms}))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = []
    for r in results:
        us = r['us_per_instance']
        base = r['baseline']
        for ref, target in ((base, True), (base + '_warm', False)):
            for name in ('ours_cached', 'ours_uncached'):
                key = '%s/%s' % (name, ref)
                ratio = r['ratios'][key]['ratio_of_medians']
                verdict = (('yes' if ratio <= TARGET_RATIO else 'NO')
                           if target else '(context)')
                rows.append([r['label'], r['instances'], name, ref,
                             '%.0f' % us[name], '%.0f' % us[ref],
                             '%.2f' % ratio,
                             '%.2f' % r['ratios'][key]['median_paired_ratio'],
                             verdict])
    print('Poll path: get_samples over all instances, median of %d '
          'interleaved repetitions' % args.reps)
    print(common.table(
        ['target', 'VMs', 'ours', 'baseline', 'us/VM ours',
         'us/VM base', 'ratio', 'paired', '<=1.5'], rows))
    print('Breakdown of ours_cached, us per VM (lookupByUUIDString; '
          '+ XMLDesc; + whole job_for_domain: XML parse, fingerprint)')
    print(common.table(
        ['target', 'lookup', '+XMLDesc', '+make_job', 'ours_cached'],
        [[r['label']] + ['%.0f' % r['us_per_instance'][k] for k in (
            'part_lookup', 'part_lookup_xmldesc', 'part_lookup_make_job',
            'ours_cached')] for r in results]))
    for label, why in skipped.items():
        print('%s: skipped (%s)' % (label, why))
    path = common.write_result('poll_path', {
        'target_ratio': TARGET_RATIO, 'results': results,
        'skipped': skipped})
    print('-> %s' % path)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
