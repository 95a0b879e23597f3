"""An NTFS volume as a ``fs.Filesystem``: nodes and their kinds
(relative symbolic links followed, other reparse points refused or
'other'), lookups by name, reads and streams of a file's data.
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.block import source as source_mod
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.filesystem.ntfs import directories
from ceilometer_os_pollster.direct.filesystem.ntfs import layout
from ceilometer_os_pollster.direct.filesystem.ntfs import records

# Bounds a hostile volume can reach.
MAX_VALUE = 1 << 20             # a small attribute's value (reparse data)
MAX_SYMLINK = 4096
# read() assembles at most this much of one file in memory (hives are
# up to ~100 MiB; open_stream reads larger ones piecewise).
MAX_FILE_READ = 128 << 20

IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003
IO_REPARSE_TAG_SYMLINK = 0xA000000C
SYMLINK_FLAG_RELATIVE = 0x1


class Node:
    """The handle callers get: a file and the path it was reached by
    (for reasons; a hard-linked file has several)."""

    __slots__ = ('file', 'path', 'kind', 'target', 'refusal')

    @property
    def number(self):
        return self.file.number


class Filesystem(directories.Directories, fs_mod.Filesystem):
    """An NTFS volume on a Source (the partition)."""

    kind = 'ntfs'

    def __init__(self, source, budget=None):
        self.source = source
        self.budget = budget
        self.boot = records.BootSector(source.read_at(0, 512), source.size)
        self.cluster_size = self.boot.cluster_size
        self.record_size = self.boot.record_size
        self._files = {}
        self._upcase = None
        self._mft = None
        self._mft = self._mft_stream()
        root = self._file(layout.ROOT_RECORD)
        self.root = self._node(root, '')
        if self.root.kind != fs_mod.DIRECTORY:
            raise errors.Corrupt('ntfs: the root directory (record 5) is '
                                 'not a directory')

    # -------------------------------------------------------- interface

    def _node(self, f, path):
        node = Node()
        node.file = f
        node.path = path
        node.target = None
        node.refusal = None
        what = 'ntfs: %s' % (path or '\\')
        if not f.flags & layout.MFT_IN_USE:
            raise errors.TornRead('%s: its MFT record %d is free'
                                  % (what, f.number))
        reparse = [a for a in f.attrs if a.type == layout.AT_REPARSE_POINT]
        if f.flags & layout.MFT_DIRECTORY:
            node.kind = fs_mod.DIRECTORY
        else:
            node.kind = fs_mod.FILE
        if reparse:
            data = self._value(reparse[0], what + ' reparse point',
                               MAX_VALUE)
            if len(data) < 8:
                raise errors.Corrupt('%s: reparse point too short' % what)
            tag = struct.unpack_from('<I', data, 0)[0]
            if tag == IO_REPARSE_TAG_SYMLINK:
                node.target = _relative_target(data, what)
                node.kind = (fs_mod.SYMLINK if node.target is not None
                             else fs_mod.OTHER)
            elif tag == IO_REPARSE_TAG_MOUNT_POINT:
                node.kind = fs_mod.OTHER
            elif node.kind == fs_mod.FILE:
                node.refusal = ('%s is a reparse point (tag 0x%08x)'
                                % (what, tag))
        return node

    def key(self, inode):
        return inode.file.number

    def size(self, inode):
        if inode.kind != fs_mod.FILE:
            return 0
        # The first extent says, whatever its runs (cheap, never raises).
        for a in inode.file.attrs:
            if a.type == layout.AT_DATA and not a.name and a.lowest_vcn == 0:
                return max(0, a.data_size)
        return 0

    def open_stream(self, inode):
        """The file's data as a Source (read piecewise: a large hive)."""
        what = 'ntfs: %s' % inode.path
        if inode.kind != fs_mod.FILE:
            raise errors.Corrupt('%s is not a regular file' % what)
        if inode.refusal:
            raise errors.Unsupported(inode.refusal)
        resident, stream = self._data(inode.file, b'', what)
        if stream is not None:
            return stream
        return source_mod.BytesSource(resident or b'', what)

    def read(self, inode, limit):
        stream = self.open_stream(inode)
        want = max(0, min(stream.size, limit))
        if want > MAX_FILE_READ:
            raise errors.LimitReached('ntfs: reading %d bytes of %s is more '
                                      'than %d' % (want, inode.path,
                                                   MAX_FILE_READ))
        out = bytearray()
        while len(out) < want:
            n = min(want - len(out), source_mod.MAX_READ)
            out += stream.read_at(len(out), n)
        return bytes(out)

    def readlink(self, inode):
        if inode.kind != fs_mod.SYMLINK:
            raise errors.Corrupt('ntfs: %s is not a symlink' % inode.path)
        return inode.target

    def lookup(self, dir_inode, name):
        if isinstance(name, str):
            name = name.encode('utf-8', 'surrogatepass')
        try:
            key = name.decode('utf-8', 'surrogatepass').encode(
                'utf-16-le', 'surrogatepass')
        except UnicodeError:
            return None             # no NTFS name is these bytes
        if not key or len(key) > 510:
            return None
        found = self._search(dir_inode, key)
        if found is None:
            return None
        ref, stored = found
        # Reasons name the path as the volume spells it.
        path = '%s\\%s' % (dir_inode.path, stored.decode('utf-16-le',
                                                         'replace'))
        number, seq = ref & layout.REF_MASK, ref >> 48
        f = self._file(number)
        what = 'ntfs: %s' % path
        if not f.flags & layout.MFT_IN_USE or (seq and f.seq != seq):
            raise errors.TornRead('%s: directory entry names record %d, '
                                  'which is free or reused' % (what, number))
        if not any(a.type == layout.AT_FILE_NAME and a.resident
                   and len(a.value) >= 8
                   and struct.unpack_from('<Q', a.value, 0)[0]
                   & layout.REF_MASK == dir_inode.number
                   for a in f.attrs):
            raise errors.TornRead('%s: record %d has no name in its '
                                  'directory' % (what, number))
        return self._node(f, path)


def _relative_target(data, what):
    """The target of a relative symbolic link reparse point as a path
    with '/' separators, or None for an absolute one."""
    if len(data) < 20:
        raise errors.Corrupt('%s: symlink reparse data too short' % what)
    sub_off, sub_len, _p_off, _p_len, flags = struct.unpack_from(
        '<HHHHI', data, 8)
    if not flags & SYMLINK_FLAG_RELATIVE:
        return None
    start = 20 + sub_off
    if sub_len & 1 or start + sub_len > len(data) or sub_len > MAX_SYMLINK:
        raise errors.Corrupt('%s: symlink target outside its data' % what)
    target = data[start:start + sub_len].decode('utf-16-le',
                                                'surrogatepass')
    return target.replace('\\', '/').encode('utf-8', 'surrogatepass')
