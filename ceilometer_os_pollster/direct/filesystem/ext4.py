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
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c_update
from ceilometer_os_pollster.direct.filesystem.crc32c import reflected_table

SUPERBLOCK_OFFSET = 1024
MAGIC = 0xEF53
EXTENT_MAGIC = 0xF30A
ROOT_INO = 2

# Bounds a hostile filesystem can reach.
MAX_EXTENT_DEPTH = 5            # the kernel's own limit
MAX_EXTENTS = 65536             # extents mapped for one file
MAX_TREE_BLOCKS = 4096          # extent tree / indirect blocks per file
MAX_DIR_ENTRIES = 100000        # entries scanned in one directory
MAX_DIR_BYTES = 32 << 20        # a directory larger than this is refused
MAX_CACHED_DIRS = 64

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
# (RECOVER: the journal is not replayed, see the module docstring;
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
INODE_CHECKSUM_LO = 0x7C
INODE_CHECKSUM_HI = 0x82
INODE_GENERATION = 0x64
DIR_TAIL = struct.Struct('<IHBBI')              # 12 bytes, ends a block
DIR_TAIL_FT = 0xDE
FLAG_INDEX = 0x1000                             # htree directory

# Inode flags (i_flags).
FLAG_ENCRYPT = 0x800
FLAG_HUGE_FILE = 0x40000
FLAG_EXTENTS = 0x80000
FLAG_INLINE_DATA = 0x10000000
FLAG_CASEFOLD = 0x40000000


# In-inode extended attributes.
XATTR_MAGIC = 0xEA020000
XATTR_INDEX_SYSTEM = 7


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


class Inode:
    """One inode's fields (untrusted, checked where followed)."""

    __slots__ = ('ino', 'mode', 'size', 'links', 'blocks', 'flags',
                 'i_block', 'file_acl', 'raw', 'csum_seed')

    def __init__(self, ino, raw, csum_seed=None):
        self.ino = ino
        self.raw = raw
        self.csum_seed = csum_seed      # metadata_csum: seeds its blocks'
        self.mode = struct.unpack_from('<H', raw, 0)[0]
        size_lo = struct.unpack_from('<I', raw, 4)[0]
        self.links = struct.unpack_from('<H', raw, 0x1A)[0]
        blocks_lo = struct.unpack_from('<I', raw, 0x1C)[0]
        self.flags = struct.unpack_from('<I', raw, 0x20)[0]
        self.i_block = raw[0x28:0x28 + 60]
        acl_lo = struct.unpack_from('<I', raw, 0x68)[0]
        size_hi = struct.unpack_from('<I', raw, 0x6C)[0]
        blocks_hi, acl_hi = struct.unpack_from('<HH', raw, 0x74)
        self.size = size_lo | (size_hi << 32)
        self.blocks = blocks_lo | (blocks_hi << 32)
        self.file_acl = acl_lo | (acl_hi << 32)

    @property
    def kind(self):
        return fs_mod.kind_of_mode(self.mode)


class Filesystem(fs_mod.Filesystem):
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

    # ------------------------------------------------------------ blocks

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

    def inode(self, ino):
        """The Inode numbered ``ino``."""
        if not 1 <= ino <= self.sb.inodes_count:
            raise errors.Corrupt('ext4: inode number %d is out of range'
                                 % ino)
        group, index = divmod(ino - 1, self.sb.inodes_per_group)
        table = self._inode_table(group)
        offset = table * self.block_size + index * self.sb.inode_size
        inodes_per_block = self.block_size // self.sb.inode_size
        table_blocks = -(-self.sb.inodes_per_group // inodes_per_block)
        if not 0 < table <= self.sb.blocks_count - table_blocks:
            raise errors.Corrupt('ext4: inode table of group %d is past '
                                 'the end of the filesystem' % group)
        raw = self.source.read_at(offset, self.sb.inode_size)
        if len(raw) < 0x80:
            raw = raw + bytes(0x80 - len(raw))
        seed = None
        if self.sb.metadata_csum:
            seed = self._check_inode(ino, raw)
        return Inode(ino, raw, seed)

    # ---------------------------------------------------------- checksums

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

    def _check_inode(self, ino, raw):
        """Verify inode ``ino``'s checksum; return its seed (that of its
        extent and directory blocks)."""
        generation = raw[INODE_GENERATION:INODE_GENERATION + 4]
        seed = crc32c_update(crc32c_update(self.sb.csum_seed,
                                           struct.pack('<I', ino)),
                             generation)
        if not any(raw):
            # Never written (an uninitialised inode table): no checksum
            # to verify; the lookup calls it a free inode.
            return seed
        stored = struct.unpack_from('<H', raw, INODE_CHECKSUM_LO)[0]
        body = _zeroed(raw, INODE_CHECKSUM_LO, 2)
        mask = 0xFFFF
        if len(raw) > 0x80:
            extra_isize = struct.unpack_from('<H', raw, 0x80)[0]
            if 0x80 + extra_isize >= INODE_CHECKSUM_HI + 2:
                stored |= struct.unpack_from(
                    '<H', raw, INODE_CHECKSUM_HI)[0] << 16
                body = _zeroed(body, INODE_CHECKSUM_HI, 2)
                mask = 0xFFFFFFFF
        if crc32c_update(seed, body) & mask != stored:
            raise errors.TornRead('ext4: inode %d checksum mismatch' % ino)
        return seed

    def _check_extent_block(self, inode, block, maximum, what):
        tail = 12 + 12 * maximum
        if tail + 4 > len(block):
            raise errors.Corrupt('%s: no room for a block checksum' % what)
        stored = struct.unpack_from('<I', block, tail)[0]
        if crc32c_update(inode.csum_seed, block[:tail]) != stored:
            raise errors.TornRead('%s: extent block checksum mismatch'
                                  % what)

    def _check_dir_block(self, inode, block, number, what):
        """Verify directory block ``number`` of ``inode``: an htree
        node's dx tail, else a leaf's 12-byte tail."""
        size = len(block)
        first_len = struct.unpack_from('<H', block, 4)[0]
        if inode.flags & FLAG_INDEX and (number == 0 or _rec_len(
                first_len, size) == size):
            count_offset = 32 if number == 0 else 8
            if count_offset + 4 > size:
                raise errors.Corrupt('%s: htree node too small' % what)
            limit, count = struct.unpack_from('<HH', block, count_offset)
            tail = count_offset + 8 * limit
            if count > limit or tail + 8 > size:
                raise errors.Corrupt('%s: htree node %d has no room for '
                                     'its checksum' % (what, number))
            crc = crc32c_update(inode.csum_seed,
                                block[:count_offset + 8 * count])
            # dt_reserved, then the checksum field as zero.
            crc = crc32c_update(crc, block[tail:tail + 4] + bytes(4))
            if struct.unpack_from('<I', block, tail + 4)[0] != crc:
                raise errors.TornRead('%s: htree block %d checksum '
                                      'mismatch' % (what, number))
            return
        if size < DIR_TAIL.size:
            raise errors.Corrupt('%s: block too small' % what)
        zero1, rec_len, zero2, file_type, stored = DIR_TAIL.unpack_from(
            block, size - DIR_TAIL.size)
        if (zero1, rec_len, zero2, file_type) != (0, 12, 0, DIR_TAIL_FT):
            raise errors.TornRead('%s: directory block %d has no checksum '
                                  'tail' % (what, number))
        if crc32c_update(inode.csum_seed,
                         block[:size - DIR_TAIL.size]) != stored:
            raise errors.TornRead('%s: directory block %d checksum '
                                  'mismatch' % (what, number))

    # --------------------------------------------------------- interface

    def key(self, inode):
        return inode.ino

    def lookup(self, dir_inode, name):
        if isinstance(name, str):
            name = name.encode('utf-8', 'surrogateescape')
        entry = self._directory(dir_inode).get(name)
        if entry is None:
            return None
        ino, entry_type = entry
        inode = self.inode(ino)
        if inode.mode == 0 or inode.links == 0:
            # The entry names an inode since freed: the directory
            # changed while we read it (a live disk), or is broken.
            raise errors.TornRead('ext4: directory entry %r names a free '
                                  'inode %d' % (_show(name), ino))
        fs_mod.check_entry_type('ext4', name, entry_type, inode.mode)
        return inode

    def read(self, inode, limit):
        self._check_plain(inode)
        if inode.flags & FLAG_INLINE_DATA:
            return self._inline_data(inode)[:min(limit, inode.size)]
        return fs_mod.extent_bytes(
            self.source, self.block_size,
            self._extents(inode, -(-min(limit, inode.size)
                                   // self.block_size)),
            inode.size, limit, 'ext4: inode %d' % inode.ino)

    def readlink(self, inode):
        if inode.kind != fs_mod.SYMLINK:
            raise errors.Corrupt('ext4: inode %d is not a symlink'
                                 % inode.ino)
        if inode.size > fs_mod.MAX_LINK:
            raise errors.LimitReached('ext4: symlink inode %d is longer '
                                      'than %d bytes' % (inode.ino,
                                                         fs_mod.MAX_LINK))
        if inode.flags & FLAG_ENCRYPT:
            raise errors.Unsupported('ext4: encrypted symlinks are not '
                                     'read')
        if not inode.flags & FLAG_INLINE_DATA and self._fast_symlink(inode):
            return bytes(inode.i_block[:inode.size])
        return self.read(inode, inode.size)

    def _fast_symlink(self, inode):
        # As the kernel decides: no data blocks besides an xattr block.
        acl = 0
        if inode.file_acl:
            acl = (1 if inode.flags & FLAG_HUGE_FILE
                   else self.block_size >> 9)
        return inode.size < 60 and inode.blocks - acl == 0

    def _check_plain(self, inode):
        if inode.flags & FLAG_ENCRYPT:
            raise errors.Unsupported('ext4: inode %d is encrypted'
                                     % inode.ino)

    # -------------------------------------------------------- block maps

    def _extents(self, inode, blocks):
        """[(logical, physical, count, unwritten)] covering at least the
        first ``blocks`` logical blocks of ``inode`` (holes left out)."""
        if inode.flags & FLAG_EXTENTS:
            return self._extent_tree(inode, blocks)
        return self._indirect(inode, blocks)

    def _extent_tree(self, inode, blocks):
        what = 'ext4: extent tree of inode %d' % inode.ino
        found = []
        visited = set()
        state = {'nodes': 0}

        def walk(node, depth_expected, space):
            entries, depth = _extent_header(node, space, what)
            if depth_expected is not None and depth != depth_expected:
                raise errors.Corrupt('%s: a node at the wrong depth' % what)
            if depth > MAX_EXTENT_DEPTH:
                raise errors.Corrupt('%s is deeper than %d'
                                     % (what, MAX_EXTENT_DEPTH))
            for i in range(entries):
                off = 12 + 12 * i
                if depth == 0:
                    lblk, length, start_hi, start_lo = struct.unpack_from(
                        '<IHHI', node, off)
                    unwritten = length > 32768
                    if unwritten:
                        length -= 32768
                    if lblk >= blocks:
                        return False
                    start = start_lo | (start_hi << 32)
                    if start + length > self.sb.blocks_count:
                        raise errors.Corrupt('%s: an extent points past the '
                                             'end of the filesystem' % what)
                    if len(found) >= MAX_EXTENTS:
                        raise errors.LimitReached(
                            '%s: more than %d extents' % (what,
                                                          MAX_EXTENTS))
                    found.append((lblk, start, length, unwritten))
                else:
                    lblk, leaf_lo, leaf_hi = struct.unpack_from('<IIH',
                                                                node, off)
                    if lblk >= blocks:
                        return False
                    child = leaf_lo | (leaf_hi << 32)
                    if child in visited:
                        raise errors.Corrupt('%s loops (block %d twice)'
                                             % (what, child))
                    visited.add(child)
                    state['nodes'] += 1
                    if state['nodes'] > MAX_TREE_BLOCKS:
                        raise errors.LimitReached(
                            '%s: more than %d tree blocks' % (
                                what, MAX_TREE_BLOCKS))
                    block = self._block(child, what)
                    if self.sb.metadata_csum:
                        self._check_extent_block(
                            inode, block,
                            struct.unpack_from('<H', block, 4)[0], what)
                    if walk(block, depth - 1, self.block_size) is False:
                        return False
            return True

        walk(bytes(inode.i_block), None, 60)
        return found

    def _indirect(self, inode, blocks):
        """ext2/3 block map: 12 direct, then single, double and triple
        indirect blocks."""
        what = 'ext4: block map of inode %d' % inode.ino
        per_block = self.block_size // 4
        pointers = struct.unpack('<15I', inode.i_block)
        found = []
        state = {'blocks': 0}

        def add(lblk, pblk):
            if pblk == 0:
                return
            if pblk >= self.sb.blocks_count:
                raise errors.Corrupt('%s points past the end of the '
                                     'filesystem' % what)
            if found and found[-1][0] + found[-1][2] == lblk and (
                    found[-1][1] + found[-1][2] == pblk):
                last = found[-1]
                found[-1] = (last[0], last[1], last[2] + 1, False)
            else:
                found.append((lblk, pblk, 1, False))

        def walk(pblk, level, first):
            """Map the blocks under indirect block ``pblk`` of ``level``
            (1 = pointers to data) starting at logical ``first``."""
            if pblk == 0 or first >= blocks:
                return
            state['blocks'] += 1
            if state['blocks'] > MAX_TREE_BLOCKS:
                raise errors.LimitReached('%s: more than %d indirect '
                                          'blocks' % (what, MAX_TREE_BLOCKS))
            entries = struct.unpack('<%dI' % per_block,
                                    self._block(pblk, what))
            span = per_block ** (level - 1)
            for i, child in enumerate(entries):
                lblk = first + i * span
                if lblk >= blocks:
                    return
                if level == 1:
                    add(lblk, child)
                else:
                    walk(child, level - 1, lblk)

        for i in range(12):
            if i < blocks:
                add(i, pointers[i])
        first = 12
        for level, pointer in ((1, pointers[12]), (2, pointers[13]),
                               (3, pointers[14])):
            walk(pointer, level, first)
            first += per_block ** level
        return found

    # -------------------------------------------------------- inline data

    def _inline_data(self, inode):
        """The bytes of an inline-data inode: i_block, then the
        'system.data' extended attribute in the inode's extra space."""
        data = bytes(inode.i_block)
        if inode.size <= 60:
            return data[:inode.size]
        extra = self._inline_xattr(inode)
        return (data + extra)[:inode.size]

    def _inline_xattr(self, inode):
        what = 'ext4: inline data of inode %d' % inode.ino
        raw = inode.raw
        if len(raw) <= 0x82:
            raise errors.Corrupt('%s: no room for it' % what)
        extra_isize = struct.unpack_from('<H', raw, 0x80)[0]
        start = 0x80 + extra_isize
        if extra_isize & 3 or start + 4 > len(raw):
            raise errors.Corrupt('%s: bad extra inode size' % what)
        if struct.unpack_from('<I', raw, start)[0] != XATTR_MAGIC:
            raise errors.Corrupt('%s: no in-inode attributes' % what)
        base = start + 4
        pos = base
        while pos + 16 <= len(raw):
            name_len, index, value_offs, value_inum, value_size = (
                struct.unpack_from('<BBHII', raw, pos))
            if name_len == 0 and index == 0 and value_offs == 0 and (
                    value_inum == 0):
                break               # the 4 zero bytes ending the list
            name = raw[pos + 16:pos + 16 + name_len]
            if index == XATTR_INDEX_SYSTEM and name == b'data':
                if value_inum:
                    raise errors.Unsupported('%s: kept in an xattr inode'
                                             % what)
                begin = base + value_offs
                if begin + value_size > len(raw):
                    raise errors.Corrupt('%s: value past the inode' % what)
                return raw[begin:begin + value_size]
            pos += (16 + name_len + 3) & ~3
        raise errors.Corrupt('%s: no system.data attribute' % what)

    # -------------------------------------------------------- directories

    def _directory(self, inode):
        """{name: (inode number, file type or 0)} of a directory (cached,
        bounded)."""
        cached = self._dirs.get(inode.ino)
        if cached is not None:
            return cached
        what = 'ext4: directory inode %d' % inode.ino
        if inode.kind != fs_mod.DIRECTORY:
            raise errors.Corrupt('%s is not a directory' % what)
        if inode.flags & FLAG_ENCRYPT:
            raise errors.Unsupported('%s is encrypted' % what)
        if inode.flags & FLAG_CASEFOLD:
            # Lookups there ignore case in the kernel's own Unicode
            # folding, which we do not reproduce.
            raise errors.Unsupported('%s is case-insensitive' % what)
        entries = {}
        if inode.flags & FLAG_INLINE_DATA:
            data = self._inline_data(inode)
            # First 4 bytes: the parent's inode number; then entries.
            _parse_entries(data[4:60], entries, self.block_size,
                           self._file_types, what)
            if len(data) > 60:
                _parse_entries(data[60:], entries, self.block_size,
                               self._file_types, what)
        else:
            if inode.size > MAX_DIR_BYTES:
                raise errors.LimitReached('%s is larger than %d MiB' % (
                    what, MAX_DIR_BYTES >> 20))
            data = self.read(inode, inode.size)
            for start in range(0, len(data), self.block_size):
                if self.sb.metadata_csum:
                    self._check_dir_block(
                        inode, data[start:start + self.block_size],
                        start // self.block_size, what)
                _parse_entries(data[start:start + self.block_size],
                               entries, self.block_size, self._file_types,
                               what)
        if len(self._dirs) >= MAX_CACHED_DIRS:
            self._dirs.clear()
        self._dirs[inode.ino] = entries
        return entries


def _zeroed(raw, offset, size):
    """``raw`` with its checksum field at ``offset`` zeroed."""
    return raw[:offset] + bytes(size) + raw[offset + size:]


def _rec_len(value, block_size):
    if block_size >= 65536 and value in (0, 65535):
        return 65536
    return value


_CRC16 = reflected_table(0xA001)


def crc16(crc, data):
    """The kernel's crc16 (reflected 0x8005, no inversion): gdt_csum."""
    for b in data:
        crc = _CRC16[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _extent_header(node, space, what):
    if len(node) < 12:
        raise errors.Corrupt('%s: node too small' % what)
    magic, entries, maximum, depth = struct.unpack_from('<HHHH', node, 0)
    if magic != EXTENT_MAGIC:
        raise errors.Corrupt('%s: bad magic' % what)
    if entries > maximum or 12 + 12 * maximum > space:
        raise errors.Corrupt('%s: more entries than room' % what)
    return entries, depth


def _parse_entries(block, entries, block_size, file_types, what):
    """Add the live entries of one linear directory block (or inline
    region) to ``entries``: name -> (inode, file type or 0)."""
    pos = 0
    end = len(block)
    while pos + 8 <= end:
        ino, rec_len, name_len, file_type = struct.unpack_from(
            '<IHBB', block, pos)
        if not file_types:
            name_len |= file_type << 8      # ext2's 16-bit name length
            file_type = 0
        if block_size >= 65536 and rec_len in (0, 65535):
            rec_len = 65536
        if rec_len < 8 or rec_len & 3 or pos + rec_len > end:
            raise errors.Corrupt('%s: bad directory entry length' % what)
        if ino and name_len and 8 + name_len <= rec_len:
            name = bytes(block[pos + 8:pos + 8 + name_len])
            if name not in (b'.', b'..'):
                if len(entries) >= MAX_DIR_ENTRIES:
                    raise errors.LimitReached(
                        '%s has more than %d entries' % (what,
                                                         MAX_DIR_ENTRIES))
                entries.setdefault(name, (ino, file_type))
        pos += rec_len


def _show(name):
    return name[:64].decode('utf-8', 'replace')
