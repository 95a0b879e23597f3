"""Inspection locks: at most one inspection of an instance at a time,
across every process that shares a cache directory.

An agent, the CLI and a second agent on the same host may all want to
inspect one VM.  Each lock is an flock() on
``<cache_dir>/.locks/<instance_id>.lock``, released by the kernel if its
holder dies, plus an in-process set so two threads of one process
exclude each other too.  When the lock files cannot be used the locks
are in-process only (``on_unavailable`` is told why).

Root creates its lock files as root and never gives them away: a root
process only ever works in a cache directory that is root's alone
(``cache_dir``), so nothing there needs to stay writable by another
user.
"""

import contextlib
import errno
import fcntl
import os
import threading

from ceilometer_os_pollster.agent import cache_dir
from ceilometer_os_pollster.agent import cache_format

# O_NONBLOCK: a FIFO planted as a lock file must not block the open.
_LOCK_FLAGS = (os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
               | os.O_NONBLOCK)


class InspectionLocks:
    """The inspection locks of one cache directory (thread-safe).

    ``directory`` is a callable opening the cache's directory (a
    ``cache_dir.Handle``, or OSError): ``.locks`` and every lock file are
    opened relative to it, without following symbolic links.
    """

    def __init__(self, directory, on_unavailable=lambda exc: None):
        self._directory = directory
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

    @staticmethod
    def _name(instance_id):
        return instance_id + '.lock'

    def _lock_dir(self, create):
        """An fd on ``.locks`` (the caller closes it)."""
        with self._directory() as handle:
            return cache_dir.open_subdir(handle, cache_format.LOCK_DIR,
                                         create=create)

    def _flock(self, instance_id):
        """An fd holding the lock, False if busy, None if unavailable."""
        if not cache_format.valid_instance_id(instance_id):
            return None
        name = self._name(instance_id)
        try:
            lock_dir = self._lock_dir(create=True)
        except OSError as exc:
            self._on_unavailable(exc)
            return None
        try:
            return self._flock_in(lock_dir, name)
        finally:
            os.close(lock_dir)

    def _flock_in(self, lock_dir, name):
        for _attempt in range(3):
            try:
                fd = os.open(name, _LOCK_FLAGS | os.O_CREAT,
                             cache_format.FILE_MODE, dir_fd=lock_dir)
            except OSError as exc:
                self._on_unavailable(exc)
                return None
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
                same = os.fstat(fd).st_ino == os.stat(
                    name, dir_fd=lock_dir, follow_symlinks=False).st_ino
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
        name = self._name(instance_id)
        try:
            lock_dir = self._lock_dir(create=False)
        except OSError:
            return
        try:
            if lock_held:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=lock_dir)
                return
            try:
                fd = os.open(name, _LOCK_FLAGS, dir_fd=lock_dir)
            except OSError:
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(name, dir_fd=lock_dir)
            except OSError:
                pass
            finally:
                os.close(fd)
        finally:
            os.close(lock_dir)
