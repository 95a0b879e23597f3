"""Root never trusts what the agent's user can write in the cache (issue 22).

Real root processes (the ``ceilometer-os-pollster`` command, run as
``python -m ceilometer_os_pollster.commands.cli`` from this tree) against cache
directories prepared by an unprivileged user (uid 65534, through
``setpriv``) the way the agent's user could: a cache_dir it owns, a
parent it owns, a symbolic link in place of cache_dir, of ``.locks`` and
of temporary files, all pointing at a root-owned directory ("victim").
Each is refused or harmless, and nothing outside the cache changes owner
or disappears.  The domains come from libvirt's daemon-less ``test:///``
driver; no command here reaches an appliance (refused before, or every
record is fresh).
"""

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from ceilometer_os_pollster.agent import cache_files
from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster.instances import domain_xml
from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster.agent import service as service_mod
from ceilometer_os_pollster.instances import identity
from tests.fixtures import libvirt_test_driver as tdrv

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('setpriv'),
                       reason='needs root and setpriv (util-linux) to '
                              'act as root and as an unprivileged user'),
]

REPO = pathlib.Path(__file__).resolve().parents[2]
NOBODY = 65534
UUIDS = ['eeeeeeee-0000-4000-8000-00000000000%d' % i for i in (1, 2)]
GONE = 'eeeeeeee-0000-4000-8000-0000000000ff'
OWNED_BY_NOBODY = 'is owned by nobody (uid 65534), not root'


def as_nobody(script):
    """Run a shell script as uid/gid 65534 with no supplementary groups."""
    subprocess.run(['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY,
                    '--clear-groups', 'sh', '-euc', script],
                   check=True, cwd='/', timeout=60)


def snapshot(top):
    """Every entry under ``top`` (symbolic links not followed): owner,
    group, type, mode and inode, by relative path."""
    found = {}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            found[os.path.relpath(path, top)] = (
                st.st_uid, st.st_gid, stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode), st.st_ino)
    return found


class World:
    """A root-owned 0755 base under /tmp holding the victim directory,
    a libvirt test node with two instances and a config file."""

    def __init__(self):
        self.base = pathlib.Path(tempfile.mkdtemp(prefix='cache-priv-',
                                                  dir='/tmp'))
        self.etc = pathlib.Path(tempfile.mkdtemp(prefix='cache-priv-etc-'))
        os.chmod(self.base, 0o755)
        self.victim = self.base / 'victim'
        self.victim.mkdir(mode=0o755)
        (self.victim / 'secret').write_text('root only')
        os.chmod(self.victim / 'secret', 0o600)
        # Named and dated like a stale temporary file of the cache.
        self.victim_temp = self.victim / ('.%s.x.tmp' % UUIDS[0])
        self.victim_temp.write_text('root file, not a cache temp')
        _age(self.victim_temp)
        (self.base / 'tmp').mkdir(mode=0o700)
        self.uri = tdrv.write_node(self.base / 'node.xml', [
            tdrv.domain(u, 'instance-%08d' % i, vcpus=2)
            for i, u in enumerate(UUIDS, 1)])

    def config(self, cache_dir):
        # Outside the base: snapshots compare the base before and after.
        path = self.etc / ('%s.conf' % abs(hash(str(cache_dir))))
        # What is tested is the cache: root's timer command may inspect
        # here, with tmp_dir root's alone (0700), where a worker_user
        # could not work: root inspections allowed explicitly.
        path.write_text('[DEFAULT]\nlibvirt_uri = %s\n[os_inspection]\n'
                        'cache_dir = %s\ntmp_dir = %s\n'
                        'allow_root_inspection = true\n'
                        % (self.uri, cache_dir, self.base / 'tmp'))
        return path

    def cli(self, cache_dir, *argv):
        """Run the command as root (this process's uid) in a new process."""
        proc = subprocess.run(
            [sys.executable, '-m', 'ceilometer_os_pollster.commands.cli',
             '--config-file', str(self.config(cache_dir))] + list(argv),
            capture_output=True, text=True, timeout=240, cwd=str(REPO))
        return proc.returncode, proc.stdout, proc.stderr

    def fill_victim_like_a_cache(self):
        """Root-owned files in the victim a follower of links would touch
        (a record and a lock of the first instance)."""
        write_records(self.victim, [UUIDS[0]], self.jobs())
        (self.victim / (UUIDS[0] + '.lock')).write_text('')

    def jobs(self):
        import libvirt
        connection = libvirt.openReadOnly(self.uri)
        boot_id = service_mod.host_boot_id()
        jobs = {}
        for uuid in UUIDS:
            dom = connection.lookupByUUIDString(uuid)
            xml = dom.XMLDesc(0)
            info = domain_xml.instance_info(xml)
            jobs[uuid] = identity.make_job(uuid, info.name, xml, dom.ID(),
                                           info.image_id, boot_id)
        connection.close()
        return jobs


def _age(path, seconds=2 * cache_files.STALE_TEMP_SECONDS):
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)


def write_records(directory, ids, jobs, last_seen=None):
    """Fresh ok records (nothing due) written as the cache writes them."""
    now = time.time()
    for instance_id in ids:
        job = jobs.get(instance_id)
        rec = record_mod.OSRecord(
            instance_id=instance_id, status=record_mod.STATUS_OK,
            os_family='linux', os_distro='rhel', os_info='rhel9.4',
            os_version_major=9, os_version_minor=4,
            fingerprint=job.fingerprint if job else 'gone',
            inspected_at='2026-01-02T03:04:05Z')
        entry = cache_format.Entry(
            record=rec, expires_at=now + 86400,
            last_seen=now if last_seen is None else last_seen)
        path = os.path.join(directory, instance_id + cache_format.SUFFIX)
        with open(path, 'wb') as f:
            f.write(cache_format.encode_entry(entry))


@pytest.fixture
def world():
    w = World()
    try:
        yield w
    finally:
        shutil.rmtree(w.base)
        shutil.rmtree(w.etc)


ALL_COMMANDS = [
    ('inspect', '--all', '--json', '--cached-only'),
    ('inspect', '--all', '--stale-only'),
    ('report',),
    ('cache', 'list'),
    ('cache', 'show', UUIDS[0]),
    ('cache', 'forget', '--all'),
]


def assert_refused_by_all(world, cache_dir, expected):
    for argv in ALL_COMMANDS:
        rc, out, err = world.cli(cache_dir, *argv)
        assert rc == 2, (argv, out, err)
        assert out == '', argv
        lines = err.splitlines()
        assert len(lines) == 1, (argv, err)
        assert lines[0].startswith(
            'ceilometer-os-pollster: error: refusing to use '
            '[os_inspection] cache_dir %s as root: ' % cache_dir), lines
        assert expected in lines[0], (argv, lines[0])


def test_cache_dir_owned_by_the_agent_is_refused(world):
    # The set-up: the agent's user owns cache_dir, its .locks is
    # a link to a root-owned directory and its temporary files point out.
    cache = world.base / 'os-inspection'
    cache.mkdir(mode=0o755)
    os.chown(cache, NOBODY, NOBODY)
    world.fill_victim_like_a_cache()
    as_nobody('''
        ln -s {victim} {cache}/.locks
        ln -s {victim}/secret {cache}/.{id}.a.tmp
        printf partial > {cache}/.{id}.b.tmp
        touch -h -d '2 hours ago' {cache}/.{id}.a.tmp {cache}/.{id}.b.tmp
    '''.format(victim=world.victim, cache=cache, id=UUIDS[0]))
    before = snapshot(world.base)
    assert_refused_by_all(world, cache, '%s %s' % (cache, OWNED_BY_NOBODY))
    # Not a file created, chowned or deleted anywhere (the agent's own
    # stale temporary file included: read-only or refused, nobody
    # unlinks).
    assert snapshot(world.base) == before


def test_cache_dir_under_a_parent_the_agent_owns_is_refused(world):
    # Like the default /var/lib/ceilometer/os-inspection: root's own
    # cache_dir is no use in a parent the agent's user can rename.
    home = world.base / 'agent-home'
    home.mkdir(mode=0o755)
    os.chown(home, NOBODY, NOBODY)
    cache = home / 'os-inspection'
    cache.mkdir(mode=0o750)
    write_records(cache, UUIDS, world.jobs())
    before = snapshot(world.base)
    assert_refused_by_all(world, cache, '%s %s' % (home, OWNED_BY_NOBODY))
    assert snapshot(world.base) == before


def test_symbolic_link_in_place_of_cache_dir_is_refused(world):
    world.fill_victim_like_a_cache()
    home = world.base / 'agent-home'
    home.mkdir(mode=0o755)
    os.chown(home, NOBODY, NOBODY)
    as_nobody('ln -s {victim} {home}/os-inspection'.format(
        victim=world.victim, home=home))
    # Even one root made in a root-owned directory: root follows none.
    os.symlink(world.victim, world.base / 'linked-cache')
    before = snapshot(world.base)
    assert_refused_by_all(world, home / 'os-inspection',
                          '%s %s' % (home, OWNED_BY_NOBODY))
    assert_refused_by_all(world, world.base / 'linked-cache',
                          '%s is a symbolic link' % (world.base /
                                                     'linked-cache'))
    assert snapshot(world.base) == before
    assert world.victim_temp.exists()


def test_root_cache_with_the_agents_leftovers_is_harmless(world):
    # The agent's user prepared the directory; the operator then made it
    # root's (chown and chmod of the directory alone).  Its links stay:
    # every command works, and none follows them.
    cache = world.base / 'os-inspection'
    cache.mkdir(mode=0o755)
    os.chown(cache, NOBODY, NOBODY)
    world.fill_victim_like_a_cache()
    as_nobody('''
        ln -s {victim} {cache}/.locks
        ln -s {victim_temp} {cache}/.{id}.a.tmp
        touch -h -d '2 hours ago' {cache}/.{id}.a.tmp
        printf partial > {cache}/.{id}.b.tmp
        touch -d '2 hours ago' {cache}/.{id}.b.tmp
    '''.format(victim=world.victim, victim_temp=world.victim_temp,
               cache=cache, id=UUIDS[0]))
    os.chown(cache, 0, 0)
    os.chmod(cache, 0o750)
    write_records(cache, UUIDS, world.jobs())
    write_records(cache, [GONE], {}, last_seen=1.0)
    _age(cache / (GONE + '.json'), 30 * 86400)  # its mtime dates it too
    victim = snapshot(world.victim)
    before = snapshot(cache)

    # Read-only commands: answered, and nothing in the cache changes.
    rc, out, err = world.cli(cache, 'inspect', '--all', '--json',
                             '--cached-only')
    assert (rc, err) == (0, '')
    items = json.loads(out)
    assert [i['resource_id'] for i in items] == UUIDS
    assert {i['os_inspection_status'] for i in items} == {'ok'}
    for argv in (('report',), ('cache', 'list'),
                 ('cache', 'show', UUIDS[0])):
        rc, out, err = world.cli(cache, *argv)
        assert rc == 0, (argv, err)
    assert snapshot(cache) == before

    # The root timer's command: takes locks, prunes, deletes the record
    # of the instance gone from the host, sweeps stale temporary files.
    rc, out, err = world.cli(cache, 'inspect', '--all', '--stale-only')
    assert rc == 0, err
    assert '%s is a symbolic link' % (cache / '.locks') in err
    after = snapshot(cache)
    assert GONE + '.json' not in after
    assert '.%s.b.tmp' % UUIDS[0] not in after    # a stale file of its own
    assert after['.locks'] == before['.locks']    # still the agent's link
    assert after['.%s.a.tmp' % UUIDS[0]] == before['.%s.a.tmp' % UUIDS[0]]
    for uuid in UUIDS:
        assert after[uuid + '.json'][0] == 0      # root's, never chowned

    rc, out, err = world.cli(cache, 'cache', 'forget', '--all')
    assert (rc, out) == (0, 'forgot 2 records\n'), err
    assert sorted(snapshot(cache)) == ['.%s.a.tmp' % UUIDS[0], '.locks']
    # Outside the cache: not a lock file made, not an owner changed, not
    # a file removed.
    assert snapshot(world.victim) == victim
    assert world.victim_temp.read_text() == 'root file, not a cache temp'
