"""XFS's superblock and block addresses.

The primary superblock (v4 or v5; on v5 its checksum, over its whole
sector, is verified first), its geometry checked against the device's
size, unknown incompatible features refused; the crc32c convention of
every v5 structure (``crc_ok``); and ``Blocks``, the part of
``xfs.Filesystem`` that turns a filesystem block number (allocation
group, block) into a checked linear block.
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c

MAGIC = b'XFSB'

VERSION_DIRV2 = 0x2000
VERSION_MOREBITS = 0x8000
FEATURES2_FTYPE = 0x200
INCOMPAT_FTYPE = 0x1
INCOMPAT_SPINODES = 0x2
INCOMPAT_META_UUID = 0x4
INCOMPAT_BIGTIME = 0x8
INCOMPAT_NEEDSREPAIR = 0x10
INCOMPAT_NREXT64 = 0x20
INCOMPAT_EXCHRANGE = 0x40
INCOMPAT_PARENT = 0x80
# None of these changes where a file's bytes or a directory's entries
# are (NREXT64 moves the extent count: the inode reader reads it).
KNOWN_INCOMPAT = (INCOMPAT_FTYPE | INCOMPAT_SPINODES | INCOMPAT_META_UUID
                  | INCOMPAT_BIGTIME | INCOMPAT_NEEDSREPAIR
                  | INCOMPAT_NREXT64 | INCOMPAT_EXCHRANGE | INCOMPAT_PARENT)

# Where each v5 structure keeps its crc32c.
SB_CRC = 224
MAX_SECTOR = 32768


def crc_ok(buffer, offset):
    """XFS's convention: standard crc32c of ``buffer`` with its crc
    field zeroed, stored little-endian at ``offset``."""
    if offset + 4 > len(buffer):
        return False
    stored = struct.unpack_from('<I', buffer, offset)[0]
    return crc32c(bytes(buffer[:offset]) + bytes(4)
                  + bytes(buffer[offset + 4:])) == stored


def probe(source):
    """True when ``source`` starts with an XFS superblock magic."""
    try:
        return source.read_at(0, 4) == MAGIC
    except errors.DirectError:
        return False


class Superblock:
    """The fields of the primary superblock this reader uses."""

    def __init__(self, raw, source_size):
        if raw[:4] != MAGIC:
            raise errors.Corrupt('xfs: bad superblock magic')
        if (struct.unpack_from('>H', raw, 100)[0] & 0xF == 5
                and not crc_ok(raw, SB_CRC)):
            # Checked first: a superblock rewritten as we read it says
            # so here rather than as a nonsense field below.
            raise errors.TornRead('xfs: superblock checksum mismatch')
        (self.block_size, self.dblocks) = struct.unpack_from('>IQ', raw, 4)
        self.rootino = struct.unpack_from('>Q', raw, 56)[0]
        (self.agblocks, self.agcount) = struct.unpack_from('>II', raw, 84)
        (self.versionnum, self.sectsize, self.inode_size,
         self.inopblock) = struct.unpack_from('>HHHH', raw, 100)
        (self.blocklog, self.sectlog, self.inodelog, self.inopblog,
         self.agblklog) = struct.unpack_from('>BBBBB', raw, 120)
        self.dirblklog = raw[192]
        self.features2 = struct.unpack_from('>I', raw, 200)[0]
        self.incompat = struct.unpack_from('>I', raw, 216)[0]
        self.version = self.versionnum & 0xF
        if self.version not in (4, 5):
            raise errors.Unsupported('xfs: superblock version %d is not '
                                     'read' % self.version)
        self.crc = self.version == 5
        if not 9 <= self.blocklog <= 16 or (
                self.block_size != 1 << self.blocklog):
            raise errors.Corrupt('xfs: block size %d is not valid'
                                 % self.block_size)
        if not 8 <= self.inodelog <= 11 or (
                self.inode_size != 1 << self.inodelog
                or self.inode_size > self.block_size
                or self.inopblog != self.blocklog - self.inodelog
                or self.inopblock != 1 << self.inopblog):
            raise errors.Corrupt('xfs: inode size %d is not valid'
                                 % self.inode_size)
        if self.crc and self.inode_size < 512:
            raise errors.Corrupt('xfs: v5 inodes smaller than 512 bytes')
        if (not self.agblocks or not self.agcount or self.agblklog > 31
                or (1 << self.agblklog) < self.agblocks
                or (self.agblklog and (1 << (self.agblklog - 1))
                    >= self.agblocks)):
            raise errors.Corrupt('xfs: allocation group geometry is not '
                                 'valid')
        if self.dblocks > self.agcount * self.agblocks:
            raise errors.Corrupt('xfs: more blocks than its groups hold')
        if self.dblocks * self.block_size > source_size:
            raise errors.Corrupt(
                'xfs: filesystem of %d blocks is larger than its device '
                '(%d bytes)' % (self.dblocks, source_size))
        if self.blocklog + self.dirblklog > 16:
            raise errors.Corrupt('xfs: directory block size is not valid')
        if self.crc:
            unknown = self.incompat & ~KNOWN_INCOMPAT
            if unknown:
                raise errors.Unsupported('xfs: unknown incompatible '
                                         'features 0x%x' % unknown)
            self.ftype = bool(self.incompat & INCOMPAT_FTYPE)
        else:
            if not self.versionnum & VERSION_DIRV2:
                raise errors.Unsupported('xfs: version 1 directories are '
                                         'not read')
            self.ftype = bool(self.versionnum & VERSION_MOREBITS
                              and self.features2 & FEATURES2_FTYPE)
        self.dir_block_size = self.block_size << self.dirblklog


class Blocks:
    """Block addresses (a part of xfs.Filesystem)."""

    def _daddr(self, fsbno, what):
        """A filesystem block number (AG << agblklog | block) as a
        linear block number, checked."""
        agno = fsbno >> self.sb.agblklog
        agbno = fsbno & ((1 << self.sb.agblklog) - 1)
        if agno >= self.sb.agcount or agbno >= self.sb.agblocks:
            raise errors.Corrupt('xfs: %s points at block 0x%x, outside the '
                                 'filesystem' % (what, fsbno))
        block = agno * self.sb.agblocks + agbno
        if block >= self.sb.dblocks:
            raise errors.Corrupt('xfs: %s points at block 0x%x, past the '
                                 'end of the filesystem' % (what, fsbno))
        return block

    def _linear(self, fsbno, count, what):
        """The linear block of an extent, which must end in its AG."""
        block = self._daddr(fsbno, what)
        agbno = fsbno & ((1 << self.sb.agblklog) - 1)
        if count and (agbno + count > self.sb.agblocks
                      or block + count > self.sb.dblocks):
            raise errors.Corrupt('xfs: %s has an extent running past its '
                                 'allocation group' % what)
        return block

    def _block(self, fsbno, what):
        return self.source.read_at(self._daddr(fsbno, what)
                                   * self.block_size, self.block_size)


def _superblock_sector(source):
    """The primary superblock's sector: all of it on v5, since its
    checksum covers the sector (512 to 32768 bytes)."""
    raw = source.read_at(0, 512)
    if raw[:4] != MAGIC or struct.unpack_from('>H', raw, 100)[0] & 0xF != 5:
        return raw
    sectsize = struct.unpack_from('>H', raw, 102)[0]
    if not 512 <= sectsize <= MAX_SECTOR or sectsize & (sectsize - 1):
        raise errors.Corrupt('xfs: sector size %d is not valid' % sectsize)
    if sectsize == 512:
        return raw
    return source.read_at(0, sectsize)
