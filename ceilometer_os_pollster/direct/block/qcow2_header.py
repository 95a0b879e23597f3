"""The qcow2 format's header and L2 entries, decoded (pure).

QEMU's docs/interop/qcow2.rst: the header (v2 and v3) checked against
the size of the image file (``parse_header``: encryption, external data
files, extended L2 entries and unknown incompatible features refused
with a reason), and what one L2 entry maps a guest cluster to
(``decode_l2_entry``).  ``qcow2`` reads images with them.
"""

import dataclasses
import struct

from ceilometer_os_pollster.direct.errors import Corrupt
from ceilometer_os_pollster.direct.errors import Unsupported

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
