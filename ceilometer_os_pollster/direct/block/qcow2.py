"""qcow2 images read by our own code: the virtual disk as a Source.

Follows QEMU's docs/interop/qcow2.rst: the header (v2 and v3), the active
L1 table and its L2 tables, standard, zero and compressed clusters
(deflate; zstd when the ``zstandard`` module is importable).  Refused
with a reason: encryption, external data files, extended L2 entries
(subclusters), unknown incompatible features.

The backing is the caller's: it pins the chain from the host's headers
(``qemu_nodes``) and hands us a Source, or None.  The backing file name
in the header is never opened here, and a qcow2 header a guest wrote
inside its own disk is only data to whoever reads that disk.

Every offset is checked against the size of the file before it is
followed; table sizes, the chain depth and the L2 cache are bounded.
The header and L2 entries are decoded by ``qcow2_header`` (pure).
"""

import collections
import struct
import zlib

from ceilometer_os_pollster.storage import qemu_nodes
from ceilometer_os_pollster.direct.errors import Corrupt
from ceilometer_os_pollster.direct.errors import TornRead
from ceilometer_os_pollster.direct.errors import Unsupported
from ceilometer_os_pollster.direct.block.qcow2_header import COMPRESSED
from ceilometer_os_pollster.direct.block.qcow2_header import COMPRESSION_ZSTD
from ceilometer_os_pollster.direct.block.qcow2_header import DATA
from ceilometer_os_pollster.direct.block.qcow2_header import L1E_OFFSET_MASK
from ceilometer_os_pollster.direct.block.qcow2_header import UNALLOCATED
from ceilometer_os_pollster.direct.block.qcow2_header import ZERO
from ceilometer_os_pollster.direct.block.qcow2_header import decode_l2_entry
from ceilometer_os_pollster.direct.block.qcow2_header import parse_header
from ceilometer_os_pollster.direct.block.source import MAX_READ
from ceilometer_os_pollster.direct.block.source import Source

try:                                        # optional: no new dependency
    import zstandard
except ImportError:                         # pragma: no cover - host dependent
    zstandard = None

MAX_CHAIN_DEPTH = qemu_nodes.MAX_CHAIN + 1     # the top image + backings
# Memory kept for L1 pages and L2 tables of one image.
TABLE_CACHE_BYTES = 4 << 20
L1_PAGE = 4096


class _LRU:
    """A few tables (bytes) by key, least recently used evicted."""

    def __init__(self, max_items):
        self.max_items = max(1, max_items)
        self._items = collections.OrderedDict()

    def get(self, key, load):
        value = self._items.get(key)
        if value is None:
            value = load()
            self._items[key] = value
            if len(self._items) > self.max_items:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return value


class Qcow2Source(Source):
    """The virtual disk of one qcow2 image over ``file`` (a Source)."""

    def __init__(self, file, header, backing=None, name=None):
        self.file = file
        self.header = header
        self.backing = backing
        self.size = header.size
        self.name = name or file.name
        self.depth = 1 + getattr(backing, 'depth', 0 if backing is None
                                 else 1)
        cs = header.cluster_size
        self._tables = _LRU(TABLE_CACHE_BYTES // max(cs, L1_PAGE))
        self._last_cluster = (None, None)       # one decompressed cluster

    # -- tables ---------------------------------------------------------
    def _past_end(self, what, offset, length):
        """Raise for a structure past the file's end: torn if it grew."""
        current = getattr(self.file, 'current_size', None)
        if current is not None and current() > self.file.size:
            raise TornRead('qcow2: %s grew while it was read' % self.name)
        raise Corrupt('qcow2: %s at offset %d (%d bytes) is past the end '
                      'of %s (%d bytes)' % (what, offset, length, self.name,
                                            self.file.size))

    def _l1_entry(self, index):
        h = self.header
        start = h.l1_table_offset + index * 8
        page = start - start % L1_PAGE
        end = min(page + L1_PAGE, h.l1_table_offset + h.l1_size * 8)
        lo = max(page, h.l1_table_offset)

        def load():
            return self.file.read_at(lo, end - lo)
        table = self._tables.get(('l1', page), load)
        return struct.unpack_from('>Q', table, start - lo)[0]

    def _l2_entry(self, cluster_index):
        h = self.header
        l1_index, l2_index = divmod(cluster_index, h.l2_entries)
        l2_offset = self._l1_entry(l1_index) & L1E_OFFSET_MASK
        if l2_offset == 0:
            return 0
        if l2_offset % h.cluster_size:
            raise Corrupt('qcow2: L2 table at unaligned offset %d'
                          % l2_offset)
        if l2_offset + h.cluster_size > self.file.size:
            self._past_end('L2 table', l2_offset, h.cluster_size)

        def load():
            return self.file.read_at(l2_offset, h.cluster_size)
        table = self._tables.get(('l2', l2_offset), load)
        return struct.unpack_from('>Q', table, l2_index * 8)[0]

    def mapping(self, cluster_index):
        """(kind, host offset, compressed length) of one guest cluster."""
        return decode_l2_entry(self._l2_entry(cluster_index), self.header)

    # -- data -----------------------------------------------------------
    def _read(self, offset, length):
        cs = self.header.cluster_size
        out = []
        # Runs of clusters of one kind (contiguous on the host for data)
        # are read at once.
        run_kind, run_start, run_host, run_len = None, offset, 0, 0
        pos, end = offset, offset + length
        while pos < end:
            index, inner = divmod(pos, cs)
            take = min(end - pos, cs - inner)
            kind, host, clen = self.mapping(index)
            if kind == COMPRESSED:
                if run_len:
                    out.append(self._read_run(run_kind, run_start,
                                              run_host, run_len))
                    run_len = 0
                data = self._compressed(index, host, clen)
                out.append(data[inner:inner + take])
                pos += take
                continue
            host_here = host + inner if kind == DATA else 0
            if run_len and (kind != run_kind or (
                    kind == DATA and host_here != run_host + run_len)):
                out.append(self._read_run(run_kind, run_start, run_host,
                                          run_len))
                run_len = 0
            if not run_len:
                run_kind, run_start, run_host = kind, pos, host_here
            run_len += take
            pos += take
        if run_len:
            out.append(self._read_run(run_kind, run_start, run_host,
                                      run_len))
        return b''.join(out)

    def _read_run(self, kind, guest_offset, host_offset, length):
        if kind == ZERO:
            return bytes(length)
        if kind == UNALLOCATED:
            return self._from_backing(guest_offset, length)
        return self._read_host(host_offset, length)

    def _read_host(self, host_offset, length):
        # Like qemu's file driver: a cluster that starts inside the file
        # but ends past it reads zeros beyond the end.
        size = self.file.size
        if host_offset >= size:
            self._past_end('data cluster', host_offset, length)
        have = min(length, size - host_offset)
        data = self.file.read_at(host_offset, have)
        return data + bytes(length - have)

    def _from_backing(self, guest_offset, length):
        backing = self.backing
        have = 0
        if backing is not None and guest_offset < backing.size:
            have = min(length, backing.size - guest_offset)
        data = backing.read_at(guest_offset, have) if have else b''
        return data + bytes(length - have)

    def _compressed(self, index, host, clen):
        cached_index, cached = self._last_cluster
        if cached_index == index:
            return cached
        cs = self.header.cluster_size
        size = self.file.size
        if host >= size:
            self._past_end('compressed cluster', host, clen)
        raw = self.file.read_at(host, min(clen, size - host, MAX_READ))
        if self.header.compression_type == COMPRESSION_ZSTD:
            data = _zstd_cluster(raw, cs)
        else:
            data = _deflate_cluster(raw, cs)
        self._last_cluster = (index, data)
        return data


def _deflate_cluster(raw, cluster_size):
    # Raw deflate (no zlib header); the output is capped at one cluster.
    try:
        data = zlib.decompressobj(-15).decompress(raw, cluster_size)
    except zlib.error as e:
        raise Corrupt('qcow2: compressed cluster does not inflate: %s' % e)
    if len(data) != cluster_size:
        raise Corrupt('qcow2: compressed cluster inflates to %d bytes, not '
                      'a cluster of %d' % (len(data), cluster_size))
    return data


def _zstd_cluster(raw, cluster_size):
    if zstandard is None:
        raise Unsupported('qcow2: zstd-compressed clusters need the Python '
                          'module zstandard, which is not installed')
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        data = reader.read(cluster_size)
    except zstandard.ZstdError as e:
        raise Corrupt('qcow2: compressed cluster does not decompress: %s'
                      % e)
    if len(data) != cluster_size:
        raise Corrupt('qcow2: compressed cluster decompresses to %d bytes, '
                      'not a cluster of %d' % (len(data), cluster_size))
    return data


def open_qcow2(source, backing=None):
    """The virtual disk of the qcow2 image in ``source``, as a Source.

    ``backing`` is the Source of the backing image the caller pinned (the
    virtual disk of the next qcow2 layer, or a raw disk), or None for no
    backing: unallocated clusters then read as zeros.  An image whose
    header names a backing file must be given one, and only such an
    image (else the chain pinned is not this image's).
    """
    data = source.read_at(0, min(source.size, 112))
    header = parse_header(data, source.size)
    if header.has_backing and backing is None:
        raise Unsupported('qcow2: %s has a backing file that was not given'
                          % source.name)
    if backing is not None and not header.has_backing:
        raise Unsupported('qcow2: %s has no backing file but was given one'
                          % source.name)
    image = Qcow2Source(source, header, backing)
    if image.depth > MAX_CHAIN_DEPTH:
        raise Unsupported('qcow2: backing chain deeper than %d images'
                          % MAX_CHAIN_DEPTH)
    return image


def open_chain(layers):
    """The virtual disk of a pinned chain: ``layers`` is a list of
    (format, Source) from the top image down to the base, formats as the
    caller pinned them ('qcow2' or 'raw'; a raw layer is the base)."""
    if not layers:
        raise ValueError('no layers')
    if len(layers) > MAX_CHAIN_DEPTH:
        raise Unsupported('qcow2: backing chain deeper than %d images'
                          % MAX_CHAIN_DEPTH)
    disk = None
    for i, (fmt, source) in enumerate(reversed(layers)):
        if fmt == 'raw' and i == 0:
            disk = source
        elif fmt == 'qcow2':
            disk = open_qcow2(source, disk)
        else:
            raise Unsupported('direct: a %s layer in a backing chain is not '
                              'read' % str(fmt)[:32])
    return disk
