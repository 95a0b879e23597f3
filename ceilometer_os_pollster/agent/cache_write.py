"""The write path of ``RecordCache`` (mixed into it; see ``cache``).

Writes another process may race happen under the instance's inspection
lock and only if the file is still the one this process last read
(``put`` returns False otherwise).  A directory that cannot be written,
or that root must not use (``cache_dir``), turns the cache memory-only
(one ERROR) until a later write succeeds; what was kept in memory
meanwhile is written then.
"""

import contextlib

from oslo_log import log

from ceilometer_os_pollster.agent import cache_dir
from ceilometer_os_pollster.agent import cache_files
from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster import record as record_mod

LOG = log.getLogger(__name__)


class Writing:
    """put() and what it needs; uses RecordCache's state (its _disk and
    _mem locks, _entries, _sigs, _dirty, _disk_ok ...)."""

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
                sig = cache_files.signature(
                    cache_files.lstat(handle, instance_id))
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
                sig = cache_files.write_file(
                    handle, instance_id, cache_format.encode_entry(entry))
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
