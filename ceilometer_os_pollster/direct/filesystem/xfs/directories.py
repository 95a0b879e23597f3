"""XFS's directories: short, block, leaf and node form, and lookups.

Lookups scan the data blocks (the logical range below
XFS_DIR2_LEAF_OFFSET) and ignore the hash structures above it: slower
than the hash, as correct.  On v5 each data block's checksum is
verified and an entry must name its inode's type; a directory is size-
and entry-bounded.  ``Directories`` is the part of ``xfs.Filesystem``
that reads them.
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.filesystem.xfs.inodes import FMT_LOCAL
from ceilometer_os_pollster.direct.filesystem.xfs.superblock import crc_ok

# Directory data blocks live below this byte offset of a directory.
DIR2_LEAF_OFFSET = 32 << 30

# Bounds a hostile filesystem can reach.
MAX_DIR_ENTRIES = 100000
MAX_DIR_BYTES = 32 << 20
MAX_CACHED_DIRS = 64

_DATA_MAGICS = {b'XD2B': (16, True), b'XD2D': (16, False),
                b'XDB3': (64, True), b'XDD3': (64, False)}

# Where each v5 structure keeps its crc32c.
DIR3_CRC = 4


class Directories:
    """Directory lookups (a part of xfs.Filesystem)."""

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


def _show(name):
    return name[:64].decode('utf-8', 'replace')
