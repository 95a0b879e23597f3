"""XFS, v4 and v5 (CRC), read-only: what the direct method needs of it.

Owns the on-disk structures ("XFS Algorithms & Data Structures"): the
superblock of allocation group 0, inode numbers (AG, block, slot),
dinodes v1/v2/v3, data forks in local, extent-list and B+tree (bmbt)
form, directories in short, block, leaf and node form, and local and
remote symlinks.  Directory lookups scan the data blocks (the logical
range below XFS_DIR2_LEAF_OFFSET) and ignore the hash structures above
it: slower than the hash, as correct.  Every number read is checked
against the filesystem's geometry before it is followed; trees are
depth- and count-bounded and never visit a block twice.  On v5 (CRC)
filesystems the checksums of the superblock, every inode read, the
data fork's B+tree blocks, directory data blocks and remote symlink
blocks are verified (crc32c, standard convention, stored little-endian
over the structure with its crc field zeroed); v3 inodes and B+tree
blocks must also name their owner, and a directory entry its inode's
type.  Any of these failing is a torn read (a live disk changed under
us).  The AG headers, free-space and inode B+trees, attribute forks and
directory hash blocks are not read, so not verified; v4 has no
checksums.

Everything on disk is big-endian.  The log is not replayed.

The reader is one ``Filesystem`` made of three parts, a module each:
``superblock`` (the superblock, block addresses, the v5 checksum
convention), ``inodes`` (dinodes, data forks and B+trees, file data,
symlinks) and ``directories`` (the four directory forms, lookups).
"""

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.filesystem.xfs import directories
from ceilometer_os_pollster.direct.filesystem.xfs import inodes
from ceilometer_os_pollster.direct.filesystem.xfs import superblock
from ceilometer_os_pollster.direct.filesystem.xfs.directories import (
    DIR2_LEAF_OFFSET)
from ceilometer_os_pollster.direct.filesystem.xfs.directories import (
    DIR3_CRC)
from ceilometer_os_pollster.direct.filesystem.xfs.inodes import FMT_BTREE
from ceilometer_os_pollster.direct.filesystem.xfs.inodes import FMT_EXTENTS
from ceilometer_os_pollster.direct.filesystem.xfs.inodes import FMT_LOCAL
from ceilometer_os_pollster.direct.filesystem.xfs.inodes import INODE_CRC
from ceilometer_os_pollster.direct.filesystem.xfs.inodes import Inode
from ceilometer_os_pollster.direct.filesystem.xfs.superblock import SB_CRC
from ceilometer_os_pollster.direct.filesystem.xfs.superblock import (
    Superblock)
from ceilometer_os_pollster.direct.filesystem.xfs.superblock import (
    _superblock_sector)
from ceilometer_os_pollster.direct.filesystem.xfs.superblock import probe

__all__ = ['DIR2_LEAF_OFFSET', 'DIR3_CRC', 'FMT_BTREE', 'FMT_EXTENTS',
           'FMT_LOCAL', 'INODE_CRC', 'SB_CRC', 'Filesystem', 'Inode',
           'Superblock', 'probe']


class Filesystem(superblock.Blocks, inodes.Inodes,
                 directories.Directories, fs_mod.Filesystem):
    """An XFS filesystem on a Source (the partition or LV)."""

    kind = 'xfs'

    def __init__(self, source, budget=None):
        self.source = source
        self.budget = budget
        self.sb = Superblock(_superblock_sector(source), source.size)
        self.block_size = self.sb.block_size
        self._dirs = {}
        self.root = self.inode(self.sb.rootino)
        if self.root.kind != fs_mod.DIRECTORY:
            raise errors.Corrupt('xfs: the root inode is not a directory')

    def key(self, inode):
        return inode.ino
