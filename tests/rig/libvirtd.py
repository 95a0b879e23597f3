"""The libvirt daemons the rig's domains need: virtlogd and libvirtd.

Owns starting them when they are not serving (there is no systemd on the
test machines), waiting until ``qemu:///system`` answers, and stopping
again only the daemons this module started.  What was started is kept in
``STATE_FILE`` under /run (gone at reboot, like the pids it names), so the
process that stops them need not be the one that started them.

A stale pid file or socket left by a killed daemon is harmless: libvirt
takes over an unlocked pid file and replaces a dead socket itself, and
"running" here means "its socket accepts a connection", never "a pid file
exists".
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import time

URI = 'qemu:///system'
STATE_FILE = '/run/ceilometer-os-pollster-rig-daemons.json'
LOG_DIR = '/var/log/libvirt'

LIBVIRTD_SOCK = '/run/libvirt/libvirt-sock'
# (name, pid file, socket); started in this order, stopped in reverse.
DAEMONS = (
    ('virtlogd', '/run/virtlogd.pid', '/run/libvirt/virtlogd-sock'),
    ('libvirtd', '/run/libvirtd.pid', LIBVIRTD_SOCK),
)


class DaemonError(RuntimeError):
    """A daemon could not be started or does not answer."""


def socket_answers(path):
    """True when a unix socket at ``path`` accepts a connection."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def process_identity(pid):
    """(comm, start time in ticks) of a live pid; None if gone or zombie.

    The start time guards against a recycled pid.  Daemons that fork into
    the background are reparented to a pid 1 that may never reap them, so
    a zombie counts as gone.
    """
    try:
        with open('/proc/%d/stat' % pid) as stat:
            data = stat.read()
    except (OSError, ValueError):
        return None
    comm = data[data.index('(') + 1:data.rindex(')')]
    fields = data[data.rindex(')') + 2:].split()
    if fields[0] in ('Z', 'X'):
        return None
    return comm, int(fields[19])


def _read_pid(path):
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _quiet(libvirt):
    # libvirt prints every error to stderr unless a handler is set.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        yield
    finally:
        libvirt.registerErrorHandler(None, None)


def libvirt_answers(uri=URI):
    """True when ``uri`` answers a real call, not only a socket connect."""
    if not os.path.exists(LIBVIRTD_SOCK):
        return False
    import libvirt     # here: importing this module must not need it
    with _quiet(libvirt):
        try:
            conn = libvirt.openReadOnly(uri)
        except libvirt.libvirtError:
            return False
        try:
            conn.getLibVersion()
            return True
        except libvirt.libvirtError:
            return False
        finally:
            conn.close()


def _serving(name, sock, uri):
    # A bare connect to libvirtd's socket logs an error there: ask it.
    return libvirt_answers(uri) if name == 'libvirtd' else socket_answers(
        sock)


def _load_state():
    try:
        with open(STATE_FILE) as handle:
            state = json.load(handle)
        return state if isinstance(state, list) else []
    except (OSError, ValueError):
        return []


def _save_state(state):
    if not state:
        try:
            os.unlink(STATE_FILE)
        except FileNotFoundError:
            pass
        return
    tmp = STATE_FILE + '.tmp'
    with open(tmp, 'w') as handle:
        json.dump(state, handle)
    os.replace(tmp, STATE_FILE)


def _start(name, pidfile, sock, uri, deadline):
    os.makedirs(LOG_DIR, exist_ok=True)
    env = dict(os.environ)
    # Daemonised, they would log to a syslog nobody runs here.
    env['LIBVIRT_LOG_OUTPUTS'] = '3:file:%s/%s.log' % (LOG_DIR, name)
    result = subprocess.run(
        [name, '-d'], stdin=subprocess.DEVNULL, capture_output=True,
        text=True, env=env, timeout=max(1.0, deadline - time.monotonic()))
    # A failure may only mean another instance is still starting up:
    # the socket decides.
    while time.monotonic() < deadline:
        if _serving(name, sock, uri):
            break
        time.sleep(0.1)
    else:
        raise DaemonError('%s -d exited %d and never answered: %s'
                          % (name, result.returncode,
                             (result.stderr or result.stdout).strip()))
    pid = _read_pid(pidfile)
    identity = process_identity(pid) if pid else None
    if result.returncode != 0 or identity is None:
        return None     # someone else's daemon answered: not ours to stop
    return {'name': name, 'pid': pid, 'start': identity[1]}


def ensure_daemons(uri=URI, timeout=60.0):
    """Start virtlogd and libvirtd if needed; True if this started any.

    Waits until ``uri`` answers.  Raises DaemonError when it does not
    within ``timeout`` seconds (the first start on a fresh machine probes
    qemu's capabilities and takes several seconds).
    """
    deadline = time.monotonic() + timeout
    started = []
    for name, pidfile, sock in DAEMONS:
        if not _serving(name, sock, uri):
            record = _start(name, pidfile, sock, uri, deadline)
            if record:
                started.append(record)
    if started:
        _save_state(started_daemons() + started)
    while not libvirt_answers(uri):
        if time.monotonic() > deadline:
            raise DaemonError('%s does not answer after %.0f s (see %s)'
                              % (uri, timeout, LOG_DIR))
        time.sleep(0.2)
    return bool(started)


def started_daemons():
    """The daemons recorded as started by this module and still alive."""
    return [rec for rec in _load_state()
            if process_identity(rec['pid']) == (rec['name'], rec['start'])]


def _wait_gone(rec, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_identity(rec['pid']) != (rec['name'], rec['start']):
            return True
        time.sleep(0.1)
    return False


def stop_started_daemons(timeout=30.0):
    """Stop what ``ensure_daemons`` started (never anything else).

    Returns the problems met, as text; [] when all went well.  Domains
    keep running without libvirtd: tear them down first.
    """
    problems = []
    alive = started_daemons()
    order = [name for name, _, _ in reversed(DAEMONS)]
    alive.sort(key=lambda rec: order.index(rec['name'])
               if rec['name'] in order else len(order))
    for rec in alive:
        try:
            os.kill(rec['pid'], signal.SIGTERM)
        except ProcessLookupError:
            continue
        if not _wait_gone(rec, timeout):
            os.kill(rec['pid'], signal.SIGKILL)
            if not _wait_gone(rec, 5.0):
                problems.append('%s (pid %d) does not stop'
                                % (rec['name'], rec['pid']))
    _save_state([rec for rec in started_daemons()])
    return problems


def status(uri=URI):
    """{daemon name: 'running'|'stopped', 'started_by_rig': [names]}."""
    result = {name: 'running' if _serving(name, sock, uri) else 'stopped'
              for name, _, sock in DAEMONS}
    result['started_by_rig'] = [rec['name'] for rec in started_daemons()]
    return result


class CephSecret:
    """A libvirt ``ceph`` secret holding ``key`` (raw bytes), defined in
    the running libvirtd the way nova's hosts have one; a context manager
    that undefines it again.  The value is set through the API, never on
    a command line."""

    # private='no', as nova defines them (a private one cannot be read).
    XML = ("<secret ephemeral='no' private='no'><uuid>%s</uuid>"
           "<usage type='ceph'><name>%s</name></usage></secret>")

    def __init__(self, uuid, key, usage='client.cinder secret', uri=URI):
        self.uuid = uuid
        self._key = key
        self._usage = usage
        self._uri = uri
        self._conn = None

    def __enter__(self):
        import libvirt
        self._conn = libvirt.open(self._uri)
        secret = self._conn.secretDefineXML(self.XML % (self.uuid,
                                                        self._usage))
        secret.setValue(self._key)
        return self

    def __exit__(self, *exc):
        try:
            self._conn.secretLookupByUUIDString(self.uuid).undefine()
        finally:
            self._conn.close()
