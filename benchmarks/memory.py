"""Memory: what the pollster adds to the agent, and what appliances take.

Agent side, 1000 instances on libvirt's test driver, measured in fresh
child processes so that nothing else the benchmark did stays in the
heap:

* ``rss`` child: VmRSS after the agent's own work (imports,
  configuration, discovery of 1000 instances, one ``power.state`` poll),
  after loading a RecordCache of 1000 records, after the first poll of
  our pollster, after 10 more polls (growth = a leak);
* ``tracemalloc`` child: the same steps, Python heap only (tracemalloc
  costs memory itself, hence a separate process).

The 1000 record files are written beforehand by a third child.

Inspection side: what each inspection's own processes take, sampled
from /proc during the cold-start benchmark and read from
results/cold_start.json (run cold_start first; benchmarks/run does):
the peak RSS of the worker process
(``ceilometer_os_pollster.inspection.worker``; virt-inspector for the
baseline), of its appliance qemu, and of every process of a run at
once (concurrency 1 and 2); plus the worker alone on a job without
disks (no appliance).

Usage: python -m benchmarks.memory [--instances N]
"""

import argparse
import gc
import json
import pathlib
import subprocess
import sys
import tempfile
import time
import tracemalloc

from benchmarks import common

MORE_POLLS = 10


def _setup(node_uri):
    """Everything the agent has before our pollster: conf, inspector,
    discovered instances, one Ceilometer poll."""
    from ceilometer.compute.pollsters import instance_stats
    conf = common.ceilometer_conf(node_uri)
    inspector = common.fresh_inspector(conf)
    instances = common.discover(conf)
    power = instance_stats.PowerStatePollster(conf)
    power.setup_environment()
    for _ in power.get_samples(None, {}, instances):
        pass
    return conf, inspector, instances


def write_cache(node_uri, directory):
    from ceilometer_os_pollster.agent import service as service_mod
    from benchmarks import poll_path
    conf, inspector, instances = _setup(node_uri)
    probe = service_mod.InspectionService(conf,
                                          engine=poll_path.CountingEngine())
    jobs = poll_path.jobs_for(probe, inspector, instances)
    poll_path.prefill(directory, jobs)
    return len(jobs)


def measure(node_uri, directory, mode):
    """{stage: figure} for one child; mode 'rss' or 'tracemalloc'."""
    from ceilometer_os_pollster.agent import cache as cache_mod
    from ceilometer_os_pollster.agent import pollster as pollster_mod
    from ceilometer_os_pollster.agent import scheduler as scheduler_mod
    from ceilometer_os_pollster.agent import service as service_mod
    from benchmarks import poll_path
    conf, inspector, instances = _setup(node_uri)
    ours = pollster_mod.OSMetadataPollster(conf)
    ours.setup_environment()
    figures = {}

    def take(stage):
        gc.collect()
        if mode == 'tracemalloc':
            figures[stage] = tracemalloc.get_traced_memory()[0]
        else:
            figures[stage] = common.status_kib() * 1024
        figures[stage + '_hwm'] = common.status_kib(key='VmHWM') * 1024

    if mode == 'tracemalloc':
        tracemalloc.start()
    take('agent')
    cache = cache_mod.RecordCache(directory)
    loaded = cache.load()
    take('cache_loaded')
    engine = poll_path.CountingEngine()
    sched = scheduler_mod.Scheduler(conf.os_inspection, cache,
                                    engine.inspect)
    svc = service_mod.InspectionService(conf, engine=engine, cache=cache,
                                        scheduler=sched)
    service_mod.get_service = lambda conf: svc
    statuses = {s.resource_metadata['os_inspection_status']
                for s in ours.get_samples(None, {}, instances)}
    take('first_poll')
    for _ in range(MORE_POLLS):
        for _ in ours.get_samples(None, {}, instances):
            pass
    take('more_polls')
    sched.stop()
    figures.update(records=loaded, instances=len(instances),
                   statuses=sorted(statuses), inspections=engine.calls)
    return figures


def _child(args):
    if args.child == 'write':
        count = write_cache(args.node, args.cache)
        print(json.dumps({'written': count}))
    else:
        print(json.dumps(measure(args.node, args.cache, args.child)))
    return 0


def _run_child(kind, node_uri, directory):
    proc = subprocess.run(
        [sys.executable, '-m', 'benchmarks.memory', '--child', kind,
         '--node', node_uri, '--cache', str(directory)],
        capture_output=True, text=True, cwd=str(common.HERE.parent),
        timeout=900)
    if proc.returncode:
        raise RuntimeError('%s child failed: %s' % (kind,
                                                    proc.stderr[-2000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mib(value):
    return '%.1f' % (value / 1048576.0)


def appliance_rows():
    """Rows of what each inspection's processes took during the cold
    start (results/cold_start.json), and where they come from."""
    cold = common.read_result('cold_start')
    if not cold:
        return [], 'no results/cold_start.json: run benchmarks.cold_start'
    rows = []
    overhead = cold.get('child_overhead') or {}
    if overhead.get('worker_peak_rss_mib'):
        rows.append(['worker, no disk (no appliance)', 1, '-',
                     '%s/%s' % (overhead['worker_peak_rss_mib'],
                                overhead.get('worker_peak_pss_mib', '-')),
                     '-', '-', '-', 0, '-'])
    for run in cold.get('runs', []):
        rss = run.get('rss') or {}
        if not rss:
            continue
        rows.append([run['name'], run.get('concurrency', ''),
                     run.get('memory_mb', ''),
                     '%s/%s' % (rss.get('peak_driver_mib', '-'),
                                rss.get('peak_driver_pss_mib', '-')),
                     rss.get('peak_single_mib', ''),
                     rss.get('peak_total_mib', ''),
                     '%s/%s' % (rss.get('peak_all_mib', '-'),
                                rss.get('peak_all_pss_mib', '-')),
                     rss.get('peak_appliances', ''),
                     rss.get('max_foreign_appliances', '')])
    return rows, 'from results/cold_start.json of %s' % (
        cold.get('machine', {}).get('date', '?'))


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.memory')
    parser.add_argument('--instances', type=int, default=1000)
    parser.add_argument('--child', choices=('write', 'rss', 'tracemalloc'))
    parser.add_argument('--node')
    parser.add_argument('--cache')
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)

    from benchmarks import poll_path
    from tests.fixtures import libvirt_test_driver as tdrv
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='bench-memory-') as tmp:
        tmp = pathlib.Path(tmp)
        node_uri = tdrv.write_node(tmp / 'node.xml',
                                   poll_path.node_domains(args.instances))
        written = _run_child('write', node_uri, tmp / 'cache')['written']
        rss = _run_child('rss', node_uri, tmp / 'cache')
        heap = _run_child('tracemalloc', node_uri, tmp / 'cache')
        files = sorted((tmp / 'cache').glob('*.json'))
        disk_bytes = sum(f.stat().st_size for f in files)
    n = rss['records']
    steps = [('load %d records' % n, 'agent', 'cache_loaded'),
             ('first poll of %d VMs' % rss['instances'], 'cache_loaded',
              'first_poll'),
             ('%d more polls' % MORE_POLLS, 'first_poll', 'more_polls')]
    rows = []
    for label, a, b in steps:
        d_rss, d_heap = rss[b] - rss[a], heap[b] - heap[a]
        rows.append([label, _mib(d_rss), _mib(d_heap),
                     '%.0f' % (d_rss / n), '%.0f' % (d_heap / n)])
    total_rss = rss['more_polls'] - rss['agent']
    total_heap = heap['more_polls'] - heap['agent']
    rows.append(['total', _mib(total_rss), _mib(total_heap),
                 '%.0f' % (total_rss / n), '%.0f' % (total_heap / n)])
    print('Agent memory: %d cached records, %d instances (agent RSS '
          'before: %s MiB)' % (n, rss['instances'], _mib(rss['agent'])))
    print(common.table(['step', 'RSS MiB', 'heap MiB', 'RSS B/VM',
                        'heap B/VM'], rows))
    print('record files: %d, %.0f bytes each on disk (apparent size); '
          'statuses served: %s; inspections queued: %d'
          % (len(files), disk_bytes / max(1, len(files)),
             ','.join(rss['statuses']), rss['inspections']))
    arows, source = appliance_rows()
    if arows:
        print('Each inspection\'s processes during the cold start (%s): '
              'peak RSS/PSS of one worker (virt-inspector for the '
              'baseline), peak RSS of one appliance qemu and of all qemu '
              'at once, peak RSS/PSS of every process of the run at once'
              % source)
        print(common.table(['run', 'concurrency', 'memsize MiB',
                            'worker MiB', 'qemu MiB', 'qemu sum MiB',
                            'all MiB', 'appliances', 'foreign'], arows))
    else:
        print('Appliance memory: %s' % source)
    path = common.write_result('memory', {
        'instances': rss['instances'], 'records': n, 'written': written,
        'rss_bytes': rss, 'heap_bytes': heap,
        'record_file_bytes': disk_bytes / max(1, len(files)),
        'appliances_source': source, 'appliance_rows': arows,
        'wall_s': common.elapsed(began)})
    print('-> %s' % path)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
