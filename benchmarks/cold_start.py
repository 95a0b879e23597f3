"""Cold start: inspecting a host's running VMs from an empty cache.

A throw-away rig (tests.rig) runs N nova-like qemu domains whose disks
are nova-style qcow2 overlays on phony guest images (tests.guests); one
of them also has a data disk.  Jobs are built from the live domains the
way the pollster builds them (service.make_job); the real Engine and
Appliance inspect them through the real Scheduler (``run_now``) with an
empty RecordCache, at concurrency 1 and 2.  In the same run, the
existing tool's approach: ``virt-inspector --format=FMT -a DISK`` run
serially, one appliance per VM with libguestfs' full inspection (what
Debian's poller effectively does per VM), on the same boot disks.
Ours at concurrency 1 and virt-inspector alternate VM by VM, so that
neither gets the calmer minutes or the warmer caches; a bare appliance
launch (one empty scratch disk) before and after measures the fixed
cost of a launch and warms the appliance files for both.

Where the time goes: the appliance's guestfs handle is a thin subclass
of guestfs.GuestFS that timestamps handle creation, launch() and
close(), so every inspection splits into setup (configure, add drives:
qemu-img overlays), launch (qemu + appliance kernel boot), inspect (our
calls inside the appliance) and close (appliance shutdown).

Experiments on what an operator controls: appliance_memory_mb 512 and
1280 (768 is the default) on one Windows and one Linux VM, and
inspect_all_disks on the VM with a data disk.

Memory: a sampler reads the RSS of every qemu process descended from
this process (our appliances, virt-inspector's) from /proc twice a
second; foreign appliances (other processes' tests) running meanwhile
are counted, as they compete for the same CPUs.

Every number is one run on a noisy shared machine: compare the rows of
one run, not runs.  Guests must be inspected correctly for a row to
count: each record is checked against the catalog's expectations.

Usage: python -m benchmarks.cold_start [--guests A,B,C] [--no-rig]
                                       [--skip-experiments]
"""

import argparse
import os
import re
import subprocess
import tempfile
import threading
import time
import types

from oslo_config import cfg

from ceilometer_os_pollster import appliance as appliance_mod
from ceilometer_os_pollster import cache as cache_mod
from ceilometer_os_pollster import engine as engine_mod
from ceilometer_os_pollster import options
from ceilometer_os_pollster import scheduler as scheduler_mod
from ceilometer_os_pollster import service as service_mod

from benchmarks import common

# Two Windows (one with SQL Server), one Linux, one Linux with a data
# disk (for the all-disks experiment).
DEFAULT_GUESTS = ('win2022-standard', 'rhel-9.4', 'win2019-sql',
                  'debian-12+data-only')
DEFAULT_MEMORY = 768
MEMORY_EXPERIMENTS = (512, 1280)
# Timed by TimedGuestFS itself.
_OWN = frozenset(('launch', 'close', 'add_drive_opts'))


# -- timing the appliance's phases ----------------------------------------

class PhaseLog:
    """Timestamps of every guestfs handle the appliances create."""

    def __init__(self):
        self.handles = []
        self._lock = threading.Lock()

    def add(self, stamps):
        with self._lock:
            self.handles.append(stamps)

    def module(self):
        """A stand-in for the guestfs module whose GuestFS is timed."""
        import guestfs
        log = self

        class TimedGuestFS(guestfs.GuestFS):
            def __init__(self, *args, **kwargs):
                self._stamps = {'created': time.perf_counter(),
                                'drives': [], 'calls': {}}
                super().__init__(*args, **kwargs)
                log.add(self._stamps)

            def __getattribute__(self, name):
                # Every other public call is timed too: where the
                # inspection phase spends its time.
                attr = super().__getattribute__(name)
                if name.startswith('_') or name in _OWN or not callable(
                        attr):
                    return attr
                calls = super().__getattribute__('_stamps')['calls']

                def timed(*args, **kwargs):
                    start = time.perf_counter()
                    try:
                        return attr(*args, **kwargs)
                    finally:
                        entry = calls.setdefault(name, [0, 0.0])
                        entry[0] += 1
                        entry[1] += time.perf_counter() - start
                return timed

            def add_drive_opts(self, filename, *args, **kwargs):
                self._stamps['drives'].append(filename)
                return super().add_drive_opts(filename, *args, **kwargs)

            def launch(self):
                self._stamps['launch_start'] = time.perf_counter()
                try:
                    return super().launch()
                finally:
                    self._stamps['launch_end'] = time.perf_counter()

            def close(self):
                self._stamps.setdefault('close_start', time.perf_counter())
                try:
                    return super().close()
                finally:
                    self._stamps.setdefault('close_end',
                                            time.perf_counter())

        return types.SimpleNamespace(
            GuestFS=TimedGuestFS, EVENT_APPLIANCE=guestfs.EVENT_APPLIANCE,
            EVENT_WARNING=guestfs.EVENT_WARNING)

    def calls(self):
        """{method: [calls, seconds]} summed over every handle."""
        total = {}
        for s in self.handles:
            for name, (count, seconds) in s['calls'].items():
                entry = total.setdefault(name, [0, 0.0])
                entry[0] += count
                entry[1] += seconds
        return total

    def phases(self):
        """[{drives, setup, launch, inspect, close}] in seconds."""
        out = []
        for s in self.handles:
            launched = 'launch_end' in s
            out.append({
                'drives': list(s['drives']),
                'launched': launched,
                'setup': s.get('launch_start', s['created']) - s['created'],
                'launch': (s['launch_end'] - s['launch_start']
                           if launched else 0.0),
                'inspect': (s.get('close_start', s['created'])
                            - s['launch_end'] if launched else 0.0),
                'close': s.get('close_end', 0.0) - s.get('close_start', 0.0),
            })
        return out


# -- configuration ---------------------------------------------------------

def backend_settings():
    env = os.environ.get('LIBGUESTFS_BACKEND_SETTINGS', '')
    if env:
        return [s for s in env.split(':') if s]
    # Nested KVM hangs the appliance: never benchmark a hang.
    return ['force_tcg'] if engine_mod.kvm_problem() else []


def make_conf(concurrency, memory_mb=DEFAULT_MEMORY, all_disks=False):
    conf = cfg.ConfigOpts()
    options.register_opts(conf)
    conf([], project='bench')
    group = options.GROUP
    conf.set_override('concurrency', concurrency, group=group)
    conf.set_override('appliance_memory_mb', memory_mb, group=group)
    conf.set_override('inspect_all_disks', all_disks, group=group)
    conf.set_override('libguestfs_backend_settings', backend_settings(),
                      group=group)
    return conf


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
        job = service_mod.make_job(dom.uuid, live.name(), live.XMLDesc(0),
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
        job = service_mod.make_job(uuid, spec.name,
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
    """Inspect ``vms`` from an empty cache; what it cost."""
    log = PhaseLog()
    module = log.module()
    conf = make_conf(concurrency, memory_mb, all_disks)

    def factory(opts, specs):
        return appliance_mod.Appliance(opts, specs, guestfs_module=module)
    engine = engine_mod.Engine(conf, appliance_factory=factory)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix='bench-cold-') as tmp:
        cache = cache_mod.RecordCache(tmp)
        sched = scheduler_mod.Scheduler(conf[options.GROUP], cache,
                                        engine.inspect)
        with common.RssSampler() as rss:
            began = time.perf_counter()
            records = sched.run_now([vm.job for vm in vms], force=True)
            wall = common.elapsed(began)
        sched.stop()
    phases = log.phases()
    by_path = {}
    for p in phases:
        for path in p['drives']:
            by_path.setdefault(path, p)
    per_vm = []
    for vm, rec in zip(vms, records):
        p = by_path.get(vm.boot_path, {})
        per_vm.append({
            'vm': vm.label, 'guest': vm.guest, 'status': rec.status,
            'reason': rec.reason, 'os': '%s %s %s' % (
                rec.os_distro, rec.os_info, rec.os_edition),
            'seconds': rec.duration, 'drives': len(p.get('drives', [])),
            'phases': {k: p.get(k) for k in ('setup', 'launch', 'inspect',
                                             'close')},
            'problems': check(vm, rec),
        })
    return finish({
        'name': name, 'kind': 'ours', 'concurrency': concurrency,
        'memory_mb': memory_mb, 'all_disks': all_disks, 'vms': len(vms),
        'wall_s': wall, 'per_vm': per_vm, 'rss': rss.result(),
        'phase_list': [p for p in phases if p['launched']],
        'handles': len(phases), 'calls': log.calls(),
        'loadavg_before': load_before, 'loadavg_after': os.getloadavg()[0],
    })


def finish(run):
    """Add the derived figures to a run."""
    vms = run['vms']
    run['s_per_vm'] = run['wall_s'] / vms
    if run['kind'] == 'ours':
        launched = run['phase_list']
        run['launches'] = len(launched)
        run['launches_per_vm'] = len(launched) / vms
        run['phase_medians'] = {k: common.summary(
            [p[k] for p in launched]).get('median') for k in
            ('setup', 'launch', 'inspect', 'close')}
        calls = sorted(run['calls'].items(), key=lambda kv: -kv[1][1])
        run['top_calls'] = [(name, count, round(seconds, 2))
                            for name, (count, seconds) in calls[:12]]
        run['correct'] = all(not v['problems'] for v in run['per_vm'])
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
    run['rss'] = {k: max(p['rss'][k] for p in parts)
                  for k in parts[0]['rss']}
    if run['kind'] == 'ours':
        run['phase_list'] = [x for p in parts for x in p['phase_list']]
        run['handles'] = sum(p['handles'] for p in parts)
        calls = {}
        for p in parts:
            for name, (count, seconds) in p['calls'].items():
                entry = calls.setdefault(name, [0, 0.0])
                entry[0] += count
                entry[1] += seconds
        run['calls'] = calls
    return finish(run)


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


def run_virt_inspector(vms):
    """The existing tool's way: one virt-inspector per VM, serially."""
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
                ['virt-inspector', '--format=%s' % vm.boot_format, '-a',
                 vm.boot_path], capture_output=True, text=True, env=env,
                timeout=1800)
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


def report(runs, ratios):
    rows = []
    for r in runs:
        ph = r.get('phase_medians') or {}
        rows.append([r['name'], r['concurrency'], r['memory_mb'], r['vms'],
                     _f(r['wall_s']), _f(r['s_per_vm']),
                     _f(r['launches_per_vm'], '%.2f'),
                     _f(ph.get('launch')), _f(ph.get('inspect')),
                     _f(ph.get('setup')), _f(ph.get('close')),
                     _f(r['rss'].get('peak_total_mib'), '%.0f'),
                     r['rss'].get('max_foreign_appliances'),
                     'yes' if r['correct'] else 'NO'])
    print(common.table(
        ['run', 'conc', 'mem', 'VMs', 'wall s', 's/VM', 'launch/VM',
         'launch s', 'inspect s', 'setup s', 'close s', 'qemu MiB',
         'foreign', 'correct'], rows))
    vm_rows = []
    for r in runs:
        for v in r['per_vm']:
            ph = v.get('phases') or {}
            vm_rows.append([r['name'], v['vm'], v['guest'],
                            _f(v['seconds']), _f(ph.get('launch')),
                            _f(ph.get('inspect')),
                            v.get('status', v.get('returncode')),
                            v['os'].strip()[:40],
                            '; '.join(v.get('problems', []))[:60]
                            or v.get('error', '')[:60]])
    print(common.table(['run', 'vm', 'guest', 's', 'launch', 'inspect',
                        'status', 'os', 'problems'], vm_rows))
    for r in runs:
        if r.get('top_calls') and r['name'] == 'ours c=1':
            print('guestfs calls of %s (all VMs, seconds): %s' % (
                r['name'], ', '.join('%s %.1f (x%d)' % (n, sec, c)
                                     for n, c, sec in r['top_calls'][:8])))
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
    report(runs, ratios)
    print('bare launch + shutdown (first, last): %s s' % ', '.join(
        '%.1f' % b['launch_shutdown_s'] for b in extra['bare_launch']))
    for run in runs:
        run.pop('calls', None)
    path = common.write_result('cold_start', {
        'mode': mode, 'guests': args.guests, 'runs': runs,
        'bare_launch': extra['bare_launch'],
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
    extra = {'bare_launch': [bare_launch()]}
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
