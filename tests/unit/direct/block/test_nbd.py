"""direct.nbd: our read-only NBD client returns exactly the bytes a real
``qemu-nbd --read-only`` serves (raw, and qcow2 read by our own qcow2
code over it), and ends with a clear DirectError on whatever a hostile
server does (scripted servers here: wrong magics, replies for another
request, short or closed replies, absurd sizes, endless negotiation).
"""

import contextlib
import os
import socket
import struct
import subprocess
import threading
import time
import types

import pytest

from ceilometer_os_pollster.instances import drives
from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct import disks as direct_disks
from ceilometer_os_pollster.direct.block import nbd
from ceilometer_os_pollster.direct.block import network
from ceilometer_os_pollster.direct.block import source as S
from tests import helpers

MiB = 1 << 20


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def qemu_nbd(path, fmt, export='disk', unix=None):
    """A real read-only qemu-nbd serving ``path``; yields (socket, hosts)."""
    if unix:
        where, answer = ['--socket=%s' % unix], (unix, ())
    else:
        port = free_port()
        where = ['--bind=127.0.0.1', '--port=%d' % port]
        answer = ('', (('127.0.0.1', str(port)),))
    proc = subprocess.Popen(
        ['qemu-nbd', '--read-only', '--persistent', '--shared=4',
         '--format=%s' % fmt, '--export-name=%s' % export] + where
        + [str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 30
        while True:
            try:
                if unix:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(unix)
                else:
                    s = socket.create_connection(('127.0.0.1', port), 1)
                s.close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < end, 'qemu-nbd does not listen'
                time.sleep(0.05)
        yield answer
    finally:
        proc.kill()
        proc.wait(30)


def random_disk(path, size):
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def spec_xml(fmt, source):
    xml = ("<domain><name>d</name><devices><disk type='network' "
           "device='disk'><driver name='qemu' type='%s'/>%s<target "
           "dev='vda' bus='virtio'/></disk></devices></domain>"
           % (fmt, source))
    return drives.drive_specs(xml)[0]


def opts(**over):
    values = dict(inspection_deadline=30, ceph_user='', ceph_conf='',
                  libvirt_secret_uri='', ceph_client_mount_timeout=5)
    values.update(over)
    return types.SimpleNamespace(**values)


def read_disk(spec, budget=None, tmp_path='/nonexistent'):
    budget = budget or S.Budget()
    with contextlib.ExitStack() as stack:
        disk = direct_disks.disk_source(
            spec, budget, stack, network.NetworkDisks(opts(), tmp_path))
        return disk.read_at(0, disk.size)


# -- a real qemu-nbd --------------------------------------------------------

def test_raw_export_on_a_unix_socket_reads_the_file(tmp_path):
    data = random_disk(tmp_path / 'disk.raw', 5 * MiB + 4096)
    sock = str(tmp_path / 'nbd.sock')
    with qemu_nbd(tmp_path / 'disk.raw', 'raw', unix=sock):
        spec = spec_xml('raw', "<source protocol='nbd' name='disk'><host "
                        "transport='unix' socket='%s'/></source>" % sock)
        budget = S.Budget()
        assert read_disk(spec, budget) == data
        assert budget.used == len(data)
        # unaligned reads, one byte, across request boundaries
        with contextlib.ExitStack() as stack:
            disk = nbd.connect(sock, (), 'disk', S.Budget(), 10)
            stack.callback(disk.close)
            assert disk.read_at(12345, 1) == data[12345:12346]
            assert disk.read_at(nbd.MAX_REQUEST - 7, 20) == \
                data[nbd.MAX_REQUEST - 7:nbd.MAX_REQUEST + 13]


def test_qcow2_served_as_its_virtual_disk_over_tcp(tmp_path):
    random_disk(tmp_path / 'src.raw', 2 * MiB)
    run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', '-c',
        str(tmp_path / 'src.raw'), str(tmp_path / 'disk.qcow2'))
    run('qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
        str(tmp_path / 'disk.qcow2'), str(tmp_path / 'ref.raw'))
    with qemu_nbd(tmp_path / 'disk.qcow2', 'qcow2') as (_, hosts):
        spec = spec_xml('raw', "<source protocol='nbd' name='disk'><host "
                        "name='127.0.0.1' port='%s'/></source>"
                        % hosts[0][1])
        assert read_disk(spec) == (tmp_path / 'ref.raw').read_bytes()


def test_qcow2_file_served_raw_is_read_by_our_qcow2_code(tmp_path):
    # <driver type='qcow2'> over an export of the qcow2 file itself: the
    # format comes from the XML, and our qcow2 reader (not qemu's) reads
    # it, compressed clusters included.
    random_disk(tmp_path / 'src.raw', 2 * MiB)
    run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', '-c',
        str(tmp_path / 'src.raw'), str(tmp_path / 'disk.qcow2'))
    run('qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
        str(tmp_path / 'disk.qcow2'), str(tmp_path / 'ref.raw'))
    with qemu_nbd(tmp_path / 'disk.qcow2', 'raw') as (_, hosts):
        spec = spec_xml('qcow2', "<source protocol='nbd' name='disk'><host "
                        "name='127.0.0.1' port='%s'/></source>"
                        % hosts[0][1])
        assert read_disk(spec) == (tmp_path / 'ref.raw').read_bytes()


def test_qcow2_over_nbd_naming_a_backing_file_is_the_appliances(tmp_path):
    run('qemu-img', 'create', '-f', 'raw', str(tmp_path / 'base.raw'), '1M')
    run('qemu-img', 'create', '-f', 'qcow2', '-b', str(tmp_path / 'base.raw'),
        '-F', 'raw', str(tmp_path / 'top.qcow2'))
    with qemu_nbd(tmp_path / 'top.qcow2', 'raw') as (_, hosts):
        spec = spec_xml('qcow2', "<source protocol='nbd' name='disk'><host "
                        "name='127.0.0.1' port='%s'/></source>"
                        % hosts[0][1])
        with pytest.raises(errors.Unsupported, match='backing file'):
            read_disk(spec)


def test_unknown_export_and_budget(tmp_path):
    random_disk(tmp_path / 'disk.raw', MiB)
    sock = str(tmp_path / 'nbd.sock')
    with qemu_nbd(tmp_path / 'disk.raw', 'raw', unix=sock):
        with pytest.raises(errors.DirectError,
                           match="export 'nope' refused: no such export"):
            nbd.connect(sock, (), 'nope', S.Budget(), 10)
        disk = nbd.connect(sock, (), 'disk', S.Budget(4096), 10)
        try:
            disk.read_at(0, 4096)
            with pytest.raises(errors.LimitReached, match='read more than'):
                disk.read_at(4096, 1)
        finally:
            disk.close()


def test_nobody_listening_is_a_reason(tmp_path):
    with pytest.raises(errors.DirectError, match='cannot connect'):
        nbd.connect(str(tmp_path / 'none.sock'), (), '', S.Budget(), 5)
    with pytest.raises(errors.DirectError, match='cannot connect'):
        nbd.connect('', (('127.0.0.1', str(free_port())),), '', S.Budget(),
                    5)


# -- scripted servers --------------------------------------------------------

def recv(conn, n):
    buf = b''
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def greet(conn, flags=nbd.FLAG_FIXED_NEWSTYLE | nbd.FLAG_NO_ZEROES):
    conn.sendall(struct.pack('>QQH', nbd.NBDMAGIC, nbd.IHAVEOPT, flags))
    recv(conn, 4)


def option(conn):
    magic, opt, length = struct.unpack('>QII', recv(conn, 16))
    assert magic == nbd.IHAVEOPT
    return opt, recv(conn, length)


def reply(conn, opt, kind, data=b'', magic=nbd.REPLY_MAGIC):
    conn.sendall(struct.pack('>QIII', magic, opt, kind, len(data)) + data)


def go(conn, size, flags=1 | 2):
    opt, _ = option(conn)
    assert opt == nbd.OPT_GO
    reply(conn, opt, nbd.REP_INFO, struct.pack('>HQH', nbd.INFO_EXPORT,
                                               size, flags))
    reply(conn, opt, nbd.REP_ACK)


def requests(conn, seen):
    while True:
        try:
            magic, _, kind, handle, offset, length = struct.unpack(
                '>IHHQQI', recv(conn, 28))
        except EOFError:
            return
        assert magic == nbd.REQUEST_MAGIC
        seen.append(kind)
        if kind == nbd.CMD_DISC:
            return
        yield handle, offset, length


def simple(conn, handle, data=b'', error=0, magic=nbd.SIMPLE_REPLY_MAGIC):
    conn.sendall(struct.pack('>IIQ', magic, error, handle) + data)


class Scripted:
    """One connection on a unix socket, served by ``serve(conn)`` in a
    thread; the connection stays open until the test ends (a server that
    stops answering)."""

    def __init__(self, tmp_path, serve):
        self.path = str(tmp_path / ('scripted%d.sock' % id(self)))
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.seen = []
        self.done = threading.Event()
        self.conn = None

        def main():
            conn, _ = self.listener.accept()
            self.conn = conn
            try:
                serve(conn, self.seen)
            except (EOFError, OSError):
                pass
            self.done.wait(30)
            conn.close()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()

    def connect(self, budget=None, timeout=10):
        return nbd.connect(self.path, (), 'x', budget or S.Budget(),
                           timeout)

    def close(self):
        self.done.set()
        self.thread.join(30)
        self.listener.close()


@pytest.fixture
def scripted(tmp_path):
    made = []

    def make(serve):
        made.append(Scripted(tmp_path, serve))
        return made[-1]
    yield make
    for server in made:
        server.close()


def serving(size, answer):
    """A server that opens the export and answers each read with
    ``answer(conn, handle, offset, length)``."""
    def serve(conn, seen):
        greet(conn)
        go(conn, size)
        for handle, offset, length in requests(conn, seen):
            answer(conn, handle, offset, length)
    return serve


def honest(conn, handle, offset, length):
    simple(conn, handle, bytes((offset + i) % 251 for i in range(length)))


def test_scripted_honest_server_and_only_reads_are_sent(scripted):
    server = scripted(serving(1 << 20, honest))
    disk = server.connect()
    assert disk.size == 1 << 20
    assert disk.read_at(1000, 5) == bytes((1000 + i) % 251 for i in range(5))
    disk.close()
    server.done.set()
    server.thread.join(10)
    assert server.seen == [nbd.CMD_READ, nbd.CMD_DISC]


@pytest.mark.parametrize('answer,error,match', [
    (lambda c, h, o, n: simple(c, h, bytes(n), magic=0xdeadbeef),
     errors.Corrupt, 'bad reply magic 0xdeadbeef'),
    (lambda c, h, o, n: simple(c, h, bytes(n),
                               magic=nbd.STRUCTURED_REPLY_MAGIC),
     errors.Corrupt, 'structured reply that was not negotiated'),
    (lambda c, h, o, n: simple(c, h + 1, bytes(n)),
     errors.Corrupt, 'reply for request 2 while 1 was asked'),
    (lambda c, h, o, n: simple(c, h, error=5),
     errors.DirectError, 'failed a read of 5 bytes at offset 0: EIO'),
    # short, then the server goes away: closed mid-read
    (lambda c, h, o, n: (simple(c, h, bytes(n // 2)),
                         c.shutdown(socket.SHUT_RDWR)),
     errors.Corrupt, 'closed the connection during a read of 5 bytes'),
])
def test_hostile_read_replies(scripted, answer, error, match):
    server = scripted(serving(1 << 20, answer))
    disk = server.connect()
    try:
        with pytest.raises(error, match=match):
            disk.read_at(0, 5)
    finally:
        disk.close()


def test_short_reply_then_silence_ends_at_the_backstop(scripted):
    # A real worker is killed at its deadline first; the backstop keeps
    # a caller without one from waiting forever.
    server = scripted(serving(1 << 20, lambda c, h, o, n: simple(c, h, b'x')))
    disk = server.connect(timeout=0.5)
    try:
        with pytest.raises(errors.LimitReached,
                           match='did not answer within 0.5 s'):
            disk.read_at(0, 5)
    finally:
        disk.close()


def _handshake_server(script):
    def serve(conn, seen):
        script(conn)
    return serve


@pytest.mark.parametrize('script,error,match', [
    (lambda c: c.sendall(b'HTTP/1.1 400 Bad Request\r\n\r\n'),
     errors.Corrupt, 'not an NBD server'),
    (lambda c: c.sendall(struct.pack('>QQ', nbd.NBDMAGIC,
                                     nbd.CLISERV_MAGIC)),
     errors.Unsupported, 'old-style NBD server'),
    (lambda c: greet(c, flags=0),
     errors.Unsupported, 'does not speak fixed-newstyle'),
    (lambda c: (greet(c), option(c), reply(c, nbd.OPT_GO, nbd.REP_ACK,
                                           magic=1)),
     errors.Corrupt, 'bad option reply magic'),
    (lambda c: (greet(c), option(c), reply(c, nbd.OPT_EXPORT_NAME,
                                           nbd.REP_ACK)),
     errors.Corrupt, 'reply to option 1 while option 7 was asked'),
    (lambda c: (greet(c), option(c), c.sendall(struct.pack(
        '>QIII', nbd.REPLY_MAGIC, nbd.OPT_GO, nbd.REP_INFO, 1 << 31))),
     errors.Corrupt, 'option reply of 2147483648 bytes'),
    (lambda c: (greet(c), option(c), reply(c, nbd.OPT_GO, nbd.REP_ACK)),
     errors.Corrupt, 'export accepted without its size'),
    (lambda c: (greet(c), option(c), reply(c, nbd.OPT_GO,
                                           nbd.REP_ERR_TLS_REQD)),
     errors.Unsupported, 'requires TLS'),
    (lambda c: (greet(c), option(c), reply(
        c, nbd.OPT_GO, nbd.REP_FLAG_ERROR | 2, b'go \x1b[31maway')),
     errors.DirectError, "refused: forbidden by policy: go away"),
    # huge export size
    (lambda c: (greet(c), go(c, (1 << 64) - 1)),
     errors.Corrupt, 'export size 18446744073709551615 is larger than any'),
    (lambda c: (greet(c), option(c), reply(
        c, nbd.OPT_GO, nbd.REP_INFO, struct.pack('>HIII', 3, 1, 4096, 1)),
        reply(c, nbd.OPT_GO, nbd.REP_ACK)),
     errors.Corrupt, 'export accepted without its size'),
    (lambda c: (greet(c), option(c), reply(
        c, nbd.OPT_GO, nbd.REP_INFO, struct.pack('>HQH', 0, 4096, 1)),
        reply(c, nbd.OPT_GO, nbd.REP_INFO,
              struct.pack('>HIII', 3, 3, 4096, 1 << 20)),
        reply(c, nbd.OPT_GO, nbd.REP_ACK)),
     errors.Corrupt, 'minimum block size 3 is not a power of two'),
    # negotiation that never ends
    (lambda c: (greet(c), option(c), [reply(
        c, nbd.OPT_GO, nbd.REP_INFO, struct.pack('>H', 9))
        for _ in range(nbd.MAX_OPTION_REPLIES + 1)]),
     errors.Corrupt, 'more than 64 replies'),
    # closed during the handshake
    (lambda c: (greet(c), option(c), c.shutdown(socket.SHUT_RDWR)),
     errors.Corrupt, 'closed the connection during option negotiation'),
])
def test_hostile_handshakes(scripted, script, error, match):
    server = scripted(_handshake_server(script))
    with pytest.raises(error, match=match):
        server.connect()


def test_export_name_fallback_and_block_sizes(scripted):
    # A server without NBD_OPT_GO, with zero padding; then one whose
    # minimum block size makes us read whole blocks.
    def old(conn, seen):
        greet(conn, flags=nbd.FLAG_FIXED_NEWSTYLE)
        opt, _ = option(conn)
        reply(conn, opt, nbd.REP_ERR_UNSUP)
        opt, name = option(conn)
        assert (opt, name) == (nbd.OPT_EXPORT_NAME, b'x')
        conn.sendall(struct.pack('>QH', 8192, 1) + bytes(124))
        for handle, offset, length in requests(conn, seen):
            honest(conn, handle, offset, length)
    disk = scripted(old).connect()
    assert disk.size == 8192
    assert disk.read_at(10, 3) == bytes((10 + i) % 251 for i in range(3))
    disk.close()

    asked = []

    def blocks(conn, seen):
        greet(conn)
        option(conn)
        reply(conn, nbd.OPT_GO, nbd.REP_INFO,
              struct.pack('>HQH', nbd.INFO_EXPORT, 1 << 20, 3))
        reply(conn, nbd.OPT_GO, nbd.REP_INFO,
              struct.pack('>HIII', nbd.INFO_BLOCK_SIZE, 4096, 4096, 8192))
        reply(conn, nbd.OPT_GO, nbd.REP_ACK)
        for handle, offset, length in requests(conn, seen):
            asked.append((offset, length))
            honest(conn, handle, offset, length)
    disk = scripted(blocks).connect()
    data = disk.read_at(4000, 10000)
    assert data == bytes((4000 + i) % 251 for i in range(10000))
    assert asked == [(0, 8192), (8192, 8192)]
    disk.close()


def test_export_name_refused_by_closing(scripted):
    def old(conn, seen):
        greet(conn)
        opt, _ = option(conn)
        reply(conn, opt, nbd.REP_ERR_UNSUP)
        option(conn)
        conn.shutdown(socket.SHUT_RDWR)
    with pytest.raises(errors.DirectError, match='no such export'):
        scripted(old).connect()


@pytest.mark.parametrize('source', [
    "<source protocol='iscsi' name='iqn.x/1'><host name='10.0.0.1'/>"
    "</source>",
    # libvirt asks for TLS: never read in clear text by us
    "<source protocol='nbd' name='x' tls='yes'><host name='10.0.0.1'/>"
    "</source>",
])
def test_what_stays_the_appliances(source):
    with pytest.raises(errors.Unsupported, match='read by the appliance'):
        read_disk(spec_xml('raw', source))


def test_the_worker_reads_nbd_disks_directly(tmp_path):
    # The worker's own direct reader (no test double) opens the nbd disk
    # with NetworkDisks: inspection_method=direct decides without an
    # appliance (a blank disk: no OS, an 'unknown' record).
    from ceilometer_os_pollster import options
    from ceilometer_os_pollster.inspection import worker

    run('qemu-img', 'create', '-f', 'raw', str(tmp_path / 'blank.raw'), '4M')
    sock = str(tmp_path / 'nbd.sock')
    values = {opt.dest: opt.default for opt in options.OPTS}
    values['inspection_method'] = 'direct'

    def no_appliance(*args, **kwargs):
        raise AssertionError('no appliance expected')

    with qemu_nbd(tmp_path / 'blank.raw', 'raw', unix=sock):
        xml = helpers.domain_xml(
            helpers.network_disk('nbd', 'disk', socket=sock), name='d')
        rec = worker.inspect(
            worker.options_namespace(values),
            {'instance_id': 'i-1', 'domain_xml': xml, 'fingerprint': 'f'},
            str(tmp_path), lambda name: None,
            appliance_factory=no_appliance)
    assert (rec.status, rec.inspection_method) == ('unknown', 'direct'), rec
