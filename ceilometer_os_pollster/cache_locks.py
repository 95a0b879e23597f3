"""Inspection locks: at most one inspection of an instance at a time,
across every process that shares a cache directory.

An agent, the CLI and a second agent on the same host may all want to
inspect one VM.  Each lock is an flock() on
``<cache_dir>/.locks/<instance_id>.lock``, released by the kernel if its
holder dies, plus an in-process set so two threads of one process
exclude each other too.  When the lock files cannot be used the locks
are in-process only (``on_unavailable`` is told why).
"""

import contextlib
import errno
import fcntl
import os
import threading

from ceilometer_os_pollster import cache_format


def adopt_owner(directory, fd=None, path=None):
    """Give a file we created in ``directory`` the directory's owner.

    A CLI run as root writes into the agent's directory: what it creates
    must stay replaceable and lockable by the agent's user.
    """
    if os.geteuid() != 0:
        return
    try:
        st = os.stat(directory)
        if (st.st_uid, st.st_gid) == (0, 0):
            return
        if fd is not None:
            os.fchown(fd, st.st_uid, st.st_gid)
        else:
            os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    except OSError:
        pass


class InspectionLocks:
    """The inspection locks of one cache directory (thread-safe)."""

    def __init__(self, directory, on_unavailable=lambda exc: None):
        self.directory = directory
        self._on_unavailable = on_unavailable
        self._held = set()         # in-process inspection locks
        self._held_lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, instance_id):
        """Yield True if this thread may inspect the instance now.

        Non-blocking: False means another thread or process is
        inspecting it.
        """
        with self._held_lock:
            mine = instance_id not in self._held
            if mine:
                self._held.add(instance_id)
        if not mine:
            yield False
            return
        fd = None
        try:
            fd = self._flock(instance_id)
            yield fd is not False
        finally:
            if fd not in (None, False):
                os.close(fd)
            with self._held_lock:
                self._held.discard(instance_id)

    def _path(self, instance_id):
        return os.path.join(self.directory, cache_format.LOCK_DIR,
                            instance_id + '.lock')

    def _flock(self, instance_id):
        """An fd holding the lock, False if busy, None if unavailable."""
        if not cache_format.valid_instance_id(instance_id):
            return None
        path = self._path(instance_id)
        lock_dir = os.path.dirname(path)
        if not os.path.isdir(lock_dir):
            try:
                os.makedirs(lock_dir, cache_format.DIR_MODE,
                            exist_ok=True)
            except OSError as exc:
                self._on_unavailable(exc)
                return None
            adopt_owner(self.directory, path=lock_dir)
        for _attempt in range(3):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC
                             | os.O_NOFOLLOW, cache_format.FILE_MODE)
            except OSError as exc:
                self._on_unavailable(exc)
                return None
            adopt_owner(self.directory, fd=fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return False
                self._on_unavailable(exc)
                return None
            # forget() may have unlinked the file between open and flock;
            # a lock on an unlinked inode excludes nobody.
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except OSError:
                same = False
            if same:
                return fd
            os.close(fd)
        return False

    def remove(self, instance_id, lock_held=False):
        """Delete an instance's lock file when it is forgotten.

        Only while holding the lock, so nobody is inside an inspection:
        ``lock_held`` when the caller holds it already (another open +
        flock would conflict with our own hold), else it is taken here
        if free.
        """
        path = self._path(instance_id)
        if lock_held:
            with contextlib.suppress(OSError):
                os.unlink(path)
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(fd)
