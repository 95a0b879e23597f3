"""Inspection records on disk, mirrored in memory.

Owns ``[os_inspection] cache_dir``: one file per instance
(``cache_format`` says what it holds) and the inspection locks
(``cache_locks``) that keep two processes (agent, CLI, a second agent)
from inspecting one VM at once.  ``RecordCache`` composes them with the
in-memory mirror.

The poll path reads only the in-memory mirror: ``get`` does no file I/O
once the directory has been loaded (lazily, once per process).
``refresh`` re-reads files whose stat signature changed, so records
written by other processes become visible once per poll cycle.

Writes another process may race (an inspection result, last_seen,
forgetting) happen under the instance's inspection lock and only if the
file is still the one this process last read (``put`` returns False
otherwise).  What is read back is cleaned again like guest data and its
times are clamped to the scheduler's horizon (``set_horizon``).

Every file problem is a miss, never an exception: a corrupt, truncated,
foreign or unreadable file is logged once and ignored.  A directory that
cannot be written, or that root must not use (``cache_dir``), turns the
cache memory-only (one ERROR) until a later write succeeds.

Every file operation opens the directory afresh (``cache_dir.open_dir``)
and works relative to that handle: ``*at()`` calls, no symbolic link
followed, the directory checked again each time when run as root.  A
cache made with ``read_only=True`` (the CLI's cached-only answers,
``cache list``/``show``, ``report``) never creates, writes, locks or
unlinks anything.
"""

import contextlib
import os
import secrets
import stat
import threading
import time

from oslo_log import log

from ceilometer_os_pollster.agent import cache_dir
from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster.agent import cache_locks
from ceilometer_os_pollster import options
from ceilometer_os_pollster import record as record_mod

LOG = log.getLogger(__name__)

# How often a memory-only cache tries the disk again.
DISK_RETRY_SECONDS = 600.0
# last_seen rewrites per prune(): keeps end_cycle short on big hosts.
MAX_SEEN_WRITES = 8
# Temp files left by a process killed mid-write; younger ones may be in
# use by another process right now.
STALE_TEMP_SECONDS = 3600.0
# A FIFO or device planted as a record must not block the open.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
               | os.O_CLOEXEC)


def _signature(st):
    # The inode changes on every os.replace, so equal mtimes within the
    # filesystem's granularity cannot hide a rewrite.
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class RecordCache:
    """One directory of records plus its in-memory mirror (thread-safe)."""

    def __init__(self, directory, clock=time.time,
                 forget_after=options.DEFAULTS['forget_after'],
                 disk_retry=DISK_RETRY_SECONDS, read_only=False):
        self.directory = os.fspath(directory)
        self._read_only = read_only
        self._clock = clock
        self._forget_after = forget_after
        self._disk_retry = disk_retry
        self._entries = {}         # id -> Entry
        self._sigs = {}            # id -> signature of the file we know
        self._persisted_seen = {}  # id -> last_seen as written on disk
        self._dirty = set()        # ids whose memory state is not on disk
        # Lock order: _disk, then _mem.  get() takes neither.
        self._mem = threading.Lock()
        self._disk = threading.RLock()
        self._loaded = False
        self._disk_ok = True
        self._disk_retry_at = 0.0
        self._dir_ready = False
        self._warned = set()
        self._locks = cache_locks.InspectionLocks(self._open_for_locks,
                                                  self._lock_unavailable)
        self._horizon = None       # see set_horizon

    def set_horizon(self, seconds):
        """Clamp times read back from disk to ``now + seconds`` from now on.

        The scheduler calls this with the furthest future time its policy
        writes; a file written while the clock was wrong (a host booted
        with its clock in the future) then cannot hold a record for a
        year.  Entries already in memory are clamped too.
        """
        self._horizon = float(seconds)
        with self._mem:
            for instance_id, entry in list(self._entries.items()):
                self._entries[instance_id] = self._clamp(entry)

    def _clamp(self, entry):
        return cache_format.clamp(entry, self._clock(), self._horizon)

    # -- reading -----------------------------------------------------

    def load(self):
        """Read the directory (once per process); the number of entries."""
        if not self._loaded:
            with self._disk:
                if not self._loaded:
                    self._prepare_dir()
                    self._scan()
                    self._loaded = True
        return len(self._entries)

    def get(self, instance_id):
        """The entry of an instance or None; memory only after load()."""
        if not self._loaded:
            self.load()
        return self._entries.get(instance_id)

    def entries(self):
        self.load()
        with self._mem:
            return sorted(self._entries.values(),
                          key=lambda e: e.instance_id)

    def __len__(self):
        return len(self._entries)

    @property
    def persistent(self):
        """False while the cache is memory-only."""
        return self._disk_ok

    def refresh(self):
        """Re-read files changed by other processes since the last look."""
        if not self._loaded:
            self.load()
            return
        with self._disk:
            self._scan()

    def reload(self, instance_id):
        """Re-read one instance's file if it changed; its entry or None.

        Workers call this under the inspection lock: another process may
        have inspected the instance since the last refresh().
        """
        self.load()
        if not cache_format.valid_instance_id(instance_id):
            return self._entries.get(instance_id)
        with self._disk:
            try:
                with self._open() as handle:
                    st = self._lstat(handle, instance_id)
                    if self._sigs.get(instance_id) != _signature(st):
                        self._read_into_memory(handle, instance_id,
                                               _signature(st))
            except FileNotFoundError:
                self._vanished(instance_id)
            except OSError:
                pass
        return self._entries.get(instance_id)

    @staticmethod
    def _name(instance_id):
        return instance_id + cache_format.SUFFIX

    def _path(self, instance_id):
        # For messages only: files are reached through the handle.
        return os.path.join(self.directory, self._name(instance_id))

    # The directory is opened (and, run as root, checked) again for each
    # operation: one removed, replaced or mounted over meanwhile is the
    # one used, and no descriptor keeps it busy between operations.

    def _open(self, create=False):
        """A cache_dir.Handle (a context manager) on the directory;
        OSError, cache_dir.Refused included, if it cannot be used."""
        return cache_dir.open_dir(self.directory,
                                  create=create and not self._read_only)

    def _open_for_locks(self):
        return self._open(create=True)

    def _lstat(self, handle, instance_id):
        return os.stat(self._name(instance_id), dir_fd=handle.fd,
                       follow_symlinks=False)

    def _prepare_dir(self):
        if self._dir_ready or self._read_only:
            return
        try:
            self._open(create=True).close()
        except OSError as exc:
            self._degrade(exc)
        else:
            self._dir_ready = True

    def _scan(self):
        # Caller holds _disk: no put() can interleave with the re-read.
        try:
            with self._open() as handle:
                self._scan_in(handle)
        except cache_dir.Refused as exc:
            if self._read_only:
                self._warn_once(('refused',), 'Not reading OS inspection '
                                'cache directory %s: %s', self.directory,
                                exc)
            else:
                self._degrade(exc)
        except FileNotFoundError:
            pass                # not made yet, or removed meanwhile
        except OSError as exc:
            if self._disk_ok and (self._dir_ready or self._read_only):
                self._warn_once(('scandir',), 'Cannot list OS inspection '
                                'cache directory %s: %s',
                                self.directory, exc)

    def _scan_in(self, handle):
        listing = list(os.scandir(handle.fd))
        seen = set()
        for item in listing:
            name = item.name
            if name.startswith('.'):
                if not self._read_only:
                    self._remove_stale_temp(handle, item)
                continue
            instance_id = name[:-len(cache_format.SUFFIX)]
            if (not name.endswith(cache_format.SUFFIX)
                    or not cache_format.valid_instance_id(instance_id)):
                continue
            try:
                if not item.is_file(follow_symlinks=False):
                    continue
                sig = _signature(item.stat(follow_symlinks=False))
            except OSError:
                continue
            seen.add(instance_id)
            if self._sigs.get(instance_id) != sig:
                self._read_into_memory(handle, instance_id, sig)
        for instance_id in set(self._sigs) - seen:
            self._vanished(instance_id)

    @staticmethod
    def _remove_stale_temp(handle, item):
        # Only regular files: a symbolic link named like a temp file is
        # not ours (and unlinking it would only remove the link).
        if not item.name.endswith('.tmp'):
            return
        try:
            st = item.stat(follow_symlinks=False)
            if (stat.S_ISREG(st.st_mode)
                    and time.time() - st.st_mtime > STALE_TEMP_SECONDS):
                os.unlink(item.name, dir_fd=handle.fd)
        except OSError:
            pass

    def _vanished(self, instance_id):
        # Removed by another process (e.g. the CLI's forget), unless we
        # hold newer state that could not be written.
        with self._mem:
            self._sigs.pop(instance_id, None)
            self._persisted_seen.pop(instance_id, None)
            if instance_id not in self._dirty:
                self._entries.pop(instance_id, None)

    def _read_into_memory(self, handle, instance_id, sig):
        entry, sig, problem = self._read_file(handle, instance_id, sig)
        with self._mem:
            if sig is None:
                self._sigs.pop(instance_id, None)
            else:
                self._sigs[instance_id] = sig
            if instance_id in self._dirty:
                return
            if entry is None:
                self._entries.pop(instance_id, None)
                self._persisted_seen.pop(instance_id, None)
            else:
                known = self._entries.get(instance_id)
                self._persisted_seen[instance_id] = entry.last_seen
                if known is not None and known.last_seen > entry.last_seen:
                    entry = entry.replace(last_seen=known.last_seen)
                self._entries[instance_id] = entry
        if problem:
            self._warn_once(
                ('file', instance_id, sig),
                'Ignoring OS inspection record %s: %s; the instance will '
                'be inspected again', self._path(instance_id), problem)

    def _read_file(self, handle, instance_id, sig):
        """(entry or None, signature, problem or None); never raises."""
        try:
            fd = os.open(self._name(instance_id), _READ_FLAGS,
                         dir_fd=handle.fd)
        except FileNotFoundError:
            return None, None, None
        except OSError as exc:
            return None, sig, 'unreadable (%s)' % exc.strerror
        try:
            st = os.fstat(fd)
            sig = _signature(st)
            if not stat.S_ISREG(st.st_mode):
                return None, sig, 'not a regular file'
            chunks = []
            size = 0
            while size <= cache_format.MAX_FILE_BYTES:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            return None, sig, 'unreadable (%s)' % exc.strerror
        finally:
            os.close(fd)
        try:
            entry = cache_format.decode_entry(b''.join(chunks), instance_id)
        except ValueError as exc:
            return None, sig, str(exc)
        entry = cache_format.read_back(entry, st.st_mtime)
        return self._clamp(entry), sig, None

    # -- writing -----------------------------------------------------

    def put(self, entry):
        """Store an entry in memory and, if possible, on disk.

        The caller holds the instance's inspection_lock.  Returns False,
        writing nothing, when the file changed since this process last
        read it (another process wrote or removed it): the new state is
        read instead, and the caller decides again from it.
        """
        if not isinstance(entry, cache_format.Entry):
            raise TypeError('RecordCache.put takes an Entry')
        if entry.record.status == record_mod.STATUS_PENDING:
            raise ValueError('pending records are never cached')
        self._writable()
        self.load()
        with self._disk:
            if self._changed_underneath(entry.instance_id):
                return False
            self._store(entry)
            return True

    def _changed_underneath(self, instance_id):
        """True (and the file re-read) if it is not the one we know."""
        # Caller holds _disk.
        if not cache_format.valid_instance_id(instance_id):
            return False
        try:
            with self._open() as handle:
                return self._changed_in(handle, instance_id)
        except FileNotFoundError:       # the directory is gone
            return self._changed_in(None, instance_id)
        except OSError:
            return False        # unreadable: the write will say why

    def _changed_in(self, handle, instance_id):
        sig = None
        if handle is not None:
            with contextlib.suppress(FileNotFoundError):
                sig = _signature(self._lstat(handle, instance_id))
        if sig == self._sigs.get(instance_id):
            return False
        LOG.debug('OS inspection record of %s changed on disk meanwhile; '
                  'not overwriting it', instance_id)
        with self._mem:
            self._dirty.discard(instance_id)
        if sig is None:
            self._vanished(instance_id)
        else:
            self._read_into_memory(handle, instance_id, sig)
        return True

    def _store(self, entry):
        # Caller holds _disk.
        instance_id = entry.instance_id
        sig = self._persist(entry)
        with self._mem:
            self._entries[instance_id] = entry
            if sig is None:
                self._dirty.add(instance_id)
            else:
                self._dirty.discard(instance_id)
                self._sigs[instance_id] = sig
                self._persisted_seen[instance_id] = entry.last_seen
        if sig is not None and self._dirty:
            self._flush_dirty()

    def _persist(self, entry):
        """Write one entry's file; its signature, or None if not written."""
        instance_id = entry.instance_id
        if not cache_format.valid_instance_id(instance_id):
            self._warn_once(('id', instance_id),
                            'Instance id %r cannot name a file; its OS '
                            'inspection record is kept in memory only',
                            instance_id)
            return None
        if not self._disk_ok and self._clock() < self._disk_retry_at:
            return None
        try:
            with self._open(create=True) as handle:
                sig = self._write_file(handle, instance_id,
                                       cache_format.encode_entry(entry))
        except OSError as exc:
            self._degrade(exc)
            return None
        if not self._disk_ok:
            self._disk_ok = True
            LOG.info('OS inspection cache directory %s is writable again; '
                     'records are persisted from now on', self.directory)
        return sig

    def _flush_dirty(self):
        # After a recovery: write what was kept in memory meanwhile.
        with self._mem:
            pending = sorted(i for i in self._dirty if i in self._entries
                             and cache_format.valid_instance_id(i))
        for instance_id in pending:
            with self.inspection_lock(instance_id) as locked:
                if not locked or self._changed_underneath(instance_id):
                    continue    # the other writer's state wins
                with self._mem:
                    entry = self._entries.get(instance_id)
                if entry is None:
                    continue
                sig = self._persist(entry)
                if sig is None:
                    return
                with self._mem:
                    self._dirty.discard(instance_id)
                    self._sigs[instance_id] = sig
                    self._persisted_seen[instance_id] = entry.last_seen

    @staticmethod
    def _create_temp(dir_fd, instance_id):
        # mkstemp() has no dir_fd: the same thing relative to the handle.
        for _attempt in range(100):
            name = '.%s.%s.tmp' % (instance_id, secrets.token_hex(6))
            try:
                return name, os.open(name, _TEMP_FLAGS,
                                     cache_format.FILE_MODE, dir_fd=dir_fd)
            except FileExistsError:
                continue
        raise FileExistsError(17, 'no free temporary file name')

    def _write_file(self, handle, instance_id, data):
        # Temp file in the same directory + fsync + rename: a reader (or
        # a crash at any instant) sees the old file or the new one, never
        # a mix.  Dot-prefixed so a scan never takes it for a record.
        dir_fd = handle.fd
        tmp, fd = self._create_temp(dir_fd, instance_id)
        try:
            try:
                os.fchmod(fd, cache_format.FILE_MODE)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
                st = os.fstat(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._name(instance_id), src_dir_fd=dir_fd,
                       dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        # Makes the rename itself durable; best effort.
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
        return _signature(st)

    def _degrade(self, exc):
        self._disk_retry_at = self._clock() + self._disk_retry
        self._dir_ready = False   # recreate it if it was removed
        if not self._disk_ok:
            LOG.debug('OS inspection cache directory %s still not '
                      'writable: %s', self.directory, exc)
            return
        self._disk_ok = False
        if isinstance(exc, cache_dir.Refused):
            LOG.error(
                'Refusing to use OS inspection cache directory %(dir)s: '
                '%(err)s. Keeping records in memory only: every agent '
                'restart will re-inspect all instances. Running as root, '
                'the directory and every one above it must be owned by '
                'root and writable by no other user; set [os_inspection] '
                'cache_dir to such a directory (and no symbolic link); '
                'retrying every %(retry)d s.',
                {'dir': self.directory, 'err': exc,
                 'retry': self._disk_retry})
            return
        LOG.error(
            'Cannot write OS inspection records to %(dir)s (%(err)s). '
            'Keeping them in memory only: every agent restart will '
            're-inspect all instances. Make the directory writable by '
            'this user or set [os_inspection] cache_dir to one that is; '
            'retrying every %(retry)d s.',
            {'dir': self.directory,
             'err': exc.strerror or exc, 'retry': self._disk_retry})

    def _warn_once(self, key, message, *args):
        if key not in self._warned:
            self._warned.add(key)
            LOG.warning(message, *args)

    # -- forgetting --------------------------------------------------

    def forget(self, instance_id):
        """Drop an instance's record; True if there was one.

        Under the instance's inspection lock when it is free.  When an
        inspection is running elsewhere the record is dropped anyway: that
        inspection notices the file vanished and writes a fresh record,
        which is what forgetting asks for.
        """
        self._writable()
        self.load()
        with self.inspection_lock(instance_id) as locked:
            with self._disk:
                return self._forget(instance_id, lock_held=locked)

    def _forget(self, instance_id, lock_held=False):
        with self._mem:
            existed = self._entries.pop(instance_id, None) is not None
            self._sigs.pop(instance_id, None)
            self._persisted_seen.pop(instance_id, None)
            self._dirty.discard(instance_id)
        if not cache_format.valid_instance_id(instance_id):
            return existed
        try:
            with self._open() as handle:
                os.unlink(self._name(instance_id), dir_fd=handle.fd)
            existed = True
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._warn_once(('unlink', instance_id),
                            'Cannot delete OS inspection record %s: %s',
                            self._path(instance_id), exc.strerror)
        self._locks.remove(instance_id, lock_held)
        return existed

    def forget_all(self):
        """Drop every record (memory and disk); how many there were."""
        self._writable()
        self.load()
        with self._disk:
            ids = set(self._entries)
            with contextlib.suppress(OSError), self._open() as handle:
                for item in os.scandir(handle.fd):
                    instance_id = item.name[:-len(cache_format.SUFFIX)]
                    if (item.name.endswith(cache_format.SUFFIX)
                            and cache_format.valid_instance_id(instance_id)):
                        ids.add(instance_id)
        return sum(1 for i in sorted(ids) if self.forget(i))

    def prune(self, alive_ids, now=None, forget_after=None):
        """Mark alive instances seen; drop those gone for forget_after.

        Returns how many records were deleted.

        last_seen is written back only every forget_after/4 (at least a
        minute, at most MAX_SEEN_WRITES files per call), so a restarted
        agent still knows what it saw lately and does not delete the
        records of instances it merely has not listed yet.
        """
        self._writable()
        self.load()
        now = self._clock() if now is None else now
        forget_after = (self._forget_after if forget_after is None
                        else forget_after)
        persist_every = max(60.0, forget_after / 4.0)
        alive = set(alive_ids)
        gone, stale_seen = [], []
        with self._mem:
            for instance_id, entry in self._entries.items():
                if instance_id in alive:
                    if entry.last_seen < now:
                        self._entries[instance_id] = entry.replace(
                            last_seen=now)
                    persisted = self._persisted_seen.get(instance_id)
                    if (persisted is not None
                            and now - persisted >= persist_every):
                        stale_seen.append(instance_id)
                elif now - entry.last_seen >= forget_after:
                    gone.append(instance_id)
        deleted = 0
        for instance_id in gone:
            # Under the lock, from the file as it is now: another process
            # may have seen or inspected it since our last look.
            with self.inspection_lock(instance_id) as locked:
                if not locked:
                    continue
                entry = self.reload(instance_id)
                if entry is None or now - entry.last_seen < forget_after:
                    continue
                LOG.info('Forgetting the OS inspection record of instance '
                         '%s: not seen on this host for %d s', instance_id,
                         now - entry.last_seen)
                with self._disk:
                    if self._forget(instance_id, lock_held=True):
                        deleted += 1
        for instance_id in sorted(stale_seen)[:MAX_SEEN_WRITES]:
            with self.inspection_lock(instance_id) as locked:
                if not locked:
                    continue    # being inspected: that writes last_seen
                entry = self.reload(instance_id)
                if entry is not None:
                    self.put(entry.replace(
                        last_seen=max(entry.last_seen, now)))
        return deleted

    # -- inspection locks --------------------------------------------

    def inspection_lock(self, instance_id):
        """A context manager yielding True if this thread may inspect the
        instance now (see ``cache_locks``); non-blocking."""
        self._writable()
        return self._locks.hold(instance_id)

    def _writable(self):
        if self._read_only:
            raise RuntimeError('this RecordCache of %s is read-only'
                               % self.directory)

    def _lock_unavailable(self, exc):
        if self._disk_ok:
            self._warn_once(('lock',), 'Cannot use inspection lock files '
                            'under %s (%s): inspections are only '
                            'serialised within this process',
                            self.directory, exc)
