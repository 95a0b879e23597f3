"""ext4's directories: linear, htree and inline ones, and lookups.

An htree's blocks are valid linear blocks: scanning them all is a
correct lookup.  Each block's checksum (a leaf's tail, an htree node's
dx tail) is verified under metadata_csum; a directory is size- and
entry-bounded; an entry naming a free inode, or an inode of another
type than it says, is a TornRead.  ``Directories`` is the part of
``ext4.Filesystem`` that reads them.
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c_update
from ceilometer_os_pollster.direct.filesystem.ext4.inodes import FLAG_CASEFOLD
from ceilometer_os_pollster.direct.filesystem.ext4.inodes import FLAG_ENCRYPT
from ceilometer_os_pollster.direct.filesystem.ext4.inodes import (
    FLAG_INLINE_DATA)

# Bounds a hostile filesystem can reach.
MAX_DIR_ENTRIES = 100000        # entries scanned in one directory
MAX_DIR_BYTES = 32 << 20        # a directory larger than this is refused
MAX_CACHED_DIRS = 64
DIR_TAIL = struct.Struct('<IHBBI')              # 12 bytes, ends a block
DIR_TAIL_FT = 0xDE
FLAG_INDEX = 0x1000                             # htree directory


class Directories:
    """Directory lookups (a part of ext4.Filesystem)."""

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


def _rec_len(value, block_size):
    if block_size >= 65536 and value in (0, 65535):
        return 65536
    return value


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
