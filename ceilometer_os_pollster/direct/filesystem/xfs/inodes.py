"""XFS's inodes and where their bytes are.

Dinodes v1/v2/v3 (a v3 inode's checksum verified and its own number
checked), data forks in local, extent-list and B+tree (bmbt) form (v5
B+tree blocks checksummed and naming their owner), file data and local
and remote symlinks (v5 remote blocks checksummed).  Trees are depth-
and count-bounded and never visit a block twice.  ``Inodes`` is the
part of ``xfs.Filesystem`` that reads them.
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.filesystem.xfs.superblock import crc_ok

INODE_MAGIC = 0x494E                        # 'IN'

# Bounds a hostile filesystem can reach.
MAX_BMBT_LEVELS = 9
MAX_EXTENTS = 65536
MAX_TREE_BLOCKS = 4096
MAX_SYMLINK = 1024                          # XFS_SYMLINK_MAXLEN
MAX_SYMLINK_BLOCKS = 4                      # 1024 bytes in 512-byte blocks

# Data fork formats.
FMT_DEV, FMT_LOCAL, FMT_EXTENTS, FMT_BTREE = 0, 1, 2, 3

DIFLAG_REALTIME = 0x1
DIFLAG2_NREXT64 = 1 << 4

SYMLINK_MAGIC = b'XSLM'
SYMLINK_HEADER = 56
_BMAP_MAGICS = {b'BMAP': 24, b'BMA3': 72}

# Where each v5 structure keeps its crc32c.
INODE_CRC = 100
BMBT_CRC = 64
SYMLINK_CRC = 12


class Inode:
    """One dinode's fields and its data fork bytes (untrusted)."""

    __slots__ = ('ino', 'mode', 'version', 'format', 'size', 'nextents',
                 'flags', 'fork')

    @property
    def kind(self):
        return fs_mod.kind_of_mode(self.mode)


class Inodes:
    """Inodes, block maps, file data and symlinks (a part of
    xfs.Filesystem)."""

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
