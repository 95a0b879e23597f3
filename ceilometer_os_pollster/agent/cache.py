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

This module owns the mirror and reading; ``cache_write`` the write path
(and the memory-only mode), ``cache_prune`` forgetting records,
``cache_files`` the file operations themselves.
"""

import os
import threading
import time

from oslo_log import log

from ceilometer_os_pollster.agent import cache_dir
from ceilometer_os_pollster.agent import cache_files
from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster.agent import cache_locks
from ceilometer_os_pollster.agent import cache_prune
from ceilometer_os_pollster.agent import cache_write
from ceilometer_os_pollster import options

LOG = log.getLogger(__name__)

# How often a memory-only cache tries the disk again.
DISK_RETRY_SECONDS = 600.0


class RecordCache(cache_write.Writing, cache_prune.Forgetting):
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
                    sig = cache_files.signature(
                        cache_files.lstat(handle, instance_id))
                    if self._sigs.get(instance_id) != sig:
                        self._read_into_memory(handle, instance_id, sig)
            except FileNotFoundError:
                self._vanished(instance_id)
            except OSError:
                pass
        return self._entries.get(instance_id)

    def _path(self, instance_id):
        # For messages only: files are reached through the handle.
        return os.path.join(self.directory, cache_files.name(instance_id))

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
                    cache_files.remove_stale_temp(handle, item)
                continue
            instance_id = name[:-len(cache_format.SUFFIX)]
            if (not name.endswith(cache_format.SUFFIX)
                    or not cache_format.valid_instance_id(instance_id)):
                continue
            try:
                if not item.is_file(follow_symlinks=False):
                    continue
                sig = cache_files.signature(item.stat(follow_symlinks=False))
            except OSError:
                continue
            seen.add(instance_id)
            if self._sigs.get(instance_id) != sig:
                self._read_into_memory(handle, instance_id, sig)
        for instance_id in set(self._sigs) - seen:
            self._vanished(instance_id)

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
        entry, sig, problem = cache_files.read_entry(handle, instance_id,
                                                     sig)
        return (None if entry is None else self._clamp(entry)), sig, problem

    def _warn_once(self, key, message, *args):
        if key not in self._warned:
            self._warned.add(key)
            LOG.warning(message, *args)

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
