"""NTFS directories: the ``$I30`` index (``$INDEX_ROOT`` and the INDX
blocks of ``$INDEX_ALLOCATION``) searched in collation order, names
compared case-insensitively through the volume's ``$UpCase`` table as
Windows does; depth and blocks bounded, no index block visited twice.
"""

import struct
import sys
from array import array

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem.ntfs import layout
from ceilometer_os_pollster.direct.filesystem.ntfs import records

# Bounds a hostile volume can reach.
MAX_INDEX_DEPTH = 16            # levels of one directory's B+tree
MAX_INDEX_NODES = 256           # INDX blocks visited by one lookup
MAX_DIR_ENTRIES = 100000        # entries listed in one directory

# File name namespaces.
NS_POSIX, NS_WIN32, NS_DOS, NS_WIN32_AND_DOS = 0, 1, 2, 3

# Index entry flags.
ENTRY_NODE = 0x1
ENTRY_END = 0x2
COLLATION_FILE_NAME = 0x1

I30 = '$I30'.encode('utf-16-le')


class Directories(records.Records):
    """The directories of Filesystem (and its ``_upcase`` table)."""

    def listdir(self, dir_inode):
        """The Win32/POSIX names of a directory (UTF-8 bytes), in no
        particular order; bounded.  For tests and diagnostics."""
        out = []
        for entry, _child in self._walk_all(dir_inode):
            if entry[2] != NS_DOS:
                out.append(entry[0].decode('utf-16-le', 'surrogatepass')
                           .encode('utf-8', 'surrogatepass'))
                if len(out) > MAX_DIR_ENTRIES:
                    raise errors.LimitReached(
                        'ntfs: directory %s has more than %d entries'
                        % (dir_inode.path or '\\', MAX_DIR_ENTRIES))
        return out

    def _upcased(self, utf16):
        table = self._upcase_table()
        units = array('H')
        units.frombytes(utf16)
        if sys.byteorder == 'big':
            units.byteswap()
        return [table[u] for u in units]

    def _upcase_table(self):
        if self._upcase is None:
            what = 'ntfs: $UpCase'
            f = self._file(layout.UPCASE_RECORD)
            resident, stream = self._data(f, b'', what)
            data = stream.read_at(0, stream.size) if stream else resident
            if data is None or len(data) != layout.UPCASE_BYTES:
                raise errors.Corrupt('%s is not a 128 KiB table' % what)
            table = array('H')
            table.frombytes(data)
            if sys.byteorder == 'big':
                table.byteswap()
            self._upcase = table
        return self._upcase

    def _index(self, dir_inode):
        """(root entries, index block size, INDX Stream or None)."""
        f = dir_inode.file
        what = 'ntfs: directory %s' % (dir_inode.path or '\\')
        roots = [a for a in f.attrs if a.type == layout.AT_INDEX_ROOT
                 and a.name == I30]
        if len(roots) != 1 or not roots[0].resident:
            raise errors.Corrupt('%s has no $I30 index root' % what)
        value = roots[0].value
        if len(value) < 32:
            raise errors.Corrupt('%s: index root too short' % what)
        atype, collation, block_size = struct.unpack_from('<III', value, 0)
        if atype != layout.AT_FILE_NAME or collation != COLLATION_FILE_NAME:
            raise errors.Corrupt('%s: index root is not of file names'
                                 % what)
        if not 512 <= block_size <= 65536 or block_size & (block_size - 1):
            raise errors.Corrupt('%s: index block size %d is not valid'
                                 % (what, block_size))
        entries = _entries(value, 16, len(value), what)
        allocation = [a for a in f.attrs
                      if a.type == layout.AT_INDEX_ALLOCATION
                      and a.name == I30]
        stream = (self._stream_of(allocation, what + ' index')
                  if allocation else None)
        return entries, block_size, stream, what

    def _node_entries(self, stream, block_size, vcn, what):
        # VCNs count clusters, or 512-byte blocks when an index block is
        # smaller than a cluster.
        unit = (self.cluster_size if block_size >= self.cluster_size
                else records.FIXUP_STRIDE)
        if stream is None:
            raise errors.Corrupt('%s: index points below its root but has '
                                 'no allocation' % what)
        offset = vcn * unit
        if vcn < 0 or offset + block_size > stream.size:
            raise errors.Corrupt('%s: index block %d is past its '
                                 'allocation' % (what, vcn))
        node_what = '%s index block %d' % (what, vcn)
        block = records.apply_fixups(
            bytearray(stream.read_at(offset, block_size)), b'INDX',
            node_what)
        if struct.unpack_from('<q', block, 16)[0] != vcn:
            raise errors.Corrupt('%s names itself block %d' % (
                node_what, struct.unpack_from('<q', block, 16)[0]))
        return _entries(block, 24, block_size, node_what)

    def _search(self, dir_inode, key):
        """(MFT reference, stored name) of the first entry of ``dir_inode``
        named ``key`` (UTF-16LE) ignoring case, not a DOS-only name; in
        collation order, as Windows finds it."""
        root, block_size, stream, what = self._index(dir_inode)
        want = self._upcased(key)
        visited = set()

        def search(entries, depth):
            for name, ref, namespace, child in entries:
                if name is None:            # the last entry
                    return descend(child, depth)
                upper = self._upcased(name)
                if upper < want:
                    continue
                found = descend(child, depth)
                if found is not None:
                    return found
                if upper == want and namespace != NS_DOS:
                    return ref, name
                if upper != want:
                    return None
            return None

        def descend(child, depth):
            if child is None:
                return None
            if child in visited:
                raise errors.Corrupt('%s: index loops (block %d twice)'
                                     % (what, child))
            visited.add(child)
            if depth >= MAX_INDEX_DEPTH:
                raise errors.Corrupt('%s: index deeper than %d levels'
                                     % (what, MAX_INDEX_DEPTH))
            if len(visited) > MAX_INDEX_NODES:
                raise errors.LimitReached('%s: more than %d index blocks '
                                          'for one name'
                                          % (what, MAX_INDEX_NODES))
            return search(self._node_entries(stream, block_size, child,
                                             what), depth + 1)

        return search(root, 0)

    def _walk_all(self, dir_inode):
        """Every entry of a directory's index (name, ref, namespace)."""
        root, block_size, stream, what = self._index(dir_inode)
        visited = set()
        out = []
        pending = [(root, 0)]
        while pending:
            entries, depth = pending.pop()
            for name, ref, namespace, child in entries:
                if child is not None:
                    if child in visited:
                        raise errors.Corrupt('%s: index loops (block %d '
                                             'twice)' % (what, child))
                    visited.add(child)
                    if depth >= MAX_INDEX_DEPTH:
                        raise errors.Corrupt('%s: index deeper than %d '
                                             'levels' % (what,
                                                         MAX_INDEX_DEPTH))
                    pending.append((self._node_entries(
                        stream, block_size, child, what), depth + 1))
                if name is not None:
                    out.append(((name, ref, namespace), child))
                    if len(out) > MAX_DIR_ENTRIES:
                        raise errors.LimitReached(
                            '%s has more than %d entries'
                            % (what, MAX_DIR_ENTRIES))
        return out


def _entries(buf, header_at, limit, what):
    """[(UTF-16LE name or None for the last entry, MFT reference,
    namespace, child VCN or None)] of an index node whose index header
    is at ``buf[header_at:]`` and which must end by ``limit``."""
    if header_at + 16 > limit:
        raise errors.Corrupt('%s: index header past its node' % what)
    first, length, _allocated = struct.unpack_from('<III', buf, header_at)
    pos, end = header_at + first, header_at + length
    if first < 16 or first & 7 or end > limit or pos > end:
        raise errors.Corrupt('%s: bad index header' % what)
    out = []
    while True:
        if pos + 16 > end:
            raise errors.Corrupt('%s: index node has no last entry' % what)
        ref, size, key_length, flags = struct.unpack_from('<QHHH', buf, pos)
        child_room = 8 if flags & ENTRY_NODE else 0
        if size < 16 + child_room or size & 7 or pos + size > end:
            raise errors.Corrupt('%s: bad index entry' % what)
        child = None
        if flags & ENTRY_NODE:
            child = struct.unpack_from('<q', buf, pos + size - 8)[0]
        if flags & ENTRY_END:
            out.append((None, 0, 0, child))
            return out
        key_at = pos + 16
        if key_length < 0x42 or 16 + key_length + child_room > size:
            raise errors.Corrupt('%s: index key outside its entry' % what)
        name_length, namespace = buf[key_at + 0x40], buf[key_at + 0x41]
        if 0x42 + 2 * name_length > key_length or not name_length:
            raise errors.Corrupt('%s: file name outside its key' % what)
        name = bytes(buf[key_at + 0x42:key_at + 0x42 + 2 * name_length])
        out.append((name, ref, namespace, child))
        pos += size
