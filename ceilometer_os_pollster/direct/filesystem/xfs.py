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
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c

MAGIC = b'XFSB'
INODE_MAGIC = 0x494E                        # 'IN'
# Directory data blocks live below this byte offset of a directory.
DIR2_LEAF_OFFSET = 32 << 30

# Bounds a hostile filesystem can reach.
MAX_BMBT_LEVELS = 9
MAX_EXTENTS = 65536
MAX_TREE_BLOCKS = 4096
MAX_DIR_ENTRIES = 100000
MAX_DIR_BYTES = 32 << 20
MAX_CACHED_DIRS = 64
MAX_SYMLINK = 1024                          # XFS_SYMLINK_MAXLEN
MAX_SYMLINK_BLOCKS = 4                      # 1024 bytes in 512-byte blocks

# Data fork formats.
FMT_DEV, FMT_LOCAL, FMT_EXTENTS, FMT_BTREE = 0, 1, 2, 3

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
# are (NREXT64 moves the extent count: read below).
KNOWN_INCOMPAT = (INCOMPAT_FTYPE | INCOMPAT_SPINODES | INCOMPAT_META_UUID
                  | INCOMPAT_BIGTIME | INCOMPAT_NEEDSREPAIR
                  | INCOMPAT_NREXT64 | INCOMPAT_EXCHRANGE | INCOMPAT_PARENT)

DIFLAG_REALTIME = 0x1
DIFLAG2_NREXT64 = 1 << 4


_DATA_MAGICS = {b'XD2B': (16, True), b'XD2D': (16, False),
                b'XDB3': (64, True), b'XDD3': (64, False)}
SYMLINK_MAGIC = b'XSLM'
SYMLINK_HEADER = 56
_BMAP_MAGICS = {b'BMAP': 24, b'BMA3': 72}

# Where each v5 structure keeps its crc32c.
SB_CRC = 224
INODE_CRC = 100
DIR3_CRC = 4
BMBT_CRC = 64
SYMLINK_CRC = 12
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


class Inode:
    """One dinode's fields and its data fork bytes (untrusted)."""

    __slots__ = ('ino', 'mode', 'version', 'format', 'size', 'nextents',
                 'flags', 'fork')

    @property
    def kind(self):
        return fs_mod.kind_of_mode(self.mode)


class Filesystem(fs_mod.Filesystem):
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

    # ------------------------------------------------------------ blocks

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

    def inode(self, ino):
        """The Inode numbered ``ino``."""
        sb = self.sb
        agino_bits = sb.agblklog + sb.inopblog
        agno = ino >> agino_bits
        agbno = (ino >> sb.inopblog) & ((1 << sb.agblklog) - 1)
        slot = ino & ((1 << sb.inopblog) - 1)
        if agno >= sb.agcount or agbno >= sb.agblocks or ino == 0:
            raise errors.Corrupt('xfs: inode number %d is out of range'
                                 % ino)
        block = agno * sb.agblocks + agbno
        if block >= sb.dblocks:
            raise errors.Corrupt('xfs: inode %d is past the end of the '
                                 'filesystem' % ino)
        raw = self.source.read_at(block * self.block_size
                                  + slot * sb.inode_size, sb.inode_size)
        magic, mode, version, fmt = struct.unpack_from('>HHBB', raw, 0)
        if magic != INODE_MAGIC:
            raise errors.Corrupt('xfs: inode %d has a bad magic' % ino)
        if version not in (1, 2, 3) or (version == 3) != sb.crc:
            raise errors.Corrupt('xfs: inode %d has version %d'
                                 % (ino, version))
        if version == 3 and not crc_ok(raw, INODE_CRC):
            raise errors.TornRead('xfs: inode %d checksum mismatch' % ino)
        inode = Inode()
        inode.ino = ino
        inode.mode = mode
        inode.version = version
        inode.format = fmt
        inode.size = struct.unpack_from('>Q', raw, 56)[0]
        inode.flags = struct.unpack_from('>H', raw, 90)[0]
        forkoff = raw[82]
        core = 176 if version == 3 else 100
        if version == 3:
            flags2 = struct.unpack_from('>Q', raw, 120)[0]
            if struct.unpack_from('>Q', raw, 152)[0] != ino:
                # The slot holds another inode than the one named: a
                # live disk changed under us, or a broken tree.
                raise errors.TornRead('xfs: inode %d does not name itself'
                                      % ino)
        else:
            flags2 = 0
        if flags2 & DIFLAG2_NREXT64:
            inode.nextents = struct.unpack_from('>Q', raw, 24)[0]
        else:
            inode.nextents = struct.unpack_from('>I', raw, 76)[0]
        end = core + forkoff * 8 if forkoff else sb.inode_size
        if end > sb.inode_size or end <= core:
            raise errors.Corrupt('xfs: inode %d has a bad fork offset' % ino)
        inode.fork = raw[core:end]
        if inode.size >= 1 << 63:
            raise errors.Corrupt('xfs: inode %d has a negative size' % ino)
        return inode

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
        if inode.mode == 0:
            raise errors.TornRead('xfs: directory entry %r names a free '
                                  'inode %d' % (_show(name), ino))
        fs_mod.check_entry_type('xfs', name, entry_type, inode.mode)
        return inode

    def read(self, inode, limit):
        what = 'xfs: inode %d' % inode.ino
        if inode.flags & DIFLAG_REALTIME:
            raise errors.Unsupported('%s: realtime files are not read'
                                     % what)
        if inode.format == FMT_LOCAL:
            return bytes(inode.fork[:min(inode.size, limit)])
        want = min(inode.size, limit)
        blocks = -(-want // self.block_size)
        return fs_mod.extent_bytes(
            self.source, self.block_size,
            [(lblk, self._linear(fsbno, count, what), count, unwritten)
             for lblk, fsbno, count, unwritten in self._extents(inode,
                                                                blocks)],
            inode.size, limit, what)

    def readlink(self, inode):
        what = 'xfs: symlink inode %d' % inode.ino
        if inode.kind != fs_mod.SYMLINK:
            raise errors.Corrupt('%s is not a symlink' % what)
        if inode.size > MAX_SYMLINK:
            raise errors.Corrupt('%s is longer than %d bytes'
                                 % (what, MAX_SYMLINK))
        if inode.format == FMT_LOCAL:
            if inode.size > len(inode.fork):
                raise errors.Corrupt('%s is longer than its fork' % what)
            return bytes(inode.fork[:inode.size])
        if not self.sb.crc:
            return self.read(inode, inode.size)
        # v5: each extent of the target is one buffer that starts with
        # a header saying which bytes of the target it holds.
        out = bytearray()
        for lblk, fsbno, count, unwritten in self._extents(
                inode, MAX_SYMLINK_BLOCKS):
            if count > MAX_SYMLINK_BLOCKS:
                raise errors.Corrupt('%s spans more than %d blocks'
                                     % (what, MAX_SYMLINK_BLOCKS))
            start = self._linear(fsbno, count, what) * self.block_size
            block = self.source.read_at(start, count * self.block_size)
            if block[:4] != SYMLINK_MAGIC:
                raise errors.Corrupt('%s: bad remote block magic' % what)
            if not crc_ok(block, SYMLINK_CRC):
                raise errors.TornRead('%s: remote block checksum mismatch'
                                      % what)
            offset, length = struct.unpack_from('>II', block, 4)
            owner = struct.unpack_from('>Q', block, 32)[0]
            if owner != inode.ino:
                raise errors.TornRead('%s: remote block of another inode'
                                      % what)
            if (offset != len(out) or not length
                    or SYMLINK_HEADER + length > len(block)):
                raise errors.Corrupt('%s: bad remote block header' % what)
            out += block[SYMLINK_HEADER:SYMLINK_HEADER + length]
            if len(out) >= inode.size:
                return bytes(out[:inode.size])
        if len(out) != inode.size:
            raise errors.Corrupt('%s: target shorter than its size' % what)
        return bytes(out)

    # -------------------------------------------------------- block maps

    def _extents(self, inode, blocks):
        """[(logical, fsbno, count, unwritten)] of the data fork, the
        extents starting below logical block ``blocks``."""
        what = 'xfs: data fork of inode %d' % inode.ino
        if inode.format == FMT_EXTENTS:
            count = inode.nextents
            if count * 16 > len(inode.fork):
                raise errors.Corrupt('%s: more extents than room' % what)
            return _records(inode.fork, 0, count, blocks, [], what)
        if inode.format == FMT_BTREE:
            return self._btree(inode, blocks, what)
        raise errors.Corrupt('%s: format %d holds no extents'
                             % (what, inode.format))

    def _btree(self, inode, blocks, what):
        fork = inode.fork
        level, numrecs = struct.unpack_from('>HH', fork, 0)
        maxrecs = (len(fork) - 4) // 16
        if not 1 <= level <= MAX_BMBT_LEVELS or numrecs > maxrecs:
            raise errors.Corrupt('%s: bad B+tree root' % what)
        found = []
        visited = set()
        state = {'blocks': 0}

        def pointers(node, keys_at, ptrs_at, n):
            for i in range(n):
                key = struct.unpack_from('>Q', node, keys_at + 8 * i)[0]
                ptr = struct.unpack_from('>Q', node, ptrs_at + 8 * i)[0]
                yield key, ptr

        def walk(node, keys_at, ptrs_at, n, level):
            for key, ptr in pointers(node, keys_at, ptrs_at, n):
                if key >= blocks:
                    return False
                if ptr in visited:
                    raise errors.Corrupt('%s loops (block 0x%x twice)'
                                         % (what, ptr))
                visited.add(ptr)
                state['blocks'] += 1
                if state['blocks'] > MAX_TREE_BLOCKS:
                    raise errors.LimitReached('%s: more than %d B+tree '
                                              'blocks' % (what,
                                                          MAX_TREE_BLOCKS))
                child = self._block(ptr, what)
                header = _BMAP_MAGICS.get(child[:4])
                if header is None or (header == 72) != self.sb.crc:
                    raise errors.Corrupt('%s: bad B+tree block magic'
                                         % what)
                if self.sb.crc and not crc_ok(child, BMBT_CRC):
                    raise errors.TornRead('%s: B+tree block 0x%x checksum '
                                          'mismatch' % (what, ptr))
                child_level, child_n = struct.unpack_from('>HH', child, 4)
                if child_level != level - 1:
                    raise errors.Corrupt('%s: a B+tree block at the wrong '
                                         'level' % what)
                if self.sb.crc and struct.unpack_from(
                        '>Q', child, 56)[0] != inode.ino:
                    raise errors.TornRead('%s: B+tree block of another '
                                          'inode' % what)
                room = (self.block_size - header) // 16
                if child_n > room:
                    raise errors.Corrupt('%s: more records than room'
                                         % what)
                if child_level == 0:
                    before = len(found)
                    _records(child, header, child_n, blocks, found, what)
                    if len(found) - before < child_n:
                        return False
                elif walk(child, header, header + room * 8, child_n,
                          child_level) is False:
                    return False
            return True

        walk(fork, 4, 4 + maxrecs * 8, numrecs, level)
        return found

    # -------------------------------------------------------- directories

    def _directory(self, inode):
        """{name: (inode number, file type or 0)} of a directory
        (cached, bounded)."""
        cached = self._dirs.get(inode.ino)
        if cached is not None:
            return cached
        what = 'xfs: directory inode %d' % inode.ino
        if inode.kind != fs_mod.DIRECTORY:
            raise errors.Corrupt('%s is not a directory' % what)
        entries = {}
        if inode.format == FMT_LOCAL:
            self._short_form(inode, entries, what)
        else:
            self._data_blocks(inode, entries, what)
        if len(self._dirs) >= MAX_CACHED_DIRS:
            self._dirs.clear()
        self._dirs[inode.ino] = entries
        return entries

    def _short_form(self, inode, entries, what):
        fork = inode.fork[:inode.size]
        if len(fork) < 6:
            raise errors.Corrupt('%s: short-form header past its size'
                                 % what)
        count, i8count = fork[0], fork[1]
        width = 8 if i8count else 4
        pos = 2 + width
        for _ in range(count):
            if pos + 3 > len(fork):
                raise errors.Corrupt('%s: short-form entry past its size'
                                     % what)
            namelen = fork[pos]
            name_at = pos + 3
            ino_at = name_at + namelen + (1 if self.sb.ftype else 0)
            if namelen == 0 or ino_at + width > len(fork):
                raise errors.Corrupt('%s: bad short-form entry' % what)
            name = bytes(fork[name_at:name_at + namelen])
            entry_type = fork[ino_at - 1] if self.sb.ftype else 0
            ino = int.from_bytes(fork[ino_at:ino_at + width], 'big')
            entries.setdefault(name, (ino, entry_type))
            pos = ino_at + width

    def _data_blocks(self, inode, entries, what):
        dir_block = self.sb.dir_block_size
        per_dir_block = 1 << self.sb.dirblklog
        limit_blocks = DIR2_LEAF_OFFSET >> self.sb.blocklog
        extents = self._extents(inode, limit_blocks)
        # Logical fs block -> fsbno, for the data range only.
        mapped = {}
        total = 0
        for lblk, fsbno, count, unwritten in extents:
            if unwritten:
                continue
            for i in range(count):
                if lblk + i >= limit_blocks:
                    break
                total += 1
                if total * self.block_size > MAX_DIR_BYTES:
                    raise errors.LimitReached('%s is larger than %d MiB'
                                              % (what, MAX_DIR_BYTES >> 20))
                mapped[lblk + i] = fsbno + i
        starts = sorted({lblk - lblk % per_dir_block for lblk in mapped})
        for start in starts:
            parts = []
            for i in range(per_dir_block):
                fsbno = mapped.get(start + i)
                if fsbno is None:
                    raise errors.Corrupt('%s: a directory block with a '
                                         'hole' % what)
                parts.append(self._block(fsbno, what))
            self._parse_data_block(b''.join(parts), dir_block, entries,
                                   what)

    def _parse_data_block(self, block, size, entries, what):
        magic = bytes(block[:4])
        if magic not in _DATA_MAGICS:
            raise errors.Corrupt('%s: bad data block magic' % what)
        header, is_block_form = _DATA_MAGICS[magic]
        if (header == 64) != self.sb.crc:
            raise errors.Corrupt('%s: data block of the wrong version'
                                 % what)
        if self.sb.crc and not crc_ok(block[:size], DIR3_CRC):
            raise errors.TornRead('%s: directory block checksum mismatch'
                                  % what)
        end = size
        if is_block_form:
            count = struct.unpack_from('>I', block, size - 8)[0]
            end = size - 8 - 8 * count
            if count > size // 8 or end < header:
                raise errors.Corrupt('%s: bad block tail' % what)
        pos = header
        while pos + 8 <= end:
            if block[pos:pos + 2] == b'\xff\xff':
                length = struct.unpack_from('>H', block, pos + 2)[0]
                if length < 8 or length & 7 or pos + length > end:
                    raise errors.Corrupt('%s: bad free space entry' % what)
                pos += length
                continue
            if pos + 16 > end:
                raise errors.Corrupt('%s: entry past the block' % what)
            ino = struct.unpack_from('>Q', block, pos)[0]
            namelen = block[pos + 8]
            length = (8 + 1 + namelen + (1 if self.sb.ftype else 0) + 2
                      + 7) & ~7
            if namelen == 0 or pos + length > end:
                raise errors.Corrupt('%s: bad entry' % what)
            name = bytes(block[pos + 9:pos + 9 + namelen])
            entry_type = block[pos + 9 + namelen] if self.sb.ftype else 0
            if name not in (b'.', b'..'):
                if len(entries) >= MAX_DIR_ENTRIES:
                    raise errors.LimitReached(
                        '%s has more than %d entries' % (what,
                                                         MAX_DIR_ENTRIES))
                entries.setdefault(name, (ino, entry_type))
            pos += length


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


def _records(node, at, count, blocks, found, what):
    """Append the extent records (16 bytes each, big-endian 128-bit) at
    ``node[at:]`` that start below logical block ``blocks``."""
    for i in range(count):
        hi, lo = struct.unpack_from('>QQ', node, at + 16 * i)
        unwritten = bool(hi >> 63)
        startoff = (hi >> 9) & ((1 << 54) - 1)
        startblock = ((hi & 0x1FF) << 43) | (lo >> 21)
        length = lo & ((1 << 21) - 1)
        if startoff >= blocks:
            break
        if len(found) >= MAX_EXTENTS:
            raise errors.LimitReached('%s: more than %d extents'
                                      % (what, MAX_EXTENTS))
        found.append((startoff, startblock, length, unwritten))
    return found


def _show(name):
    return name[:64].decode('utf-8', 'replace')
