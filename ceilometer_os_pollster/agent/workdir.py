"""Private working directories of inspections, and their clean-up.

The agent side makes one directory per inspection (``os-inspection-*``
under ``[os_inspection] tmp_dir``), mode 0700, and holds an exclusive
lock on a file in it for as long as the inspection runs.  The worker
process puts its overlays and any Ceph keyring there; the agent removes
the directory when the worker has ended, however it ended.  A directory
whose lock nobody holds belongs to a process that died (agent killed,
host crash) and is removed at the next start.
"""

import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
import time

from oslo_log import log

LOG = log.getLogger(__name__)

PRIVATE_PREFIX = 'os-inspection-'
OWNER_LOCK = '.owner'
# A private dir without a lock file is only spared this long (it may be
# between mkdtemp and the lock).
UNLOCKED_GRACE = 600
# libguestfs 1.48 puts a root process's socket directory in /tmp
# whatever it is told (a non-root one's goes in the private dir).
ROOT_SOCKDIR = '/tmp'
_SOCKDIR_NAME = re.compile(r'libguestfs[A-Za-z0-9]{6}\Z')
_SOCKDIR_FILES = frozenset(['guestfsd.sock', 'console.sock'])


class PrivateDir:
    """A private directory for one inspection; a context manager."""

    def __init__(self, tmp_root=None, owner=None):
        self.root = tmp_root or tempfile.gettempdir()
        self.path = ''
        self._fd = None
        # (uid, gid) of the worker user a root agent hands the directory
        # to, or None.
        self._owner = owner

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=self.root)
        try:
            self._fd = _hold_owner_lock(self.path)
            if self._owner is not None:
                _hand_over(self.path, *self._owner)
        except OSError:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc):
        self.remove()

    def remove(self):
        if self.path:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _hold_owner_lock(directory):
    fd = os.open(os.path.join(directory, OWNER_LOCK),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _hand_over(path, uid, gid):
    """Give the directory we just made (mkdtemp: new, 0700) to the
    worker user, through a handle that cannot follow a symlink; our lock
    file in it stays ours."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW |
                 os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            raise PermissionError(errno.EPERM, 'not our directory', path)
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


def _orphaned(path, now):
    try:
        fd = os.open(os.path.join(path, OWNER_LOCK),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return now - os.lstat(path).st_mtime > UNLOCKED_GRACE
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False            # its inspection is still running
    finally:
        os.close(fd)
    return True


def remove_orphan_dirs(tmp_root=None, clock=time.time, owners=()):
    """Remove private dirs left by killed processes; their names.

    Only our own directories (prefix, owner uid: ours or one of
    ``owners``, the worker user's, real directory) whose owner lock
    nobody holds.  Never raises.
    """
    tmp_root = tmp_root or tempfile.gettempdir()
    owners = {os.geteuid()} | set(owners)
    removed = []
    try:
        names = os.listdir(tmp_root)
    except OSError:
        return removed
    now = clock()
    for name in names:
        if not name.startswith(PRIVATE_PREFIX):
            continue
        path = os.path.join(tmp_root, name)
        try:
            info = os.lstat(path)
            if (not stat.S_ISDIR(info.st_mode) or
                    info.st_uid not in owners or not _orphaned(path, now)):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(name)
    if removed:
        LOG.warning('removed %d temporary director(y/ies) of killed '
                    'inspections in %s', len(removed), tmp_root)
    return removed


def _open_sockets(unix='/proc/net/unix'):
    """Paths of the unix sockets bound by a live process (an accepted
    connection shows its listener's path too)."""
    try:
        with open(unix, 'rb') as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return None
    paths = set()
    for line in lines:
        fields = line.split(None, 7)
        if len(fields) == 8:
            paths.add(os.fsdecode(fields[7]))
    return paths


def remove_orphan_sockdirs(root=ROOT_SOCKDIR, clock=time.time,
                           unix='/proc/net/unix'):
    """Remove libguestfs socket directories of killed root workers;
    their names.

    Only directories named as libguestfs names them, owned by us, older
    than UNLOCKED_GRACE, holding nothing but libguestfs' sockets, none
    of them open: an administrator's guestfish on the same host uses
    the same names.  Never raises.
    """
    removed = []
    live = _open_sockets(unix)
    if live is None:
        return removed          # cannot tell live ones apart
    now = clock()
    try:
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return removed
    try:
        for name in os.listdir(top):
            if not _SOCKDIR_NAME.match(name):
                continue
            path = os.path.join(root, name)
            try:
                if _remove_sockdir(top, name, path, live, now):
                    removed.append(name)
            except OSError:
                continue
    finally:
        os.close(top)
    if removed:
        LOG.warning('removed %d libguestfs socket director(y/ies) of '
                    'killed inspections in %s', len(removed), root)
    return removed


def _remove_sockdir(top, name, path, live, now):
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW |
                 os.O_CLOEXEC, dir_fd=top)
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or now - info.st_mtime < \
                UNLOCKED_GRACE:
            return False
        entries = os.listdir(fd)
        if not entries:
            return False        # a live handle's temporary directory?
        for entry in entries:
            if (entry not in _SOCKDIR_FILES or
                    os.path.join(path, entry) in live or
                    not stat.S_ISSOCK(os.lstat(entry, dir_fd=fd).st_mode)):
                return False
        for entry in entries:
            os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=top)
    return True
