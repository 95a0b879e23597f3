"""The libguestfs appliance: one guestfs handle's whole life.

``Appliance(opts, specs, private_dir).inspect()`` runs in the inspection
worker process.  It makes a pinned overlay of every drive (``overlay``),
adds the overlays to a handle configured from the ``[os_inspection]``
options, launches the appliance, checks the qemu command line libguestfs
built, gathers the ``raw_facts.ApplianceFacts`` (which roots there are;
``guest_files`` reads each one) and always closes the handle.  Callers
never see the handle; nothing else in the package imports ``guestfs``
(imported lazily: the pollster stays importable without it), and only
the appliance and ``guest_files`` call it.  The deadline is not this
module's business: the agent kills the whole worker process group.

Failures are raised as ``ApplianceError`` whose ``reason`` is short and
safe to publish (no key, no guest control characters).

Facts that shaped this module (libguestfs 1.48):

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
import re

from oslo_log import log

from ceilometer_os_pollster.inspection import confinement
from ceilometer_os_pollster.families import facts as facts_mod
from ceilometer_os_pollster.inspection import guest_files
from ceilometer_os_pollster.storage import overlay as overlay_mod
from ceilometer_os_pollster.storage import qemu_nodes
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster import sanitize

LOG = log.getLogger(__name__)

# Bounds on what one (possibly hostile) guest can make us visit.  None
# cuts silently: a bound that may hide a billed root is recorded in
# ApplianceFacts.limits, and facts.normalise bills the dearest product.
# Roots whose type, distro and product are read (a few calls each).
MAX_LISTED_ROOTS = 256
# Roots read in detail (mounted; os-release or the SOFTWARE hive), the
# likely billed ones first (boot disk, Windows).
MAX_ROOTS = 16
# Besides them, Linux roots that are btrfs subvolumes read in detail:
# snapper keeps 10-30 snapshots of a SUSE root, each one bootable, and
# reading one costs a mount and two small files.
MAX_SUBVOLUME_ROOTS = 64
# Filesystems mounted one by one when inspect_os cannot be used.
MAX_SCANNED_FILESYSTEMS = 32
MAX_LOG_LINES = 40
MAX_REASON = 200

_KEY_LIKE = re.compile(r'(key|secret|password)=\S*', re.IGNORECASE)


class ApplianceError(Exception):
    """An inspection that could not be completed; ``reason`` is public."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = sanitize.clean_text(reason, MAX_REASON)


def guestfs_available():
    """(True, version) when the guestfs Python module imports, else
    (False, why)."""
    try:
        import guestfs
    except ImportError as exc:
        return False, sanitize.clean_text(exc, MAX_REASON)
    return True, 'guestfs module %s' % sanitize.clean_text(
        getattr(guestfs, '__file__', ''), MAX_REASON)


def short_error(exc, private_dir=''):
    """The first line of a libguestfs error, made safe for a reason.

    Our temporary directory is replaced by '...', anything looking like
    ``key=...`` is blanked (belt and braces: no key is ever passed).
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
    if private_dir:
        text = text.replace(private_dir, '...')
    text = _KEY_LIKE.sub(r'\1=***', text)
    text = text or type(exc).__name__
    return sanitize.clean_text(text, MAX_REASON)


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
            self._gather(g, result)
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
        result.encrypted_types[spec.target] = 'crypto_LUKS'

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

    # ------------------------------------------------------------- facts

    def _gather(self, g, result):
        devices = list(g.list_devices())
        try:
            filesystems = dict(g.list_filesystems())
        except RuntimeError as exc:
            result.warnings.append('cannot list filesystems: %s'
                                   % short_error(exc))
            filesystems = {}
        for device, kind in guest_files.encrypted_devices(g, devices,
                                                          filesystems):
            result.encrypted_devices.append(device)
            result.encrypted_types[device] = kind
        result.filesystems = sum(1 for t in filesystems.values()
                                 if t and t != 'unknown')
        # inspect_os walks every filesystem, subvolume and LV with no
        # bound of its own: a disk full of them would make it run into
        # the deadline (a failed record) instead of a bill.
        if len(filesystems) > self._opts.max_filesystems:
            flood = ('%d filesystems and subvolumes, more than '
                     'max_filesystems %d' % (len(filesystems),
                                             self._opts.max_filesystems))
            LOG.warning('%s: not inspected by libguestfs; scanned by '
                        'hand, Windows first', flood)
            result.roots = self._scan(g, filesystems, devices, result,
                                      flood)
            return result
        try:
            listed = list(g.inspect_os())
        except RuntimeError as exc:
            result.warnings.append(
                'inspection failed (%s); filesystems scanned one by one'
                % short_error(exc, self._private_dir))
            LOG.warning('inspect_os failed (%s): scanning filesystems one '
                        'by one', short_error(exc, self._private_dir))
            result.roots = self._scan(g, filesystems, devices, result)
            return result
        if len(listed) > MAX_LISTED_ROOTS:
            result.limits.append('%d roots, more than %d'
                                 % (len(listed), MAX_LISTED_ROOTS))
        roots = []
        for root in listed[:MAX_LISTED_ROOTS]:
            try:
                roots.append(self._listed_root(g, root, devices))
            except RuntimeError as exc:
                result.warnings.append('root %s unreadable: %s'
                                       % (root, short_error(exc)))
        roots.sort(key=_likely_billed_first)
        read, unread = _to_read(roots)
        for facts in read:
            self._read_details(g, facts, result)
        if _may_be_billed(unread, read):
            result.limits.append('%d roots, more than %d read'
                                 % (len(roots), len(read)))
        result.roots, _ = facts_mod.kept_roots(read, MAX_ROOTS)
        if len(result.roots) < len(read):
            result.warnings.append('%d roots read, the %d dearest kept'
                                   % (len(read), len(result.roots)))
        return result

    def _listed_root(self, g, root, devices):
        """A root's cheap facts: libguestfs' inspection answers."""
        facts = raw_facts.RootFacts(
            device=root,
            disk_index=guest_files.disk_index(g, root, devices))
        for field, call, default in (
                ('type', g.inspect_get_type, 'unknown'),
                ('distro', g.inspect_get_distro, 'unknown'),
                ('osinfo', g.inspect_get_osinfo, 'unknown'),
                ('product_name', g.inspect_get_product_name, ''),
                ('product_variant', g.inspect_get_product_variant, ''),
                ('arch', g.inspect_get_arch, ''),
                ('major', g.inspect_get_major_version, 0),
                ('minor', g.inspect_get_minor_version, 0)):
            setattr(facts, field, guest_files.safe(call, root, default))
        return facts

    def _read_details(self, g, facts, result):
        """What the billing needs from inside a root: os-release and
        SUSE's base product, or the SOFTWARE hive."""
        root = facts.device
        try:
            if facts.type == 'linux':
                guest_files.mount_root(g, root)
                facts.os_release = guest_files.read_os_release(g)
                facts.suse_baseproduct = guest_files.read_suse_baseproduct(g)
            elif facts.type == 'windows':
                g.mount_ro(root, '/')
                hive = g.inspect_get_windows_software_hive(root)
                (facts.windows, facts.sql_editions,
                 facts.sql_complete) = guest_files.read_software_hive(g, hive)
        except RuntimeError as exc:
            result.warnings.append('%s %s details unreadable: %s' % (
                root, facts.type, short_error(exc)))
        finally:
            guest_files.umount_all(g)

    def _scan(self, g, filesystems, devices, result, flood=''):
        """Roots found by looking at each filesystem by hand, the boot
        disk's first and Windows-capable ones (NTFS) first; a bound that
        leaves a filesystem unvisited where a billed root could be is a
        limit."""
        disks = {}
        candidates = sorted(
            ((_scan_disk(g, device, devices, disks), device, vfs)
             for device, vfs in filesystems.items()
             if vfs not in ('', 'unknown', 'swap')
             and str(vfs).lower() not in guest_files.ENCRYPTED_TYPES),
            key=lambda item: (item[0] != 0, str(item[2]) != 'ntfs',
                              str(item[1]).startswith('btrfsvol:'),
                              str(item[1])))
        roots = []
        for _, device, _ in candidates[:MAX_SCANNED_FILESYSTEMS]:
            try:
                g.mount_ro(device, '/')
                root = guest_files.scanned_root(g, device, devices)
            except RuntimeError as exc:
                LOG.debug('scan of %s failed: %s', device, short_error(exc))
                root = None
            finally:
                guest_files.umount_all(g)
            if root is not None:
                roots.append(root)
        unvisited = candidates[MAX_SCANNED_FILESYSTEMS:]
        boot_root = any(root.disk_index == 0 for root in roots)
        if any(disk == 0 or not boot_root for disk, _, _ in unvisited):
            result.limits.append('%s; %d scanned by hand, Windows first' % (
                flood or '%d filesystems' % len(candidates),
                MAX_SCANNED_FILESYSTEMS))
        elif flood:
            result.warnings.append(flood + ': scanned by hand')
        return roots

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


def _likely_billed_first(root):
    """Sort key: boot disk first, then Windows, then Linux, then the
    device name (cheap facts only: nothing read inside the root yet)."""
    family = raw_facts.token(root.type)
    return (root.disk_index != 0,
            {'windows': 0, 'linux': 1}.get(family, 2),
            sanitize.clean_text(root.device))


def _to_read(roots):
    """(roots read in detail, the others), ``roots`` sorted by
    _likely_billed_first: the first MAX_ROOTS, and besides them up to
    MAX_SUBVOLUME_ROOTS Linux roots that are btrfs subvolumes (a SUSE
    root's snapper snapshots: each one a root the tenant may boot, whose
    files may name any product)."""
    read, unread = list(roots[:MAX_ROOTS]), []
    extra = 0
    for root in roots[MAX_ROOTS:]:
        if (extra < MAX_SUBVOLUME_ROOTS
                and str(root.device).startswith('btrfsvol:')
                and raw_facts.token(root.type) == 'linux'):
            read.append(root)
            extra += 1
        else:
            unread.append(root)
    return read, unread


def _may_be_billed(unread, read):
    """Whether a root not read in detail could be the billed one: a
    usable root on the boot disk, or any usable root when the boot disk
    has none among those read.  An unread Linux root (a btrfs snapshot
    of the root, say) cannot be when a boot disk root read is already
    as dear as any Linux: read, it would at best tie, and it sorts after
    every Linux root read (_likely_billed_first), so it loses the tie."""
    usable = [r for r in unread if raw_facts.token(r.type)]
    if not usable:
        return False
    boot_read = [r for r in read
                 if r.disk_index == 0 and raw_facts.token(r.type)]
    if not boot_read:
        return True
    dearest_read = max(facts_mod.dearness(r) for r in boot_read)
    return any(r.disk_index == 0 and not (
        raw_facts.token(r.type) == 'linux'
        and dearest_read >= facts_mod.DEAREST_LINUX) for r in usable)


def _scan_disk(g, device, devices, known):
    """Disk index of a filesystem to scan; a btrfs subvolume
    ('btrfsvol:/dev/sda2/sub') is on its filesystem's disk.  ``known``
    remembers the answers: a flood of subvolumes costs one lookup."""
    if str(device).startswith('btrfsvol:'):
        path = str(device)[len('btrfsvol:'):]
        device = '/'.join(path.split('/')[:3])
    if device not in known:
        known[device] = guest_files.disk_index(g, device, devices)
    return known[device]
