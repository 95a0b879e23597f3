"""Forgetting records, mixed into ``RecordCache`` (see ``cache``):
on demand (the CLI's ``cache forget``) and after each poll cycle for
instances gone from the host for ``forget_after`` (``prune``), which
also writes back when alive instances were last seen.
"""

import contextlib
import os

from oslo_log import log

from ceilometer_os_pollster.agent import cache_files
from ceilometer_os_pollster.agent import cache_format

LOG = log.getLogger(__name__)

# last_seen rewrites per prune(): keeps end_cycle short on big hosts.
MAX_SEEN_WRITES = 8


class Forgetting:
    """forget(), forget_all() and prune(); uses RecordCache's state and
    its reading, writing and locks."""

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
                os.unlink(cache_files.name(instance_id), dir_fd=handle.fd)
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
