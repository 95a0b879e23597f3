"""btrfs on one device, read-only: what the direct method needs of it.

Owns the on-disk structures (the btrfs documentation's "On-disk format";
the names below are its names): the superblock and its mirrors, the
system chunk array and the chunk tree (logical to physical addresses),
B-trees of nodes and leaves, the root tree (subvolumes, their names and
parents, the ``default`` entry), and in a subvolume's tree the inodes,
directory entries (by name hash), inode refs and file extents (inline,
regular, preallocated, holes; zlib, zstd and lzo-compressed: LZO1X
decoded by our own pure-Python code).

``Filesystem(source)`` is the default subvolume's view: what the kernel
shows when the whole device is mounted.  Beside it, ``subvolumes()``,
``default_subvolume()``, ``subvolume(id)`` and ``subvolume_at(path)``
(a ``subvol=`` option) name and open the others.  A directory entry
naming a subvolume enters that subvolume's tree, as the kernel does.

Bounds, since every byte is the tenant's: one device only (single, DUP
and RAID1 chunks), tree depth <= 8, blocks visited per operation, items
per leaf by the node size, subvolumes, extents per file, decompressed
bytes per extent (128 KiB, btrfs' own maximum; zstd windows of 1 MiB)
and per read.  A tree block must name its own address, its level, its
filesystem and the generation its parent recorded (else the read is
torn: a live disk changed under us); a block met twice in one operation
is a loop.

Checksums: those of the superblock and of every tree block are verified
for crc32c (a table in pure Python: about 2 ms per 16 KiB block), sha256
and blake2b (hashlib); xxhash64 is recognised and not verified (the
structural checks above stand alone then).  A tree block failing its
checksum is a torn read; its DUP copy is tried first.  Data checksums
are not verified.  The log tree is not replayed (what was
fsync'd after the last commit is not seen).  Little-endian.

The parts, each owning its structures: ``layout`` (object ids and item
key types every tree shares), ``superblock`` (the superblock, its
mirrors and checksums), ``chunk_map`` (logical to physical addresses),
``tree`` (tree blocks, checked, and key searches), ``subvolumes`` (the
root tree: ``Volume``, subvolumes, directory entries by name hash),
``files`` (``Filesystem``: inodes, lookups, extents) and ``compressed``
(zlib, zstd, lzo and our LZO1X decoder).
"""

# What the rest of the reader stack and the tests use, from its parts.
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import BG_DATA
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import BG_DUP
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import \
    BG_METADATA
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import BG_RAID0
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import BG_RAID1
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import BG_RAID10
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import BG_RAID1C3
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import BG_RAID1C4
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import BG_RAID5
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import BG_RAID6
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import BG_SYSTEM
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import CHUNK
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import Chunk
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import ChunkMap
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import STRIPE
from ceilometer_os_pollster.direct.filesystem.btrfs.chunk_map import \
    parse_chunk
from ceilometer_os_pollster.direct.filesystem.btrfs.compressed import \
    COMPRESS_LZO
from ceilometer_os_pollster.direct.filesystem.btrfs.compressed import \
    COMPRESS_NONE
from ceilometer_os_pollster.direct.filesystem.btrfs.compressed import \
    COMPRESS_ZLIB
from ceilometer_os_pollster.direct.filesystem.btrfs.compressed import \
    COMPRESS_ZSTD
from ceilometer_os_pollster.direct.filesystem.btrfs.compressed import \
    decompress
from ceilometer_os_pollster.direct.filesystem.btrfs.compressed import \
    lzo1x_decompress
from ceilometer_os_pollster.direct.filesystem.btrfs.files import EXTENT_INLINE
from ceilometer_os_pollster.direct.filesystem.btrfs.files import \
    EXTENT_PREALLOC
from ceilometer_os_pollster.direct.filesystem.btrfs.files import EXTENT_REG
from ceilometer_os_pollster.direct.filesystem.btrfs.files import Filesystem
from ceilometer_os_pollster.direct.filesystem.btrfs.files import Inode
from ceilometer_os_pollster.direct.filesystem.btrfs.layout import CHUNK_ITEM
from ceilometer_os_pollster.direct.filesystem.btrfs.layout import DIR_INDEX
from ceilometer_os_pollster.direct.filesystem.btrfs.layout import DIR_ITEM
from ceilometer_os_pollster.direct.filesystem.btrfs.layout import EXTENT_DATA
from ceilometer_os_pollster.direct.filesystem.btrfs.layout import \
    FS_TREE_OBJECTID
from ceilometer_os_pollster.direct.filesystem.btrfs.layout import INODE_ITEM
from ceilometer_os_pollster.direct.filesystem.btrfs.layout import INODE_REF
from ceilometer_os_pollster.direct.filesystem.btrfs.layout import MAX_KEY
from ceilometer_os_pollster.direct.filesystem.btrfs.layout import ROOT_BACKREF
from ceilometer_os_pollster.direct.filesystem.btrfs.layout import ROOT_ITEM
from ceilometer_os_pollster.direct.filesystem.btrfs.layout import ROOT_REF
from ceilometer_os_pollster.direct.filesystem.btrfs.subvolumes import Subvolume
from ceilometer_os_pollster.direct.filesystem.btrfs.subvolumes import Volume
from ceilometer_os_pollster.direct.filesystem.btrfs.subvolumes import name_hash
from ceilometer_os_pollster.direct.filesystem.btrfs.subvolumes import \
    parse_dir_entries
from ceilometer_os_pollster.direct.filesystem.btrfs.superblock import \
    CSUM_BLAKE2
from ceilometer_os_pollster.direct.filesystem.btrfs.superblock import \
    CSUM_CRC32C
from ceilometer_os_pollster.direct.filesystem.btrfs.superblock import \
    CSUM_SHA256
from ceilometer_os_pollster.direct.filesystem.btrfs.superblock import \
    CSUM_XXHASH
from ceilometer_os_pollster.direct.filesystem.btrfs.superblock import \
    SUPER_OFFSETS
from ceilometer_os_pollster.direct.filesystem.btrfs.superblock import \
    SUPER_SIZE
from ceilometer_os_pollster.direct.filesystem.btrfs.superblock import \
    Superblock
from ceilometer_os_pollster.direct.filesystem.btrfs.superblock import probe
from ceilometer_os_pollster.direct.filesystem.btrfs.superblock import \
    read_superblock
from ceilometer_os_pollster.direct.filesystem.btrfs.tree import HEADER_SIZE
from ceilometer_os_pollster.direct.filesystem.btrfs.tree import ITEM
from ceilometer_os_pollster.direct.filesystem.btrfs.tree import KEY_PTR
from ceilometer_os_pollster.direct.filesystem.btrfs.tree import Node
from ceilometer_os_pollster.direct.filesystem.btrfs.tree import Root
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c

__all__ = [
    'BG_DATA', 'BG_DUP', 'BG_METADATA', 'BG_RAID0', 'BG_RAID1', 'BG_RAID10',
    'BG_RAID1C3', 'BG_RAID1C4', 'BG_RAID5', 'BG_RAID6', 'BG_SYSTEM', 'CHUNK',
    'Chunk', 'CHUNK_ITEM', 'ChunkMap', 'COMPRESS_LZO', 'COMPRESS_NONE',
    'COMPRESS_ZLIB', 'COMPRESS_ZSTD', 'crc32c', 'CSUM_BLAKE2', 'CSUM_CRC32C',
    'CSUM_SHA256', 'CSUM_XXHASH', 'decompress', 'DIR_INDEX', 'DIR_ITEM',
    'EXTENT_DATA', 'EXTENT_INLINE', 'EXTENT_PREALLOC', 'EXTENT_REG',
    'Filesystem', 'FS_TREE_OBJECTID', 'HEADER_SIZE', 'Inode', 'INODE_ITEM',
    'INODE_REF', 'ITEM', 'KEY_PTR', 'lzo1x_decompress', 'MAX_KEY', 'name_hash',
    'Node', 'parse_chunk', 'parse_dir_entries', 'probe', 'read_superblock',
    'Root', 'ROOT_BACKREF', 'ROOT_ITEM', 'ROOT_REF', 'STRIPE', 'Subvolume',
    'SUPER_OFFSETS', 'SUPER_SIZE', 'Superblock', 'Volume',
]
