"""confinement: the worker user, free space, the qemu wrapper and the
overlay write limit (the real appliance is in
tests/functional/test_confinement.py)."""

import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import types

import pytest

from ceilometer_os_pollster.inspection import confinement as C
from ceilometer_os_pollster import options
from ceilometer_os_pollster.inspection import worker as W
from ceilometer_os_pollster.agent import workdir

MIB = 1 << 20


def opts(**changes):
    return W.options_namespace(dict(options.DEFAULTS, **changes))


def account(name='os-inspector', uid=990, gid=990):
    def getpwnam(user):
        if user != name:
            raise KeyError(user)
        return types.SimpleNamespace(pw_uid=uid, pw_gid=gid,
                                     pw_dir='/nonexistent')
    return getpwnam


# ------------------------------------------------------------------ user

def test_root_switches_to_the_worker_user():
    assert C.worker_account('os-inspector', 0, account()) == (
        990, 990, '/nonexistent')


@pytest.mark.parametrize('euid,user,allow_root', [
    (0, '', True),                  # the operator's opt-out
    (1000, 'os-inspector', False),  # not root: nothing to drop
    (1000, '', False),
])
def test_no_switch_when_not_root_or_root_allowed(euid, user, allow_root):
    assert C.worker_account(user, euid, account(),
                            allow_root=allow_root) is None


def test_root_without_a_worker_user_is_refused_by_default():
    with pytest.raises(C.ConfinementError) as caught:
        C.worker_account('', 0, account())
    assert str(caught.value) == (
        'started by root with no [os_inspection] worker_user (set it, or '
        'allow_root_inspection = true to run qemu as root)')
    # The option's default is the refusal.
    assert options.DEFAULTS['allow_root_inspection'] is False
    assert options.DEFAULTS['worker_user'] == ''


def test_the_opt_out_never_overrides_a_worker_user():
    # allow_root_inspection only matters without a worker_user: a set
    # one is always switched to, and a bad one always refused.
    assert C.worker_account('os-inspector', 0, account(),
                            allow_root=True) == (990, 990, '/nonexistent')
    with pytest.raises(C.ConfinementError, match='does not exist'):
        C.worker_account('ghost', 0, account(), allow_root=True)


def test_the_refusal_fits_a_record_reason():
    # The engine's record reason is cut at 200 characters.
    assert len('inspection not confined: ' + C.UNCONFINED) <= 200


@pytest.mark.parametrize('name,uid,message', [
    ('ghost', 990, '[os_inspection] worker_user ghost does not exist'),
    ('toor', 0, '[os_inspection] worker_user toor is root'),
])
def test_a_worker_user_that_would_not_confine_is_refused(name, uid,
                                                         message):
    with pytest.raises(C.ConfinementError, match=message.replace('[', r'\[')):
        C.worker_account(name, 0, account('toor', uid=uid))


def test_private_environment_points_everything_at_the_private_dir():
    env = {'XDG_RUNTIME_DIR': '/run/user/0'}
    C.private_environment('/t/os-inspection-x', env)
    assert env == dict(dict.fromkeys(
        ('XDG_RUNTIME_DIR', 'TMPDIR', 'LIBGUESTFS_TMPDIR'),
        '/t/os-inspection-x'), LIBGUESTFS_CACHEDIR='/var/tmp')


@pytest.mark.parametrize('env,cache', [
    ({'TMPDIR': '/scratch'}, '/scratch'),
    ({'TMPDIR': '/scratch', 'LIBGUESTFS_CACHEDIR': '/cache'}, '/cache'),
])
def test_the_appliance_cache_stays_where_libguestfs_had_it(env, cache):
    # libguestfs falls back to $TMPDIR for its appliance cache: moving
    # TMPDIR must not rebuild the appliance in every private directory.
    C.private_environment('/t/os-inspection-x', env)
    assert env['LIBGUESTFS_CACHEDIR'] == cache


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to switch user')
def test_worker_process_drops_to_the_worker_user(tmp_path):
    # A real worker, started as root with worker_user: it reports the
    # record of an inspection that never starts (no disk), as nobody.
    code = ('import os, sys\n'
            'from ceilometer_os_pollster.inspection import worker as W\n'
            'opts = W.options_namespace({"worker_user": "nobody"})\n'
            'import signal\n'
            'W.confine(opts, sys.argv[1])\n'
            'print(os.getuid(), os.geteuid(), os.getgid(),\n'
            '      os.environ["XDG_RUNTIME_DIR"], os.environ["HOME"],\n'
            '      signal.getsignal(signal.SIGXFSZ) == signal.SIG_DFL)\n')
    out = subprocess.run([sys.executable, '-c', code, str(tmp_path)],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()))
    nobody = pwd.getpwnam('nobody')
    assert out.stdout.split() == [
        str(nobody.pw_uid), str(nobody.pw_uid), str(nobody.pw_gid),
        str(tmp_path), str(tmp_path), 'True']


# ----------------------------------------------------------------- space

def statvfs(free_mb):
    return lambda path: types.SimpleNamespace(f_bavail=free_mb * 256,
                                              f_frsize=4096)


def test_room_for_every_overlay_at_its_limit_and_the_reserve():
    o = opts(overlay_max_mb=1000, tmp_min_free_mb=500)
    # Two disks, the appliance's scratch disk, the reserve.
    assert C.required_space_mb(o, 2) == 3500
    assert C.space_problem('/t/os-inspection-x', o, 2, statvfs(3500)) == ''
    assert C.space_problem('/t/os-inspection-x', o, 2, statvfs(3499)) == (
        'not enough free space for the overlays: 3499 MiB free in /t, '
        '3500 MiB needed (3 disk(s) x overlay_max_mb 1000 + '
        'tmp_min_free_mb 500)')


def test_unreadable_free_space_is_a_problem():
    def broken(path):
        raise FileNotFoundError(2, 'No such file or directory')
    assert C.space_problem('/gone', opts(), 1, broken) == (
        'cannot check free space in /gone: No such file or directory')


# ------------------------------------------------------------------ qemu

def test_wrapper_limits_and_sandboxes_qemu(tmp_path):
    o = opts(overlay_max_mb=64, appliance_memory_mb=768)
    path = C.write_wrapper(str(tmp_path), '/usr/bin/qemu-system-x86_64', o)
    assert os.stat(path).st_mode & 0o777 == 0o700
    assert open(path).read().splitlines()[-1] == (
        'exec /usr/bin/prlimit --fsize=%d --as=%d -- '
        '/usr/bin/qemu-system-x86_64 "$@" -sandbox on,obsolete=deny,'
        'elevateprivileges=deny,spawn=deny,resourcecontrol=deny'
        % (64 * MIB, (768 + 3072) * MIB))


def test_wrappers_share_libguestfs_probe_cache(tmp_path):
    # Same size and mtime (libguestfs' cache key) for every inspection.
    qemu = tmp_path / 'qemu'
    qemu.write_text('')
    os.utime(qemu, (1000000, 1000000))
    paths = []
    for n in range(2):
        (tmp_path / str(n)).mkdir()
        paths.append(C.write_wrapper(str(tmp_path / str(n)), str(qemu),
                                     opts()))
    keys = {(os.stat(p).st_size, os.stat(p).st_mtime) for p in paths}
    assert keys == {(os.stat(paths[0]).st_size, 1000000)}


def test_a_second_appliance_of_one_inspection_gets_its_wrapper(tmp_path):
    first = C.write_wrapper(str(tmp_path), '/usr/bin/qemu-one', opts())
    second = C.write_wrapper(str(tmp_path), '/usr/bin/qemu-two', opts())
    assert first == second
    assert '/usr/bin/qemu-two "$@"' in open(second).read()


def test_wrapper_quotes_an_odd_qemu_path():
    text = C.wrapper_script("/opt/my qemu/q'emu", opts())
    assert "'/opt/my qemu/q'\"'\"'emu' \"$@\"" in text


def test_explicit_address_space_wins():
    assert C.address_space_mb(opts(appliance_address_space_mb=9000)) == 9000


@pytest.mark.skipif(not os.path.exists('/usr/bin/qemu-system-x86_64'),
                    reason='qemu not installed')
@pytest.mark.parametrize('probe', [['-version'], ['-help'],
                                   ['-machine', 'help']])
def test_libguestfs_probes_answer_through_the_wrapper(tmp_path, probe):
    path = C.write_wrapper(str(tmp_path), '/usr/bin/qemu-system-x86_64',
                           opts())
    out = subprocess.run([path] + probe, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


@pytest.mark.skipif(not os.path.exists('/usr/bin/qemu-system-x86_64'),
                    reason='qemu not installed')
def test_sandboxed_qemu_starts_and_is_killed_when_it_spawns(tmp_path):
    # The filter is installed: qemu runs, and the fork an "exec:"
    # migration needs kills it (SIGSYS); unconfined it would migrate.
    path = C.write_wrapper(str(tmp_path), '/usr/bin/qemu-system-x86_64',
                           opts())
    qmp = ('{"execute":"qmp_capabilities"}\n'
           '{"execute":"migrate","arguments":{"uri":"exec:true"}}\n'
           '{"execute":"quit"}\n')
    out = subprocess.run([path, '-machine', 'none', '-display', 'none',
                          '-nodefaults', '-qmp', 'stdio'], input=qmp,
                         capture_output=True, text=True, timeout=60)
    assert '"QMP"' in out.stdout
    assert out.returncode == -signal.SIGSYS, (out.returncode, out.stdout)


def test_sandbox_seen_on_a_command_line():
    assert C.sandbox_in(['qemu', '-m', '768', '-sandbox', C.SANDBOX])
    assert not C.sandbox_in(['qemu', '-sandbox', 'on'])
    assert not C.sandbox_in(['qemu', '-m', '768'])


# ----------------------------------------------------------------- limit

@pytest.mark.parametrize('size_mb,hit', [
    (0, False), (55, False), (56, True), (64, True)])
def test_an_overlay_near_its_limit_hit_it(size_mb, hit):
    names = C.limit_hit({'vda': size_mb * MIB, 'vdb': MIB},
                        opts(overlay_max_mb=64))
    assert names == (['vda'] if hit else [])


def test_overlay_sizes_are_read_from_the_private_dir(tmp_path):
    (tmp_path / 'vda.qcow2').write_bytes(b'x' * 10)
    (tmp_path / 'qemu-confined').write_bytes(b'x' * 99)
    assert C.overlay_sizes(str(tmp_path)) == {'vda': 10}


def test_limit_reason_names_the_option():
    assert C.limit_reason(['vda'], opts(overlay_max_mb=64)) == (
        'overlay write limit reached: the appliance wrote 64 MiB into the '
        'overlay of vda (e.g. replaying a journal); [os_inspection] '
        'overlay_max_mb')


# ------------------------------------------- the worker user's directory

@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to chown')
def test_private_dir_is_handed_to_the_worker_user(tmp_path):
    nobody = pwd.getpwnam('nobody')
    private = workdir.PrivateDir(str(tmp_path),
                                 owner=(nobody.pw_uid, nobody.pw_gid))
    with private:
        info = os.lstat(private.path)
        assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid)
        assert info.st_mode & 0o777 == 0o700
        # The lock that marks it as in use stays ours.
        assert os.lstat(os.path.join(private.path,
                                     workdir.OWNER_LOCK)).st_uid == 0
        # A running inspection's directory is never an orphan.
        assert workdir.remove_orphan_dirs(
            str(tmp_path), owners=[nobody.pw_uid]) == []
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to chown')
def test_orphans_of_the_worker_user_are_removed_only_when_named(tmp_path):
    nobody = pwd.getpwnam('nobody')
    left = tmp_path / (workdir.PRIVATE_PREFIX + 'killed')
    left.mkdir()
    (left / workdir.OWNER_LOCK).touch()
    sock = left / 'libguestfsAbCdEf'
    sock.mkdir()
    os.chown(left, nobody.pw_uid, nobody.pw_gid)
    assert workdir.remove_orphan_dirs(str(tmp_path)) == []
    assert workdir.remove_orphan_dirs(
        str(tmp_path), owners=[nobody.pw_uid]) == [left.name]
    assert not left.exists()


def test_a_directory_replaced_by_a_symlink_is_not_handed_over(tmp_path):
    target = tmp_path / 'elsewhere'
    target.mkdir()
    link = tmp_path / 'link'
    link.symlink_to(target)
    with pytest.raises(OSError):
        workdir._hand_over(str(link), 12345, 12345)
    assert os.lstat(target).st_uid == os.geteuid()


# ------------------------------------- root's socket directories in /tmp

def sockdir(root, name, sockets=('guestfsd.sock',), age=3600, extra=()):
    path = root / name
    path.mkdir()
    for entry in sockets:
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(path / entry))
    for entry in extra:
        (path / entry).write_text('x')
    when = time.time() - age
    os.utime(path, (when, when))
    return path


def test_socket_dirs_of_killed_root_workers_are_removed(tmp_path):
    root = tmp_path / 'tmp'
    root.mkdir()
    dead = sockdir(root, 'libguestfsAb12Cd')
    live = sockdir(root, 'libguestfsLive00')
    young = sockdir(root, 'libguestfsYoung0', age=10)
    other = sockdir(root, 'libguestfsOther0', extra=['overlay.qcow2'])
    empty = sockdir(root, 'libguestfsEmpty0', sockets=())
    named = sockdir(root, 'libguestfs-not-ours')
    unix = tmp_path / 'net-unix'
    unix.write_text(
        'Num       RefCount Protocol Flags    Type St Inode Path\n'
        '0000: 00000003 00000000 00000000 0001 03 77677\n'
        '0001: 00000003 00000000 00000000 0001 03 78127 %s\n'
        % (live / 'guestfsd.sock'))
    assert workdir.remove_orphan_sockdirs(str(root), unix=str(unix)) == [
        dead.name]
    assert not dead.exists()
    for kept in (live, young, other, empty, named):
        assert kept.exists()


def test_socket_dirs_are_kept_when_open_sockets_are_unknown(tmp_path):
    dead = sockdir(tmp_path, 'libguestfsAb12Cd')
    assert workdir.remove_orphan_sockdirs(
        str(tmp_path), unix=str(tmp_path / 'missing')) == []
    assert dead.exists()


# ------------------------------------------------------------ the engine

@pytest.mark.skipif(os.geteuid() != 0, reason='worker_user is for root')
def test_an_unknown_worker_user_fails_inspections_and_is_said(tmp_path):
    from ceilometer_os_pollster.agent import engine as E
    from tests.helpers import domain_xml
    from tests.helpers import inspection_conf
    from tests.helpers import job
    engine = E.Engine(inspection_conf(worker_user='no-such-user-x',
                                      tmp_dir=str(tmp_path)),
                      worker_argv=['/bin/false'])
    assert '[os_inspection] worker_user no-such-user-x does not exist: ' \
        'every inspection will fail' in engine.preflight()
    rec = engine.inspect(job(xml=domain_xml()))
    assert (rec.status, rec.reason) == (
        'failed', 'inspection not confined: [os_inspection] worker_user '
        'no-such-user-x does not exist')
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason='the refusal is for root')
def test_root_without_a_worker_user_fails_inspections_and_is_said(
        tmp_path, caplog, monkeypatch):
    from ceilometer_os_pollster.agent import engine as E
    from ceilometer_os_pollster.families import licences
    from tests.helpers import domain_xml
    from tests.helpers import inspection_conf
    from tests.helpers import job
    engine = E.Engine(inspection_conf(allow_root_inspection=False,
                                      tmp_dir=str(tmp_path)),
                      worker_argv=['/bin/false'])
    problem = 'inspection not confined: ' + C.UNCONFINED
    assert C.UNCONFINED + ': every inspection will fail' in engine.preflight()
    rec = engine.inspect(job(xml=domain_xml()))
    assert (rec.status, rec.reason) == ('failed', problem)
    # Billed like every failed inspection: the unverified rate, never
    # as a free OS.
    assert licences.products(rec) == [('(failed)', '', 0)]
    assert os.listdir(tmp_path) == []
    # The opt-out: inspections run (here the worker is /bin/false), and
    # the start says that qemu runs as root.  (Not the host's /tmp.)
    monkeypatch.setattr(workdir, 'remove_orphan_sockdirs', lambda: [])
    allowed = E.Engine(inspection_conf(allow_root_inspection=True,
                                       tmp_dir=str(tmp_path)),
                       worker_argv=['/bin/false'])
    with caplog.at_level('WARNING'):
        assert not any('worker_user' in p for p in allowed.start())
    assert any('OS inspections run as root' in r.getMessage()
               for r in caplog.records)
    rec = allowed.inspect(job(xml=domain_xml()))
    assert rec.reason == 'inspection worker failed (exit 1)'
