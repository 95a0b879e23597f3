"""The libguestfs appliance: one guestfs handle's whole life.

``Appliance(opts, specs, private_dir).inspect()`` runs in the inspection
worker process.  It makes a pinned overlay of every drive (``overlay``),
adds the overlays to a handle configured from the ``[os_inspection]``
options, launches the appliance, checks the qemu command line libguestfs
built, gathers the raw ``facts.ApplianceFacts`` and always closes the
handle.  Callers never see the handle; nothing else in the package
imports ``guestfs`` (imported lazily: the pollster stays importable
without it).  The deadline is not this module's business: the agent
kills the whole worker process group.

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

from ceilometer_os_pollster import facts as facts_mod
from ceilometer_os_pollster import overlay as overlay_mod
from ceilometer_os_pollster import qemu_nodes
from ceilometer_os_pollster import sanitize

LOG = log.getLogger(__name__)

# Bounds on what one (possibly hostile) guest can make us read or visit.
MAX_FILE_BYTES = 64 * 1024          # os-release
MAX_OS_RELEASE_KEYS = 64
MAX_VALUE_BYTES = 2048              # one registry value
# SQL Server instance names read per guest: five times the 50 instances
# Microsoft supports on one computer.  More is a hostile registry.
MAX_SQL_INSTANCES = 256
MAX_ROOTS = 8
MAX_MOUNTS = 32
MAX_SCANNED_FILESYSTEMS = 32
MAX_PROBED_DEVICES = 64
MAX_LOG_LINES = 40
MAX_REASON = 200

ENCRYPTED_TYPES = {'crypto_luks': 'crypto_LUKS', 'bitlocker': 'BitLocker'}

WINDOWS_VALUES = ('ProductName', 'EditionID', 'InstallationType',
                  'CurrentBuildNumber', 'CurrentBuild', 'DisplayVersion',
                  'CurrentMajorVersionNumber', 'CurrentMinorVersionNumber')
CURRENT_VERSION = ('Microsoft', 'Windows NT', 'CurrentVersion')
# 64-bit SQL Server, then 32-bit SQL Server on 64-bit Windows.
SQL_SERVER_KEYS = (('Microsoft', 'Microsoft SQL Server'),
                   ('WOW6432Node', 'Microsoft', 'Microsoft SQL Server'))
OS_RELEASE_PATHS = ('/etc/os-release', '/usr/lib/os-release')
# SUSE: a symlink to the installed base product's .prod (XML) file.
SUSE_BASEPRODUCT = '/etc/products.d/baseproduct'
SYSTEM_ROOTS = ('/Windows', '/WINNT')
SOFTWARE_HIVE = '/System32/config/SOFTWARE'

REG_SZ, REG_EXPAND_SZ, REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_QWORD = (
    1, 2, 4, 5, 11)

_OS_RELEASE_LINE = re.compile(r'([A-Za-z_][A-Za-z0-9_]{0,63})=(.*)')
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


# --------------------------------------------------------------------------
# Pure helpers


def parse_os_release(data):
    """os-release text (bytes or str) -> {KEY: value}, quotes removed.

    At most MAX_FILE_BYTES are looked at and MAX_OS_RELEASE_KEYS kept;
    values stay untrusted (facts.normalise cleans them).
    """
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data[:MAX_FILE_BYTES]).decode('utf-8', 'replace')
    result = {}
    for line in str(data)[:MAX_FILE_BYTES].splitlines():
        match = _OS_RELEASE_LINE.fullmatch(line.strip())
        if not match:
            continue
        key, value = match.groups()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
            value = value[1:-1]
            if line.strip()[len(key) + 1] == '"':
                value = re.sub(r'\\(.)', r'\1', value)
        result[key] = value[:1024]
        if len(result) >= MAX_OS_RELEASE_KEYS:
            break
    return result


def registry_value(value_type, data):
    """A raw hivex value as facts.RootFacts.windows wants it.

    REG_SZ/REG_EXPAND_SZ are UTF-16LE: decoded here, where the type is
    known (a NUL-free CJK string would defeat guessing later), up to the
    first NUL and at most MAX_VALUE_BYTES; the text is still untrusted.
    DWORD/QWORD become ints; other types give None.
    """
    data = bytes(data or b'')
    if value_type in (REG_SZ, REG_EXPAND_SZ):
        data = data[:MAX_VALUE_BYTES]
        data = data[:len(data) // 2 * 2]
        return data.decode('utf-16-le', 'replace').split('\x00')[0]
    if value_type == REG_DWORD and len(data) >= 4:
        return int.from_bytes(data[:4], 'little')
    if value_type == REG_DWORD_BIG_ENDIAN and len(data) >= 4:
        return int.from_bytes(data[:4], 'big')
    if value_type == REG_QWORD and len(data) >= 8:
        return int.from_bytes(data[:8], 'little')
    return None


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
    deadline reason.  The keyword arguments exist for tests.
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
        result = facts_mod.ApplianceFacts(drives=len(self._specs))
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
        if self._hv:
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
        for device, kind in encrypted_devices(g, devices, filesystems):
            result.encrypted_devices.append(device)
            result.encrypted_types[device] = kind
        result.filesystems = sum(1 for t in filesystems.values()
                                 if t and t != 'unknown')
        try:
            roots = list(g.inspect_os())[:MAX_ROOTS]
        except RuntimeError as exc:
            result.warnings.append(
                'inspection failed (%s); filesystems scanned one by one'
                % short_error(exc, self._private_dir))
            LOG.warning('inspect_os failed (%s): scanning filesystems one '
                        'by one', short_error(exc, self._private_dir))
            result.roots = self._scan(g, filesystems, devices, result)
            return result
        for root in roots:
            try:
                result.roots.append(self._root(g, root, devices, result))
            except RuntimeError as exc:
                result.warnings.append('root %s unreadable: %s'
                                       % (root, short_error(exc)))
        return result

    def _root(self, g, root, devices, result):
        facts = facts_mod.RootFacts(device=root,
                                    disk_index=disk_index(g, root, devices))
        facts.type = _safe(g.inspect_get_type, root, 'unknown')
        facts.distro = _safe(g.inspect_get_distro, root, 'unknown')
        facts.osinfo = _safe(g.inspect_get_osinfo, root, 'unknown')
        facts.product_name = _safe(g.inspect_get_product_name, root, '')
        facts.product_variant = _safe(g.inspect_get_product_variant, root,
                                      '')
        facts.arch = _safe(g.inspect_get_arch, root, '')
        facts.major = _safe(g.inspect_get_major_version, root, 0)
        facts.minor = _safe(g.inspect_get_minor_version, root, 0)
        try:
            if facts.type == 'linux':
                self._mount_root(g, root)
                facts.os_release = read_os_release(g)
                facts.suse_baseproduct = read_suse_baseproduct(g)
            elif facts.type == 'windows':
                g.mount_ro(root, '/')
                hive = g.inspect_get_windows_software_hive(root)
                facts.windows, facts.sql_editions = read_software_hive(
                    g, hive)
        except RuntimeError as exc:
            result.warnings.append('%s %s details unreadable: %s' % (
                root, facts.type, short_error(exc)))
        finally:
            _umount_all(g)
        return facts

    @staticmethod
    def _mount_root(g, root):
        mountpoints = _safe(g.inspect_get_mountpoints, root, {}) or {'/': root}
        # Parents before children: '/' then '/usr' ...
        for mountpoint, device in sorted(mountpoints.items(),
                                         key=lambda item: len(item[0])
                                         )[:MAX_MOUNTS]:
            try:
                g.mount_ro(device, mountpoint)
            except RuntimeError:
                if mountpoint == '/':
                    raise
                # /usr may matter (os-release); others never do.

    def _scan(self, g, filesystems, devices, result):
        """Roots found by looking at each filesystem by hand."""
        roots = []
        candidates = [(device, vfs) for device, vfs in
                      sorted(filesystems.items())
                      if vfs not in ('', 'unknown', 'swap')
                      and str(vfs).lower() not in ENCRYPTED_TYPES]
        for device, _ in candidates[:MAX_SCANNED_FILESYSTEMS]:
            try:
                g.mount_ro(device, '/')
                root = self._scan_one(g, device, devices)
            except RuntimeError as exc:
                LOG.debug('scan of %s failed: %s', device, short_error(exc))
                root = None
            finally:
                _umount_all(g)
            if root is not None:
                roots.append(root)
            if len(roots) >= MAX_ROOTS:
                break
        return roots

    @staticmethod
    def _scan_one(g, device, devices):
        hive = find_software_hive(g)
        if hive:
            root = facts_mod.RootFacts(device=device, type='windows',
                                       distro='windows',
                                       disk_index=disk_index(g, device,
                                                             devices))
            try:
                root.windows, root.sql_editions = read_software_hive(g, hive)
            except RuntimeError:
                pass        # still a Windows root, with fewer details
            return root
        release = read_os_release(g)
        if release:
            return facts_mod.RootFacts(device=device, type='linux',
                                       os_release=release,
                                       suse_baseproduct=(
                                           read_suse_baseproduct(g)),
                                       disk_index=disk_index(g, device,
                                                             devices))
        return None

    # ------------------------------------------------------------ errors

    def _reason(self, exc):
        return short_error(exc, self._private_dir)

    def _log_failure(self, exc):
        LOG.warning('appliance failed: %s', self._reason(exc))
        if self.log_lines:
            LOG.warning('last appliance messages: %s',
                        ' | '.join(list(self.log_lines)[-10:]))


# --------------------------------------------------------------------------
# Reading inside the appliance (each takes the handle; bounded)


def _safe(call, root, default):
    try:
        value = call(root)
    except (RuntimeError, UnicodeError):
        # UnicodeError: the binding decodes guest bytes (os-release,
        # fstab) as strict UTF-8.
        return default
    return default if value is None else value


def _umount_all(g):
    try:
        g.umount_all()
    except RuntimeError:
        pass


def encrypted_devices(g, devices, filesystems):
    """[(device, 'crypto_LUKS'|'BitLocker')] of every encrypted block
    device.  list_filesystems leaves them out (1.48), so whole disks,
    partitions and LVs it did not list are probed with vfs_type."""
    found = {}
    for device, vfs_type in filesystems.items():
        kind = ENCRYPTED_TYPES.get(str(vfs_type).lower())
        if kind:
            found[device] = kind
    candidates = list(devices)
    for lister in (g.list_partitions, g.lvs):
        try:
            candidates.extend(lister())
        except RuntimeError:
            pass
    probe = [d for d in candidates if d not in filesystems]
    for device in probe[:MAX_PROBED_DEVICES]:
        try:
            kind = ENCRYPTED_TYPES.get(str(g.vfs_type(device)).lower())
        except RuntimeError:
            continue
        if kind:
            found[device] = kind
    return sorted(found.items())


def disk_index(g, device, devices):
    """Index of the drive holding ``device`` (partition, whole disk or
    LVM logical volume) in the order drives were added; 0 if unknown."""
    try:
        parent = g.part_to_dev(device)
    except RuntimeError:
        parent = device
    if parent in devices:
        return devices.index(parent)
    # /dev/VG/LV: the lowest drive holding one of the VG's PVs.
    parts = device.split('/')
    if len(parts) != 4 or parts[1] != 'dev':
        return 0
    try:
        wanted = set(g.vgpvuuids(parts[2]))
        indexes = []
        for pv in list(g.pvs())[:MAX_MOUNTS]:
            if g.pvuuid(pv) in wanted:
                try:
                    pv = g.part_to_dev(pv)
                except RuntimeError:
                    pass
                if pv in devices:
                    indexes.append(devices.index(pv))
        return min(indexes) if indexes else 0
    except RuntimeError:
        return 0


def read_bounded(g, path, limit=MAX_FILE_BYTES):
    """At most ``limit`` bytes of a regular file, or None."""
    if not g.is_file(path, followsymlinks=True):
        return None
    if g.filesize(path) <= limit:
        return bytes(g.read_file(path))[:limit]
    return bytes(g.pread(path, limit, 0))


def read_os_release(g):
    """Parsed os-release of the mounted root ({} when absent)."""
    for path in OS_RELEASE_PATHS:
        try:
            data = read_bounded(g, path)
        except RuntimeError:
            continue
        if data is not None:
            return parse_os_release(data)
    return {}


def read_suse_baseproduct(g):
    """The SUSE base product file of the mounted root (bounded), or b''."""
    try:
        data = read_bounded(g, SUSE_BASEPRODUCT)
    except RuntimeError:
        return b''
    return data or b''


def find_software_hive(g):
    """Path of the SOFTWARE hive on the mounted filesystem, or ''."""
    for systemroot in SYSTEM_ROOTS:
        try:
            path = g.case_sensitive_path(systemroot + SOFTWARE_HIVE)
            if g.is_file(path):
                return path
        except RuntimeError:
            continue
    return ''


def _child(g, node, names):
    for name in names:
        if not node:
            return 0
        node = g.hivex_node_get_child(node, name)
    return node


def _value(g, node, name):
    valueh = g.hivex_node_get_value(node, name)
    if not valueh:
        return None
    return registry_value(g.hivex_value_type(valueh),
                          g.hivex_value_value(valueh))


def read_software_hive(g, hive):
    """(CurrentVersion values, SQL Server editions) of a SOFTWARE hive."""
    g.hivex_open(hive, write=False)
    try:
        top = g.hivex_root()
        windows = {}
        current = _child(g, top, CURRENT_VERSION)
        if current:
            for name in WINDOWS_VALUES:
                value = _value(g, current, name)
                if value is not None:
                    windows[name] = value
        return windows, _sql_editions(g, top)
    finally:
        try:
            g.hivex_close()
        except RuntimeError:
            pass


def _sql_editions(g, top):
    """Setup\\Edition of every SQL Server instance, deduplicated.

    Every instance is read, in registry order, and ranked afterwards by
    facts.sql_server_edition; the work stops early only when an edition
    nothing can outrank is found, or (logged) after MAX_SQL_INSTANCES
    instance names.
    """
    editions = []
    seen = set()
    budget = MAX_SQL_INSTANCES
    for path in SQL_SERVER_KEYS:
        server = _child(g, top, path)
        names = _child(g, server, ('Instance Names', 'SQL'))
        if not names:
            continue
        for item in g.hivex_node_values(names):
            if budget <= 0:
                LOG.warning('more than %d SQL Server instance names in the '
                            'registry: the rest were not read',
                            MAX_SQL_INSTANCES)
                return editions
            budget -= 1
            valueh = item['hivex_value_h']
            instance = facts_mod.registry_text(registry_value(
                g.hivex_value_type(valueh), g.hivex_value_value(valueh)))
            if not instance or instance in seen:
                continue
            seen.add(instance)
            setup = _child(g, server, (instance, 'Setup'))
            edition = _value(g, setup, 'Edition') if setup else None
            if edition and edition not in editions:
                editions.append(edition)
                if facts_mod.sql_edition(edition)[0] >= facts_mod.SQL_TOP_RANK:
                    return editions
    return editions


def _read_cmdline(pid, proc_root='/proc'):
    """A process's argv as a list of str."""
    with open(os.path.join(proc_root, str(int(pid)), 'cmdline'), 'rb') as f:
        data = f.read(1 << 20)
    return [os.fsdecode(a) for a in data.split(b'\0')[:-1]]
