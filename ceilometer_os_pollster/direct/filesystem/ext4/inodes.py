"""ext4's inodes and where their bytes are.

An inode (its checksum verified under metadata_csum) and its block map:
an extent tree (its blocks' checksums verified too) or ext2/3 indirect
blocks; inline data; fast and slow symlinks.  Trees are depth- and
count-bounded and never visit a block twice; encrypted inodes are
refused.  ``Inodes`` is the part of ``ext4.Filesystem`` that reads them.
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c_update
from ceilometer_os_pollster.direct.filesystem.ext4.superblock import _zeroed

EXTENT_MAGIC = 0xF30A

# Bounds a hostile filesystem can reach.
MAX_EXTENT_DEPTH = 5            # the kernel's own limit
MAX_EXTENTS = 65536             # extents mapped for one file
MAX_TREE_BLOCKS = 4096          # extent tree / indirect blocks per file

INODE_CHECKSUM_LO = 0x7C
INODE_CHECKSUM_HI = 0x82
INODE_GENERATION = 0x64

# Inode flags (i_flags).
FLAG_ENCRYPT = 0x800
FLAG_HUGE_FILE = 0x40000
FLAG_EXTENTS = 0x80000
FLAG_INLINE_DATA = 0x10000000
FLAG_CASEFOLD = 0x40000000

# In-inode extended attributes.
XATTR_MAGIC = 0xEA020000
XATTR_INDEX_SYSTEM = 7


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


class Inodes:
    """Inodes, block maps, file data and symlinks (a part of
    ext4.Filesystem)."""

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


def _extent_header(node, space, what):
    if len(node) < 12:
        raise errors.Corrupt('%s: node too small' % what)
    magic, entries, maximum, depth = struct.unpack_from('<HHHH', node, 0)
    if magic != EXTENT_MAGIC:
        raise errors.Corrupt('%s: bad magic' % what)
    if entries > maximum or 12 + 12 * maximum > space:
        raise errors.Corrupt('%s: more entries than room' % what)
    return entries, depth
