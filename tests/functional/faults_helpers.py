"""Small helpers of the functional fault suite (test_faults.py).

Owns: building configurations, engines and jobs, the record invariants every
fault must keep, and a /proc sampler that runs in its own process (our
process holds the GIL while libguestfs runs qemu-img inside add_drive,
so a thread of ours would not sample during that window).
"""

import json
import os
import socket
import struct
import subprocess
import sys
import threading

from ceilometer_os_pollster.agent import engine as E
from ceilometer_os_pollster import record
from tests import helpers
from tests.helpers import alive  # noqa: F401  (the fault suite's H.alive)
from tests.helpers import inspection_conf

# Templates of the one builder (tests.helpers), filled with format().
DISK = helpers.disk('{path}')
CDROM = ("<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
         "<source file='{path}'/><target dev='sda' bus='sata'/>"
         "<readonly/></disk>")
RBD_DISK = (
    "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
    "<auth username='cinder'><secret type='ceph' uuid='{uuid}'/></auth>"
    "<source protocol='rbd' name='volumes/volume-{uuid}'>{hosts}</source>"
    "<target dev='vda' bus='virtio'/></disk>")
DOMAIN = helpers.domain_xml('{disks}', name='{name}', type='qemu')


def make_engine(tmp_root, worker_argv=None, **overrides):
    """An engine for functional tests: TCG, a patient deadline and its
    scratch files under ``tmp_root``; ``overrides`` win."""
    settings = dict(libguestfs_backend_settings=['force_tcg'],
                    inspection_deadline=900, tmp_dir=str(tmp_root))
    settings.update(overrides)
    conf = inspection_conf(**settings)
    if worker_argv is None:
        return E.Engine(conf)
    return E.Engine(conf, worker_argv=worker_argv)


def job(name, disks):
    """The job of domain ``name`` with ``disks`` (XML); the engine
    computes its fingerprint."""
    return helpers.job(instance_id='inst-' + name, domain_name=name,
                       xml=DOMAIN.format(name=name, disks=disks),
                       fingerprint='')


def string_problems(rec):
    """[(field, why)] for every string of the record that is not clean:
    valid UTF-8, printable (no control/format characters), <= 255."""
    problems = []
    values = dict(rec.to_dict(), **rec.metadata())
    for name, value in values.items():
        if not isinstance(value, str):
            continue
        try:
            value.encode('utf-8')
        except UnicodeEncodeError:
            problems.append((name, 'not UTF-8'))
        if not value.isprintable():
            problems.append((name, 'control character'))
        if len(value) > 255:
            problems.append((name, 'longer than 255'))
    return problems


def assert_clean(rec):
    assert isinstance(rec, record.OSRecord)
    assert rec.status in record.STATUSES
    assert string_problems(rec) == [], rec


# Scans every process' command line and environment for the needles
# until the stop file appears; writes {samples, hits} as JSON.
SAMPLER = r'''
import json, os, sys, time
needles = [n.encode() for n in json.loads(sys.argv[1])]
stop, out = sys.argv[2], sys.argv[3]
samples, hits, procs = 0, [], set()
deadline = time.time() + 300
while not os.path.exists(stop) and time.time() < deadline:
    for pid in filter(str.isdigit, os.listdir('/proc')):
        if int(pid) == os.getpid():
            continue
        for name in ('cmdline', 'environ'):
            try:
                with open('/proc/%s/%s' % (pid, name), 'rb') as f:
                    data = f.read()
            except OSError:
                continue
            if name == 'cmdline' and (b'qemu' in data or b'rbd' in data):
                procs.add(data.split(b'\0')[0].decode('latin-1'))
            for needle in needles:
                if needle in data:
                    hits.append([pid, name, needle.decode()])
    samples += 1
    time.sleep(0.02)
with open(out, 'w') as f:
    json.dump(dict(samples=samples, hits=hits, procs=sorted(procs)), f)
'''


class ProcSampler:
    """Samples /proc/*/cmdline and environ in a separate process."""

    def __init__(self, tmp_path, needles):
        self._stop = tmp_path / 'sampler.stop'
        self._out = tmp_path / 'sampler.json'
        self._proc = subprocess.Popen(
            [sys.executable, '-c', SAMPLER, json.dumps(list(needles)),
             str(self._stop), str(self._out)])

    def finish(self):
        self._stop.touch()
        try:
            self._proc.wait(timeout=30)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
        return json.loads(self._out.read_text())


def proc_children(parent, marker):
    """Pids whose parent is ``parent`` or a descendant of it, with
    ``marker`` (bytes) in the command line."""
    found = []
    tree = {parent}
    changed = True
    stats = {}
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/stat' % pid, 'rb') as f:
                ppid = int(f.read().rsplit(b')', 1)[1].split()[1])
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                stats[int(pid)] = (ppid, f.read())
        except (OSError, ValueError, IndexError):
            continue
    while changed:
        changed = False
        for pid, (ppid, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    for pid in tree - {parent}:
        if marker in stats[pid][1]:
            found.append(pid)
    return sorted(found)


def nbd_disk(server, export='export'):
    """The network <disk> of ``export`` on a test server of this module
    (BlackHole, SilentNbd: both listen on 127.0.0.1)."""
    return helpers.network_disk('nbd', export,
                                hosts=[('127.0.0.1', server.port)])


class BlackHole:
    """A TCP listener that counts the connections it accepts and never
    answers them (a dead Ceph monitor, a tenant's nbd server)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)

    def close(self):
        self.sock.close()
        for conn in self._conns:
            conn.close()


class SilentNbd:
    """An NBD server (TCP, 127.0.0.1) that opens any export of ``size``
    bytes and then never answers a read: storage that stops in the
    middle of a direct inspection.  ``reading`` is set once a read
    request has arrived (a worker is then blocked mid-read)."""

    NBDMAGIC = 0x4e42444d41474943
    IHAVEOPT = 0x49484156454f5054
    REPLY_MAGIC = 0x0003e889045565a9

    def __init__(self, size=1 << 30):
        self.size = size
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.reading = threading.Event()
        self._conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    @staticmethod
    def _recv(conn, n):
        data = b''
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _serve(self, conn):
        try:
            conn.sendall(struct.pack('>QQH', self.NBDMAGIC, self.IHAVEOPT,
                                     3))
            self._recv(conn, 4)
            _, option, length = struct.unpack('>QII', self._recv(conn, 16))
            self._recv(conn, length)
            conn.sendall(struct.pack('>QIIIHQH', self.REPLY_MAGIC, option,
                                     3, 12, 0, self.size, 1 | 2))
            conn.sendall(struct.pack('>QIII', self.REPLY_MAGIC, option, 1,
                                     0))
            self._recv(conn, 28)        # a request: never answered
            self.reading.set()
        except (EOFError, OSError):
            pass

    def close(self):
        self.sock.close()
        for conn in self._conns:
            conn.close()
