"""Test doubles and builders shared by the unit and functional tests.

Owns the one copy of each: a settable clock, a scripted inspection
engine, a configuration of our options, the OS records, cache entries,
inspection jobs and domain XML the tests feed the agent, a fake Gnocchi
for licence-report, and the waits on real processes.  Plain code, no
fixtures (fixtures stay next to the tests that use them).
"""

import dataclasses
import datetime
import json
import threading
import time

from oslo_config import cfg

from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster.commands import gnocchi_history
from ceilometer_os_pollster.instances import identity
from ceilometer_os_pollster import options
from ceilometer_os_pollster import record as record_mod

WAIT = 10.0     # generous bound for threads and processes to get somewhere


# -- time ----------------------------------------------------------------

class FakeClock:
    """A clock the test moves.  Starts at the real time (whole seconds),
    so records dated by real file mtimes are not far in its future."""

    def __init__(self, now=None):
        self.now = float(now if now is not None else int(time.time()))

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def until(predicate, timeout=20, interval=0.02):
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass;
    its last value (a bound on waiting, not a measure of speed)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def alive(pid):
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            return f.read().rsplit(b')', 1)[1].split()[0] != b'Z'
    except OSError:
        return False


# A "worker" that starts a child in its group, writes the child's pid
# to the file named by its argument, and waits.
GROUP_WORKER = ('import subprocess, sys, time; '
                'p = subprocess.Popen(["sleep", "300"]); '
                'open(sys.argv[1], "w").write(str(p.pid)); time.sleep(300)')


# -- records -------------------------------------------------------------

INSTANCE_ID = '0b1c2d3e-0000-4000-8000-00000000000a'


def iid(n, prefix=0):
    """The instance id (a UUID) numbered ``n``, in group ``prefix``."""
    return '%08x-0000-4000-8000-%012d' % (prefix, n)


def ok_record(instance_id=INSTANCE_ID, fingerprint='fp1', **fields):
    """An 'ok' record: Windows Server 2022 Datacenter with SQL Server
    Standard, inspected now in 41.2 s; ``fields`` override."""
    values = dict(instance_id=instance_id, status=record_mod.STATUS_OK,
                  os_family='windows', os_distro='windows',
                  os_info='win2k22', os_version_major=10, os_build='20348',
                  os_product_name='Windows Server 2022 Datacenter',
                  os_edition='Datacenter', sql_server_edition='Standard',
                  os_arch='x86_64', fingerprint=fingerprint, duration=41.2,
                  inspected_at=record_mod.utc_timestamp())
    values.update(fields)
    return record_mod.OSRecord(**values)


def failed_record(instance_id=INSTANCE_ID, reason='deadline',
                  fingerprint='fp1', **fields):
    return record_mod.OSRecord.failed(instance_id, reason,
                                      fingerprint=fingerprint, **fields)


def unknown_record(instance_id=INSTANCE_ID, fingerprint='fp1', **fields):
    return record_mod.OSRecord.failed(instance_id, 'no operating system',
                                      fingerprint=fingerprint,
                                      status=record_mod.STATUS_UNKNOWN,
                                      **fields)


def status_record(status, inspected_at=None, instance_id='i'):
    """A record of ``status``: 'ok' (Linux, inspected now), 'pending', or
    a failure of any other status inspected at epoch ``inspected_at``
    (None: at an unknown time)."""
    if status == record_mod.STATUS_PENDING:
        return record_mod.OSRecord.pending(instance_id)
    if status == record_mod.STATUS_OK:
        return record_mod.OSRecord(
            instance_id=instance_id, status=status, os_family='linux',
            os_distro='rhel', inspected_at=record_mod.utc_timestamp())
    when = record_mod.utc_timestamp(datetime.datetime.fromtimestamp(
        inspected_at, datetime.timezone.utc)) if inspected_at else ''
    return record_mod.OSRecord.failed(instance_id, 'why', status=status)\
        .replace(inspected_at=when)


def entry(instance_id=INSTANCE_ID, last_seen=0.0, record=None,
          expires_at=None, failures=0, retry_at=0.0, **fields):
    """A cache entry of ``record`` (default: ok_record(instance_id,
    **fields)), expiring a day after ``last_seen`` unless told."""
    if record is None:
        record = ok_record(instance_id, **fields)
    if expires_at is None:
        expires_at = last_seen + 86400
    return cache_format.Entry(record=record, expires_at=expires_at,
                              failures=failures, retry_at=retry_at,
                              last_seen=last_seen)


# -- domain XML and jobs -------------------------------------------------

def disk(path, target='vda', format='raw', bus='virtio'):
    """A file-backed ``<disk>`` as nova writes it (device 'disk')."""
    return ("<disk type='file' device='disk'><driver name='qemu' "
            "type='%s'/><source file='%s'/><target dev='%s' bus='%s'/>"
            "</disk>" % (format, path, target, bus))


def cdrom(path='/x.iso', target='hda', bus='ide'):
    return ("<disk type='file' device='cdrom'><source file='%s'/>"
            "<target dev='%s' bus='%s'/></disk>" % (path, target, bus))


def network_disk(protocol, name, hosts=(), socket=None, format='raw',
                 target='vda', auth=''):
    """A network ``<disk>`` (rbd, nbd, ...) as libvirt writes it:
    ``hosts`` are (name, port or None) pairs; ``socket`` a unix socket
    instead; ``auth`` an XML snippet (<auth>...</auth>)."""
    if socket is not None:
        where = "<host transport='unix' socket='%s'/>" % socket
    else:
        where = ''.join(
            "<host name='%s'/>" % host if port is None else
            "<host name='%s' port='%s'/>" % (host, port)
            for host, port in hosts)
    return ("<disk type='network' device='disk'><driver name='qemu' "
            "type='%s'/>%s<source protocol='%s' name='%s'>%s</source>"
            "<target dev='%s' bus='virtio'/></disk>"
            % (format, auth, protocol, name, where, target))


def domain_xml(*disks, name='instance-1', type='kvm', uuid=None, vcpu='',
               metadata=None, os=None, prolog=''):
    """A domain's XML: ``disks`` (XML snippets) under <devices>, and the
    elements asked for (``vcpu`` and ``os`` are XML snippets,
    ``metadata`` the content of <metadata>)."""
    parts = [prolog, "<domain type='%s'><name>%s</name>" % (type, name)]
    if uuid is not None:
        parts.append('<uuid>%s</uuid>' % uuid)
    parts.append(vcpu)
    if metadata is not None:
        parts.append('<metadata>%s</metadata>' % metadata)
    if os is not None:
        parts.append(os)
    parts.append('<devices>%s</devices></domain>' % ''.join(disks))
    return ''.join(parts)


def files_domain_xml(paths, name='instance-1'):
    """A qemu domain whose disks are the raw files ``paths``, in order
    (vda, vdb, ...): the boot disk first."""
    return domain_xml(*(disk(path, target='vd' + 'abcdefgh'[n])
                        for n, path in enumerate(paths)),
                      name=name, type='qemu')


def job(n=1, fingerprint='fp1', xml='<domain/>', **fields):
    """The InspectionJob of instance ``n`` (id iid(n), domain 'inst-n');
    ``fields`` override (instance_id, domain_name, image_id, ...)."""
    values = dict(instance_id=iid(n), domain_name='inst-%d' % n,
                  domain_xml=xml, fingerprint=fingerprint)
    values.update(fields)
    return identity.InspectionJob(**values)


def job_request(*args, **kwargs):
    """job(...) as the worker receives it (the request's 'job')."""
    return dataclasses.asdict(job(*args, **kwargs))


# -- configuration and the engine ---------------------------------------

def inspection_conf(**overrides):
    """A fresh configuration of our options alone (no Ceilometer), with
    ``overrides`` set in [os_inspection]."""
    conf = cfg.ConfigOpts()
    options.register_opts(conf)
    conf([])
    # The tests run as root and their images are root's, unreadable by
    # a worker_user: root inspections are allowed explicitly.  Tests of
    # the refusal pass allow_root_inspection=False (test_confinement).
    overrides.setdefault('allow_root_inspection', True)
    for name, value in overrides.items():
        conf.set_override(name, value, options.GROUP)
    return conf


class FakeEngine:
    """Stands in for the inspection engine, as the scheduler calls it
    (``engine(job)``) and as the service holds it (``engine.inspect``).

    Answers each job with ``answer(job)``; by default an ok record made
    now in 3 s, or a 'deadline' failure (7 s) for the instance ids in
    ``fail``.  Remembers the jobs, counts how many run at once, and can
    hold callers at a gate (``hold``/``release``/``wait_entered``).
    """

    def __init__(self, answer=None, fail=()):
        self.fail = set(fail)
        self.answer = answer or self._default
        self.jobs = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def _default(self, job):
        if job.instance_id in self.fail:
            return failed_record(job.instance_id, 'deadline',
                                 job.fingerprint, duration=7.0)
        return ok_record(job.instance_id, job.fingerprint, duration=3.0)

    def __call__(self, job):
        with self.lock:
            self.jobs.append(job)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.entered.release()
        try:
            assert self.gate.wait(WAIT)
            return self.answer(job)
        finally:
            with self.lock:
                self.active -= 1

    inspect = __call__

    def hold(self):
        # Called while idle: forget entries counted before the hold.
        self.entered = threading.Semaphore(0)
        self.gate.clear()

    def release(self):
        self.gate.set()

    def wait_entered(self):
        assert self.entered.acquire(timeout=WAIT), 'inspect never called'

    def ids(self):
        with self.lock:
            return [j.instance_id for j in self.jobs]


def wait_idle(scheduler, timeout=WAIT):
    """Until the scheduler has nothing queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = scheduler.stats()
        if not stats['queued'] and not stats['running']:
            return
        time.sleep(0.005)
    raise AssertionError('scheduler still busy: %s' % scheduler.stats())


# -- Gnocchi (licence-report's source) -----------------------------------

def gnocchi_time(epoch):
    """An epoch as Gnocchi writes times (ISO 8601, UTC offset)."""
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).isoformat()


class GnocchiResponse:
    def __init__(self, body, status=200, link=None):
        self.status_code = status
        self.reason = 'OK' if status < 400 else 'Bad'
        self._body = body
        self.text = json.dumps(body)
        self.headers = {'Link': link} if link else {}

    def json(self):
        return self._body


class FakeGnocchi:
    """Serves ``items`` (current resources) paged by id, each one's
    ``history`` for a history search, and measures, with Gnocchi 4.7's
    quirk: a page with details comes in no particular order.  Records
    every request."""

    def __init__(self, items, measures=None, history=None,
                 timespan='90 days, 0:00:00'):
        self.timespan = timespan
        self.items = sorted(items, key=lambda i: i['id'])
        self.measures = measures or {}
        self.history = history or {}
        self.requests = []

    def request(self, path, method, raise_exc=True, params=None, json=None):
        self.requests.append((method, path, params, json))
        if path.startswith('/v1/search/'):
            params = dict(params)
            limit = int(params['limit'])
            if params.get('history') == 'true':
                rid = json['and'][0]['=']['id']
                return GnocchiResponse(self.history[rid][::-1][:limit])
            ids = [i['id'] for i in self.items]
            start = (ids.index(params['marker']) + 1
                     if 'marker' in params else 0)
            return GnocchiResponse(self.items[start:start + limit][::-1])
        metric = path.split('/')[3]
        if not path.endswith('/measures'):
            return GnocchiResponse({'archive_policy': {'definition': [
                {'granularity': '1:00:00', 'timespan': '365 days, 0:00:00'},
                {'granularity': '0:05:00', 'timespan': self.timespan}]}})
        if metric not in self.measures:
            return GnocchiResponse({'description': 'no such metric'}, 404)
        return GnocchiResponse(self.measures[metric])


def gnocchi_item(rid, start, end=None, metric='m-', **attributes):
    """A Gnocchi instance resource (or one revision of it) whose metric
    of our meter is ``metric + rid``; ``attributes`` override."""
    base = {'id': rid, 'revision_start': gnocchi_time(start),
            'revision_end': None if end is None else gnocchi_time(end),
            'project_id': 'p', 'display_name': 'vm-' + rid,
            'ended_at': None, 'metrics': {gnocchi_history.METER: metric + rid}}
    base.update(attributes)
    return base
