"""The libguestfs appliance: one guestfs handle's whole life.

``Appliance(opts, specs).inspect()`` configures a handle from the
``[os_inspection]`` options, adds the drives read-only with their explicit
format, launches the appliance under a hard deadline, gathers the raw
``facts.ApplianceFacts`` and always closes the handle.  Callers never see
the handle; nothing else in the package imports ``guestfs`` (it is
imported lazily, so the pollster stays importable without it).

Failures are raised as ``ApplianceError`` whose ``reason`` is short and
safe to publish (no key, no guest control characters).

Facts that shaped this module (libguestfs 1.48):

* add_drive creates the read-only overlay with ``qemu-img create`` *while
  holding the GIL* (it is not a "blocking" call in the Python binding), so
  nothing in this process runs while qemu-img opens the image.  Hence the
  short ``client_mount_timeout`` on rbd drives.
* launch and the daemon calls release the GIL: a watchdog thread can run.
  Calls on one handle are serialised, so it cannot call ``shutdown()``;
  it SIGKILLs the appliance's qemu (found as a child process whose command
  line references this handle's private temporary directory, which also
  works while ``launch()`` is still waiting), the stuck call then fails.
* ``inspect_os()`` fails as a whole for one hostile Windows root; a manual
  per-filesystem scan then finds every root (Windows ones by their
  SOFTWARE hive, so a broken cmd.exe does not hide a Windows install).
* ``list_filesystems()`` leaves LUKS/BitLocker devices out; they are found
  with ``vfs_type`` on the devices it did not list.
* libguestfs puts an rbd ``secret`` into qemu's ``-drive`` string (visible
  in ps).  No secret is ever passed: the key goes into a private keyring
  file named by a private ceph.conf, given to librbd through the rbd
  image name's ``conf=`` option (qemu's legacy rbd filename syntax).  Not
  CEPH_CONF in the environment: qemu-img already needs it inside
  add_drive, and another thread's launch would copy it into its own qemu.
  The rbd string is on qemu-img's command line only (qemu itself gets the
  overlay), and holds paths, the user name and the monitors, never a key.
"""

import base64
import collections
import fcntl
import os
import time
import re
import shutil
import signal
import stat
import tempfile
import threading

from oslo_log import log

from ceilometer_os_pollster import drives
from ceilometer_os_pollster import facts as facts_mod
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

# librbd gives up connecting to the monitors after this many seconds
# (default 300); qemu-img runs it during add_drive, GIL held.
RBD_MOUNT_TIMEOUT = 20

# Characters allowed in a path or name spliced into qemu's rbd filename,
# whose separators are ':' and '@' (and ',' in -drive).
_RBD_SAFE = re.compile(r'[A-Za-z0-9_./+=-]+')
_RBD_NAME_SAFE = re.compile(r'[A-Za-z0-9_./+=@-]+')
_OS_RELEASE_LINE = re.compile(r'([A-Za-z_][A-Za-z0-9_]{0,63})=(.*)')
_KEY_LIKE = re.compile(r'(key|secret|password)=\S*', re.IGNORECASE)


class ApplianceError(Exception):
    """An inspection that could not be completed; ``reason`` is public."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = sanitize.clean_text(reason, MAX_REASON)


class DeadlineExceeded(ApplianceError):
    """The appliance was killed at the inspection deadline."""


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


def ceph_keyring(username, key):
    """A Ceph keyring for one client; ``key`` is the raw secret value."""
    return '[client.%s]\n\tkey = %s\n' % (
        username or 'admin', base64.b64encode(key).decode('ascii'))


def ceph_conf(hosts, keyring_path):
    """A minimal ceph.conf naming the monitors and the keyring file."""
    lines = ['[global]']
    if hosts:
        lines.append('mon_host = %s' % ','.join(
            '[%s]:%s' % (name, port) if ':' in name else
            '%s:%s' % (name, port) for name, port in hosts))
    lines.append('keyring = %s' % keyring_path)
    return '\n'.join(lines) + '\n'


def rbd_image_name(spec, conf_path):
    """The rbd export name given to libguestfs: the image plus librbd
    options, which qemu parses out of the legacy ``rbd:`` filename."""
    if not _RBD_NAME_SAFE.fullmatch(spec.path or ''):
        raise ApplianceError('unsupported rbd image name')
    name = spec.path
    if conf_path:
        if not _RBD_SAFE.fullmatch(conf_path):
            raise ApplianceError('ceph configuration path has characters '
                                 'qemu cannot take: %s' % conf_path)
        name += ':conf=%s' % conf_path
    return name + ':client_mount_timeout=%d' % RBD_MOUNT_TIMEOUT


# --------------------------------------------------------------------------
# Processes


def is_child(pid, parent=None, proc_root='/proc'):
    """Whether pid is (still) a child of ``parent`` (default: us)."""
    parent = os.getpid() if parent is None else parent
    try:
        with open(os.path.join(proc_root, str(pid), 'stat'), 'rb') as f:
            return int(f.read(4096).rsplit(b')', 1)[1].split()[1]) == parent
    except (OSError, ValueError, IndexError):
        return False


def child_processes(predicate, parent=None, proc_root='/proc'):
    """Pids of ``parent``'s children whose argv (a list of bytes)
    satisfies ``predicate``."""
    parent = os.getpid() if parent is None else parent
    found = []
    try:
        names = os.listdir(proc_root)
    except OSError:
        return found
    for name in names:
        if not name.isdigit() or not is_child(name, parent, proc_root):
            continue
        try:
            with open(os.path.join(proc_root, name, 'cmdline'), 'rb') as f:
                argv = f.read(65536).split(b'\0')
        except OSError:
            continue
        if argv and predicate(argv):
            found.append(int(name))
    return sorted(found)


def references(marker):
    """Predicate: some argument names a path under ``marker``.

    The appliance qemu and qemu-img of one handle name the overlays in
    its private temporary directory; the recovery process libguestfs
    forks keeps Python's argv and never matches.
    """
    needle = os.fsencode(marker)
    return lambda argv: bool(needle) and any(needle in a for a in argv)


def qemu_probe(hv):
    """Predicate: a libguestfs feature probe of ``hv`` (``qemu -help``,
    ``-device ?``...), which boots no kernel and names no handle.  A
    wrapper script run through its #! line has its path in argv[1]."""
    binary = os.fsencode(hv)
    return lambda argv: (bool(binary) and binary in argv[:2]
                         and b'-kernel' not in argv)


def kill_process(pid):
    """SIGKILL a pid and its process group (qemu runs in its own group,
    so a wrapper's children die too).  Gone already is fine."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass


class Watchdog:
    """Kills one handle's appliance processes at the deadline.

    ``targets()`` says which pids to kill; the timer thread calls
    ``fire``.  ``stop()`` disarms it and says whether it fired.
    """

    def __init__(self, seconds, targets, killer=kill_process,
                 timer=threading.Timer):
        self.seconds = seconds
        self._targets = targets
        self._killer = killer
        self._lock = threading.Lock()
        self._stopped = False
        self.fired = False
        self.killed = []
        self._timer = timer(seconds, self.fire)
        self._timer.daemon = True

    def start(self):
        self._timer.start()
        return self

    def fire(self):
        with self._lock:
            if self._stopped:
                return
            self.fired = True
            self.kill()

    def kill(self):
        """Kill whatever targets() names now (also used for leftovers)."""
        pids = list(self._targets())
        for pid in pids:
            self._killer(pid)
        self.killed.extend(pids)
        return pids

    def stop(self):
        with self._lock:
            self._stopped = True
            self._timer.cancel()
            return self.fired


# --------------------------------------------------------------------------
# Secrets


def read_libvirt_secret(uri, spec):
    """The raw value of a disk's libvirt secret (READ-WRITE connection:
    read-only ones cannot read secret values)."""
    import libvirt
    conn = libvirt.open(uri)
    try:
        if spec.secret_uuid:
            secret = conn.secretLookupByUUIDString(spec.secret_uuid)
        else:
            secret = conn.secretLookupByUsage(
                libvirt.VIR_SECRET_USAGE_TYPE_CEPH, spec.secret_usage)
        return secret.value()
    finally:
        conn.close()


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)


# --------------------------------------------------------------------------


PRIVATE_PREFIX = 'os-inspection-'
# Held (flock) by the inspecting process for the private dir's lifetime;
# a dir whose lock is free belongs to a process that died (SIGKILL,
# OOM) and holds nothing but its overlays.
OWNER_LOCK = '.owner'
# A private dir without a lock file is only spared this long (it may be
# between mkdtemp and the lock).
UNLOCKED_GRACE = 600


def _hold_owner_lock(directory):
    fd = os.open(os.path.join(directory, OWNER_LOCK),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _orphaned(path, now):
    try:
        fd = os.open(os.path.join(path, OWNER_LOCK),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return now - os.lstat(path).st_mtime > UNLOCKED_GRACE
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False            # its inspection is still running
    finally:
        os.close(fd)
    return True


def remove_orphan_dirs(tmp_root=None, clock=time.time):
    """Remove private dirs left by killed inspections; their names.

    Only our own directories (prefix, owner uid, real directory) whose
    owner lock nobody holds.  Never raises.
    """
    tmp_root = tmp_root or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(tmp_root)
    except OSError:
        return removed
    now = clock()
    for name in names:
        if not name.startswith(PRIVATE_PREFIX):
            continue
        path = os.path.join(tmp_root, name)
        try:
            info = os.lstat(path)
            if (not stat.S_ISDIR(info.st_mode) or
                    info.st_uid != os.geteuid() or not _orphaned(path, now)):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(name)
    if removed:
        LOG.warning('removed %d temporary director(y/ies) of killed '
                    'inspections in %s', len(removed), tmp_root)
    return removed


class Appliance:
    """One read-only inspection of one instance's drives.

    ``opts`` is the ``[os_inspection]`` option group (or anything with the
    same attributes), ``specs`` the ``drives.DriveSpec`` list, boot disk
    first.  The keyword arguments exist for tests.
    """

    def __init__(self, opts, specs, *, guestfs_module=None, hv=None,
                 timer=threading.Timer, killer=kill_process,
                 find_processes=child_processes,
                 read_secret=read_libvirt_secret):
        self._opts = opts
        self._specs = list(specs)
        self._guestfs = guestfs_module
        self._hv = hv
        self._timer = timer
        self._killer = killer
        self._find_processes = find_processes
        self._read_secret = read_secret
        self._private_dir = ''
        self._owner_fd = None
        self._pid = None
        self._hv_path = ''
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
                result.encrypted_devices.append(spec.target)
                result.encrypted_types[spec.target] = 'crypto_LUKS'
            else:
                specs.append((index, spec))
        if not specs:
            return result
        tmp_root = getattr(self._opts, 'tmp_dir', '') or None
        try:
            self._private_dir = tempfile.mkdtemp(prefix=PRIVATE_PREFIX,
                                                 dir=tmp_root)
            self._owner_fd = _hold_owner_lock(self._private_dir)
        except OSError as exc:
            raise ApplianceError('cannot create a temporary directory in '
                                 '%s: %s' % (tmp_root or tempfile.gettempdir(),
                                             exc.strerror)) from None
        watchdog = Watchdog(self._opts.inspection_deadline, self._targets,
                            killer=self._killer, timer=self._timer)
        g = None
        try:
            g = self._handle()
            watchdog.start()
            self._add_drives(g, specs, result)
            # add_drive holds the GIL: the deadline may have passed in it,
            # before any qemu existed to kill.
            if watchdog.fired:
                raise RuntimeError('deadline passed while adding drives')
            g.launch()
            try:
                self._pid = g.get_pid()
            except RuntimeError:
                self._pid = None        # libvirt backend: no qemu pid
            self._gather(g, result)
            for root in result.roots:
                # Back from appliance device order to the specs' order
                # (drives skipped above shift the devices).
                if 0 <= root.disk_index < len(self._added):
                    root.disk_index = self._added[root.disk_index]
            if watchdog.fired:
                raise RuntimeError('appliance killed')
            return result
        except RuntimeError as exc:
            if watchdog.fired:
                raise DeadlineExceeded(
                    'deadline: appliance killed after %d s'
                    % watchdog.seconds) from None
            self._log_failure(exc)
            raise ApplianceError(self._reason(exc)) from None
        finally:
            self._close(g, watchdog)

    def _close(self, g, watchdog):
        try:
            if g is not None:
                try:
                    g.close()
                except Exception as exc:  # closing must never hide a result
                    LOG.warning('closing the libguestfs handle failed: %s',
                                short_error(exc, self._private_dir))
        finally:
            watchdog.stop()
            leftovers = watchdog.kill()
            if leftovers:
                LOG.warning('killed %d appliance process(es) left behind',
                            len(leftovers))
            shutil.rmtree(self._private_dir, ignore_errors=True)
            if self._owner_fd is not None:
                os.close(self._owner_fd)
                self._owner_fd = None

    def _targets(self):
        pids = set(self._find_processes(references(self._private_dir)))
        if self._pid and is_child(self._pid):
            pids.add(self._pid)
        if not pids and self._hv_path:
            # Stuck before qemu started: in a feature probe (a probe that
            # hangs for us hangs for every handle, killing it is fine).
            pids.update(self._find_processes(qemu_probe(self._hv_path)))
        return sorted(pids)

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
        g.set_autosync(False)       # read-only: nothing to sync at close
        g.set_network(False)
        g.set_pgroup(True)          # one killpg reaches qemu's children
        g.set_memsize(opts.appliance_memory_mb)
        g.set_backend(opts.libguestfs_backend)
        if opts.libguestfs_backend_settings:
            g.set_backend_settings(list(opts.libguestfs_backend_settings))
        # A private tmpdir names this handle's qemu for the watchdog and
        # holds the overlays (and any keyring) until the end.
        g.set_tmpdir(self._private_dir)
        if opts.appliance_cache_dir:
            g.set_cachedir(opts.appliance_cache_dir)
        if self._hv:
            g.set_hv(self._hv)
        self._hv_path = g.get_hv()
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
                self._add_drive(g, spec)
            except (RuntimeError, ApplianceError) as exc:
                reason = (exc.reason if isinstance(exc, ApplianceError)
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

    def _add_drive(self, g, spec):
        if not spec.format:
            raise ApplianceError('%s: disk format unknown' % spec.target)
        kwargs = dict(readonly=True, format=spec.format)
        if spec.label:
            kwargs['label'] = spec.label
        if spec.kind == drives.KIND_NETWORK:
            name = spec.path
            if spec.protocol == 'rbd':
                name = rbd_image_name(spec, self._ceph_conf(spec))
            elif spec.secret_uuid or spec.secret_usage:
                raise ApplianceError('%s: %s disks with a secret are not '
                                     'supported' % (spec.target,
                                                    spec.protocol))
            kwargs.update(protocol=spec.protocol,
                          server=drives.servers(spec))
            if spec.username:
                kwargs['username'] = spec.username
            g.add_drive_opts(name, **kwargs)
        else:
            self._check_readable(spec)
            g.add_drive_opts(spec.path, **kwargs)

    @staticmethod
    def _check_readable(spec):
        """A clear reason for the common failures, before qemu-img gives
        its vague one."""
        try:
            info = os.stat(spec.path)
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISBLK(info.st_mode)):
                raise ApplianceError('cannot open disk: %s: not a file or '
                                     'block device' % spec.path)
            fd = os.open(spec.path, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError as exc:
            raise ApplianceError('cannot open disk: %s: %s'
                                 % (spec.path, exc.strerror)) from None

    def _ceph_conf(self, spec):
        """Path of the ceph.conf librbd must read for this drive."""
        uri = getattr(self._opts, 'libvirt_secret_uri', '')
        if uri and (spec.secret_uuid or spec.secret_usage):
            try:
                key = self._read_secret(uri, spec)
            except Exception as exc:
                # libvirt errors name the secret's uuid, never its value.
                raise ApplianceError('%s: cannot read the rbd secret: %s'
                                     % (spec.target, short_error(exc)))
            directory = tempfile.mkdtemp(prefix='ceph-',
                                         dir=self._private_dir)
            keyring = os.path.join(directory, 'keyring')
            conf = os.path.join(directory, 'ceph.conf')
            _write_private(keyring, ceph_keyring(spec.username, key))
            _write_private(conf, ceph_conf(spec.hosts, keyring))
            return conf
        return getattr(self._opts, 'ceph_conf', '') or ''

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
