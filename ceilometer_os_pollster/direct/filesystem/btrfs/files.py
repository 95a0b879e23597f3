"""A btrfs subvolume as a ``fs.Filesystem``: inodes, directory lookups
(entering the subvolumes that entries name) and file data from extents
(inline, regular, preallocated, holes; compressed ones decompressed,
bounded per extent and per read).
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.block import source as source_mod
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.filesystem.btrfs import compressed
from ceilometer_os_pollster.direct.filesystem.btrfs import layout
from ceilometer_os_pollster.direct.filesystem.btrfs import subvolumes

# Bounds a hostile filesystem can reach.
MAX_EXTENTS = 65536             # extent items of one file read
MAX_COMPRESSED_EXTENT = 128 << 10       # BTRFS_MAX_UNCOMPRESSED
MAX_DECOMPRESSED_PER_READ = 64 << 20
MAX_SYMLINK = 4095

# File extents.
EXTENT_INLINE, EXTENT_REG, EXTENT_PREALLOC = 0, 1, 2

INODE = struct.Struct('<QQQQQIIIIQQ')           # first 80 of 160 bytes
INODE_SIZE = 160
FILE_EXTENT = struct.Struct('<QQBBHB')          # 21 bytes
FILE_EXTENT_REG = struct.Struct('<QQQQ')        # 32 more


class Inode:
    """An inode of one subvolume tree (``tree`` is the subvolume id)."""

    __slots__ = ('tree', 'ino', 'mode', 'size', 'flags', 'nlink')

    @property
    def kind(self):
        return fs_mod.kind_of_mode(self.mode)

    def __repr__(self):
        return '<btrfs inode %d:%d>' % (self.tree, self.ino)


class Filesystem(fs_mod.Filesystem):
    """One subvolume of a btrfs device, as a fs.Filesystem: by default
    the default subvolume (what mounting the device shows).  Directory
    entries naming other subvolumes enter them."""

    kind = 'btrfs'

    def __init__(self, source, budget=None, subvolume=None, volume=None):
        self.volume = volume or subvolumes.Volume(source, budget)
        self.source = self.volume.source
        self.budget = self.volume.budget
        self.sb = self.volume.sb
        if subvolume is None:
            subvolume = self.volume.default_subvolume()
        self.subvolume_id = subvolume
        root = (self.volume.root(subvolume)
                if subvolumes.is_subvolume_id(subvolume) else None)
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
        top = self.subvolume(layout.FS_TREE_OBJECTID)
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
        data = self.volume.item(self._root(tree), (ino, layout.INODE_ITEM, 0),
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
            if type_ == layout.ROOT_ITEM:
                # A subvolume: its tree's root directory.
                root = (self.volume.root(objectid)
                        if subvolumes.is_subvolume_id(objectid) else None)
                if root is None:
                    # Deleted: the kernel shows an empty directory.
                    return None
                inode = self.inode(objectid, root.root_dirid)
            elif type_ == layout.INODE_ITEM:
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
                self._root(dir_inode.tree),
                (dir_inode.ino, layout.DIR_INDEX, 0),
                (dir_inode.ino, layout.DIR_INDEX, layout.MAX_KEY), what):
            for name, _, _ in subvolumes.parse_dir_entries(data, what):
                if len(names) >= subvolumes.MAX_DIR_ENTRIES:
                    raise errors.LimitReached(
                        'btrfs: %s: directory %d has more than %d entries'
                        % (what, dir_inode.ino, subvolumes.MAX_DIR_ENTRIES))
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
                root, (inode.ino, layout.EXTENT_DATA, 0),
                (inode.ino, layout.EXTENT_DATA, want - 1), what):
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
            if compression != compressed.COMPRESS_NONE:
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
        if compression == compressed.COMPRESS_NONE:
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
        plain = compressed.decompress(compression, raw, ram_bytes, what,
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


def _show(name):
    return name[:64].decode('utf-8', 'replace')
