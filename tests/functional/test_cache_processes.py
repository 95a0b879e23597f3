"""RecordCache and Scheduler across real processes (no appliance).

Children are this file run as a script (``python test_cache_processes.py
MODE ...``), so every test uses real processes, real flock() and real
kernel errors:

* SIGKILL in the middle of writes never leaves a corrupt record;
* an inspection lock held by another process makes our worker skip the
  instance, and dies with its holder;
* processes writing at once never damage each other's records;
* read-only filesystem (EROFS), full filesystem (ENOSPC) and a 0555
  directory seen by an unprivileged user (EACCES) turn the cache
  memory-only with one ERROR.  The tests run as root, which ignores
  permission bits, so EROFS/ENOSPC use tmpfs mounts inside a private
  mount namespace (``unshare --mount``) and EACCES a child that drops to
  uid 65534; without those privileges these tests are skipped, not
  passed.
"""

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from ceilometer_os_pollster.agent import cache as cache_mod
from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster.instances import identity
from ceilometer_os_pollster.agent import policy
from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster.agent import scheduler as sched

pytestmark = pytest.mark.timeout(180)

HERE = os.path.abspath(__file__)
NOBODY = 65534


def iid(prefix, n):
    return '%08x-0000-4000-8000-%012d' % (prefix, n)


def make_entry(instance_id, n=0, width=200):
    # Long fields make each write several KiB, widening the window in
    # which a kill lands mid-write.
    filler = ('%d-' % n) * (width // 3)
    rec = record_mod.OSRecord(
        instance_id=instance_id, status=record_mod.STATUS_OK,
        os_family='windows', os_distro='windows', os_info='win2k22',
        os_product_name=filler[:255], os_edition=filler[:255],
        os_product_variant=filler[:255], reason=filler[:255],
        fingerprint='fp-%d' % n, inspected_at='2024-05-01T10:00:00Z')
    return cache_format.Entry(record=rec, expires_at=time.time() + 86400,
                              failures=0, retry_at=0.0, last_seen=time.time())


def spawn(*args, **kwargs):
    return subprocess.Popen([sys.executable, HERE] + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def read_line(proc, timeout=30):
    """The child's next stdout line (children announce their state)."""
    result = []
    reader = threading.Thread(
        target=lambda: result.append(proc.stdout.readline()))
    reader.start()
    reader.join(timeout)
    assert result, 'child said nothing in %ss' % timeout
    return result[0].strip()


def json_files(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith('.json'))


def assert_all_files_valid(directory):
    """Every record file decodes: stricter than the cache's miss rule."""
    names = json_files(directory)
    for name in names:
        with open(os.path.join(directory, name), 'rb') as f:
            cache_format.decode_entry(f.read(), name[:-len('.json')])
    return names


# -- kill -9 mid-write --------------------------------------------------------

def test_sigkill_during_writes_never_corrupts(tmp_path, caplog):
    directory = str(tmp_path / 'records')
    rng = random.Random(4)
    leftovers = set()
    for round_ in range(15):
        child = spawn('writer', directory, round_)
        assert read_line(child) == 'writing'
        time.sleep(rng.uniform(0.005, 0.08))
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        assert child.returncode == -signal.SIGKILL
        names = assert_all_files_valid(directory)
        assert names, 'the writer wrote nothing before being killed'
        leftovers.update(n for n in os.listdir(directory)
                         if n.endswith('.tmp'))
        cache = cache_mod.RecordCache(directory)
        assert cache.load() == len(names)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # Temp files of killed writers are invisible to the cache and swept
    # once old; their presence shows kills did land mid-write.
    print('temp files left by killed writers: %d' % len(leftovers))


def child_writer(directory, seed):
    cache = cache_mod.RecordCache(directory)
    ids = [iid(1, n) for n in range(20)]
    rng = random.Random(int(seed))
    n = 0
    cache.put(make_entry(ids[0], n))
    print('writing', flush=True)
    while True:
        n += 1
        cache.put(make_entry(rng.choice(ids), n, width=rng.randrange(600)))


# -- locks across processes ----------------------------------------------

class FakeEngine:
    def __init__(self):
        self.jobs = []

    def __call__(self, job):
        self.jobs.append(job)
        return record_mod.OSRecord(
            instance_id=job.instance_id, status=record_mod.STATUS_OK,
            os_distro='rhel', os_info='rhel9.4', fingerprint=job.fingerprint)


def wait_idle(scheduler, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = scheduler.stats()
        if not stats['queued'] and not stats['running']:
            return
        time.sleep(0.01)
    raise AssertionError('scheduler busy: %s' % scheduler.stats())


def test_lock_held_by_other_process_skips_until_holder_dies(tmp_path):
    directory = str(tmp_path / 'records')
    target = iid(2, 1)
    holder = spawn('holder', directory, target)
    try:
        assert read_line(holder) == 'locked'
        cache = cache_mod.RecordCache(directory)
        fake = FakeEngine()
        scheduler = sched.Scheduler(policy.Settings(concurrency=2), cache,
                                    fake)
        job = identity.InspectionJob(instance_id=target, domain_name='vm',
                                     domain_xml='<domain/>', fingerprint='f')
        other = identity.InspectionJob(instance_id=iid(2, 2),
                                       domain_name='vm2',
                                       domain_xml='<domain/>',
                                       fingerprint='f')
        assert scheduler.lookup(job).status == 'pending'
        scheduler.lookup(other)
        wait_idle(scheduler)
        assert [j.instance_id for j in fake.jobs] == [iid(2, 2)]
        # A second look while the holder lives: still skipped.
        scheduler.lookup(job)
        wait_idle(scheduler)
        assert len(fake.jobs) == 1
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        # The kernel released the dead holder's flock.
        scheduler.lookup(job)
        wait_idle(scheduler)
        assert [j.instance_id for j in fake.jobs] == [iid(2, 2), target]
        assert scheduler.lookup(job).status == 'ok'
        assert scheduler.stop(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_our_lock_blocks_other_process(tmp_path):
    directory = str(tmp_path / 'records')
    cache = cache_mod.RecordCache(directory)
    target = iid(3, 1)
    with cache.inspection_lock(target) as got:
        assert got is True
        probe = spawn('probe', directory, target)
        assert read_line(probe) == 'busy'
        probe.wait(30)
    probe = spawn('probe', directory, target)
    assert read_line(probe) == 'locked'
    probe.wait(30)


def child_holder(directory, instance_id):
    cache = cache_mod.RecordCache(directory)
    with cache.inspection_lock(instance_id) as got:
        print('locked' if got else 'busy', flush=True)
        while True:
            time.sleep(1)


def child_probe(directory, instance_id):
    cache = cache_mod.RecordCache(directory)
    with cache.inspection_lock(instance_id) as got:
        print('locked' if got else 'busy', flush=True)


# -- concurrent writers -------------------------------------------------------

def test_processes_writing_at_once_keep_all_records(tmp_path):
    directory = str(tmp_path / 'records')
    reader = cache_mod.RecordCache(directory)
    reader.load()
    writers = [spawn('burst', directory, prefix, 40)
               for prefix in range(10, 14)]
    for proc in writers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == 'done'
    names = assert_all_files_valid(directory)
    expected = {iid(p, n) for p in range(10, 14) for n in range(40)}
    expected.add(iid(99, 0))   # written by every process
    assert {n[:-len('.json')] for n in names} == expected
    # Our reader sees all of them after one refresh.
    reader.refresh()
    assert len(reader) == len(expected)
    for prefix in range(10, 14):
        rec = reader.get(iid(prefix, 39)).record
        assert rec.fingerprint == 'fp-39'
    assert [n for n in os.listdir(directory) if n.endswith('.tmp')] == []


def child_burst(directory, prefix, count):
    cache = cache_mod.RecordCache(directory)
    for n in range(int(count)):
        cache.put(make_entry(iid(int(prefix), n), n, width=300))
        cache.put(make_entry(iid(99, 0), n, width=300))
        if n % 10 == 0:
            cache.refresh()
    print('done', flush=True)


# -- unwritable directories (real kernel errors) ------------------------------

def can_mount():
    if os.geteuid() != 0 or not shutil.which('unshare'):
        return False
    probe = subprocess.run(
        ['unshare', '--mount', '--propagation', 'private', 'true'],
        capture_output=True)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(
    not can_mount(), reason='needs root and mount namespaces (unshare)')


def run_report(args, **kwargs):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120,
                          **kwargs)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append((record.levelname, record.getMessage()))


def capture_logs():
    handler = ListHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


@needs_mount
def test_read_only_filesystem_is_memory_only(tmp_path):
    directory = str(tmp_path / 'records')
    os.makedirs(directory)
    report = run_report(['unshare', '--mount', '--propagation', 'private',
                         sys.executable, HERE, 'readonly', directory])
    assert report['existing_record_served'] is True
    assert report['new_record_served'] is True
    assert report['persistent'] is False
    assert report['lock'] == [True, False]
    assert len(report['errors']) == 1
    assert directory in report['errors'][0]
    assert '[os_inspection] cache_dir' in report['errors'][0]
    assert 'Read-only file system' in report['errors'][0]
    # The mount lived only in the child's namespace.
    assert os.listdir(directory) == []


def child_readonly(directory):
    # mode: a tmpfs root is 1777 by default, which root refuses as
    # cache_dir (anyone could plant links in it).
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m,mode=0755',
                    'tmpfs', directory], check=True)
    first_id, second_id = iid(4, 1), iid(4, 2)
    cache_mod.RecordCache(directory).put(make_entry(first_id))
    subprocess.run(['mount', '-o', 'remount,ro', directory], check=True)
    logs = capture_logs()
    cache = cache_mod.RecordCache(directory)
    existing = cache.get(first_id) is not None
    for n in range(3):
        cache.put(make_entry(second_id, n))
    with cache.inspection_lock(second_id) as got:
        with cache.inspection_lock(second_id) as again:
            lock = [got, again]
    print(json.dumps({
        'existing_record_served': existing,
        'new_record_served': cache.get(second_id).record.fingerprint
        == 'fp-2',
        'persistent': cache.persistent,
        'lock': lock,
        'errors': [m for level, m in logs.lines if level == 'ERROR'],
    }))


@needs_mount
def test_full_filesystem_degrades_and_recovers(tmp_path):
    directory = str(tmp_path / 'records')
    os.makedirs(directory)
    report = run_report(['unshare', '--mount', '--propagation', 'private',
                         sys.executable, HERE, 'full', directory])
    assert report['degraded'] is False
    assert report['served_while_full'] is True
    assert len(report['errors']) == 1
    assert 'No space left on device' in report['errors'][0]
    assert report['recovered'] is True
    assert report['files_after_recovery'] == report['expected_files']
    assert any('writable again' in m for m in report['infos'])


def child_full(directory):
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k,mode=0755',
                    'tmpfs', directory], check=True)
    clock = [time.time()]
    logs = capture_logs()
    cache = cache_mod.RecordCache(directory, clock=lambda: clock[0],
                                  disk_retry=600)
    cache.put(make_entry(iid(5, 0)))
    degraded = not cache.persistent
    filler = os.path.join(directory, '.filler')
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b'\0' * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    ids = [iid(5, n) for n in range(1, 4)]
    for instance_id in ids:
        cache.put(make_entry(instance_id))
    served = all(cache.get(i) is not None for i in ids)
    os.unlink(filler)
    clock[0] += 601
    cache.put(make_entry(iid(5, 0), 1))
    print(json.dumps({
        'degraded': degraded,
        'served_while_full': served,
        'errors': [m for level, m in logs.lines if level == 'ERROR'],
        'infos': [m for level, m in logs.lines if level == 'INFO'],
        'recovered': cache.persistent,
        'files_after_recovery': json_files(directory),
        'expected_files': sorted(i + '.json' for i in [iid(5, 0)] + ids),
    }))


def can_drop_privileges():
    return os.geteuid() == 0


@pytest.mark.skipif(not can_drop_privileges(),
                    reason='needs root to run a child as another user')
def test_unwritable_directory_for_unprivileged_user():
    # chmod 0555 only stops non-root users: the child drops to nobody.
    # pytest's tmp_path is private to root, so use a traversable one.
    base = tempfile.mkdtemp(prefix='os-inspection-eacces-')
    try:
        os.chmod(base, 0o755)
        directory = os.path.join(base, 'records')
        os.makedirs(directory)
        cache_mod.RecordCache(directory).put(make_entry(iid(6, 1)))
        os.chmod(directory, 0o555)
        report = run_report([sys.executable, HERE, 'unprivileged',
                             directory], preexec_fn=drop_privileges,
                            cwd='/')
        assert report['uid'] == NOBODY
        assert report['existing_record_served'] is True
        assert report['new_record_served'] is True
        assert report['persistent'] is False
        assert len(report['errors']) == 1
        assert 'Permission denied' in report['errors'][0]
        assert '[os_inspection] cache_dir' in report['errors'][0]
        assert report['lock'] == [True, False]
        assert json_files(directory) == [iid(6, 1) + '.json']
    finally:
        shutil.rmtree(base)


def drop_privileges():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def child_unprivileged(directory):
    logs = capture_logs()
    cache = cache_mod.RecordCache(directory)
    existing = cache.get(iid(6, 1)) is not None
    for n in range(3):
        cache.put(make_entry(iid(6, 2), n))
    with cache.inspection_lock(iid(6, 2)) as got:
        with cache.inspection_lock(iid(6, 2)) as again:
            lock = [got, again]
    print(json.dumps({
        'uid': os.getuid(),
        'existing_record_served': existing,
        'new_record_served': cache.get(iid(6, 2)) is not None,
        'persistent': cache.persistent,
        'lock': lock,
        'errors': [m for level, m in logs.lines if level == 'ERROR'],
    }))


CHILDREN = {
    'writer': child_writer,
    'holder': child_holder,
    'probe': child_probe,
    'burst': child_burst,
    'readonly': child_readonly,
    'full': child_full,
    'unprivileged': child_unprivileged,
}

if __name__ == '__main__':
    CHILDREN[sys.argv[1]](*sys.argv[2:])
