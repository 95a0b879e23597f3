"""A read-only NBD client: an nbd disk's bytes as a Source.

The NBD protocol (NetworkBlockDevice/nbd doc/proto.md), the client side
of the fixed-newstyle handshake and NBD_CMD_READ only: this module
never sends a command that changes the export (no WRITE, TRIM, FLUSH,
WRITE_ZEROES), only READ and, on close, DISC.  One request at a time,
simple replies only (structured replies are never negotiated).

Everything the server says is checked before it is used: magics,
option echoes, reply lengths, the handle of every reply, the export
size.  A server that breaks the protocol ends the reading with a
``Corrupt`` reason; one that stops answering is ended by the worker's
deadline like any storage that hangs (the socket timeout given here is
only a backstop for callers that have no deadline).
"""

import errno
import itertools
import socket
import struct

from ceilometer_os_pollster import sanitize
from ceilometer_os_pollster.direct.block import source as source_mod
from ceilometer_os_pollster.direct.errors import Corrupt
from ceilometer_os_pollster.direct.errors import DirectError
from ceilometer_os_pollster.direct.errors import LimitReached
from ceilometer_os_pollster.direct.errors import Unsupported

NBDMAGIC = 0x4e42444d41474943            # 'NBDMAGIC'
IHAVEOPT = 0x49484156454f5054            # 'IHAVEOPT': newstyle
CLISERV_MAGIC = 0x00420281861253         # oldstyle
REPLY_MAGIC = 0x0003e889045565a9         # option reply
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668e33ef

FLAG_FIXED_NEWSTYLE = 1 << 0             # handshake flags
FLAG_NO_ZEROES = 1 << 1

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_GO = 7

REP_ACK = 1
REP_INFO = 3
REP_FLAG_ERROR = 1 << 31
REP_ERRORS = {
    REP_FLAG_ERROR | 1: 'unsupported option',
    REP_FLAG_ERROR | 2: 'forbidden by policy',
    REP_FLAG_ERROR | 3: 'invalid request',
    REP_FLAG_ERROR | 4: 'not available on this platform',
    REP_FLAG_ERROR | 5: 'TLS required',
    REP_FLAG_ERROR | 6: 'no such export',
    REP_FLAG_ERROR | 7: 'server shutting down',
    REP_FLAG_ERROR | 8: 'block size required',
    REP_FLAG_ERROR | 9: 'request too big',
}
REP_ERR_UNSUP = REP_FLAG_ERROR | 1
REP_ERR_TLS_REQD = REP_FLAG_ERROR | 5
REP_ERR_BLOCK_SIZE_REQD = REP_FLAG_ERROR | 8

INFO_EXPORT = 0
INFO_BLOCK_SIZE = 3

CMD_READ = 0
CMD_DISC = 2

# Bounds on what the server may make us receive.
MAX_NAME = 4096                 # the protocol's limit on export names
MAX_OPTION_REPLY = 64 * 1024    # one option reply's data
MAX_OPTION_REPLIES = 64         # replies to NBD_OPT_GO before its ACK
# Offsets are signed 64-bit in every server we know (qemu's int64_t):
# a larger export is a lie.
MAX_EXPORT = (1 << 63) - 1
# Bytes asked for in one NBD_CMD_READ: servers must accept 32 MiB;
# smaller requests keep one slow reply short.
MAX_REQUEST = 4 << 20
MAX_MIN_BLOCK = 64 * 1024       # the protocol's maximum minimum block size


def _errno_name(number):
    return errno.errorcode.get(number, 'error %d' % number)


class _Wire:
    """A connected socket, read in exact sizes."""

    def __init__(self, sock, name):
        self.sock = sock
        self.name = name

    def send(self, data):
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise LimitReached('%s: the server did not take a request '
                               'within %s s' % (self.name,
                                                self.sock.gettimeout()))
        except OSError as exc:
            raise DirectError('%s: connection lost: %s'
                              % (self.name, exc.strerror or exc))

    def recv(self, n, what):
        """Exactly ``n`` bytes (``what``: for the reason)."""
        buf = bytearray(n)
        view = memoryview(buf)
        done = 0
        while done < n:
            try:
                got = self.sock.recv_into(view[done:], n - done)
            except socket.timeout:
                raise LimitReached('%s: the server did not answer within '
                                   '%s s (%s)' % (self.name,
                                                  self.sock.gettimeout(),
                                                  what))
            except OSError as exc:
                raise DirectError('%s: connection lost during %s: %s'
                                  % (self.name, what, exc.strerror or exc))
            if not got:
                raise Corrupt('%s: the server closed the connection during '
                              '%s' % (self.name, what))
            done += got
        return bytes(buf)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Export:
    """What the handshake agreed: size, transmission flags, block sizes."""

    def __init__(self, size, flags, min_block=1, max_block=MAX_REQUEST):
        self.size = size
        self.flags = flags
        self.min_block = min_block
        self.max_block = max_block


def _check_export(name, size, min_block=1, max_block=MAX_REQUEST):
    if size > MAX_EXPORT:
        raise Corrupt('%s: export size %d is larger than any disk'
                      % (name, size))
    if (min_block < 1 or min_block > MAX_MIN_BLOCK
            or min_block & (min_block - 1)):
        raise Corrupt('%s: minimum block size %d is not a power of two '
                      'up to 64 KiB' % (name, min_block))
    if max_block < min_block:
        raise Corrupt('%s: maximum block size %d below the minimum %d'
                      % (name, max_block, min_block))


def _send_option(wire, option, data=b''):
    wire.send(struct.pack('>QII', IHAVEOPT, option, len(data)) + data)


def _option_reply(wire, option):
    """(type, data) of the next reply to ``option``."""
    magic, echoed, kind, length = struct.unpack(
        '>QIII', wire.recv(20, 'option negotiation'))
    if magic != REPLY_MAGIC:
        raise Corrupt('%s: bad option reply magic 0x%x' % (wire.name, magic))
    if echoed != option:
        raise Corrupt('%s: reply to option %d while option %d was asked'
                      % (wire.name, echoed, option))
    if length > MAX_OPTION_REPLY:
        raise Corrupt('%s: option reply of %d bytes' % (wire.name, length))
    return kind, wire.recv(length, 'option negotiation')


def _refusal(wire, kind, data, export):
    text = sanitize.clean_text(data.decode('utf-8', 'replace'), 100)
    why = REP_ERRORS.get(kind, 'error 0x%x' % kind)
    if kind == REP_ERR_TLS_REQD:
        return Unsupported('%s: the server requires TLS (read by the '
                           'appliance)' % wire.name)
    return DirectError('%s: export %r refused: %s%s'
                       % (wire.name, export[:64], why,
                          ': ' + text if text else ''))


def _go(wire, name):
    """NBD_OPT_GO; the Export, or None when the server does not know
    the option (then NBD_OPT_EXPORT_NAME must be used)."""
    encoded = name.encode('utf-8')
    # Ask for block sizes: we honour them (required by the protocol when
    # asked, and some servers refuse clients that do not ask).
    _send_option(wire, OPT_GO, struct.pack('>I', len(encoded)) + encoded
                 + struct.pack('>HH', 1, INFO_BLOCK_SIZE))
    size = flags = None
    min_block, max_block = 1, MAX_REQUEST
    for _ in range(MAX_OPTION_REPLIES):
        kind, data = _option_reply(wire, OPT_GO)
        if kind == REP_ACK:
            if size is None:
                raise Corrupt('%s: export accepted without its size'
                              % wire.name)
            _check_export(wire.name, size, min_block, max_block)
            return Export(size, flags, min_block, max_block)
        if kind == REP_INFO:
            if len(data) < 2:
                raise Corrupt('%s: empty information reply' % wire.name)
            info = struct.unpack('>H', data[:2])[0]
            if info == INFO_EXPORT:
                if len(data) != 12:
                    raise Corrupt('%s: export information of %d bytes'
                                  % (wire.name, len(data)))
                size, flags = struct.unpack('>QH', data[2:])
            elif info == INFO_BLOCK_SIZE:
                if len(data) != 14:
                    raise Corrupt('%s: block size information of %d bytes'
                                  % (wire.name, len(data)))
                min_block, _, max_block = struct.unpack('>III', data[2:])
            continue            # other information is not needed
        if kind == REP_ERR_UNSUP:
            return None
        if kind & REP_FLAG_ERROR:
            raise _refusal(wire, kind, data, name)
        raise Corrupt('%s: unexpected reply type %d to NBD_OPT_GO'
                      % (wire.name, kind))
    raise Corrupt('%s: more than %d replies to NBD_OPT_GO'
                  % (wire.name, MAX_OPTION_REPLIES))


def _export_name(wire, name, no_zeroes):
    """NBD_OPT_EXPORT_NAME (servers without NBD_OPT_GO): no error reply
    exists, a refused export is a closed connection."""
    _send_option(wire, OPT_EXPORT_NAME, name.encode('utf-8'))
    try:
        size, flags = struct.unpack('>QH', wire.recv(10, 'export opening'))
    except Corrupt:
        raise DirectError('%s: the server closed the connection on export '
                          '%r (no such export?)' % (wire.name, name[:64]))
    if not no_zeroes:
        wire.recv(124, 'export opening')
    _check_export(wire.name, size)
    return Export(size, flags)


def handshake(wire, name):
    """The fixed-newstyle handshake for export ``name``; the Export."""
    if len(name.encode('utf-8')) > MAX_NAME:
        raise Unsupported('%s: export name longer than %d bytes'
                          % (wire.name, MAX_NAME))
    magic, style = struct.unpack('>QQ', wire.recv(16, 'the greeting'))
    if magic != NBDMAGIC:
        raise Corrupt('%s: not an NBD server (greeting 0x%x)'
                      % (wire.name, magic))
    if style == CLISERV_MAGIC:
        raise Unsupported('%s: old-style NBD server (no export names)'
                          % wire.name)
    if style != IHAVEOPT:
        raise Corrupt('%s: unknown NBD greeting 0x%x' % (wire.name, style))
    flags = struct.unpack('>H', wire.recv(2, 'the greeting'))[0]
    if not flags & FLAG_FIXED_NEWSTYLE:
        raise Unsupported('%s: the server does not speak fixed-newstyle '
                          'NBD' % wire.name)
    no_zeroes = bool(flags & FLAG_NO_ZEROES)
    wire.send(struct.pack('>I', FLAG_FIXED_NEWSTYLE
                          | (FLAG_NO_ZEROES if no_zeroes else 0)))
    export = _go(wire, name)
    if export is None:
        export = _export_name(wire, name, no_zeroes)
    return export


class NbdSource(source_mod.Source):
    """An NBD export read with NBD_CMD_READ; every read charged first."""

    def __init__(self, wire, export, budget, name):
        self._wire = wire
        self._export = export
        self._handles = itertools.count(1)
        self.budget = budget
        self.size = export.size
        self.name = name

    def _read(self, offset, length):
        if self._wire is None:
            raise ValueError('read from a closed NbdSource')
        block = self._export.min_block
        start = offset - offset % block
        end = min(-(-(offset + length) // block) * block, self.size)
        self.budget.charge(end - start)
        step = max(block, min(MAX_REQUEST, self._export.max_block)
                   // block * block)
        chunks = []
        pos = start
        while pos < end:
            n = min(step, end - pos)
            chunks.append(self._request(pos, n))
            pos += n
        data = b''.join(chunks)
        return data[offset - start:offset - start + length]

    def _request(self, offset, length):
        handle = next(self._handles)
        self._wire.send(struct.pack('>IHHQQI', REQUEST_MAGIC, 0, CMD_READ,
                                    handle, offset, length))
        magic, error, answered = struct.unpack(
            '>IIQ', self._wire.recv(16, 'a read reply'))
        if magic == STRUCTURED_REPLY_MAGIC:
            raise Corrupt('%s: structured reply that was not negotiated'
                          % self.name)
        if magic != SIMPLE_REPLY_MAGIC:
            raise Corrupt('%s: bad reply magic 0x%x' % (self.name, magic))
        if answered != handle:
            raise Corrupt('%s: reply for request %d while %d was asked'
                          % (self.name, answered, handle))
        if error:
            raise DirectError('%s: the server failed a read of %d bytes at '
                              'offset %d: %s' % (self.name, length, offset,
                                                 _errno_name(error)))
        return self._wire.recv(length, 'a read of %d bytes at offset %d'
                               % (length, offset))

    def close(self):
        """Say goodbye (NBD_CMD_DISC) and close; never raises."""
        wire, self._wire = self._wire, None
        if wire is None:
            return
        try:
            wire.sock.settimeout(1)
            wire.sock.sendall(struct.pack('>IHHQQI', REQUEST_MAGIC, 0,
                                          CMD_DISC, 0, 0, 0))
        except OSError:
            pass
        wire.close()


def server_address(socket_path, hosts):
    """(family, address, text) of the server a drive names."""
    if socket_path:
        return socket.AF_UNIX, socket_path, 'unix:' + socket_path
    if not hosts:
        raise Unsupported('nbd disk without a server')
    host, port = hosts[0]
    return None, (host, int(port)), '%s:%s' % (host, port)


def connect(socket_path, hosts, export, budget, timeout, name='nbd'):
    """An NbdSource for ``export`` ('' is the default export) on the unix
    socket ``socket_path`` or the first of ``hosts`` ((host, port)
    pairs).  ``timeout``: seconds any one wait may take (a backstop; the
    worker's deadline ends a server that hangs first)."""
    family, address, where = server_address(socket_path, hosts)
    label = '%s (nbd %s)' % (name, where)
    try:
        if family == socket.AF_UNIX:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(address)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(address, timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except socket.timeout:
        raise LimitReached('%s: no connection within %s s'
                           % (label, timeout))
    except OSError as exc:
        raise DirectError('%s: cannot connect: %s'
                          % (label, exc.strerror or exc))
    wire = _Wire(sock, label)
    try:
        export_info = handshake(wire, export)
    except BaseException:
        wire.close()
        raise
    return NbdSource(wire, export_info, budget, label)
