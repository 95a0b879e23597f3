"""Per-process wiring of engine, cache and scheduler.

The pollster and the CLI both talk to one ``InspectionService``; it owns
the background machinery, which is created lazily (nothing happens at
import time or per sample) and stopped when the process exits.
"""

import atexit
import threading
import time

from oslo_log import log

from ceilometer_os_pollster.agent import engine as engine_mod
from ceilometer_os_pollster.instances import identity
from ceilometer_os_pollster import options

LOG = log.getLogger(__name__)

_BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id'
# How long stop() waits for killed inspections' processes to go: they
# die at once unless stuck in the kernel (hung NFS, FUSE).
STOP_WAIT = 10.0


def host_boot_id(path=_BOOT_ID_PATH):
    """The host's boot id, read once per process: with the libvirt
    domain id it names one qemu run (``identity.boot_identity``)."""
    try:
        with open(path, encoding='ascii') as f:
            return f.read(64).strip()
    except OSError:
        return ''


class InspectionService:
    """Engine + record cache + background scheduler of one process."""

    def __init__(self, conf, engine=None, cache=None, scheduler=None):
        options.register_opts(conf)
        self.conf = conf
        self.settings = conf[options.GROUP]
        self.boot_id = host_boot_id()
        self._engine = engine
        self._cache = cache
        self._scheduler = scheduler
        self._lock = threading.Lock()

    def _build(self):
        # Imported here so that loading the pollster stays cheap.
        from ceilometer_os_pollster.agent import cache as cache_mod
        from ceilometer_os_pollster.agent import scheduler as scheduler_mod
        with self._lock:
            if self._scheduler is not None:
                return self._scheduler
            if self._engine is None:
                self._engine = engine_mod.Engine(self.conf)
                # Once per process: say now why inspections will fail or
                # hang (KVM, guestfs, dirs).  The CLI runs its own.
                try:
                    self._engine.start()
                except Exception:
                    LOG.exception('OS inspection preflight failed')
            if self._cache is None:
                self._cache = cache_mod.RecordCache(self.settings.cache_dir)
            self._scheduler = scheduler_mod.Scheduler(
                self.settings, self._cache, self._engine.inspect)
            return self._scheduler

    @property
    def scheduler(self):
        return self._scheduler or self._build()

    @property
    def cache(self):
        self.scheduler
        return self._cache

    def job_for_domain(self, instance_id, domain, image_id=''):
        """Snapshot what inspecting this domain needs (cheap libvirt calls)."""
        return identity.make_job(instance_id, domain.name(),
                                 domain.XMLDesc(0), domain.ID(), image_id,
                                 self.boot_id,
                                 self.settings.inspect_all_disks)

    def lookup(self, job):
        """The record to publish now; queues background work if needed."""
        return self.scheduler.lookup(job)

    def end_cycle(self, alive_ids):
        self.scheduler.end_cycle(alive_ids)

    def stop(self, timeout=STOP_WAIT):
        """Stop the background work: queued inspections are dropped and
        running ones killed with everything they started (qemu,
        qemu-img), including one whose worker is being started at this
        moment; no inspection starts afterwards.  Returns once those
        processes are gone, or after ``timeout`` seconds, naming what is
        left in one WARNING.  The processes left ([] when none)."""
        with self._lock:
            scheduler, engine = self._scheduler, self._engine
        if scheduler is None:
            return []
        end = time.monotonic() + timeout
        scheduler.close()
        # A test's stand-in engine may have no stop().
        stop_engine = getattr(engine, 'stop', None)
        killed, left = stop_engine(timeout) if stop_engine else (0, [])
        if killed:
            LOG.info('OS inspection: %d running inspection(s) killed '
                     'at shutdown', killed)
        if left:
            LOG.warning('OS inspection: %d process(es) still alive %.0f s '
                        'after being killed at shutdown (stuck in the '
                        'kernel, e.g. on hung storage): %s', len(left),
                        timeout, ', '.join(left))
        scheduler.stop(max(0.0, end - time.monotonic()))
        return left


_SERVICE = None
_SERVICE_LOCK = threading.Lock()


def get_service(conf):
    """The process-wide service, created on first use."""
    global _SERVICE
    with _SERVICE_LOCK:
        if _SERVICE is None:
            _SERVICE = InspectionService(conf)
            atexit.register(_SERVICE.stop)
        return _SERVICE


def reset_service():
    """Stop and forget the process-wide service (tests, CLI)."""
    global _SERVICE
    with _SERVICE_LOCK:
        if _SERVICE is not None:
            _SERVICE.stop()
        _SERVICE = None
