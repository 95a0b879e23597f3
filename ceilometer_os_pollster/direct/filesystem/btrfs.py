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
"""

import bisect
import hashlib
import struct
import zlib

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.block import source as source_mod
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c_update

try:                                        # see pyproject.toml
    import zstandard
except ImportError:                         # pragma: no cover - host dependent
    zstandard = None

MAGIC = b'_BHRfS_M'
SUPER_SIZE = 4096
# The primary superblock and its two mirrors (a third at 1 PiB is past
# any disk we read).
SUPER_OFFSETS = (64 << 10, 64 << 20, 256 << 30)
SYS_CHUNK_ARRAY_MAX = 2048

# Bounds a hostile filesystem can reach.
MAX_LEVEL = 8                   # BTRFS_MAX_LEVEL: levels 0..7
MAX_BLOCKS_PER_OP = 4096        # tree blocks visited in one search
CACHE_BYTES = 4 << 20           # parsed tree blocks kept
MAX_CHUNKS = 16384
MAX_SUBVOLUMES = 4096
MAX_SUBVOLUME_DEPTH = 64        # subvolumes nested in subvolumes
MAX_PATH_COMPONENTS = 256       # directories from a subvolume to its root
MAX_NAME_LOOKUPS = 65536        # INODE_REFs read to name all subvolumes
MAX_EXTENTS = 65536             # extent items of one file read
MAX_DIR_ENTRIES = 100000
MAX_COMPRESSED_EXTENT = 128 << 10       # BTRFS_MAX_UNCOMPRESSED
MAX_DECOMPRESSED_PER_READ = 64 << 20
MAX_SYMLINK = 4095

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
# (RAID56/RAID1C34 chunks are refused one by one, below).
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

# Object ids.
ROOT_TREE_OBJECTID = 1
CHUNK_TREE_OBJECTID = 3
FS_TREE_OBJECTID = 5
ROOT_TREE_DIR_OBJECTID = 6
FIRST_FREE_OBJECTID = 256
LAST_FREE_OBJECTID = (1 << 64) - 256
FIRST_CHUNK_TREE_OBJECTID = 256
MAX_KEY = (1 << 64) - 1

# Key types.
INODE_ITEM = 1
INODE_REF = 12
DIR_ITEM = 84
DIR_INDEX = 96
EXTENT_DATA = 108
ROOT_ITEM = 132
ROOT_BACKREF = 144
ROOT_REF = 156
CHUNK_ITEM = 228

# Block group (chunk) types and profiles.
BG_DATA, BG_SYSTEM, BG_METADATA = 1, 2, 4
BG_RAID0, BG_RAID1, BG_DUP, BG_RAID10 = 8, 16, 32, 64
BG_RAID5, BG_RAID6, BG_RAID1C3, BG_RAID1C4 = 128, 256, 512, 1024
_REFUSED_PROFILES = ((BG_RAID0, 'RAID0'), (BG_RAID10, 'RAID10'),
                     (BG_RAID5, 'RAID5'), (BG_RAID6, 'RAID6'),
                     (BG_RAID1C3, 'RAID1C3'), (BG_RAID1C4, 'RAID1C4'))

# File extents.
EXTENT_INLINE, EXTENT_REG, EXTENT_PREALLOC = 0, 1, 2
COMPRESS_NONE, COMPRESS_ZLIB, COMPRESS_LZO, COMPRESS_ZSTD = 0, 1, 2, 3

ROOT_SUBVOL_RDONLY = 1

HEADER = struct.Struct('<32s16sQQ16sQQIB')      # 101 bytes
HEADER_SIZE = HEADER.size
ITEM = struct.Struct('<QBQII')                  # key, offset, size: 25
KEY_PTR = struct.Struct('<QBQQQ')               # key, blockptr, gen: 33
KEY = struct.Struct('<QBQ')
CHUNK = struct.Struct('<QQQQIIIHH')             # 48 bytes
STRIPE = struct.Struct('<QQ16s')                # 32 bytes
INODE = struct.Struct('<QQQQQIIIIQQ')           # first 80 of 160 bytes
INODE_SIZE = 160
ROOT_ITEM_MIN = 239
DIR_ENTRY = struct.Struct('<QBQQHHB')           # 30 bytes, then name
FILE_EXTENT = struct.Struct('<QQBBHB')          # 21 bytes
FILE_EXTENT_REG = struct.Struct('<QQQQ')        # 32 more


def name_hash(name):
    """btrfs_name_hash: the key offset of a DIR_ITEM."""
    return crc32c_update(0xFFFFFFFE, name)


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
        if self.root_level >= MAX_LEVEL or self.chunk_root_level >= MAX_LEVEL:
            raise errors.Corrupt('btrfs: tree root level past %d'
                                 % (MAX_LEVEL - 1))
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


class Chunk:
    """One chunk: ``length`` bytes at ``logical`` stored at ``physical``
    of this device (the first of its copies here)."""

    __slots__ = ('logical', 'length', 'physical', 'type', 'copies')

    def __init__(self, logical, length, physical, type_, copies):
        self.logical = logical
        self.length = length
        self.physical = physical
        self.type = type_
        self.copies = copies


def parse_chunk(logical, data, sb, source_size):
    """A Chunk from a CHUNK_ITEM's bytes; (Chunk, bytes used)."""
    if len(data) < CHUNK.size:
        raise errors.Corrupt('btrfs: chunk item at %d is truncated'
                             % logical)
    (length, _, _, type_, _, _, _, num_stripes,
     _) = CHUNK.unpack_from(data, 0)
    used = CHUNK.size + STRIPE.size * num_stripes
    if num_stripes == 0 or used > len(data):
        raise errors.Corrupt('btrfs: chunk at %d has %d stripes'
                             % (logical, num_stripes))
    if length == 0 or length % sb.sectorsize or logical % sb.sectorsize:
        raise errors.Corrupt('btrfs: chunk at %d of %d bytes is not '
                             'aligned' % (logical, length))
    if logical + length > MAX_KEY:
        raise errors.Corrupt('btrfs: chunk at %d wraps' % logical)
    for bit, name in _REFUSED_PROFILES:
        if type_ & bit:
            raise errors.Unsupported('btrfs: %s chunks are read by the '
                                     'appliance' % name)
    copies = []
    for i in range(num_stripes):
        devid, offset, _ = STRIPE.unpack_from(data, CHUNK.size
                                              + STRIPE.size * i)
        if devid != sb.devid:
            raise errors.Unsupported('btrfs: chunk at %d has a stripe on '
                                     'device %d (multi-device btrfs)'
                                     % (logical, devid))
        if offset + length > source_size:
            raise errors.Corrupt('btrfs: chunk at %d is stored past the '
                                 'end of the device' % logical)
        copies.append(offset)
    if num_stripes > 1 and not type_ & (BG_DUP | BG_RAID1):
        raise errors.Corrupt('btrfs: single chunk at %d with %d stripes'
                             % (logical, num_stripes))
    return Chunk(logical, length, copies[0], type_, tuple(copies)), used


class ChunkMap:
    """Logical to physical addresses: sorted, non-overlapping chunks."""

    def __init__(self, chunks):
        chunks = sorted(chunks, key=lambda c: c.logical)
        merged = []
        for chunk in chunks:
            if merged and merged[-1].logical + merged[-1].length \
                    > chunk.logical:
                last = merged[-1]
                if (last.logical, last.length, last.physical) == (
                        chunk.logical, chunk.length, chunk.physical):
                    continue            # the sys array's copy again
                raise errors.Corrupt('btrfs: chunks at %d and %d overlap'
                                     % (last.logical, chunk.logical))
            merged.append(chunk)
        spans = sorted((p, c.length) for c in merged for p in c.copies)
        for (p1, l1), (p2, _) in zip(spans, spans[1:]):
            if p1 + l1 > p2:
                raise errors.Corrupt('btrfs: two chunks are stored at '
                                     'device offset %d' % p2)
        self.chunks = merged
        self._starts = [c.logical for c in merged]

    def find(self, logical):
        i = bisect.bisect_right(self._starts, logical) - 1
        if i >= 0:
            chunk = self.chunks[i]
            if logical < chunk.logical + chunk.length:
                return chunk
        return None

    def physical(self, logical, length, what, copy=0):
        """[(physical, length)] of a logical range, checked: the
        ``copy``-th copy of DUP/RAID1 chunks (the last one if fewer)."""
        out = []
        while length > 0:
            chunk = self.find(logical)
            if chunk is None:
                raise errors.Corrupt('btrfs: %s at logical %d is in no '
                                     'chunk' % (what, logical))
            inner = logical - chunk.logical
            n = min(length, chunk.length - inner)
            base = chunk.copies[min(copy, len(chunk.copies) - 1)]
            out.append((base + inner, n))
            logical += n
            length -= n
        return out


class Node:
    """A parsed tree block: a leaf's items or a node's key pointers."""

    __slots__ = ('bytenr', 'level', 'generation', 'owner', 'keys', 'refs',
                 'raw')


class Root:
    """A tree's root: where its top block is, and for subvolumes the
    fields of its ROOT_ITEM."""

    __slots__ = ('tree', 'bytenr', 'level', 'generation', 'root_dirid',
                 'flags', 'refs', 'key_offset', 'uuid', 'parent_uuid')


class Inode:
    """An inode of one subvolume tree (``tree`` is the subvolume id)."""

    __slots__ = ('tree', 'ino', 'mode', 'size', 'flags', 'nlink')

    @property
    def kind(self):
        return fs_mod.kind_of_mode(self.mode)

    def __repr__(self):
        return '<btrfs inode %d:%d>' % (self.tree, self.ino)


class Subvolume:
    """One entry of ``Volume.subvolumes()``."""

    __slots__ = ('id', 'path', 'parent', 'snapshot', 'readonly', 'uuid',
                 'parent_uuid')

    def __init__(self, id_, path, parent, snapshot, readonly, uuid,
                 parent_uuid):
        self.id = id_
        self.path = path
        self.parent = parent
        self.snapshot = snapshot
        self.readonly = readonly
        self.uuid = uuid
        self.parent_uuid = parent_uuid

    def __iter__(self):         # (id, path, parent, snapshot)
        return iter((self.id, self.path, self.parent, self.snapshot))

    def __repr__(self):
        return '<btrfs subvolume %d %r parent %d%s>' % (
            self.id, self.path, self.parent,
            ' snapshot' if self.snapshot else '')


class _Op:
    """One search: the blocks it may visit, each at most once."""

    __slots__ = ('seen', 'what')

    def __init__(self, what):
        self.seen = set()
        self.what = what


class Volume:
    """The trees of one btrfs device: shared by its subvolume views."""

    def __init__(self, source, budget=None):
        self.source = source
        self.budget = budget
        self.sb = read_superblock(source)
        self._cache = {}
        self._roots = {}
        self._decompressed = (None, None)
        self._lookups = 0
        self.chunks = self._read_chunks()
        self.root_tree = Root()
        self.root_tree.tree = ROOT_TREE_OBJECTID
        self.root_tree.bytenr = self.sb.root
        self.root_tree.level = self.sb.root_level
        self.root_tree.generation = self.sb.generation

    # ------------------------------------------------------------ chunks

    def _read_chunks(self):
        sb = self.sb
        array = sb.sys_chunk_array[:sb.sys_chunk_array_size]
        chunks = []
        pos = 0
        while pos < len(array):
            if pos + KEY.size > len(array):
                raise errors.Corrupt('btrfs: system chunk array is '
                                     'truncated')
            objectid, type_, offset = KEY.unpack_from(array, pos)
            if type_ != CHUNK_ITEM:
                raise errors.Corrupt('btrfs: system chunk array holds an '
                                     'item of type %d' % type_)
            chunk, used = parse_chunk(offset, array[pos + KEY.size:], sb,
                                      self.source.size)
            chunks.append(chunk)
            pos += KEY.size + used
        if not chunks:
            raise errors.Corrupt('btrfs: empty system chunk array')
        self.chunks = ChunkMap(chunks)
        chunk_root = Root()
        chunk_root.tree = CHUNK_TREE_OBJECTID
        chunk_root.bytenr = sb.chunk_root
        chunk_root.level = sb.chunk_root_level
        chunk_root.generation = sb.chunk_root_generation
        low = (FIRST_CHUNK_TREE_OBJECTID, CHUNK_ITEM, 0)
        high = (FIRST_CHUNK_TREE_OBJECTID, CHUNK_ITEM, MAX_KEY)
        for key, data in self.items(chunk_root, low, high, 'chunk tree'):
            if len(chunks) >= MAX_CHUNKS:
                raise errors.LimitReached('btrfs: more than %d chunks'
                                          % MAX_CHUNKS)
            chunks.append(parse_chunk(key[2], data, sb,
                                      self.source.size)[0])
        return ChunkMap(chunks)

    def read_logical(self, logical, length, what, copy=0):
        """``length`` bytes at a logical address (<= MAX_READ)."""
        if length > source_mod.MAX_READ:
            raise errors.LimitReached('btrfs: %s of %d bytes is more than '
                                      'one read' % (what, length))
        parts = [self.source.read_at(p, n)
                 for p, n in self.chunks.physical(logical, length, what,
                                                  copy)]
        return parts[0] if len(parts) == 1 else b''.join(parts)

    # ------------------------------------------------------------- trees

    def _node(self, bytenr, level, generation, first_key, op):
        if bytenr in op.seen:
            raise errors.Corrupt('btrfs: %s loops (block %d twice)'
                                 % (op.what, bytenr))
        op.seen.add(bytenr)
        if len(op.seen) > MAX_BLOCKS_PER_OP:
            raise errors.LimitReached('btrfs: %s: more than %d tree blocks '
                                      'in one search'
                                      % (op.what, MAX_BLOCKS_PER_OP))
        node = self._cache.get(bytenr)
        if node is None:
            node = self._parse_node(bytenr, op.what)
            if len(self._cache) * self.sb.nodesize >= CACHE_BYTES:
                self._cache.clear()
            self._cache[bytenr] = node
        if node.level != level:
            raise errors.Corrupt('btrfs: %s: block %d at level %d, its '
                                 'parent says %d' % (op.what, bytenr,
                                                     node.level, level))
        if generation is not None and node.generation != generation:
            raise errors.TornRead('btrfs: %s: block %d of generation %d, '
                                  'its parent says %d' % (
                                      op.what, bytenr, node.generation,
                                      generation))
        if first_key is not None and node.keys and \
                node.keys[0] != first_key:
            raise errors.Corrupt('btrfs: %s: block %d does not start with '
                                 'the key its parent says' % (op.what,
                                                              bytenr))
        return node

    def _parse_node(self, bytenr, what):
        """The block at ``bytenr``; when a DUP/RAID1 block's first copy
        is broken, the kernel reads the other: so do we."""
        if bytenr % self.sb.sectorsize:
            raise errors.Corrupt('btrfs: %s: block %d is not aligned'
                                 % (what, bytenr))
        chunk = self.chunks.find(bytenr)
        copies = len(chunk.copies) if chunk is not None else 1
        first = None
        for copy in range(copies):
            try:
                return self._parse_copy(bytenr, what, copy)
            except (errors.Corrupt, errors.TornRead) as e:
                first = first or e
        raise first

    def _parse_copy(self, bytenr, what, copy):
        sb = self.sb
        raw = self.read_logical(bytenr, sb.nodesize, what, copy)
        (_, fsid, hbytenr, _, _, generation, owner, nritems,
         level) = HEADER.unpack_from(raw, 0)
        if hbytenr != bytenr:
            raise errors.TornRead('btrfs: %s: block %d names address %d'
                                  % (what, bytenr, hbytenr))
        if fsid != sb.tree_fsid:
            raise errors.Corrupt('btrfs: %s: block %d belongs to another '
                                 'filesystem' % (what, bytenr))
        if not csum_ok(raw, sb.csum_type):
            # Tree blocks are written whole or not at all, in a place
            # no live tree points at: a mismatch is a block rewritten
            # under us (or damage; either way read again, then give up).
            raise errors.TornRead('btrfs: %s: block %d fails its %s '
                                  'checksum' % (what, bytenr,
                                                CSUM_NAMES[sb.csum_type]))
        if level >= MAX_LEVEL:
            raise errors.Corrupt('btrfs: %s: block %d at level %d'
                                 % (what, bytenr, level))
        if generation > sb.generation + 1:
            raise errors.TornRead('btrfs: %s: block %d is newer than the '
                                  'superblock' % (what, bytenr))
        space = sb.nodesize - HEADER_SIZE
        node = Node()
        node.bytenr, node.level, node.generation = bytenr, level, generation
        node.owner = owner
        node.raw = raw
        if level == 0:
            if nritems > space // ITEM.size:
                raise errors.Corrupt('btrfs: %s: leaf %d holds %d items'
                                     % (what, bytenr, nritems))
            table = raw[HEADER_SIZE:HEADER_SIZE + ITEM.size * nritems]
            keys, refs = [], []
            floor = ITEM.size * nritems
            for objectid, type_, offset, at, size in ITEM.iter_unpack(table):
                if at < floor or at + size > space:
                    raise errors.Corrupt('btrfs: %s: leaf %d has an item '
                                         'outside it' % (what, bytenr))
                keys.append((objectid, type_, offset))
                refs.append((HEADER_SIZE + at, size))
        else:
            if nritems == 0 or nritems > space // KEY_PTR.size:
                raise errors.Corrupt('btrfs: %s: node %d holds %d pointers'
                                     % (what, bytenr, nritems))
            table = raw[HEADER_SIZE:HEADER_SIZE + KEY_PTR.size * nritems]
            keys, refs = [], []
            for objectid, type_, offset, ptr, gen in KEY_PTR.iter_unpack(
                    table):
                keys.append((objectid, type_, offset))
                refs.append((ptr, gen))
        for a, b in zip(keys, keys[1:]):
            if a >= b:
                raise errors.Corrupt('btrfs: %s: block %d has keys out of '
                                     'order' % (what, bytenr))
        node.keys, node.refs = keys, refs
        return node

    def items(self, root, low, high, what):
        """(key, data) of the items of ``root``'s tree with
        low <= key <= high, in key order (a generator)."""
        op = _Op(what)
        return self._walk(root.bytenr, root.level, root.generation, None,
                          low, high, op)

    def _walk(self, bytenr, level, generation, first_key, low, high, op):
        node = self._node(bytenr, level, generation, first_key, op)
        keys = node.keys
        if node.level == 0:
            i = bisect.bisect_left(keys, low)
            while i < len(keys) and keys[i] <= high:
                at, size = node.refs[i]
                yield keys[i], node.raw[at:at + size]
                i += 1
            return
        i = max(0, bisect.bisect_right(keys, low) - 1)
        while i < len(keys) and keys[i] <= high:
            ptr, gen = node.refs[i]
            yield from self._walk(ptr, node.level - 1, gen, keys[i], low,
                                  high, op)
            i += 1

    def item(self, root, key, what):
        """The data of the item with exactly ``key``, or None."""
        for _, data in self.items(root, key, key, what):
            return data
        return None

    # -------------------------------------------------------- subvolumes

    def root(self, tree):
        """The Root of subvolume (or tree) ``tree``, or None when it has
        no ROOT_ITEM or is deleted (no references left)."""
        if tree in self._roots:
            return self._roots[tree]
        found = None
        for key, data in self.items(self.root_tree, (tree, ROOT_ITEM, 0),
                                    (tree, ROOT_ITEM, MAX_KEY),
                                    'root tree'):
            found = _parse_root(tree, key[2], data)
        if found is not None and found.refs == 0:
            found = None
        if len(self._roots) >= MAX_SUBVOLUMES:
            self._roots.clear()
        self._roots[tree] = found
        return found

    def default_subvolume(self):
        """The default subvolume's id: the ``default`` entry of the root
        tree directory (absent: 5, the top level).  Corrupt when the
        entry names a subvolume that does not exist."""
        dirid = self.sb.root_dir_objectid or ROOT_TREE_DIR_OBJECTID
        entry = None
        for name, location, _ in self._dir_items(
                self.root_tree, dirid, b'default', 'root tree directory'):
            if name == b'default':
                entry = location
                break
        if entry is None:
            return FS_TREE_OBJECTID
        objectid, type_, _ = entry
        if type_ != ROOT_ITEM:
            raise errors.Corrupt('btrfs: the default subvolume entry is '
                                 'not a subvolume')
        if not _subvolume_id(objectid) or self.root(objectid) is None:
            raise errors.Corrupt('btrfs: default subvolume %d does not '
                                 'exist' % objectid)
        return objectid

    def subvolumes(self):
        """Every subvolume but the top level (5), as ``btrfs subvolume
        list`` shows them: [Subvolume(id, path, parent, snapshot, ...)],
        by id.  A subvolume is a snapshot when its ROOT_ITEM's key
        offset (the generation it was snapshotted at) is non-zero, which
        is what ``btrfs subvolume list -s`` lists."""
        backrefs = {}
        ids = []
        low = (FIRST_FREE_OBJECTID, 0, 0)
        high = (LAST_FREE_OBJECTID, MAX_KEY >> 56, MAX_KEY)
        for key, data in self.items(self.root_tree, low, high,
                                    'root tree'):
            objectid, type_, offset = key
            if type_ == ROOT_ITEM:
                if len(ids) >= MAX_SUBVOLUMES:
                    raise errors.LimitReached('btrfs: more than %d '
                                              'subvolumes' % MAX_SUBVOLUMES)
                ids.append(objectid)
            elif type_ == ROOT_BACKREF and objectid not in backrefs:
                backrefs[objectid] = (offset, _parse_root_ref(data))
        out = []
        paths = {FS_TREE_OBJECTID: ''}
        self._lookups = 0
        for tree in ids:
            if tree not in backrefs:
                continue                # deleted, being cleaned up
            root = self.root(tree)
            if root is None:
                continue
            path = self._subvolume_path(tree, backrefs, paths, 0)
            if path is None:
                continue
            out.append(Subvolume(tree, path, backrefs[tree][0],
                                 bool(root.key_offset),
                                 bool(root.flags & ROOT_SUBVOL_RDONLY),
                                 root.uuid, root.parent_uuid))
        return out

    def _subvolume_path(self, tree, backrefs, paths, depth):
        if tree in paths:
            return paths[tree]
        if depth > MAX_SUBVOLUME_DEPTH:
            raise errors.LimitReached('btrfs: subvolumes nested more than '
                                      '%d deep' % MAX_SUBVOLUME_DEPTH)
        if tree not in backrefs:
            return None
        parent, (dirid, name) = backrefs[tree]
        paths[tree] = None              # a cycle ends as not listed
        above = self._subvolume_path(parent, backrefs, paths, depth + 1)
        if above is None:
            return None
        parent_root = self.root(parent)
        if parent_root is None:
            return None
        inner = self._dir_path(parent_root, dirid)
        path = '/'.join(p for p in (above, inner,
                                    name.decode('utf-8', 'replace')) if p)
        paths[tree] = path
        return path

    def _dir_path(self, root, dirid):
        """The path of directory ``dirid`` inside subvolume ``root``
        (through INODE_REF items up to the subvolume's root)."""
        parts = []
        ino = dirid
        while ino != root.root_dirid:
            if len(parts) >= MAX_PATH_COMPONENTS:
                raise errors.LimitReached('btrfs: subvolume %d: a directory '
                                          'deeper than %d' % (
                                              root.tree,
                                              MAX_PATH_COMPONENTS))
            self._lookups += 1
            if self._lookups > MAX_NAME_LOOKUPS:
                raise errors.LimitReached('btrfs: more than %d directory '
                                          'names read to name the '
                                          'subvolumes' % MAX_NAME_LOOKUPS)
            ref = None
            for key, data in self.items(root, (ino, INODE_REF, 0),
                                        (ino, INODE_REF, MAX_KEY),
                                        'subvolume %d' % root.tree):
                ref = (key[2], data)
                break
            if ref is None:
                raise errors.Corrupt('btrfs: subvolume %d: directory %d '
                                     'has no name' % (root.tree, ino))
            parent, data = ref
            if len(data) < 10:
                raise errors.Corrupt('btrfs: subvolume %d: inode ref of %d '
                                     'is truncated' % (root.tree, ino))
            n = struct.unpack_from('<H', data, 8)[0]
            if 10 + n > len(data) or parent == ino:
                raise errors.Corrupt('btrfs: subvolume %d: bad inode ref '
                                     'of %d' % (root.tree, ino))
            parts.append(data[10:10 + n].decode('utf-8', 'replace'))
            ino = parent
        return '/'.join(reversed(parts))

    # ------------------------------------------------------ directories

    def _dir_items(self, root, dirid, name, what):
        """(name, location key, type) of the entries of DIR_ITEM
        (dirid, hash(name)): those that share the hash."""
        data = self.item(root, (dirid, DIR_ITEM, name_hash(name)), what)
        if data is None:
            return []
        return list(_parse_dir_entries(data, what))


def _subvolume_id(tree):
    return tree == FS_TREE_OBJECTID or (
        FIRST_FREE_OBJECTID <= tree <= LAST_FREE_OBJECTID)


def _parse_root(tree, key_offset, data):
    if len(data) < ROOT_ITEM_MIN:
        raise errors.Corrupt('btrfs: root item of %d is truncated' % tree)
    root = Root()
    root.tree = tree
    root.key_offset = key_offset
    (root.generation, root.root_dirid, root.bytenr, _, _, _,
     root.flags, root.refs) = struct.unpack_from('<QQQQQQQI', data, 160)
    root.level = data[238]
    if root.level >= MAX_LEVEL:
        raise errors.Corrupt('btrfs: root of %d at level %d'
                             % (tree, root.level))
    if len(data) >= 279:
        root.uuid = bytes(data[247:263])
        root.parent_uuid = bytes(data[263:279])
    else:
        root.uuid = root.parent_uuid = bytes(16)
    return root


def _parse_root_ref(data):
    """(dirid, name) of a ROOT_REF/ROOT_BACKREF."""
    if len(data) < 18:
        raise errors.Corrupt('btrfs: root ref is truncated')
    dirid, _, n = struct.unpack_from('<QQH', data, 0)
    if n == 0 or 18 + n > len(data):
        raise errors.Corrupt('btrfs: root ref with a bad name length')
    return dirid, bytes(data[18:18 + n])


def _parse_dir_entries(data, what):
    pos = 0
    count = 0
    while pos < len(data):
        if pos + DIR_ENTRY.size > len(data):
            raise errors.Corrupt('btrfs: %s: directory item is truncated'
                                 % what)
        (objectid, type_, offset, _, data_len, name_len,
         ftype) = DIR_ENTRY.unpack_from(data, pos)
        start = pos + DIR_ENTRY.size
        end = start + name_len + data_len
        if name_len == 0 or end > len(data):
            raise errors.Corrupt('btrfs: %s: directory entry past its item'
                                 % what)
        count += 1
        if count > MAX_DIR_ENTRIES:
            raise errors.LimitReached('btrfs: %s: more than %d entries in '
                                      'one item' % (what, MAX_DIR_ENTRIES))
        yield (bytes(data[start:start + name_len]),
               (objectid, type_, offset), ftype)
        pos = end


class Filesystem(fs_mod.Filesystem):
    """One subvolume of a btrfs device, as a fs.Filesystem: by default
    the default subvolume (what mounting the device shows).  Directory
    entries naming other subvolumes enter them."""

    kind = 'btrfs'

    def __init__(self, source, budget=None, subvolume=None, volume=None):
        self.volume = volume or Volume(source, budget)
        self.source = self.volume.source
        self.budget = self.volume.budget
        self.sb = self.volume.sb
        if subvolume is None:
            subvolume = self.volume.default_subvolume()
        self.subvolume_id = subvolume
        root = self.volume.root(subvolume) if _subvolume_id(subvolume) \
            else None
        if root is None:
            raise errors.Corrupt('btrfs: subvolume %d does not exist'
                                 % subvolume)
        self.root = self.inode(subvolume, root.root_dirid)
        if self.root.kind != fs_mod.DIRECTORY:
            raise errors.Corrupt('btrfs: subvolume %d: its root is not a '
                                 'directory' % subvolume)

    # ------------------------------------------------- subvolume views

    def subvolumes(self):
        """See Volume.subvolumes."""
        return self.volume.subvolumes()

    def default_subvolume(self):
        """The default subvolume's id (5 when none was set)."""
        return self.volume.default_subvolume()

    def subvolume(self, subvolume_id):
        """The Filesystem view rooted at subvolume ``subvolume_id``;
        Corrupt when it does not exist."""
        return Filesystem(self.source, self.budget, subvolume_id,
                          self.volume)

    def subvolume_at(self, path):
        """The id of the subvolume at ``path`` from the top level (what
        ``subvol=`` names: '@/.snapshots/1/snapshot', '/root'), or None
        when the path does not end at a subvolume's root (the kernel
        refuses to mount it then).  Symlinks are followed, as the
        kernel's path walk for ``subvol=`` does."""
        top = self.subvolume(FS_TREE_OBJECTID)
        inode = fs_mod.resolve(top, path)
        if inode is None:
            return None
        root = self.volume.root(inode.tree)
        if root is None or inode.ino != root.root_dirid:
            return None
        return inode.tree

    # --------------------------------------------------------- inodes

    def _root(self, tree):
        root = self.volume.root(tree)
        if root is None:
            raise errors.Corrupt('btrfs: subvolume %d does not exist'
                                 % tree)
        return root

    def inode(self, tree, ino):
        """The Inode ``ino`` of subvolume ``tree``."""
        what = 'subvolume %d' % tree
        data = self.volume.item(self._root(tree), (ino, INODE_ITEM, 0),
                                what)
        if data is None:
            raise errors.TornRead('btrfs: %s: inode %d does not exist'
                                  % (what, ino))
        if len(data) < INODE_SIZE:
            raise errors.Corrupt('btrfs: %s: inode %d is truncated'
                                 % (what, ino))
        (_, _, size, _, _, nlink, _, _, mode, _,
         flags) = INODE.unpack_from(data, 0)
        if size >= 1 << 63:
            raise errors.Corrupt('btrfs: %s: inode %d has a negative size'
                                 % (what, ino))
        inode = Inode()
        inode.tree, inode.ino, inode.mode, inode.size = tree, ino, mode, size
        inode.flags, inode.nlink = flags, nlink
        return inode

    def key(self, inode):
        return (inode.tree, inode.ino)

    def lookup(self, dir_inode, name):
        if isinstance(name, str):
            name = name.encode('utf-8', 'surrogateescape')
        what = 'subvolume %d' % dir_inode.tree
        if dir_inode.kind != fs_mod.DIRECTORY:
            raise errors.Corrupt('btrfs: %s: inode %d is not a directory'
                                 % (what, dir_inode.ino))
        for entry_name, location, ftype in self.volume._dir_items(
                self._root(dir_inode.tree), dir_inode.ino, name, what):
            if entry_name != name:
                continue
            objectid, type_, _ = location
            if type_ == ROOT_ITEM:
                # A subvolume: its tree's root directory.
                root = (self.volume.root(objectid)
                        if _subvolume_id(objectid) else None)
                if root is None:
                    # Deleted: the kernel shows an empty directory.
                    return None
                inode = self.inode(objectid, root.root_dirid)
            elif type_ == INODE_ITEM:
                inode = self.inode(dir_inode.tree, objectid)
            else:
                raise errors.Corrupt('btrfs: %s: entry %r points at a key '
                                     'of type %d' % (what, _show(name),
                                                     type_))
            fs_mod.check_entry_type('btrfs', name, ftype, inode.mode)
            return inode
        return None

    def listdir(self, dir_inode):
        """The names in a directory (DIR_INDEX order), bounded."""
        what = 'subvolume %d' % dir_inode.tree
        names = []
        for _, data in self.volume.items(
                self._root(dir_inode.tree), (dir_inode.ino, DIR_INDEX, 0),
                (dir_inode.ino, DIR_INDEX, MAX_KEY), what):
            for name, _, _ in _parse_dir_entries(data, what):
                if len(names) >= MAX_DIR_ENTRIES:
                    raise errors.LimitReached(
                        'btrfs: %s: directory %d has more than %d entries'
                        % (what, dir_inode.ino, MAX_DIR_ENTRIES))
                names.append(name)
        return names

    # ------------------------------------------------------------ data

    def read(self, inode, limit):
        what = 'btrfs: subvolume %d inode %d' % (inode.tree, inode.ino)
        want = max(0, min(inode.size, limit))
        if want > source_mod.MAX_READ:
            raise errors.LimitReached('%s: reading %d bytes of one file is '
                                      'more than %d' % (
                                          what, want, source_mod.MAX_READ))
        out = bytearray(want)
        if want == 0:
            return b''
        root = self._root(inode.tree)
        budget = [MAX_DECOMPRESSED_PER_READ]
        end_of_last = 0
        count = 0
        # The extent that covers offset 0 starts at 0: items from 0 up.
        for key, data in self.volume.items(
                root, (inode.ino, EXTENT_DATA, 0),
                (inode.ino, EXTENT_DATA, want - 1), what):
            count += 1
            if count > MAX_EXTENTS:
                raise errors.LimitReached('%s: more than %d extents'
                                          % (what, MAX_EXTENTS))
            start = key[2]
            if start < end_of_last:
                raise errors.Corrupt('%s: extents overlap at %d'
                                     % (what, start))
            length, piece = self._extent(data, start, want, budget, what)
            if piece is not None:
                n = min(len(piece), want - start)
                out[start:start + n] = piece[:n]
            end_of_last = start + length
        return bytes(out)

    def _extent(self, data, start, want, budget, what):
        """(length, data) of one EXTENT_DATA item at file offset
        ``start``: the bytes it covers and, unless it is a hole or
        preallocated (zeros: None), its first bytes (at most ``want -
        start`` of them are needed)."""
        if len(data) < FILE_EXTENT.size:
            raise errors.Corrupt('%s: file extent is truncated' % what)
        (_, ram_bytes, compression, encryption, other,
         type_) = FILE_EXTENT.unpack_from(data, 0)
        if encryption or other:
            raise errors.Unsupported('%s: encrypted or encoded extents are '
                                     'not read' % what)
        if type_ == EXTENT_INLINE:
            if start != 0:
                raise errors.Corrupt('%s: inline extent at offset %d'
                                     % (what, start))
            body = data[FILE_EXTENT.size:]
            if compression != COMPRESS_NONE:
                body = self._decompress(compression, body, ram_bytes,
                                        budget, what)
            return len(body), bytes(body)
        if type_ not in (EXTENT_REG, EXTENT_PREALLOC):
            raise errors.Corrupt('%s: file extent of type %d'
                                 % (what, type_))
        if len(data) < FILE_EXTENT.size + FILE_EXTENT_REG.size:
            raise errors.Corrupt('%s: file extent is truncated' % what)
        (disk_bytenr, disk_num_bytes, offset,
         num_bytes) = FILE_EXTENT_REG.unpack_from(data, FILE_EXTENT.size)
        if num_bytes == 0 or num_bytes >= 1 << 62 or start + num_bytes \
                >= 1 << 63:
            raise errors.Corrupt('%s: file extent of %d bytes'
                                 % (what, num_bytes))
        if type_ == EXTENT_PREALLOC or disk_bytenr == 0:
            return num_bytes, None
        take = min(num_bytes, want - start)
        if compression == COMPRESS_NONE:
            if offset + num_bytes > disk_num_bytes:
                raise errors.Corrupt('%s: file extent past its disk extent'
                                     % what)
            return num_bytes, self.volume.read_logical(disk_bytenr + offset,
                                                       take, what)
        if offset + num_bytes > ram_bytes:
            raise errors.Corrupt('%s: file extent past its decompressed '
                                 'extent' % what)
        if disk_num_bytes > MAX_COMPRESSED_EXTENT:
            raise errors.Corrupt('%s: compressed extent of %d bytes on disk'
                                 % (what, disk_num_bytes))
        cached_key, cached = self.volume._decompressed
        if cached_key == (disk_bytenr, disk_num_bytes, compression):
            plain = cached
        else:
            raw = self.volume.read_logical(disk_bytenr, disk_num_bytes, what)
            plain = self._decompress(compression, raw, ram_bytes, budget,
                                     what)
            self.volume._decompressed = ((disk_bytenr, disk_num_bytes,
                                          compression), plain)
        return num_bytes, plain[offset:offset + min(num_bytes, take)]

    def _decompress(self, compression, raw, ram_bytes, budget, what):
        if ram_bytes > MAX_COMPRESSED_EXTENT:
            raise errors.Corrupt('%s: compressed extent of %d bytes, more '
                                 'than btrfs writes (%d)' % (
                                     what, ram_bytes,
                                     MAX_COMPRESSED_EXTENT))
        budget[0] -= ram_bytes
        if budget[0] < 0:
            raise errors.LimitReached('%s: more than %d MiB decompressed in '
                                      'one read' % (
                                          what,
                                          MAX_DECOMPRESSED_PER_READ >> 20))
        plain = decompress(compression, raw, ram_bytes, what,
                           self.sb.sectorsize)
        if len(plain) < ram_bytes:
            # The kernel zero-fills a short stream (the tail of a page).
            plain += bytes(ram_bytes - len(plain))
        return plain

    def readlink(self, inode):
        what = 'btrfs: subvolume %d symlink %d' % (inode.tree, inode.ino)
        if inode.kind != fs_mod.SYMLINK:
            raise errors.Corrupt('%s is not a symlink' % what)
        if inode.size > MAX_SYMLINK:
            raise errors.Corrupt('%s is longer than %d bytes'
                                 % (what, MAX_SYMLINK))
        target = self.read(inode, inode.size)
        return target


def decompress(compression, raw, cap, what, sectorsize=4096):
    """At most ``cap`` bytes decompressed from one extent's ``raw``
    bytes; more is Corrupt (the extent expands beyond its size)."""
    if compression == COMPRESS_ZLIB:
        try:
            d = zlib.decompressobj()
            out = d.decompress(bytes(raw), cap)
        except zlib.error as e:
            raise errors.Corrupt('%s: zlib extent does not inflate: %s'
                                 % (what, e))
        if d.unconsumed_tail and d.decompress(d.unconsumed_tail, 1):
            raise errors.Corrupt('%s: zlib extent expands beyond its %d '
                                 'bytes' % (what, cap))
        return out
    if compression == COMPRESS_ZSTD:
        if zstandard is None:
            raise errors.Unsupported('%s: zstd-compressed extents need the '
                                     'Python module zstandard, which is '
                                     'not installed' % what)
        try:
            dctx = zstandard.ZstdDecompressor(max_window_size=1 << 20)
            # One frame, then the sector's padding: one read past the
            # cap ends at the frame's end (read_across_frames=False).
            reader = dctx.stream_reader(bytes(raw), read_across_frames=False)
            out = reader.read(cap + 1)
        except zstandard.ZstdError as e:
            raise errors.Corrupt('%s: zstd extent does not decompress: %s'
                                 % (what, e))
        if len(out) > cap:
            raise errors.Corrupt('%s: zstd extent expands beyond its %d '
                                 'bytes' % (what, cap))
        return out
    if compression == COMPRESS_LZO:
        return _btrfs_lzo(bytes(raw), cap, what, sectorsize)
    raise errors.Corrupt('%s: unknown compression %d' % (what, compression))


def _btrfs_lzo(raw, cap, what, sector):
    """btrfs' lzo framing: a LE32 total length, then segments, each a
    LE32 length and one LZO1X stream of at most a sector (a page in
    older kernels: the same size on the filesystems they could mount);
    a segment's header never straddles a sector (zero padding instead)."""
    if len(raw) < 4:
        raise errors.Corrupt('%s: lzo extent is truncated' % what)
    total = struct.unpack_from('<I', raw, 0)[0]
    if total > len(raw) or total < 4:
        raise errors.Corrupt('%s: lzo extent of %d bytes in %d'
                             % (what, total, len(raw)))
    out = bytearray()
    pos = 4
    while pos < total and len(out) < cap:
        if sector - pos % sector < 4:
            pos += sector - pos % sector
            continue
        if pos + 4 > total:
            raise errors.Corrupt('%s: lzo segment header is truncated'
                                 % what)
        length = struct.unpack_from('<I', raw, pos)[0]
        pos += 4
        if length == 0 or pos + length > total:
            raise errors.Corrupt('%s: lzo segment of %d bytes past the '
                                 'extent' % (what, length))
        out += lzo1x_decompress(raw[pos:pos + length],
                                min(sector, cap - len(out) + 1), what)
        if len(out) > cap:
            raise errors.Corrupt('%s: lzo extent expands beyond its %d '
                                 'bytes' % (what, cap))
        pos += length
    return bytes(out)


def lzo1x_decompress(src, cap, what):
    """An LZO1X stream (bitstream version 0, as the kernel's lzo1x_1
    compressor writes it) decompressed to at most ``cap`` bytes; past
    that, or any malformed instruction, is Corrupt.  Written from the
    format's public description (the kernel's lzo.rst)."""
    out = bytearray()
    n = len(src)
    ip = 0

    def bad(why):
        return errors.Corrupt('%s: lzo stream %s' % (what, why))

    def need(k):
        if ip + k > n:
            raise bad('is truncated')

    def extend(base):
        # A length of 0 continues in following bytes: 255 per zero byte.
        nonlocal ip
        extra = 0
        while True:
            need(1)
            b = src[ip]
            ip += 1
            if b:
                return base + extra + b
            extra += 255

    def literals(k):
        nonlocal ip
        need(k)
        if len(out) + k > cap:
            raise bad('expands beyond %d bytes' % cap)
        out.extend(src[ip:ip + k])
        ip += k

    def match(distance, length):
        if distance <= 0 or distance > len(out):
            raise bad('refers before its start')
        if len(out) + length > cap:
            raise bad('expands beyond %d bytes' % cap)
        start = len(out) - distance
        if distance >= length:
            out.extend(out[start:start + length])
        else:
            chunk = bytes(out[start:])
            out.extend((chunk * (length // distance + 1))[:length])

    need(1)
    state = 0
    if src[0] > 17:
        count = src[0] - 17
        ip = 1
        literals(count)
        state = 4 if count >= 4 else count
    elif src[0] == 17:
        raise bad('of an unknown bitstream version (lzo-rle)')
    while True:
        need(1)
        op = src[ip]
        ip += 1
        if op < 16:
            if state == 0:
                literals(3 + (op or extend(15)))
                state = 4
                continue
            need(1)
            h = src[ip]
            ip += 1
            if state == 4:
                match((h << 2) + (op >> 2) + 2049, 3)
            else:
                match((h << 2) + (op >> 2) + 1, 2)
            trailing = op & 3
        elif op < 32:
            length = 2 + ((op & 7) or extend(7))
            need(2)
            le = src[ip] | src[ip + 1] << 8
            ip += 2
            distance = 16384 + ((op & 8) << 11) + (le >> 2)
            if distance == 16384:
                if length != 3:
                    raise bad('ends with a bad marker')
                return bytes(out)
            match(distance, length)
            trailing = le & 3
        elif op < 64:
            length = 2 + ((op & 31) or extend(31))
            need(2)
            le = src[ip] | src[ip + 1] << 8
            ip += 2
            match((le >> 2) + 1, length)
            trailing = le & 3
        else:
            need(1)
            h = src[ip]
            ip += 1
            if op < 128:
                length = 3 + ((op >> 5) & 1)
            else:
                length = 5 + ((op >> 5) & 3)
            match((h << 3) + ((op >> 2) & 7) + 1, length)
            trailing = op & 3
        if trailing:
            literals(trailing)
        state = trailing


def _show(name):
    return name[:64].decode('utf-8', 'replace')
