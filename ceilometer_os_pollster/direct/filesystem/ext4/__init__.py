"""ext2, ext3 and ext4, read-only: what the direct method needs of them.

Owns the on-disk structures (Linux ``Documentation/filesystems/ext4/``):
the superblock at byte 1024, group descriptors (32- or 64-bit, meta_bg),
inodes, extent trees, ext2/3 indirect blocks, inline data, linear and
htree directories (an htree's blocks are valid linear blocks: scanning
them all is a correct lookup), fast and slow symlinks.  Every number
read is checked against the filesystem's size before it is followed,
trees are depth- and count-bounded and never visit a block twice;
features that change how data is found and that we do not read
(compression, encryption, case-folding, Lustre's dirdata, unknown ones)
are refused as Unsupported.

The journal is not replayed: a live or uncleanly stopped guest's disk is
read as it is, and an entry naming a free inode, or an inode of another
type than the entry says, is a TornRead.

Checksums (metadata_csum, crc32c): those of the superblock, the group
descriptors read, every inode read, extent tree blocks and directory
blocks (leaf tails and htree node tails) are verified; a mismatch is a
TornRead naming the structure.  Without metadata_csum, gdt_csum's crc16
of a group descriptor is verified; ext2/3 without either have none.
Bitmaps, the journal and extended attribute blocks are not read, so
their checksums are not verified.

The reader is one ``Filesystem`` made of three parts, a module each:
``superblock`` (the superblock, block groups and their checksums),
``inodes`` (inodes, extent trees and block maps, inline data, symlinks)
and ``directories`` (linear, htree and inline directories, lookups).
"""

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.filesystem.ext4 import directories
from ceilometer_os_pollster.direct.filesystem.ext4 import inodes
from ceilometer_os_pollster.direct.filesystem.ext4 import superblock
from ceilometer_os_pollster.direct.filesystem.ext4.inodes import FLAG_ENCRYPT
from ceilometer_os_pollster.direct.filesystem.ext4.inodes import FLAG_EXTENTS
from ceilometer_os_pollster.direct.filesystem.ext4.inodes import (
    FLAG_INLINE_DATA)
from ceilometer_os_pollster.direct.filesystem.ext4.inodes import Inode
from ceilometer_os_pollster.direct.filesystem.ext4.superblock import (
    INCOMPAT_FILETYPE)
from ceilometer_os_pollster.direct.filesystem.ext4.superblock import (
    INCOMPAT_META_BG)
from ceilometer_os_pollster.direct.filesystem.ext4.superblock import (
    SUPERBLOCK_OFFSET)
from ceilometer_os_pollster.direct.filesystem.ext4.superblock import (
    Superblock)
from ceilometer_os_pollster.direct.filesystem.ext4.superblock import probe

__all__ = ['FLAG_ENCRYPT', 'FLAG_EXTENTS', 'FLAG_INLINE_DATA',
           'INCOMPAT_META_BG', 'Filesystem', 'Inode', 'Superblock', 'probe']

ROOT_INO = 2


class Filesystem(superblock.Groups, inodes.Inodes,
                 directories.Directories, fs_mod.Filesystem):
    """An ext2/3/4 filesystem on a Source (the partition or LV)."""

    kind = 'ext4'

    def __init__(self, source, budget=None):
        self.source = source
        self.budget = budget
        raw = source.read_at(SUPERBLOCK_OFFSET, 1024)
        self.sb = Superblock(raw, source.size)
        self.block_size = self.sb.block_size
        self._descriptors = {}
        self._dirs = {}
        self._file_types = bool(self.sb.incompat & INCOMPAT_FILETYPE)
        self.root = self.inode(ROOT_INO)
        if self.root.kind != fs_mod.DIRECTORY:
            raise errors.Corrupt('ext4: the root inode is not a directory')

    def key(self, inode):
        return inode.ino
