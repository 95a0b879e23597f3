"""btrfs superblocks: the primary and its mirrors, validated, and the
checksums of superblocks and tree blocks (crc32c, sha256 and blake2b
verified; xxhash64 recognised, not verified).
"""

import hashlib
import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem.btrfs import layout
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c

MAGIC = b'_BHRfS_M'
SUPER_SIZE = 4096
# The primary superblock and its two mirrors (a third at 1 PiB is past
# any disk we read).
SUPER_OFFSETS = (64 << 10, 64 << 20, 256 << 30)
SYS_CHUNK_ARRAY_MAX = 2048

# Checksum types (btrfs_csum_type).
CSUM_CRC32C, CSUM_XXHASH, CSUM_SHA256, CSUM_BLAKE2 = 0, 1, 2, 3
CSUM_NAMES = {CSUM_CRC32C: 'crc32c', CSUM_XXHASH: 'xxhash64',
              CSUM_SHA256: 'sha256', CSUM_BLAKE2: 'blake2b'}

# Incompatible features.
INCOMPAT_MIXED_BACKREF = 1 << 0
INCOMPAT_DEFAULT_SUBVOL = 1 << 1
INCOMPAT_MIXED_GROUPS = 1 << 2
INCOMPAT_COMPRESS_LZO = 1 << 3
INCOMPAT_COMPRESS_ZSTD = 1 << 4
INCOMPAT_BIG_METADATA = 1 << 5
INCOMPAT_EXTENDED_IREF = 1 << 6
INCOMPAT_RAID56 = 1 << 7
INCOMPAT_SKINNY_METADATA = 1 << 8
INCOMPAT_NO_HOLES = 1 << 9
INCOMPAT_METADATA_UUID = 1 << 10
INCOMPAT_RAID1C34 = 1 << 11
INCOMPAT_ZONED = 1 << 12
INCOMPAT_EXTENT_TREE_V2 = 1 << 13
INCOMPAT_RAID_STRIPE_TREE = 1 << 14
INCOMPAT_SIMPLE_QUOTA = 1 << 16
# None of these changes how the trees we read are found or laid out
# (RAID56/RAID1C34 chunks are refused one by one, in chunk_map).
KNOWN_INCOMPAT = (INCOMPAT_MIXED_BACKREF | INCOMPAT_DEFAULT_SUBVOL
                  | INCOMPAT_MIXED_GROUPS | INCOMPAT_COMPRESS_LZO
                  | INCOMPAT_COMPRESS_ZSTD | INCOMPAT_BIG_METADATA
                  | INCOMPAT_EXTENDED_IREF | INCOMPAT_RAID56
                  | INCOMPAT_SKINNY_METADATA | INCOMPAT_NO_HOLES
                  | INCOMPAT_METADATA_UUID | INCOMPAT_RAID1C34
                  | INCOMPAT_SIMPLE_QUOTA)
_REFUSED_INCOMPAT = {
    INCOMPAT_ZONED: 'zoned btrfs (superblocks in zone logs)',
    INCOMPAT_EXTENT_TREE_V2: 'extent tree v2',
    INCOMPAT_RAID_STRIPE_TREE: 'the raid stripe tree',
}


def probe(source):
    """True when ``source`` holds the btrfs magic at 64 KiB + 0x40."""
    try:
        return source.read_at(SUPER_OFFSETS[0] + 0x40, 8) == MAGIC
    except errors.DirectError:
        return False


def _power_of_two(n, low, high):
    return low <= n <= high and not n & (n - 1)


class Superblock:
    """The fields of one superblock copy this reader uses (validated)."""

    def __init__(self, raw, offset, source_size):
        if raw[0x40:0x48] != MAGIC:
            raise errors.Corrupt('btrfs: no superblock magic at %d' % offset)
        self.offset = offset
        self.csum = raw[:32]
        self.fsid = raw[0x20:0x30]
        (self.bytenr, self.flags) = struct.unpack_from('<QQ', raw, 0x30)
        (self.generation, self.root, self.chunk_root, self.log_root,
         _, self.total_bytes, self.bytes_used, self.root_dir_objectid,
         self.num_devices, self.sectorsize, self.nodesize, _,
         self.stripesize, self.sys_chunk_array_size,
         self.chunk_root_generation, self.compat, self.compat_ro,
         self.incompat, self.csum_type, self.root_level,
         self.chunk_root_level, self.log_root_level) = struct.unpack_from(
            '<QQQQQQQQQIIIIIQQQQHBBB', raw, 0x48)
        (self.devid, self.dev_total_bytes) = struct.unpack_from(
            '<QQ', raw, 0xC9)
        self.dev_fsid = raw[0xC9 + 82:0xC9 + 98]
        self.label = raw[0x12B:0x22B].split(b'\0', 1)[0]
        self.metadata_uuid = raw[0x23B:0x24B]
        self.sys_chunk_array = raw[0x32B:0x32B + SYS_CHUNK_ARRAY_MAX]
        if self.csum_type not in CSUM_NAMES:
            raise errors.Unsupported('btrfs: unknown checksum type %d'
                                     % self.csum_type)
        if not csum_ok(raw, self.csum_type):
            raise errors.Corrupt('btrfs: superblock at %d fails its %s '
                                 'checksum' % (offset,
                                               CSUM_NAMES[self.csum_type]))
        if self.bytenr != offset:
            raise errors.Corrupt('btrfs: superblock at %d names offset %d'
                                 % (offset, self.bytenr))
        unknown = self.incompat & ~KNOWN_INCOMPAT
        for bit, what in _REFUSED_INCOMPAT.items():
            if unknown & bit:
                raise errors.Unsupported('btrfs: %s is not read' % what)
        if unknown:
            raise errors.Unsupported('btrfs: unknown incompatible features '
                                     '0x%x' % unknown)
        if not _power_of_two(self.sectorsize, 4096, 65536):
            raise errors.Corrupt('btrfs: sector size %d is not valid'
                                 % self.sectorsize)
        if (not _power_of_two(self.nodesize, 4096, 65536)
                or self.nodesize < self.sectorsize):
            raise errors.Corrupt('btrfs: node size %d is not valid'
                                 % self.nodesize)
        if self.sys_chunk_array_size > SYS_CHUNK_ARRAY_MAX:
            raise errors.Corrupt('btrfs: system chunk array of %d bytes'
                                 % self.sys_chunk_array_size)
        if (self.root_level >= layout.MAX_LEVEL
                or self.chunk_root_level >= layout.MAX_LEVEL):
            raise errors.Corrupt('btrfs: tree root level past %d'
                                 % (layout.MAX_LEVEL - 1))
        if self.num_devices != 1:
            if self.num_devices == 0:
                raise errors.Corrupt('btrfs: no devices')
            raise errors.Unsupported('btrfs: multi-device btrfs (%d devices)'
                                     ' is read by the appliance'
                                     % self.num_devices)
        if self.dev_total_bytes > source_size:
            raise errors.Corrupt(
                'btrfs: device of %d bytes is larger than its volume (%d '
                'bytes)' % (self.dev_total_bytes, source_size))
        # Tree blocks carry the metadata uuid when it differs.
        self.tree_fsid = (self.metadata_uuid
                          if self.incompat & INCOMPAT_METADATA_UUID
                          else self.fsid)


def csum_ok(raw, csum_type):
    """False when the checksum of a superblock or tree block (over its
    bytes from 32 on) is one we compute and does not match."""
    body = raw[32:]
    if csum_type == CSUM_CRC32C:
        return struct.unpack_from('<I', raw, 0)[0] == crc32c(body)
    if csum_type == CSUM_SHA256:
        return raw[:32] == hashlib.sha256(body).digest()
    if csum_type == CSUM_BLAKE2:
        return raw[:32] == hashlib.blake2b(body, digest_size=32).digest()
    return True                 # xxhash64: not in the standard library


def read_superblock(source):
    """The newest valid superblock copy on ``source`` (primary and the
    mirrors that fit): a mirror must carry the primary's fsid when the
    primary is valid; when none is valid the primary's error is raised.
    """
    primary_error = None
    best = None
    for offset in SUPER_OFFSETS:
        if offset + SUPER_SIZE > source.size:
            if offset == SUPER_OFFSETS[0]:
                raise errors.Corrupt('btrfs: volume too small for a '
                                     'superblock')
            break
        try:
            raw = source.read_at(offset, SUPER_SIZE)
            if offset != SUPER_OFFSETS[0] and raw[0x40:0x48] != MAGIC:
                continue
            sb = Superblock(raw, offset, source.size)
        except (errors.Corrupt, errors.Unsupported) as e:
            if offset == SUPER_OFFSETS[0]:
                if isinstance(e, errors.Unsupported):
                    raise
                primary_error = e
            continue
        if best is None:
            best = sb
        elif (primary_error is not None or sb.fsid == best.fsid) and (
                sb.generation > best.generation):
            best = sb
    if best is None:
        raise primary_error
    return best
