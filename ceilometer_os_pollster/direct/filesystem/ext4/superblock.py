"""ext4's superblock and block groups: where the inodes are.

The superblock at byte 1024 (its fields checked against the device's
size; unknown and unread incompatible features refused), the group
descriptors (32- or 64-bit, meta_bg) that locate each group's inode
table, and their checksums: the superblock's crc32c and each
descriptor's (metadata_csum), or gdt_csum's crc16.  ``Groups`` is the
part of ``ext4.Filesystem`` that addresses blocks and inode tables.
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c_update
from ceilometer_os_pollster.direct.filesystem.crc32c import reflected_table

SUPERBLOCK_OFFSET = 1024
MAGIC = 0xEF53

# Incompatible features (s_feature_incompat).
INCOMPAT_COMPRESSION = 0x1
INCOMPAT_FILETYPE = 0x2
INCOMPAT_RECOVER = 0x4
INCOMPAT_JOURNAL_DEV = 0x8
INCOMPAT_META_BG = 0x10
INCOMPAT_EXTENTS = 0x40
INCOMPAT_64BIT = 0x80
INCOMPAT_MMP = 0x100
INCOMPAT_FLEX_BG = 0x200
INCOMPAT_EA_INODE = 0x400
INCOMPAT_DIRDATA = 0x1000
INCOMPAT_CSUM_SEED = 0x2000
INCOMPAT_LARGEDIR = 0x4000
INCOMPAT_INLINE_DATA = 0x8000
INCOMPAT_ENCRYPT = 0x10000
INCOMPAT_CASEFOLD = 0x20000
# Read as they are: they change nothing in how a file's bytes are found
# (RECOVER: the journal is not replayed, see the package docstring;
# ENCRYPT and CASEFOLD: refused per inode, where their flags are set).
KNOWN_INCOMPAT = (INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG
                  | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_MMP
                  | INCOMPAT_FLEX_BG | INCOMPAT_EA_INODE
                  | INCOMPAT_CSUM_SEED | INCOMPAT_LARGEDIR
                  | INCOMPAT_INLINE_DATA | INCOMPAT_ENCRYPT
                  | INCOMPAT_CASEFOLD)
RO_COMPAT_SPARSE_SUPER = 0x1
RO_COMPAT_GDT_CSUM = 0x10
RO_COMPAT_METADATA_CSUM = 0x400
CHECKSUM_TYPE_CRC32C = 1
SB_CHECKSUM = 0x3FC
GD_CHECKSUM = 0x1E


def probe(source):
    """True when ``source`` holds an ext2/3/4 superblock magic."""
    try:
        data = source.read_at(SUPERBLOCK_OFFSET + 0x38, 2)
    except errors.DirectError:
        return False
    return struct.unpack('<H', data)[0] == MAGIC


class Superblock:
    """The fields of the superblock this reader uses."""

    def __init__(self, raw, source_size):
        (self.inodes_count, blocks_lo) = struct.unpack_from('<II', raw, 0)
        (self.first_data_block, log_block_size) = struct.unpack_from(
            '<II', raw, 0x14)
        self.blocks_per_group = struct.unpack_from('<I', raw, 0x20)[0]
        self.inodes_per_group = struct.unpack_from('<I', raw, 0x28)[0]
        self.magic = struct.unpack_from('<H', raw, 0x38)[0]
        self.rev_level = struct.unpack_from('<I', raw, 0x4C)[0]
        inode_size = struct.unpack_from('<H', raw, 0x58)[0]
        (self.compat, self.incompat, self.ro_compat) = struct.unpack_from(
            '<III', raw, 0x5C)
        desc_size = struct.unpack_from('<H', raw, 0xFE)[0]
        self.first_meta_bg = struct.unpack_from('<I', raw, 0x104)[0]
        blocks_hi = struct.unpack_from('<I', raw, 0x150)[0]
        if self.magic != MAGIC:
            raise errors.Corrupt('ext4: bad superblock magic')
        self.uuid = bytes(raw[0x68:0x78])
        self.metadata_csum = bool(self.ro_compat & RO_COMPAT_METADATA_CSUM)
        self.gdt_csum = (not self.metadata_csum
                         and bool(self.ro_compat & RO_COMPAT_GDT_CSUM))
        self.csum_seed = None
        if self.metadata_csum:
            # Checked first: a superblock rewritten as we read it says
            # so here rather than as a nonsense field below.
            if raw[0x175] != CHECKSUM_TYPE_CRC32C:
                raise errors.Unsupported('ext4: metadata checksum type %d '
                                         'is not crc32c' % raw[0x175])
            stored = struct.unpack_from('<I', raw, SB_CHECKSUM)[0]
            if crc32c_update(0xFFFFFFFF, raw[:SB_CHECKSUM]) != stored:
                raise errors.TornRead('ext4: superblock checksum mismatch')
            if self.incompat & INCOMPAT_CSUM_SEED:
                self.csum_seed = struct.unpack_from('<I', raw, 0x270)[0]
            else:
                self.csum_seed = crc32c_update(0xFFFFFFFF, self.uuid)
        if log_block_size > 6:
            raise errors.Corrupt('ext4: block size 2^%d KiB is not valid'
                                 % log_block_size)
        self.block_size = 1024 << log_block_size
        self.is64 = bool(self.incompat & INCOMPAT_64BIT)
        self.blocks_count = blocks_lo | ((blocks_hi << 32) if self.is64
                                         else 0)
        self.inode_size = 128 if self.rev_level == 0 else inode_size
        if (self.inode_size < 128 or self.inode_size > self.block_size
                or self.inode_size & (self.inode_size - 1)):
            raise errors.Corrupt('ext4: inode size %d is not valid'
                                 % self.inode_size)
        if self.is64:
            if (desc_size < 64 or desc_size > 1024
                    or desc_size & (desc_size - 1)):
                raise errors.Corrupt('ext4: group descriptor size %d is '
                                     'not valid' % desc_size)
            self.desc_size = desc_size
        else:
            self.desc_size = 32
        if not self.blocks_per_group or not self.inodes_per_group:
            raise errors.Corrupt('ext4: empty block groups')
        if self.blocks_per_group > 8 * self.block_size:
            raise errors.Corrupt('ext4: %d blocks per group is more than '
                                 'a bitmap holds' % self.blocks_per_group)
        if self.inodes_per_group > 8 * self.block_size:
            raise errors.Corrupt('ext4: %d inodes per group is more than '
                                 'a bitmap holds' % self.inodes_per_group)
        if self.first_data_block >= max(self.blocks_count, 1):
            raise errors.Corrupt('ext4: first data block past the end')
        self.groups = -(-(self.blocks_count - self.first_data_block)
                        // self.blocks_per_group)
        if self.inodes_count > self.groups * self.inodes_per_group:
            raise errors.Corrupt('ext4: more inodes than its groups hold')
        if self.blocks_count * self.block_size > source_size:
            # A truncated image, or a partition smaller than its
            # filesystem: reads past the end would fail one by one.
            raise errors.Corrupt(
                'ext4: filesystem of %d blocks is larger than its device '
                '(%d bytes)' % (self.blocks_count, source_size))
        unknown = self.incompat & ~KNOWN_INCOMPAT
        if self.incompat & INCOMPAT_COMPRESSION:
            raise errors.Unsupported('ext4: compressed filesystems are '
                                     'not read')
        if self.incompat & INCOMPAT_JOURNAL_DEV:
            raise errors.Unsupported('ext4: an external journal device '
                                     'holds no files')
        if self.incompat & INCOMPAT_DIRDATA:
            raise errors.Unsupported('ext4: dirdata (Lustre) directories '
                                     'are not read')
        if unknown:
            raise errors.Unsupported('ext4: unknown incompatible features '
                                     '0x%x' % unknown)


class Groups:
    """Blocks and group descriptors (a part of ext4.Filesystem)."""

    def _block(self, number, what):
        if not 0 <= number < self.sb.blocks_count:
            raise errors.Corrupt('ext4: %s points at block %d, past the '
                                 'end of the filesystem' % (what, number))
        return self.source.read_at(number * self.block_size,
                                   self.block_size)

    def _has_super(self, group):
        if group == 0 or not self.sb.ro_compat & RO_COMPAT_SPARSE_SUPER:
            return True
        if group == 1:
            return True
        for base in (3, 5, 7):
            n = base
            while n < group:
                n *= base
            if n == group:
                return True
        return False

    def _descriptor_block(self, group):
        """The block holding group ``group``'s descriptor."""
        per_block = self.block_size // self.sb.desc_size
        meta_group = group // per_block
        first = self.sb.first_data_block + 1
        if (self.sb.incompat & INCOMPAT_META_BG
                and meta_group >= self.sb.first_meta_bg):
            # meta_bg: each meta group's descriptors sit in its first
            # group, after that group's superblock copy if it has one.
            lead = meta_group * per_block
            return (self.sb.first_data_block
                    + lead * self.sb.blocks_per_group
                    + (1 if self._has_super(lead) else 0))
        return first + meta_group

    def _inode_table(self, group):
        if group not in self._descriptors:
            per_block = self.block_size // self.sb.desc_size
            block = self._block(self._descriptor_block(group),
                                'group descriptor')
            offset = (group % per_block) * self.sb.desc_size
            self._check_descriptor(
                group, block[offset:offset + self.sb.desc_size])
            lo = struct.unpack_from('<I', block, offset + 8)[0]
            hi = (struct.unpack_from('<I', block, offset + 0x28)[0]
                  if self.sb.desc_size >= 64 else 0)
            self._descriptors[group] = lo | (hi << 32)
        return self._descriptors[group]

    def _check_descriptor(self, group, desc):
        if self.sb.metadata_csum:
            crc = crc32c_update(self.sb.csum_seed, struct.pack('<I', group))
            crc = crc32c_update(crc, _zeroed(desc, GD_CHECKSUM, 2)) & 0xFFFF
        elif self.sb.gdt_csum:
            crc = crc16(0xFFFF, self.sb.uuid)
            crc = crc16(crc, struct.pack('<I', group))
            crc = crc16(crc, desc[:GD_CHECKSUM])
            if self.sb.is64:
                crc = crc16(crc, desc[GD_CHECKSUM + 2:])
        else:
            return
        if struct.unpack_from('<H', desc, GD_CHECKSUM)[0] != crc:
            raise errors.TornRead('ext4: group descriptor %d checksum '
                                  'mismatch' % group)


def _zeroed(raw, offset, size):
    """``raw`` with its checksum field at ``offset`` zeroed."""
    return raw[:offset] + bytes(size) + raw[offset + size:]


_CRC16 = reflected_table(0xA001)


def crc16(crc, data):
    """The kernel's crc16 (reflected 0x8005, no inversion): gdt_csum."""
    for b in data:
        crc = _CRC16[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc
