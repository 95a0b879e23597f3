"""Confinement of one inspection, with the real appliance (issue 22).

What is checked on real processes: a guest whose ext4 journal needs a
large replay stops at the overlay file-size limit with the reason and
never grows a file past it; the appliance's qemu runs under
``-sandbox``; with ``worker_user`` a root agent's worker, qemu-img and
qemu run as that user and keep libguestfs' sockets in the private
directory, and a worker killed at the deadline leaves nothing in /tmp;
without it, root's ``inspect`` command and agent refuse to inspect
(no appliance).

A /proc and tmp_dir sampler runs in its own process (the worker holds
the GIL while libguestfs runs qemu).  Three appliance launches (plus,
once, the appliance build for the worker user).
"""

import json
import os
import pathlib
import pwd
import shutil
import subprocess
import sys
import tempfile

import pytest

from ceilometer_os_pollster.inspection import confinement
from tests.fixtures import libvirt_test_driver as tdrv
from tests.functional import faults_helpers as H

pytestmark = pytest.mark.appliance

MIB = 1 << 20
LIMIT_MB = 64
WORKER_USER = 'nobody'      # unprivileged, and on every Debian host

# Until the stop file appears: the argv and uid of every qemu whose
# command line names the needle; the uids, in the order seen, of every
# qemu-img naming it and of every inspection worker working in the
# watched directory; the owner of every overlay, the largest file ever
# seen under the watched directory and the least free space of its
# filesystem.
SAMPLER = r'''
import json, os, sys, time
needle, watched, stop, out = sys.argv[1:5]
WORKER = b'ceilometer_os_pollster.inspection.worker'
procs, others, overlays, largest, least_free = {}, {}, {}, 0, None
deadline = time.time() + 900
while not os.path.exists(stop) and time.time() < deadline:
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')[:-1]
            with open('/proc/%s/status' % pid) as f:
                uid = [l.split()[1] for l in f if l.startswith('Uid:')][0]
            cwd = os.readlink('/proc/%s/cwd' % pid)
        except (OSError, IndexError):
            continue
        named = any(needle.encode() in a for a in argv)
        if argv and b'qemu-system' in argv[0] and named:
            procs[pid] = dict(uid=int(uid),
                              argv=[a.decode('latin-1') for a in argv])
        elif (argv and os.path.basename(argv[0]) == b'qemu-img' and named
              or WORKER in argv and cwd.startswith(watched + '/')):
            seen = others.setdefault(pid, dict(
                kind='worker' if WORKER in argv else 'qemu-img', uids=[]))
            if seen['uids'][-1:] != [int(uid)]:
                seen['uids'].append(int(uid))
    for top, dirs, files in os.walk(watched):
        for name in files:
            try:
                info = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            largest = max(largest, info.st_size)
            if name.endswith('.qcow2'):
                overlays[os.path.join(top, name)] = info.st_uid
    info = os.statvfs(watched)
    free = info.f_bavail * info.f_frsize
    least_free = free if least_free is None else min(least_free, free)
    time.sleep(0.05)
with open(out, 'w') as f:
    json.dump(dict(procs=list(procs.values()), others=list(others.values()),
                   overlays=overlays, largest=largest,
                   least_free=least_free), f)
'''


class Sampler:
    def __init__(self, work, watched):
        self._stop = work / 'sampler.stop'
        self._out = work / 'sampler.json'
        self._proc = subprocess.Popen(
            [sys.executable, '-c', SAMPLER, str(watched), str(watched),
             str(self._stop), str(self._out)])

    def finish(self):
        self._stop.touch()
        try:
            self._proc.wait(timeout=60)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
        return json.loads(self._out.read_text())


@pytest.fixture(autouse=True)
def worktree_code(monkeypatch):
    # Workers import the package under test, not an installed copy.
    root = str(pathlib.Path(__file__).resolve().parents[2])
    monkeypatch.setenv('PYTHONPATH', root)


@pytest.fixture
def shared_dir():
    """A directory the worker user can traverse (pytest's own tmp
    directories are private to root)."""
    path = tempfile.mkdtemp(prefix='os-confine-test-', dir='/var/tmp')
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


def journal_image(path, journal_blocks):
    """An ext4 image whose journal holds one committed transaction of
    ``journal_blocks`` 4 KiB blocks never replayed (needs_recovery):
    mounting it writes them all, even read-only."""
    subprocess.run(['truncate', '-s', '1G', str(path)], check=True)
    subprocess.run(['mkfs.ext4', '-q', '-F', '-b', '4096', '-J', 'size=256',
                    str(path)], check=True)
    # jw reads each block's new content from the file: random data, so
    # that no layer can store the replay as zeroes.
    script = ('jo\njw -b 10000-%d /dev/urandom\njc\n'
              % (10000 + journal_blocks - 1))
    subprocess.run(['debugfs', '-w', '-f', '-', str(path)], input=script,
                   text=True, check=True, capture_output=True)
    features = subprocess.run(['dumpe2fs', '-h', str(path)],
                              capture_output=True, text=True).stdout
    assert 'needs_recovery' in features
    path.chmod(0o644)
    return path


def plain_image(path):
    subprocess.run(['truncate', '-s', '64M', str(path)], check=True)
    subprocess.run(['mkfs.ext4', '-q', '-F', str(path)], check=True)
    path.chmod(0o644)
    return path


def free_bytes(path):
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


@pytest.fixture
def small_fs(tmp_path):
    """tmp_dir on a filesystem of its own (256 MiB of tmpfs), so that its
    free space moves only with what the inspection writes."""
    mount = tmp_path / 'inspections'
    mount.mkdir()
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256m,mode=0700',
                           'os-confine-test', str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip('cannot mount a tmpfs: %s' % done.stderr.strip())
    yield mount
    subprocess.run(['umount', '-l', str(mount)], check=False)


def test_journal_replay_stops_at_the_write_limit(tmp_path, small_fs):
    tmp_root = small_fs
    # 50000 blocks: ~195 MiB the appliance would write at mount, most of
    # the filesystem.
    image = journal_image(tmp_path / 'journal.raw', 50000)
    # The appliance method: it is the appliance's writes that are
    # bounded (the direct readers write nothing and replay no journal).
    engine = H.make_engine(tmp_root, overlay_max_mb=LIMIT_MB,
                           tmp_min_free_mb=0, inspection_method='appliance')
    free_before = free_bytes(tmp_root)
    sampler = Sampler(tmp_path, tmp_root)
    try:
        rec = engine.inspect(H.job('journal', H.DISK.format(path=image)))
    finally:
        seen = sampler.finish()
    assert rec.status == 'failed', rec
    assert rec.reason.startswith(
        'overlay write limit reached: the appliance wrote 64 MiB into the '
        'overlay of '), rec.reason
    assert 0 < seen['largest'] <= LIMIT_MB * MIB
    # While it ran: at most the overlay and the appliance's scratch disk
    # at their limit (the checked amount), far from the ~195 MiB replay.
    assert free_before - seen['least_free'] <= 2 * LIMIT_MB * MIB
    assert list(tmp_root.iterdir()) == []
    assert abs(free_bytes(tmp_root) - free_before) <= MIB
    # The appliance's qemu was sandboxed.
    assert seen['procs'], seen
    for proc in seen['procs']:
        assert confinement.sandbox_in(proc['argv']), proc['argv']


def owner(path):
    try:
        return os.lstat(path).st_uid
    except OSError:
        return None             # gone again


def worker_user_engine(shared_dir, **overrides):
    tmp_root = shared_dir / 'inspections'
    tmp_root.mkdir()
    tmp_root.chmod(0o755)
    overrides.setdefault('inspection_method', 'appliance')
    return tmp_root, H.make_engine(tmp_root, worker_user=WORKER_USER,
                                   **overrides)


def test_worker_user_runs_qemu_unprivileged(shared_dir, tmp_path):
    if os.geteuid() != 0:
        pytest.skip('needs root to switch to the worker user')
    tmp_root, engine = worker_user_engine(shared_dir)
    image = plain_image(shared_dir / 'plain.raw')
    sampler = Sampler(tmp_path, tmp_root)
    try:
        rec = engine.inspect(H.job('plain', H.DISK.format(path=image)))
    finally:
        seen = sampler.finish()
    assert (rec.status, rec.reason) == (
        'unknown', 'no operating system found on 1 disk (1 filesystem)'), rec
    uid = pwd.getpwnam(WORKER_USER).pw_uid
    assert seen['procs'], seen
    for proc in seen['procs']:
        argv = proc['argv']
        assert proc['uid'] == uid
        assert confinement.sandbox_in(argv), argv
        # libguestfs' socket directory is inside the private directory.
        sockets = [a for a in argv if a.startswith('socket,path=')]
        assert sockets and all(
            a.startswith('socket,path=%s/os-inspection-' % tmp_root)
            for a in sockets), sockets
    # The worker (started by root) switched before the appliance ran:
    # seen last as the worker user, for as long as qemu ran.
    workers = [p['uids'] for p in seen['others'] if p['kind'] == 'worker']
    assert workers and all(uids[-1] == uid for uids in workers), seen
    # qemu-img made the overlay as the worker user (too brief to be
    # sampled every time; its file is not).
    assert seen['overlays'] and set(seen['overlays'].values()) == {uid}, \
        seen['overlays']
    assert all(p['uids'] == [uid] for p in seen['others']
               if p['kind'] == 'qemu-img'), seen['others']
    assert list(tmp_root.iterdir()) == []


def cli(conf, *argv):
    """The command run as root (this process) in a new process."""
    proc = subprocess.run(
        [sys.executable, '-m', 'ceilometer_os_pollster.commands.cli',
         '--config-file', str(conf)] + list(argv),
        capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_root_inspections_without_worker_user_are_refused(shared_dir,
                                                          tmp_path):
    if os.geteuid() != 0:
        pytest.skip('the refusal is for root')
    image = plain_image(shared_dir / 'plain.raw')
    node = tmp_path / 'node.xml'
    tdrv.write_node(node, [tdrv.domain(
        'cccccccc-0000-4000-8000-000000000001', 'instance-00000001',
        disk=str(image))])
    node.write_text(node.read_text().replace("type='qcow2'", "type='raw'"))
    tmp_root = shared_dir / 'inspections'
    tmp_root.mkdir()
    cache = tmp_path / 'cache'
    # The shipped defaults: no worker_user, no allow_root_inspection.
    conf = tmp_path / 'cli.conf'
    conf.write_text('[DEFAULT]\nlibvirt_uri = test://%s\n[os_inspection]\n'
                    'cache_dir = %s\ntmp_dir = %s\n'
                    'libguestfs_backend_settings = force_tcg\n'
                    % (node, cache, tmp_root))
    # The root timer's command, and an operator's: no worker starts,
    # the instance is recorded "failed" (billed as unverified, not left
    # unpriced as "pending"), and the command exits 2 naming the option
    # and the setup to read.
    message = (
        'ceilometer-os-pollster: error: refusing to inspect: %s; '
        'worker_user must be a dedicated user that can read the '
        'instance disks, such as os-inspector (installation guide, '
        '"Privilege-separated mode", step 3)\n' % confinement.UNCONFINED)
    for argv in (('inspect', '--all', '--stale-only'),
                 ('inspect', 'instance-00000001', '--json')):
        rc, out, err = cli(conf, *argv)
        assert (rc, out) == (2, ''), err
        assert err.endswith(message), err
        assert list(tmp_root.iterdir()) == []
        # The sudo'ed --cached-only inspects nothing: it answers what
        # the refusal recorded.
        rc, out, err = cli(conf, 'inspect', '--all', '--json',
                           '--cached-only')
        assert (rc, err) == (1, '')
        item, = json.loads(out)
        assert (item['os_inspection_status'],
                item['os_inspection_reason']) == (
            'failed', 'inspection not confined: ' + confinement.UNCONFINED)
    # The agent run as root, with the real worker: says so at start and
    # records every job "failed", billed as unverified.
    engine = H.make_engine(tmp_root, inspection_method='appliance',
                           allow_root_inspection=False)
    assert (confinement.UNCONFINED + ': every inspection will fail'
            in engine.preflight())
    rec = engine.inspect(H.job('plain', H.DISK.format(path=image)))
    assert (rec.status, rec.reason, rec.inspection_method) == (
        'failed', 'inspection not confined: ' + confinement.UNCONFINED, '')
    assert list(tmp_root.iterdir()) == []


# qemu for libguestfs' probes; hangs instead of booting the appliance,
# after saying where libguestfs put its socket.
HANG = '''#!{python}
import os, sys, time
if '-kernel' in sys.argv:
    with open({record!r}, 'w') as f:
        f.write('\\n'.join(sys.argv))
    time.sleep(3600)
os.execv({qemu!r}, [{qemu!r}] + sys.argv[1:])
'''


def test_worker_killed_at_the_deadline_leaves_nothing_in_tmp(
        shared_dir, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip('needs root to switch to the worker user')
    import guestfs
    hang = shared_dir / 'qemu-hang'
    seen = shared_dir / 'seen'
    seen.mkdir()
    seen.chmod(0o777)
    hang.write_text(HANG.format(python=sys.executable,
                                qemu=guestfs.GuestFS().get_hv(),
                                record=str(seen / 'argv')))
    hang.chmod(0o755)
    monkeypatch.setenv('LIBGUESTFS_HV', str(hang))
    tmp_root, engine = worker_user_engine(shared_dir)
    engine.deadline = 20
    image = plain_image(shared_dir / 'plain.raw')
    worker_uid = pwd.getpwnam(WORKER_USER).pw_uid
    before = set(os.listdir('/tmp'))
    rec = engine.inspect(H.job('hung', H.DISK.format(path=image)))
    after = set(os.listdir('/tmp'))
    assert (rec.status, rec.reason) == (
        'failed', 'deadline: inspection killed after 20 s while launching '
        'the appliance')
    # The appliance was being started, its socket in the private dir.
    argv = (seen / 'argv').read_text().split('\n')
    sockets = [a.split(',')[1][len('path='):] for a in argv
               if a.startswith('socket,path=')]
    assert sockets and all(
        p.startswith('%s/os-inspection-' % tmp_root) for p in sockets)
    assert not any(os.path.exists(os.path.dirname(p)) for p in sockets)
    assert list(tmp_root.iterdir()) == []
    # Other processes share /tmp (root's libguestfs sockets among them):
    # whatever our worker made there would belong to the worker user.
    assert [n for n in after - before
            if owner(os.path.join('/tmp', n)) == worker_uid] == []
