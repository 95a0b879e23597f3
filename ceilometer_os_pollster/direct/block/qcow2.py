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
"""

import collections
import dataclasses
import struct
import zlib

from ceilometer_os_pollster.storage import qemu_nodes
from ceilometer_os_pollster.direct.errors import Corrupt
from ceilometer_os_pollster.direct.errors import TornRead
from ceilometer_os_pollster.direct.errors import Unsupported
from ceilometer_os_pollster.direct.block.source import MAX_READ
from ceilometer_os_pollster.direct.block.source import Source

try:                                        # optional: no new dependency
    import zstandard
except ImportError:                         # pragma: no cover - host dependent
    zstandard = None

MAGIC = b'QFI\xfb'

# Bytes 0-71: the version 2 header.
HEADER_V2 = struct.Struct(
    '>4s'   # magic
    'I'     # version
    'Q'     # backing_file_offset
    'I'     # backing_file_size
    'I'     # cluster_bits
    'Q'     # size (virtual)
    'I'     # crypt_method
    'I'     # l1_size
    'Q'     # l1_table_offset
    'Q'     # refcount_table_offset
    'I'     # refcount_table_clusters
    'I'     # nb_snapshots
    'Q')    # snapshots_offset
# Bytes 72-103: added by version 3.
HEADER_V3 = struct.Struct(
    '>Q'    # incompatible_features
    'Q'     # compatible_features
    'Q'     # autoclear_features
    'I'     # refcount_order
    'I')    # header_length
V3_HEADER_MIN = HEADER_V2.size + HEADER_V3.size          # 104
COMPRESSION_TYPE_OFFSET = 104

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
INCOMPAT_KNOWN = (INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE
                  | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2)

COMPRESSION_DEFLATE = 0
COMPRESSION_ZSTD = 1

L1E_OFFSET_MASK = 0x00fffffffffffe00
L2E_OFFSET_MASK = 0x00fffffffffffe00
L2E_COMPRESSED = 1 << 62
L2E_ZERO = 1 << 0

MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21                 # qemu's limit: 2 MiB clusters
MAX_L1_BYTES = 32 << 20               # qemu's limit on the L1 table
MAX_CHAIN_DEPTH = qemu_nodes.MAX_CHAIN + 1     # the top image + backings
# Memory kept for L1 pages and L2 tables of one image.
TABLE_CACHE_BYTES = 4 << 20
L1_PAGE = 4096


@dataclasses.dataclass(frozen=True)
class Header:
    version: int
    cluster_bits: int
    size: int
    l1_size: int
    l1_table_offset: int
    has_backing: bool
    incompatible: int = 0
    compression_type: int = COMPRESSION_DEFLATE

    @property
    def cluster_size(self):
        return 1 << self.cluster_bits

    @property
    def l2_entries(self):
        return self.cluster_size // 8


def parse_header(data, file_size):
    """The header from the first bytes of the image (pure).

    ``data`` is at least the first 112 bytes, or the whole file if it is
    shorter; ``file_size`` is the size of the image file.
    """
    if len(data) < HEADER_V2.size or data[:4] != MAGIC:
        raise Corrupt('qcow2: no qcow2 header')
    (_, version, backing_offset, _, cluster_bits, size, crypt, l1_size,
     l1_offset, _, _, _, _) = HEADER_V2.unpack_from(data)
    if version not in (2, 3):
        raise Unsupported('qcow2: version %d images are not read' % version)
    if crypt != 0:
        raise Unsupported('qcow2: encrypted images are not read')
    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise Corrupt('qcow2: cluster_bits %d is outside %d-%d'
                      % (cluster_bits, MIN_CLUSTER_BITS, MAX_CLUSTER_BITS))
    cluster_size = 1 << cluster_bits
    incompatible = 0
    compression = COMPRESSION_DEFLATE
    if version == 3:
        if len(data) < V3_HEADER_MIN:
            raise Corrupt('qcow2: truncated version 3 header')
        incompatible, _, _, _, header_length = HEADER_V3.unpack_from(
            data, HEADER_V2.size)
        if (header_length < V3_HEADER_MIN or header_length % 8
                or header_length > cluster_size):
            raise Corrupt('qcow2: header length %d is invalid'
                          % header_length)
        if incompatible & ~INCOMPAT_KNOWN:
            raise Unsupported('qcow2: unknown incompatible features %#x'
                              % (incompatible & ~INCOMPAT_KNOWN))
        if incompatible & INCOMPAT_DATA_FILE:
            raise Unsupported('qcow2: images with an external data file '
                              'are not read')
        if incompatible & INCOMPAT_EXTL2:
            raise Unsupported('qcow2: images with extended L2 entries '
                              '(subclusters) are not read')
        if header_length > COMPRESSION_TYPE_OFFSET:
            if len(data) <= COMPRESSION_TYPE_OFFSET:
                raise Corrupt('qcow2: truncated version 3 header')
            compression = data[COMPRESSION_TYPE_OFFSET]
        if bool(incompatible & INCOMPAT_COMPRESSION) != (compression != 0):
            raise Corrupt('qcow2: compression type %d disagrees with the '
                          'feature bits' % compression)
        if compression not in (COMPRESSION_DEFLATE, COMPRESSION_ZSTD):
            raise Unsupported('qcow2: compression type %d is not read'
                              % compression)
    l2_entries = cluster_size // 8
    needed = -(-size // (cluster_size * l2_entries))
    if l1_size * 8 > MAX_L1_BYTES:
        raise Corrupt('qcow2: L1 table of %d entries is larger than %d MiB'
                      % (l1_size, MAX_L1_BYTES >> 20))
    if l1_size < needed:
        raise Corrupt('qcow2: L1 table of %d entries does not cover a '
                      'virtual size of %d bytes' % (l1_size, size))
    if l1_size and (l1_offset % cluster_size
                    or l1_offset + l1_size * 8 > file_size
                    or l1_offset == 0):
        raise Corrupt('qcow2: L1 table at offset %d is unaligned or past '
                      'the end of the file (%d bytes)'
                      % (l1_offset, file_size))
    return Header(version=version, cluster_bits=cluster_bits, size=size,
                  l1_size=l1_size, l1_table_offset=l1_offset,
                  has_backing=backing_offset != 0,
                  incompatible=incompatible, compression_type=compression)


# What one guest cluster maps to (pure decoding of an L2 entry).
UNALLOCATED = 'unallocated'
ZERO = 'zero'
DATA = 'data'
COMPRESSED = 'compressed'


def decode_l2_entry(entry, header):
    """(kind, host offset, compressed length) for one L2 entry (pure)."""
    if entry & L2E_COMPRESSED:
        shift = 62 - (header.cluster_bits - 8)
        offset = entry & ((1 << shift) - 1)
        sectors = ((entry >> shift) & ((1 << (header.cluster_bits - 8)) - 1)
                   ) + 1
        return COMPRESSED, offset, sectors * 512 - (offset & 511)
    if entry & L2E_ZERO:
        if header.version < 3:
            raise Corrupt('qcow2: zero cluster in a version 2 image')
        return ZERO, 0, 0
    offset = entry & L2E_OFFSET_MASK
    if offset == 0:
        return UNALLOCATED, 0, 0
    if offset % header.cluster_size:
        raise Corrupt('qcow2: data cluster at unaligned offset %d' % offset)
    return DATA, offset, 0


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
