"""The btrfs root tree: subvolumes (their ROOT_ITEMs, names, parents
and paths, the ``default`` entry) and directory entries found by name
hash, for the root tree's directory and every subvolume's.
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem.btrfs import layout
from ceilometer_os_pollster.direct.filesystem.btrfs import tree as tree_mod
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c_update

# Bounds a hostile filesystem can reach.
MAX_SUBVOLUMES = 4096
MAX_SUBVOLUME_DEPTH = 64        # subvolumes nested in subvolumes
MAX_PATH_COMPONENTS = 256       # directories from a subvolume to its root
MAX_NAME_LOOKUPS = 65536        # INODE_REFs read to name all subvolumes
MAX_DIR_ENTRIES = 100000

ROOT_SUBVOL_RDONLY = 1
ROOT_ITEM_MIN = 239
DIR_ENTRY = struct.Struct('<QBQQHHB')           # 30 bytes, then name


def name_hash(name):
    """btrfs_name_hash: the key offset of a DIR_ITEM."""
    return crc32c_update(0xFFFFFFFE, name)


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


class Volume(tree_mod.Trees):
    """The trees of one btrfs device: shared by its subvolume views."""

    def __init__(self, source, budget=None):
        self._roots = {}
        self._decompressed = (None, None)
        self._lookups = 0
        super().__init__(source, budget)

    # -------------------------------------------------------- subvolumes

    def root(self, tree):
        """The Root of subvolume (or tree) ``tree``, or None when it has
        no ROOT_ITEM or is deleted (no references left)."""
        if tree in self._roots:
            return self._roots[tree]
        found = None
        for key, data in self.items(
                self.root_tree, (tree, layout.ROOT_ITEM, 0),
                (tree, layout.ROOT_ITEM, layout.MAX_KEY), 'root tree'):
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
        dirid = self.sb.root_dir_objectid or layout.ROOT_TREE_DIR_OBJECTID
        entry = None
        for name, location, _ in self._dir_items(
                self.root_tree, dirid, b'default', 'root tree directory'):
            if name == b'default':
                entry = location
                break
        if entry is None:
            return layout.FS_TREE_OBJECTID
        objectid, type_, _ = entry
        if type_ != layout.ROOT_ITEM:
            raise errors.Corrupt('btrfs: the default subvolume entry is '
                                 'not a subvolume')
        if not is_subvolume_id(objectid) or self.root(objectid) is None:
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
        low = (layout.FIRST_FREE_OBJECTID, 0, 0)
        high = (layout.LAST_FREE_OBJECTID, layout.MAX_KEY >> 56,
                layout.MAX_KEY)
        for key, data in self.items(self.root_tree, low, high,
                                    'root tree'):
            objectid, type_, offset = key
            if type_ == layout.ROOT_ITEM:
                if len(ids) >= MAX_SUBVOLUMES:
                    raise errors.LimitReached('btrfs: more than %d '
                                              'subvolumes' % MAX_SUBVOLUMES)
                ids.append(objectid)
            elif type_ == layout.ROOT_BACKREF and objectid not in backrefs:
                backrefs[objectid] = (offset, _parse_root_ref(data))
        out = []
        paths = {layout.FS_TREE_OBJECTID: ''}
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
            for key, data in self.items(
                    root, (ino, layout.INODE_REF, 0),
                    (ino, layout.INODE_REF, layout.MAX_KEY),
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
        data = self.item(root, (dirid, layout.DIR_ITEM, name_hash(name)), what)
        if data is None:
            return []
        return list(parse_dir_entries(data, what))


def is_subvolume_id(tree):
    return tree == layout.FS_TREE_OBJECTID or (
        layout.FIRST_FREE_OBJECTID <= tree <= layout.LAST_FREE_OBJECTID)


def _parse_root(tree, key_offset, data):
    if len(data) < ROOT_ITEM_MIN:
        raise errors.Corrupt('btrfs: root item of %d is truncated' % tree)
    root = tree_mod.Root()
    root.tree = tree
    root.key_offset = key_offset
    (root.generation, root.root_dirid, root.bytenr, _, _, _,
     root.flags, root.refs) = struct.unpack_from('<QQQQQQQI', data, 160)
    root.level = data[238]
    if root.level >= layout.MAX_LEVEL:
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


def parse_dir_entries(data, what):
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
