"""The libguestfs appliance: one guestfs handle's whole life.

``Appliance(opts, specs, private_dir).inspect()`` runs in the inspection
worker process.  It makes a pinned overlay of every drive (``overlay``),
adds the overlays to a handle configured from the ``[os_inspection]``
options, launches the appliance, checks the qemu command line libguestfs
built, gathers the ``raw_facts.ApplianceFacts`` (``appliance_roots``:
which roots there are; ``guest_files`` reads each one) and always closes
the handle.  Callers never see the handle; nothing else in the package
imports ``guestfs`` (imported lazily: the pollster stays importable
without it), and only the appliance, ``appliance_roots`` and
``guest_files`` call it.  The deadline is not this module's business:
the agent kills the whole worker process group.

Failures are raised as ``ApplianceError`` (``appliance_errors``) whose
``reason`` is short and safe to publish (no key, no guest control
characters).

Facts that shaped this module and ``appliance_roots`` (libguestfs 1.48):

* A read-only drive gets an overlay from libguestfs that is handed to
  qemu without a format, so qemu probes the guest's data (a qcow2 header
  written by the guest would choose a host file to read).  So drives are
  added read-WRITE, with format qcow2, and are always our own overlays
  whose backing is pinned; writes land in the overlay only.
* ``set_pgroup`` is left off: qemu and qemu-img stay in the worker's
  process group, which the agent kills as a whole at the deadline.
* ``inspect_os()`` fails as a whole for one hostile Windows root; a manual
  per-filesystem scan then finds every root (Windows ones by their
  SOFTWARE hive, so a broken cmd.exe does not hide a Windows install).
* ``list_filesystems()`` leaves LUKS/BitLocker devices out; they are found
  with ``vfs_type`` on the devices it did not list.
"""

import collections
import os

from oslo_log import log

from ceilometer_os_pollster.inspection import appliance_errors
from ceilometer_os_pollster.inspection import appliance_roots
from ceilometer_os_pollster.inspection import confinement
from ceilometer_os_pollster.storage import overlay as overlay_mod
from ceilometer_os_pollster.storage import qemu_nodes
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster import sanitize

LOG = log.getLogger(__name__)

MAX_LOG_LINES = 40
MAX_REASON = appliance_errors.MAX_REASON

# The appliance's failures (appliance_errors.py), named here for callers.
ApplianceError = appliance_errors.ApplianceError
short_error = appliance_errors.short_error


def guestfs_available():
    """(True, version) when the guestfs Python module imports, else
    (False, why)."""
    try:
        import guestfs
    except ImportError as exc:
        return False, sanitize.clean_text(exc, MAX_REASON)
    return True, 'guestfs module %s' % sanitize.clean_text(
        getattr(guestfs, '__file__', ''), MAX_REASON)


class Appliance:
    """One read-only inspection of one instance's drives.

    ``opts`` is the ``[os_inspection]`` option group (or anything with the
    same attributes), ``specs`` the ``drives.DriveSpec`` list, boot disk
    first, ``private_dir`` a directory only this inspection uses (the
    overlays and any keyring go there; the caller removes it).
    ``stage(name)`` is told where the inspection is, for the agent's
    deadline reason.  ``hv`` is a qemu path, or a function from
    libguestfs' qemu path to the one to start (the worker's confinement
    wrapper); the other keyword arguments exist for tests.
    """

    def __init__(self, opts, specs, private_dir, *, stage=None,
                 guestfs_module=None, hv=None, overlays=None,
                 read_cmdline=None):
        self._opts = opts
        self._specs = list(specs)
        self._private_dir = private_dir
        self._stage = stage or (lambda name: None)
        self._guestfs = guestfs_module
        self._hv = hv
        self._overlays = overlays or overlay_mod.Overlays(opts, private_dir)
        self._read_cmdline = read_cmdline or _read_cmdline
        # Index in ``specs`` of each drive actually added, in order.
        self._added = []
        self.log_lines = collections.deque(maxlen=MAX_LOG_LINES)

    # ---------------------------------------------------------------- run

    def inspect(self):
        """ApplianceFacts for the drives; raises ApplianceError."""
        result = raw_facts.ApplianceFacts(drives=len(self._specs))
        # Disks encrypted by qemu (nova ephemeral encryption) need a key
        # we never ask for: they are reported, not opened.
        specs = []
        for index, spec in enumerate(self._specs):
            if spec.encryption:
                self._encrypted(result, spec)
            else:
                specs.append((index, spec))
        if not specs:
            return result
        if self._opts.libguestfs_backend != 'direct':
            raise ApplianceError(
                'libguestfs backend %s is not supported: only "direct" '
                'lets the inspector check what qemu opens'
                % self._opts.libguestfs_backend)
        g = None
        try:
            g = self._handle()
            self._stage('opening disks')
            self._add_drives(g, specs, result)
            if not self._added:
                return result       # every disk was encrypted
            self._stage('launching the appliance')
            g.launch()
            # qemu holds the disks open now: keys are no longer needed.
            self._overlays.forget_secrets()
            self._check_qemu(g)
            self._stage('inspecting')
            appliance_roots.gather(g, result, self._opts.max_filesystems,
                                   self._private_dir)
            for root in result.roots:
                # Back from appliance device order to the specs' order
                # (drives skipped above shift the devices).
                if 0 <= root.disk_index < len(self._added):
                    root.disk_index = self._added[root.disk_index]
            return result
        except RuntimeError as exc:
            self._log_failure(exc)
            raise ApplianceError(self._reason(exc)) from None
        finally:
            self._overlays.forget_secrets()
            self._close(g)

    def _close(self, g):
        if g is None:
            return
        try:
            g.close()
        except Exception as exc:  # closing must never hide a result
            LOG.warning('closing the libguestfs handle failed: %s',
                        short_error(exc, self._private_dir))

    @staticmethod
    def _encrypted(result, spec):
        result.encrypted_devices.append(spec.target)
        result.encrypted_types[spec.target] = raw_facts.LUKS

    def _check_qemu(self, g):
        """Refuse to read anything if qemu was started with a drive whose
        format we did not pin (a future libguestfs might do that)."""
        try:
            argv = self._read_cmdline(g.get_pid())
        except (RuntimeError, OSError) as exc:
            raise ApplianceError('refused: cannot read the appliance qemu '
                                 'command line (%s)' % short_error(exc))
        if callable(self._hv) and not confinement.sandbox_in(argv):
            # Our wrapper was bypassed (a qemu that drops arguments?).
            raise ApplianceError('refused: appliance qemu runs without '
                                 'its sandbox')
        problems = qemu_nodes.drive_problems(argv, self._overlays.paths)
        if problems:
            LOG.warning('refusing to inspect: the qemu started by '
                        'libguestfs would open disks whose format was not '
                        'pinned by us: %s', '; '.join(problems))
            raise ApplianceError('refused: appliance qemu would probe a '
                                 'disk format (%s)' % problems[0])

    # ------------------------------------------------------------ handle

    def _handle(self):
        module = self._guestfs
        if module is None:
            try:
                import guestfs as module
            except ImportError as exc:
                raise ApplianceError('libguestfs Python module missing: %s'
                                     % exc) from None
        g = module.GuestFS(python_return_dict=True, close_on_exit=False)
        try:
            self._configure(g, module)
        except Exception:
            g.close()
            raise
        return g

    def _configure(self, g, module):
        opts = self._opts
        g.set_verbose(False)
        g.set_trace(False)
        g.set_autosync(False)       # nothing of the guest's to sync
        g.set_network(False)
        g.set_memsize(opts.appliance_memory_mb)
        g.set_backend(opts.libguestfs_backend)
        if opts.libguestfs_backend_settings:
            g.set_backend_settings(list(opts.libguestfs_backend_settings))
        g.set_tmpdir(self._private_dir)
        if opts.appliance_cache_dir:
            g.set_cachedir(opts.appliance_cache_dir)
        if callable(self._hv):
            # The worker's confinement (limits, -sandbox) wraps whichever
            # qemu libguestfs would start (LIBGUESTFS_HV or its default).
            g.set_hv(self._hv(g.get_hv()))
        elif self._hv:
            g.set_hv(self._hv)
        g.set_event_callback(self._on_event,
                             module.EVENT_APPLIANCE | module.EVENT_WARNING)

    def _on_event(self, event, event_handle, buf, array):
        if isinstance(buf, bytes):
            buf = buf.decode('utf-8', 'replace')
        for line in str(buf or '').splitlines():
            line = sanitize.clean_text(line, 200)
            if line:
                self.log_lines.append(line)

    # ------------------------------------------------------------ drives

    def _add_drives(self, g, specs, result):
        for index, spec in specs:
            try:
                path = self._overlays.add(spec)
                kwargs = dict(readonly=False, format='qcow2')
                if spec.label:
                    kwargs['label'] = spec.label
                g.add_drive_opts(path, **kwargs)
            except overlay_mod.EncryptedImage:
                self._encrypted(result, spec)
                continue
            except (RuntimeError, overlay_mod.OverlayError) as exc:
                reason = (exc.reason
                          if isinstance(exc, overlay_mod.OverlayError)
                          else 'cannot open disk %s: %s'
                          % (spec.target, self._reason(exc)))
                if index == 0:
                    raise ApplianceError(reason) from None
                # A broken data disk must not hide the boot disk's OS.
                result.warnings.append('%s skipped: %s'
                                       % (spec.target, reason))
                result.drives -= 1
            else:
                self._added.append(index)

    # ------------------------------------------------------------ errors

    def _reason(self, exc):
        return short_error(exc, self._private_dir)

    def _log_failure(self, exc):
        LOG.warning('appliance failed: %s', self._reason(exc))
        if self.log_lines:
            LOG.warning('last appliance messages: %s',
                        ' | '.join(list(self.log_lines)[-10:]))


def _read_cmdline(pid, proc_root='/proc'):
    """A process's argv as a list of str."""
    with open(os.path.join(proc_root, str(int(pid)), 'cmdline'), 'rb') as f:
        data = f.read(1 << 20)
    return [os.fsdecode(a) for a in data.split(b'\0')[:-1]]
