"""Cold start: inspecting a host's running VMs from an empty cache.

A throw-away rig (tests.rig) runs N nova-like qemu domains whose disks
are nova-style qcow2 overlays on phony guest images (tests.guests); one
of them also has a data disk.  Jobs are built from the live domains the
way the pollster builds them (identity.make_job); the real Engine
inspects them through the real Scheduler (``run_now``) with an empty
RecordCache, at concurrency 1 and 2: one worker process per VM
(``python -m ceilometer_os_pollster.inspection.worker``), each
launching its own appliance.  In the same run, the existing tool's approach:
``virt-inspector --format=FMT -a DISK`` run serially, one appliance per
VM with libguestfs' full inspection (what Debian's poller effectively
does per VM), on the same boot disks, at the same CPU and I/O priority
as our workers (nice 10, idle I/O class by default).  Ours at
concurrency 1 and virt-inspector alternate VM by VM, so that neither
gets the calmer
minutes or the warmer caches; a bare appliance launch (one empty
scratch disk) before and after measures the fixed cost of a launch and
warms the appliance files for both.

Where the time goes: the worker reports its stages on its stdout
(``{"stage": ...}``); StageClock wraps ``supervisor.run`` in this
process to timestamp them as they arrive, so every inspection splits
into start (spawn, imports), setup (overlays, drives), launch, inspect
(with the appliance shutdown) and end (exit, reap).  Nothing inside
the worker or the appliance is replaced.

What the worker process itself costs: a job for a domain without disks
(the worker answers ``unknown`` without an appliance), run through
``Engine.inspect`` and, paired in the same repetitions, the same
request's ``worker.inspect`` called in this process.

Experiments on what an operator controls: appliance_memory_mb 512 and
1280 (768 is the default) on one Windows and one Linux VM, and
inspect_all_disks on the VM with a data disk.

Memory: a sampler reads, from /proc twice a second, the RSS of every
qemu process descended from this process (our appliances,
virt-inspector's) and of the processes driving them (our workers,
virt-inspector), and the PSS of all of them; foreign appliances (other
processes' tests) running meanwhile are counted, as they compete for
the same CPUs.

Every number is one run on a noisy shared machine: compare the rows of
one run, not runs.  Guests must be inspected correctly for a row to
count: each record is checked against the catalog's expectations.

Usage: python -m benchmarks.cold_start [--guests A,B,C] [--no-rig]
                                       [--skip-experiments]
"""

import argparse
import json
import os
import re
import resource
import subprocess
import tempfile
import threading
import time


from ceilometer_os_pollster.agent import cache as cache_mod
from ceilometer_os_pollster.agent import engine as engine_mod
from ceilometer_os_pollster.instances import identity
from ceilometer_os_pollster import options
from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster.agent import scheduler as scheduler_mod
from ceilometer_os_pollster.agent import service as service_mod
from ceilometer_os_pollster.inspection import supervisor
from ceilometer_os_pollster.inspection import worker as worker_mod
from ceilometer_os_pollster.inspection import worker_process
from ceilometer_os_pollster.agent import workdir

from benchmarks import common

# Two Windows (one with SQL Server), one Linux, one Linux with a data
# disk (for the all-disks experiment).
DEFAULT_GUESTS = ('win2022-standard', 'rhel-9.4', 'win2019-sql',
                  'debian-12+data-only')
DEFAULT_MEMORY = 768
MEMORY_EXPERIMENTS = (512, 1280)


# -- timing the worker's stages ---------------------------------------------

# The worker's stage messages, in order, and the phase each one opens.
STAGES = (('reading the domain XML', 'setup'),
          ('launching the appliance', 'launch'),
          ('inspecting', 'inspect'))
PHASES = ('start', 'setup', 'launch', 'inspect', 'end')


class StageClock:
    """Times every worker run of the agent through its own messages.

    While active, ``supervisor.run`` (what ``Engine.inspect`` calls, in
    this benchmark process) is wrapped: the wrapper notes when the worker
    was started, when each ``{"stage": ...}`` and the ``{"record": ...}``
    message arrived and when the run was over (worker exited, process
    group killed, reaped), then returns the real outcome untouched.
    Nothing in the worker or the appliance is replaced.  Phases:

    * start: spawn + interpreter start + imports + reading the request,
      up to the first stage message;
    * setup: drive specs, guestfs handle, pinned overlays (qemu-img),
      adding the drives;
    * launch: appliance launch + the qemu command-line check;
    * inspect: our calls inside the appliance + closing the handle
      (appliance shutdown), up to the record;
    * end: from the record to the worker reaped.
    """

    def __init__(self):
        self.runs = []
        self._lock = threading.Lock()
        self._real = None

    def __enter__(self):
        self._real = supervisor.run

        def timed_run(argv, request, deadline, **kwargs):
            stamps = {'instance_id': json.loads(request)['job'][
                'instance_id'], 'stages': []}
            relay = kwargs.get('on_message')

            def on_message(message):
                now = time.perf_counter()
                if 'stage' in message:
                    stamps['stages'].append((message['stage'], now))
                elif 'record' in message:
                    stamps['record'] = now
                if relay is not None:
                    relay(message)
            kwargs['on_message'] = on_message
            stamps['began'] = time.perf_counter()
            try:
                outcome = self._real(argv, request, deadline, **kwargs)
            finally:
                stamps['ended'] = time.perf_counter()
            stamps['returncode'] = outcome.returncode
            stamps['timed_out'] = outcome.timed_out
            with self._lock:
                self.runs.append(stamps)
            return outcome
        supervisor.run = timed_run
        return self

    def __exit__(self, *exc):
        supervisor.run = self._real

    def phases(self):
        """[{instance_id, launched, start, setup, ...}] in seconds."""
        out = []
        for s in self.runs:
            at = dict(s['stages'])
            marks = [('start', s['began'])]
            marks += [(phase, at[stage]) for stage, phase in STAGES
                      if stage in at]
            if 'record' in s:
                marks.append(('end', s['record']))
            marks.append(('', s['ended']))
            times = {name: nxt - t for (name, t), (_, nxt)
                     in zip(marks, marks[1:])}
            times.update(instance_id=s['instance_id'],
                         launched='launching the appliance' in at,
                         total=s['ended'] - s['began'])
            out.append(times)
        return out


# -- configuration ---------------------------------------------------------

def backend_settings():
    env = os.environ.get('LIBGUESTFS_BACKEND_SETTINGS', '')
    if env:
        return [s for s in env.split(':') if s]
    # Nested KVM hangs the appliance: never benchmark a hang.
    return ['force_tcg'] if engine_mod.kvm_problem() else []


def make_conf(concurrency, memory_mb=DEFAULT_MEMORY, all_disks=False,
              tmp_dir=None):
    from tests.functional import faults_helpers
    overrides = dict(concurrency=concurrency, appliance_memory_mb=memory_mb,
                     inspect_all_disks=all_disks,
                     libguestfs_backend_settings=backend_settings())
    if tmp_dir:
        overrides['tmp_dir'] = tmp_dir
    return faults_helpers.inspection_conf(**overrides)


# -- the VMs ---------------------------------------------------------------

def parse_guests(text):
    """'a,b+c' -> [('a', None), ('b', 'c')]: guest [+ data disk guest]."""
    out = []
    for item in text.split(','):
        boot, _, data = item.strip().partition('+')
        out.append((boot, data or None))
    return out


class VM:
    """One VM under test: its job, its boot disk, what it must be."""

    def __init__(self, label, guest, job, boot_path, boot_format,
                 data_guest=None):
        self.label = label
        self.guest = guest
        self.data_guest = data_guest
        self.job = job
        self.boot_path = boot_path
        self.boot_format = boot_format


def rig_vms(rig, doms, guests):
    boot_id = service_mod.host_boot_id()
    vms = []
    for dom, (guest, data) in zip(doms, guests):
        live = rig.conn.lookupByUUIDString(dom.uuid)
        job = identity.make_job(dom.uuid, live.name(), live.XMLDesc(0),
                                live.ID(), dom.image_id or '', boot_id)
        boot = dom.boot_disk
        vms.append(VM(dom.display_name, guest, job, boot.source,
                      boot.format, data))
    return vms


def xml_vms(images, guests):
    """Jobs from domain XML pointing at the images (no libvirt)."""
    from tests.rig import domains
    vms = []
    for n, ((guest, data), (boot, extra)) in enumerate(zip(guests, images)):
        disks = [domains.Disk('vda', 'file', str(boot), 'raw')]
        if extra:
            disks.append(domains.Disk('vdb', 'file', str(extra), 'raw'))
        uuid = domains.stable_uuid('bench-cold', guest, str(n))
        spec = domains.DomainSpec(
            uuid=uuid, name=domains.instance_name(n + 1),
            display_name='bench-%s' % guest,
            flavor=domains.flavor_for(2), project_id='p', user_id='u',
            image_id=domains.stable_uuid('image', guest),
            disks=tuple(disks))
        job = identity.make_job(uuid, spec.name,
                                domains.domain_xml(spec), n + 1,
                                spec.image_id, 'no-rig')
        vms.append(VM(spec.display_name, guest, job, str(boot), 'raw', data))
    return vms


def check(vm, rec):
    """[] when the record says what the catalog expects of the guest."""
    from tests.guests import catalog
    return [('%s: want %r got %r' % m) for m in catalog.mismatches(
        catalog.GUESTS[vm.guest].expected, rec)]


# -- runs ------------------------------------------------------------------

def run_ours(name, vms, concurrency, memory_mb=DEFAULT_MEMORY,
             all_disks=False):
    """Inspect ``vms`` from an empty cache through the real Scheduler
    and Engine (one worker process per VM); what it cost."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix='bench-cold-') as tmp:
        conf = make_conf(concurrency, memory_mb, all_disks, tmp_dir=tmp)
        engine = engine_mod.Engine(conf)
        cache = cache_mod.RecordCache(os.path.join(tmp, 'cache'))
        sched = scheduler_mod.Scheduler(conf[options.GROUP], cache,
                                        engine.inspect)
        # Every 10 ms, as benchmarks.direct does: a worker that reads
        # the disk itself lives ~0.3 s, which a 0.5 s sampler misses
        # (it showed 0 MiB for every auto row).
        with common.RssSampler(interval=0.01) as rss, \
                StageClock() as clock:
            began = time.perf_counter()
            records = sched.run_now([vm.job for vm in vms], force=True)
            wall = common.elapsed(began)
        sched.stop()
        leftovers = sorted(n for n in os.listdir(tmp) if n != 'cache')
    procs = common.proc_table()
    # Every worker's process group is killed before it is reaped.
    leftovers += ['%s %d' % (procs[p][1], p) for p in
                  common.descendants(os.getpid(), procs)]
    phases = clock.phases()
    by_id = {p['instance_id']: p for p in phases}
    per_vm = []
    for vm, rec in zip(vms, records):
        p = by_id.get(vm.job.instance_id, {})
        per_vm.append({
            'vm': vm.label, 'guest': vm.guest, 'status': rec.status,
            'reason': rec.reason, 'os': '%s %s %s' % (
                rec.os_distro, rec.os_info, rec.os_edition),
            'seconds': rec.duration,
            'phases': {k: p.get(k) for k in PHASES},
            'problems': check(vm, rec),
        })
    return finish({
        'name': name, 'kind': 'ours', 'concurrency': concurrency,
        'memory_mb': memory_mb, 'all_disks': all_disks, 'vms': len(vms),
        'wall_s': wall, 'per_vm': per_vm, 'rss': rss.result(),
        'phase_list': phases, 'worker_runs': len(phases),
        'leftovers': leftovers,
        'loadavg_before': load_before, 'loadavg_after': os.getloadavg()[0],
    })


def finish(run):
    """Add the derived figures to a run."""
    vms = run['vms']
    run['s_per_vm'] = run['wall_s'] / vms
    if run['kind'] == 'ours':
        phases = run['phase_list']
        run['launches'] = sum(1 for p in phases if p['launched'])
        run['launches_per_vm'] = run['launches'] / vms
        done = [p for p in phases if 'inspect' in p]
        run['phase_medians'] = {k: common.summary(
            [p[k] for p in done if k in p]).get('median') for k in PHASES}
        # The worker's own cost beside the appliance: start + end.
        run['child_overhead_median'] = common.summary(
            [p['start'] + p.get('end', 0.0) for p in phases
             if 'start' in p]).get('median')
        run['correct'] = (all(not v['problems'] for v in run['per_vm'])
                          and run['worker_runs'] == vms
                          and not run['leftovers'])
    else:
        run['launches'] = vms
        run['launches_per_vm'] = 1.0
        run['correct'] = all(v['returncode'] == 0 for v in run['per_vm'])
    return run


def merge(parts):
    """One run out of runs of the same kind over different VMs."""
    run = dict(parts[0])
    run['vms'] = sum(p['vms'] for p in parts)
    run['wall_s'] = sum(p['wall_s'] for p in parts)
    run['per_vm'] = [v for p in parts for v in p['per_vm']]
    run['loadavg_after'] = parts[-1]['loadavg_after']
    run['rss'] = {k: (sum if k in ('drivers_seen', 'samples') else max)(
        p['rss'][k] for p in parts) for k in parts[0]['rss']}
    if run['kind'] == 'ours':
        run['phase_list'] = [x for p in parts for x in p['phase_list']]
        run['worker_runs'] = sum(p['worker_runs'] for p in parts)
        run['leftovers'] = [x for p in parts for x in p['leftovers']]
    return finish(run)


def no_disk_job():
    """A job for a domain without any disk: the worker answers
    ``unknown`` (no disk to inspect) without starting an appliance."""
    from tests.rig import domains
    spec = domains.DomainSpec(
        uuid=domains.stable_uuid('bench-cold', 'no-disk'),
        name=domains.instance_name(999), display_name='bench-no-disk',
        flavor=domains.flavor_for(1), project_id='p', user_id='u',
        image_id=None, disks=())
    return identity.make_job(spec.uuid, spec.name,
                             domains.domain_xml(spec), 999, '', 'no-rig')


def _no_disk_ok(rec, job):
    return (rec.instance_id == job.instance_id
            and rec.status == record_mod.STATUS_UNKNOWN
            and rec.reason == 'no disk to inspect')


def child_overhead(reps=11, memory_samples=3):
    """What one worker process costs beside its appliance.

    The same no-disk job, paired in every repetition (shuffled order):
    ``worker`` = ``Engine.inspect`` as the agent runs it (private
    directory, spawn, imports, JSON request and lines, exit, reap);
    ``in-process`` = the same request's ``worker.inspect`` called in this
    process, in a private directory too (its modules already imported).
    The child's CPU time comes from RUSAGE_CHILDREN; its peak RSS from
    a fast /proc sampler on a few extra runs (kept out of the timing).
    """
    with tempfile.TemporaryDirectory(prefix='bench-child-') as tmp:
        conf = make_conf(1, tmp_dir=tmp)
        engine = engine_mod.Engine(conf)
        job = no_disk_job()
        bad = []
        cpu = []

        def via_worker():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            began = time.perf_counter()
            rec = engine.inspect(job)
            seconds = common.elapsed(began)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime
                       + after.ru_stime - before.ru_stime)
            if not _no_disk_ok(rec, job):
                bad.append('worker: %s %s' % (rec.status, rec.reason))
            return seconds

        def in_process():
            began = time.perf_counter()
            with workdir.PrivateDir(tmp) as private:
                request = json.loads(engine.request(job, private.path))
                rec = worker_mod.inspect(
                    worker_mod.options_namespace(request['options']),
                    request['job'], request['private_dir'], lambda n: None)
            seconds = common.elapsed(began)
            if not _no_disk_ok(rec, job):
                bad.append('in-process: %s %s' % (rec.status, rec.reason))
            return seconds

        with StageClock() as clock:
            times = common.interleaved({'worker': via_worker,
                                        'in-process': in_process}, reps)
        with common.RssSampler(interval=0.005) as sampler:
            for _ in range(memory_samples):
                engine.inspect(job)
        leftovers = [n for n in os.listdir(tmp)]
    if bad or leftovers:
        raise RuntimeError('no-disk job answered wrongly: %s; leftover '
                           'private dirs: %s' % (bad[:3], leftovers))
    # The warm-up run is left out, as in the timed lists.
    phases = [p for p in clock.phases() if 'start' in p][-reps:]
    worker_s = common.summary(times['worker'])
    inproc_s = common.summary(times['in-process'])
    paired = common.paired_ratios(times, 'worker', 'in-process')
    diffs = [a - b for a, b in zip(times['worker'], times['in-process'])]
    return {
        'reps': reps, 'worker_s': worker_s, 'in_process_s': inproc_s,
        'overhead_s': common.summary(diffs),
        'paired_ratio': common.summary(paired),
        'start_s': common.summary([p['start'] for p in phases]),
        'end_s': common.summary([p.get('end', 0.0) for p in phases]),
        'child_cpu_s': common.summary(cpu[-reps:]),
        'worker_peak_rss_mib': sampler.result()['peak_driver_mib'],
        'worker_peak_pss_mib': sampler.result()['peak_driver_pss_mib'],
        'rss_samples': sampler.samples, 'correct': True,
    }


def bare_launch():
    """Seconds to launch and shut down an appliance with one empty
    scratch disk (nothing to inspect): the fixed cost of a launch."""
    import guestfs
    g = guestfs.GuestFS(python_return_dict=True)
    try:
        g.set_backend_settings(backend_settings())
        g.set_memsize(DEFAULT_MEMORY)
        g.add_drive_scratch(64 * 1024 * 1024)
        began = time.perf_counter()
        g.launch()
        launched = common.elapsed(began)
        g.shutdown()
        return {'launch_s': launched, 'launch_shutdown_s':
                common.elapsed(began)}
    finally:
        g.close()


_TAG = re.compile(r'<(name|distro|product_name|major_version)>([^<]*)<')


def same_priority():
    """argv prefix running a command at our workers' default CPU and I/O
    priority (nice 10, idle I/O class): on a loaded host a niced worker
    yields to everything else, so the baseline must yield alike."""
    opts = make_conf(1)[options.GROUP]
    prefix = ['nice', '-n', str(opts.worker_nice)]
    io_class = worker_process.IO_CLASSES.get(opts.worker_io_class)
    if io_class:
        prefix += ['ionice', '-c', str(io_class)]
    return prefix


def run_virt_inspector(vms):
    """The existing tool's way: one virt-inspector per VM, serially, at
    our workers' priority."""
    env = dict(os.environ)
    settings = backend_settings()
    if settings:
        env['LIBGUESTFS_BACKEND_SETTINGS'] = ':'.join(settings)
    load_before = os.getloadavg()[0]
    per_vm = []
    with common.RssSampler() as rss:
        began = time.perf_counter()
        for vm in vms:
            start = time.perf_counter()
            proc = subprocess.run(
                same_priority() + [
                    'virt-inspector', '--format=%s' % vm.boot_format,
                    '-a', vm.boot_path],
                capture_output=True, text=True, env=env, timeout=1800)
            seconds = common.elapsed(start)
            found = {}
            for tag, value in _TAG.findall(proc.stdout):
                found.setdefault(tag, value)
            per_vm.append({
                'vm': vm.label, 'guest': vm.guest, 'seconds': seconds,
                'returncode': proc.returncode,
                'os': ' '.join(found.get(k, '') for k in
                               ('distro', 'product_name')),
                'error': proc.stderr.strip()[-300:] if proc.returncode
                else ''})
        wall = common.elapsed(began)
    return finish({
        'name': 'virt-inspector', 'kind': 'baseline', 'concurrency': 1,
        'memory_mb': 'libguestfs default', 'vms': len(vms),
        'wall_s': wall, 'per_vm': per_vm, 'rss': rss.result(),
        'loadavg_before': load_before, 'loadavg_after': os.getloadavg()[0],
    })


# -- report ----------------------------------------------------------------

def _f(value, fmt='%.1f'):
    return fmt % value if isinstance(value, (int, float)) else '-'


def report(runs, ratios, overhead):
    rows = []
    for r in runs:
        ph = r.get('phase_medians') or {}
        rss = r['rss']
        rows.append([r['name'], r['concurrency'], r['memory_mb'], r['vms'],
                     _f(r['wall_s']), _f(r['s_per_vm']),
                     _f(r['launches_per_vm'], '%.2f'),
                     _f(r.get('child_overhead_median'), '%.2f'),
                     _f(ph.get('setup'), '%.2f'), _f(ph.get('launch')),
                     _f(ph.get('inspect')),
                     '%s/%s' % (_f(rss.get('peak_driver_mib'), '%.0f'),
                                _f(rss.get('peak_driver_pss_mib'), '%.0f')),
                     _f(rss.get('peak_single_mib'), '%.0f'),
                     '%s/%s' % (_f(rss.get('peak_all_mib'), '%.0f'),
                                _f(rss.get('peak_all_pss_mib'), '%.0f')),
                     rss.get('max_foreign_appliances'),
                     'yes' if r['correct'] else 'NO'])
    print(common.table(
        ['run', 'conc', 'mem', 'VMs', 'wall s', 's/VM', 'launch/VM',
         'child s', 'setup s', 'launch s', 'inspect s', 'child MiB',
         'qemu MiB', 'all MiB', 'foreign', 'correct'], rows))
    print('child s = worker start (spawn, imports, request) + end (exit, '
          'reap), median per VM; setup/launch/inspect: medians per VM '
          'from the worker\'s stage messages (inspect includes the '
          'appliance shutdown).  child MiB: peak RSS/PSS of one worker '
          '(virt-inspector for the baseline); qemu MiB: peak RSS of one '
          'appliance qemu; all MiB: RSS/PSS of every process of the run '
          'at once.')
    vm_rows = []
    for r in runs:
        for v in r['per_vm']:
            ph = v.get('phases') or {}
            vm_rows.append([r['name'], v['vm'], v['guest'],
                            _f(v['seconds']), _f(ph.get('start'), '%.2f'),
                            _f(ph.get('setup'), '%.2f'),
                            _f(ph.get('launch')), _f(ph.get('inspect')),
                            _f(ph.get('end'), '%.2f'),
                            v.get('status', v.get('returncode')),
                            v['os'].strip()[:40],
                            '; '.join(v.get('problems', []))[:60]
                            or v.get('error', '')[:60]])
    print(common.table(['run', 'vm', 'guest', 's', 'start', 'setup',
                        'launch', 'inspect', 'end', 'status', 'os',
                        'problems'], vm_rows))
    o = overhead
    print('Worker overhead, no-disk job (no appliance), median of %d '
          'paired repetitions: worker %.0f ms, in-process %.2f ms, '
          'difference %.0f ms (start %.0f ms, end %.0f ms), paired ratio '
          '%.0fx; child CPU %.0f ms; worker peak RSS %.0f MiB, PSS %.0f '
          'MiB'
          % (o['reps'], o['worker_s']['median'] * 1e3,
             o['in_process_s']['median'] * 1e3,
             o['overhead_s']['median'] * 1e3, o['start_s']['median'] * 1e3,
             o['end_s']['median'] * 1e3, o['paired_ratio']['median'],
             o['child_cpu_s']['median'] * 1e3, o['worker_peak_rss_mib'],
             o['worker_peak_pss_mib']))
    for name, value in ratios.items():
        print('%s: %.2f' % (name, value))


def ratios_of(runs):
    by = {r['name']: r for r in runs}
    out = {}
    base = by.get('virt-inspector')
    for name in ('ours c=1', 'ours c=2'):
        if name in by and base:
            out['%s / virt-inspector (wall)' % name] = common.ratio(
                by[name]['wall_s'], base['wall_s'])
    if 'ours c=1' in by and base:
        # Where virt-inspector failed (phony guests have no package
        # database for its application listing) its time is too short.
        good = {v['vm'] for v in base['per_vm'] if v['returncode'] == 0}
        if good:
            ours = sum(v['seconds'] for v in by['ours c=1']['per_vm']
                       if v['vm'] in good)
            theirs = sum(v['seconds'] for v in base['per_vm']
                         if v['vm'] in good)
            out['ours c=1 / virt-inspector (per VM, the %d VMs it '
                'inspected without error)' % len(good)] = common.ratio(
                    ours, theirs)
    if 'ours c=1' in by and 'ours c=2' in by:
        out['ours c=2 / ours c=1 (wall)'] = common.ratio(
            by['ours c=2']['wall_s'], by['ours c=1']['wall_s'])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.cold_start')
    parser.add_argument('--guests', default=','.join(DEFAULT_GUESTS),
                        help='catalog names, "boot+data" adds a data disk')
    parser.add_argument('--no-rig', action='store_true',
                        help='jobs from domain XML on the images, no '
                             'libvirt')
    parser.add_argument('--skip-experiments', action='store_true')
    parser.add_argument('--skip-baseline', action='store_true')
    args = parser.parse_args(argv)
    common.quiet()
    from tests.guests import builder
    guests = parse_guests(args.guests)
    began = time.perf_counter()
    images = [(builder.build(g), builder.build(d) if d else None)
              for g, d in guests]
    build_s = common.elapsed(began)
    print('guest images ready in %.0f s; backend settings %s'
          % (build_s, backend_settings()))

    mode = 'rig'
    why = '' if args.no_rig else common.ensure_libvirtd()
    if args.no_rig or why:
        mode = 'xml (no rig: %s)' % (why or 'disabled')
        runs, extra = experiment(xml_vms(images, guests), args)
    else:
        from tests.rig import rig as rig_mod
        plan = [('bench-%s' % g, str(boot),
                 dict(layout=rig_mod.OVERLAY, vcpus=2,
                      data_image=str(data) if data else None))
                for (g, _), (boot, data) in zip(guests, images)]
        with common.bench_rig('cold', plan) as (rig, doms):
            runs, extra = experiment(rig_vms(rig, doms, guests), args)
    ratios = ratios_of(runs)
    print('Cold start (%s), %d VMs' % (mode, len(guests)))
    report(runs, ratios, extra['child_overhead'])
    print('bare launch + shutdown (first, last): %s s' % ', '.join(
        '%.1f' % b['launch_shutdown_s'] for b in extra['bare_launch']))
    path = common.write_result('cold_start', {
        'mode': mode, 'guests': args.guests, 'runs': runs,
        'bare_launch': extra['bare_launch'],
        'child_overhead': extra['child_overhead'],
        'ratios': ratios, 'wall_s': common.elapsed(began),
        'backend_settings': backend_settings()})
    print('-> %s' % path)
    return 0


def experiment(vms, args):
    """Every run of the benchmark over the same VMs.

    Ours at concurrency 1 and virt-inspector alternate VM by VM (who
    goes first alternates too), so drift on the machine and warm caches
    favour neither.  A bare launch first warms the appliance files.
    """
    runs = []
    extra = {'child_overhead': child_overhead()}
    print('worker overhead (no disk): %.0f ms' % (
        extra['child_overhead']['overhead_s']['median'] * 1e3), flush=True)
    extra['bare_launch'] = [bare_launch()]
    print('bare launch: %.0f s' % extra['bare_launch'][0]['launch_s'],
          flush=True)
    ours, theirs = [], []
    for n, vm in enumerate(vms):
        steps = [lambda: ours.append(run_ours('ours c=1', [vm], 1))]
        if not args.skip_baseline:
            steps.append(lambda: theirs.append(run_virt_inspector([vm])))
        for step in (steps if n % 2 == 0 else steps[::-1]):
            step()
        print('%s: ours %.0f s%s' % (vm.label, ours[-1]['wall_s'], (
            ', virt-inspector %.0f s' % theirs[-1]['wall_s'])
            if theirs else ''), flush=True)
    runs.append(merge(ours))
    if theirs:
        runs.append(merge(theirs))
    runs.append(run_ours('ours c=2', vms, 2))
    print('ours c=2: %.0f s' % runs[-1]['wall_s'], flush=True)
    if not args.skip_experiments:
        subset = _subset(vms)
        for memory in MEMORY_EXPERIMENTS:
            runs.append(run_ours('ours mem=%d' % memory, subset, 1,
                                 memory_mb=memory))
            print('mem %d: %.0f s' % (memory, runs[-1]['wall_s']),
                  flush=True)
        with_data = [vm for vm in vms if vm.data_guest]
        if with_data:
            runs.append(run_ours('ours all-disks', with_data[:1], 1,
                                 all_disks=True))
            print('all disks: %.0f s' % runs[-1]['wall_s'], flush=True)
    extra['bare_launch'].append(bare_launch())
    print('bare launch: %.0f s' % extra['bare_launch'][-1]['launch_s'],
          flush=True)
    return runs, extra


def _subset(vms):
    """One Windows and one Linux VM (the first of each)."""
    from tests.guests import catalog
    picked = []
    for family in ('windows', 'linux'):
        for vm in vms:
            if (catalog.GUESTS[vm.guest].family == family
                    and not vm.data_guest):
                picked.append(vm)
                break
    return picked or vms[:2]


if __name__ == '__main__':
    raise SystemExit(main())
