"""Plumbing shared by the benchmarks: timing, machine facts, results.

Owns how numbers are taken (interleaved repetitions, medians, ratios
within one run: the machines this runs on are noisy), what is recorded
beside them (machine, load, foreign appliances) and where they go
(``benchmarks/results/<name>.json``, gitignored).  Also the helpers
several benchmarks need: a Ceilometer configuration, a fresh shared
libvirt inspector, /proc scans for process memory, and a throw-away rig
of real libvirt domains.
"""

import contextlib
import datetime
import importlib.metadata
import json
import logging
import os
import pathlib
import platform
import random
import shutil
import statistics
import subprocess
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / 'results'
# Under /var/tmp like the test rig's: nova-like disks can be large.
RIG_ROOT = pathlib.Path('/var/tmp/ceilometer-os-pollster-bench')
DAY = 86400.0


# -- numbers -----------------------------------------------------------

def summary(values):
    """median/min/max/n of a list of numbers (seconds, bytes...)."""
    values = list(values)
    if not values:
        return {'n': 0}
    return {'median': statistics.median(values), 'min': min(values),
            'max': max(values), 'n': len(values)}


def ratio(a, b):
    return a / b if b else float('nan')


def interleaved(variants, reps, seed=0, warmup=1):
    """{name: [seconds]}: every variant once per repetition.

    ``variants`` maps names to callables returning the seconds they
    measured themselves (so set-up can stay outside the timing).  The
    order is shuffled in every repetition: drift and noise on a shared
    machine then hit every variant alike.
    """
    rng = random.Random(seed)
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times = {name: [] for name in names}
    for _ in range(reps):
        rng.shuffle(names)
        for name in names:
            times[name].append(variants[name]())
    return times


def paired_ratios(times, numerator, denominator):
    """Per-repetition ratios (same repetition = same machine state)."""
    pairs = zip(times[numerator], times[denominator])
    return [ratio(a, b) for a, b in pairs]


def table(headers, rows):
    """A plain text table; numbers are formatted by the caller."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max([len(str(h))] + [len(r[i]) for r in rows])
              for i, h in enumerate(headers)]
    line = '  '.join('%-*s' % (w, h) for w, h in zip(widths, headers))
    out = [line, '  '.join('-' * w for w in widths)]
    out += ['  '.join('%-*s' % (w, c) for w, c in zip(widths, row))
            for row in rows]
    return '\n'.join(out)


# -- machine -----------------------------------------------------------

def _first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ''
    return out.strip().splitlines()[0] if out.strip() else ''


def _cpuinfo_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _meminfo_mib(key='MemTotal'):
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ''


def _libguestfs_version():
    try:
        import guestfs
        g = guestfs.GuestFS(python_return_dict=True)
        try:
            v = g.version()
            return '%d.%d.%d' % (v['major'], v['minor'], v['release'])
        finally:
            g.close()
    except Exception:   # the facts are informative only
        return ''


def _libvirt_version():
    try:
        import libvirt
        v = libvirt.getVersion()
        return '%d.%d.%d' % (v // 1000000, v // 1000 % 1000, v % 1000)
    except Exception:
        return ''


def machine_facts():
    """What the numbers were taken on."""
    from ceilometer_os_pollster.agent import engine
    try:
        with open('/etc/debian_version') as f:
            debian = f.read().strip()
    except OSError:
        debian = ''
    kvm = engine.kvm_problem()
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%dT%H:%M:%SZ'),
        'cpus': os.cpu_count(),
        'cpu_model': _cpuinfo_model(),
        'memory_mib': _meminfo_mib(),
        'memory_available_mib': _meminfo_mib('MemAvailable'),
        'kernel': platform.release(),
        'debian': debian,
        'python': platform.python_version(),
        'ceilometer': _version('ceilometer'),
        'libvirt': _libvirt_version(),
        'libguestfs': _libguestfs_version(),
        'qemu': _first_line(['qemu-system-x86_64', '--version']),
        'kvm': kvm or 'usable',
        'libguestfs_backend_settings': os.environ.get(
            'LIBGUESTFS_BACKEND_SETTINGS', ''),
        'loadavg': [round(x, 2) for x in os.getloadavg()],
        'foreign_appliances': len(foreign_appliances()),
    }


def write_result(name, data):
    """Write results/<name>.json (with the machine facts); its path."""
    RESULTS.mkdir(exist_ok=True)
    doc = {'benchmark': name, 'machine': machine_facts()}
    doc.update(data)
    path = RESULTS / ('%s.json' % name)
    tmp = path.with_suffix('.tmp')
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)
    return path


def read_result(name):
    try:
        return json.loads((RESULTS / ('%s.json' % name)).read_text())
    except (OSError, ValueError):
        return None


def quiet(level=logging.WARNING):
    """Keep our INFO logs (one per inspection) off the benchmark output."""
    logging.getLogger('ceilometer_os_pollster').setLevel(level)


# -- processes ---------------------------------------------------------

def proc_table():
    """{pid: (ppid, comm)} of every process now."""
    procs = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name, 'rb') as f:
                data = f.read(4096)
        except OSError:
            continue
        head, _, tail = data.rpartition(b')')
        comm = head.split(b'(', 1)[-1].decode('ascii', 'replace')
        try:
            procs[int(name)] = (int(tail.split()[1]), comm)
        except (IndexError, ValueError):
            continue
    return procs


def descendants(root, procs):
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def status_kib(pid='self', key='VmRSS'):
    """A /proc/PID/status memory figure in KiB (0 if unknown)."""
    try:
        with open('/proc/%s/status' % pid) as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def pss_kib(pid):
    """Proportional set size in KiB (shared pages divided among the
    processes sharing them; 0 if unknown)."""
    try:
        with open('/proc/%s/smaps_rollup' % pid) as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read()
    except OSError:
        return b''


def is_qemu(comm):
    return comm.startswith('qemu-system')


def foreign_appliances(procs=None):
    """libguestfs appliances of other processes (other people's tests):
    each takes a host CPU while it runs, so they are noise to report."""
    procs = procs if procs is not None else proc_table()
    mine = set(descendants(os.getpid(), procs))
    return [pid for pid, (_, comm) in procs.items()
            if is_qemu(comm) and pid not in mine
            and b'guestfs' in _cmdline(pid)]


WORKER_MARK = b'ceilometer_os_pollster.inspection.worker'
# The process that drives an appliance: our inspection worker, or the
# baseline tool.
DRIVER_COMMS = ('virt-inspector',)


def is_driver(pid, comm):
    return comm in DRIVER_COMMS or WORKER_MARK in _cmdline(pid)


class Sampler:
    """A thread calling ``sample()`` every ``interval`` seconds while the
    ``with`` block runs (subclasses set the state and ``sample``)."""

    def __init__(self, interval, name):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=name)

    def sample(self):
        raise NotImplementedError

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class RssSampler(Sampler):
    """Samples the memory of the processes descended from this process.

    Every ``interval`` seconds: the appliance qemu processes we launched
    (directly, through an inspection worker, or through virt-inspector)
    and the processes driving them (our inspection workers,
    virt-inspector).  Per process the peak is its kernel high-water mark
    (VmHWM, exact up to the last sample before it exits); sums are of
    RSS at one sample, which counts shared pages (libraries, a forked
    helper's inherited pages) once per process, so the sum of PSS (each
    shared page divided among its sharers) is taken too.  Also the most
    foreign appliances seen at once.
    """

    def __init__(self, interval=0.5):
        super().__init__(interval, 'rss-sampler')
        self.peak_total_kib = 0       # qemu processes at once
        self.peak_single_kib = 0      # one qemu (VmHWM)
        self.peak_driver_kib = 0      # one worker / virt-inspector (VmHWM)
        self.peak_all_kib = 0         # every descendant at once
        self.peak_all_pss_kib = 0     # the same, PSS
        self.peak_driver_pss_kib = 0  # one worker / virt-inspector, PSS
        self.peak_count = 0
        self.drivers_seen = set()
        self.max_foreign = 0
        self.samples = 0

    def sample(self):
        me = os.getpid()
        procs = proc_table()
        mine = descendants(me, procs)
        ours = [p for p in mine if is_qemu(procs[p][1])]
        drivers = [p for p in mine if p not in ours
                   and is_driver(p, procs[p][1])]
        rss = [status_kib(p) for p in ours]
        self.peak_total_kib = max(self.peak_total_kib, sum(rss))
        self.peak_single_kib = max(
            [self.peak_single_kib] + [status_kib(p, 'VmHWM') for p in ours])
        self.peak_driver_kib = max(
            [self.peak_driver_kib]
            + [status_kib(p, 'VmHWM') for p in drivers])
        self.peak_all_kib = max(self.peak_all_kib,
                                sum(status_kib(p) for p in mine))
        pss = {p: pss_kib(p) for p in mine}
        self.peak_all_pss_kib = max(self.peak_all_pss_kib,
                                    sum(pss.values()))
        self.peak_driver_pss_kib = max(
            [self.peak_driver_pss_kib] + [pss[p] for p in drivers])
        self.drivers_seen.update(drivers)
        self.peak_count = max(self.peak_count, len(ours))
        self.max_foreign = max(self.max_foreign,
                               len(foreign_appliances(procs)))
        self.samples += 1

    def result(self):
        def mib(kib):
            return round(kib / 1024, 1)
        return {'peak_total_mib': mib(self.peak_total_kib),
                'peak_single_mib': mib(self.peak_single_kib),
                'peak_driver_mib': mib(self.peak_driver_kib),
                'peak_all_mib': mib(self.peak_all_kib),
                'peak_all_pss_mib': mib(self.peak_all_pss_kib),
                'peak_driver_pss_mib': mib(self.peak_driver_pss_kib),
                'drivers_seen': len(self.drivers_seen),
                'peak_appliances': self.peak_count,
                'max_foreign_appliances': self.max_foreign,
                'samples': self.samples}


# -- Ceilometer --------------------------------------------------------

def ceilometer_conf(libvirt_uri):
    """A Ceilometer configuration as the compute agent would have it."""
    from ceilometer import service as ceilo_service
    from ceilometer_os_pollster import options
    # Logs to stderr: stdout carries the benchmark's tables.
    RESULTS.mkdir(exist_ok=True)
    conf_file = RESULTS / 'ceilometer.conf'
    conf_file.write_text('[DEFAULT]\nuse_stderr = true\n')
    conf = ceilo_service.prepare_service([], [str(conf_file)])
    conf.set_override('libvirt_uri', libvirt_uri)
    conf.set_override('host', 'bench-compute')
    conf.set_override('instance_discovery_method', 'libvirt_metadata',
                      group='compute')
    options.register_opts(conf)
    return conf


def fresh_inspector(conf):
    """The agent-wide libvirt inspector, rebuilt for ``conf``'s URI.

    Ceilometer keeps one per process as a class attribute; a benchmark
    that moves to another libvirt URI has to drop the old one.
    """
    from ceilometer.compute import pollsters
    klass = pollsters.GenericComputePollster
    if '_inspector' in klass.__dict__:
        del klass._inspector
    return klass._get_inspector(conf)


def discover(conf):
    """Ceilometer's own libvirt-metadata discovery, as the agent runs it."""
    from ceilometer.compute import discovery
    return discovery.InstanceDiscovery(conf).discover(None)


# -- a throw-away rig of real domains ----------------------------------

@contextlib.contextmanager
def bench_rig(name, plan, pause=False):
    """A tests.rig Rig under RIG_ROOT/name with ``plan``'s domains
    running (or paused), torn down on exit.

    ``plan`` is a list of (display name, image path, Rig.add keywords).
    Yields (rig, [RigDomain]).  A rig left by a crashed run under the
    same directory is removed first.
    """
    from tests.rig import libvirtd
    from tests.rig import rig as rig_mod
    libvirtd.ensure_daemons()
    workdir = RIG_ROOT / name
    leftovers = rig_mod.Rig.load(workdir)
    leftovers.teardown()
    shutil.rmtree(workdir, ignore_errors=True)
    rig = rig_mod.Rig(workdir)
    try:
        added = [rig.add(display, image, **kw) for display, image, kw in plan]
        rig.start_all(timeout=120)
        if pause:
            by_uuid = {d.UUIDString(): d for d in rig.conn.listAllDomains()}
            for dom in added:
                by_uuid[dom.uuid].suspend()
        yield rig, added
    finally:
        problems = rig.teardown()
        for problem in problems:
            print('rig teardown problem: %s' % problem)
        shutil.rmtree(workdir, ignore_errors=True)


def ensure_libvirtd():
    """'' when libvirtd answers (started if needed), else why not."""
    try:
        from tests.rig import libvirtd
        libvirtd.ensure_daemons()
    except Exception as exc:
        return 'libvirtd unavailable: %s' % exc
    return ''


def elapsed(since):
    return time.perf_counter() - since
