"""btrfs B-trees: tree blocks read through the chunk map, checked (their
address, level, filesystem, generation, checksum and key order), with
their DUP copy tried when the first is broken, and searched by key
range; a block met twice in one search is a loop.
"""

import bisect
import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.block import source as source_mod
from ceilometer_os_pollster.direct.filesystem.btrfs import chunk_map
from ceilometer_os_pollster.direct.filesystem.btrfs import layout
from ceilometer_os_pollster.direct.filesystem.btrfs import superblock

# Bounds a hostile filesystem can reach.
MAX_BLOCKS_PER_OP = 4096        # tree blocks visited in one search
CACHE_BYTES = 4 << 20           # parsed tree blocks kept
MAX_CHUNKS = 16384

HEADER = struct.Struct('<32s16sQQ16sQQIB')      # 101 bytes
HEADER_SIZE = HEADER.size
ITEM = struct.Struct('<QBQII')                  # key, offset, size: 25
KEY_PTR = struct.Struct('<QBQQQ')               # key, blockptr, gen: 33
KEY = struct.Struct('<QBQ')


class Node:
    """A parsed tree block: a leaf's items or a node's key pointers."""

    __slots__ = ('bytenr', 'level', 'generation', 'owner', 'keys', 'refs',
                 'raw')


class Root:
    """A tree's root: where its top block is, and for subvolumes the
    fields of its ROOT_ITEM."""

    __slots__ = ('tree', 'bytenr', 'level', 'generation', 'root_dirid',
                 'flags', 'refs', 'key_offset', 'uuid', 'parent_uuid')


class _Op:
    """One search: the blocks it may visit, each at most once."""

    __slots__ = ('seen', 'what')

    def __init__(self, what):
        self.seen = set()
        self.what = what


class Trees:
    """The trees of one btrfs device: its superblock, its chunk map and
    its tree blocks, searched by key (subvolumes.Volume reads the root
    tree's meaning)."""

    def __init__(self, source, budget=None):
        self.source = source
        self.budget = budget
        self.sb = superblock.read_superblock(source)
        self._cache = {}
        self.chunks = self._read_chunks()
        self.root_tree = Root()
        self.root_tree.tree = layout.ROOT_TREE_OBJECTID
        self.root_tree.bytenr = self.sb.root
        self.root_tree.level = self.sb.root_level
        self.root_tree.generation = self.sb.generation

    # ------------------------------------------------------------ chunks

    def _read_chunks(self):
        sb = self.sb
        array = sb.sys_chunk_array[:sb.sys_chunk_array_size]
        chunks = []
        pos = 0
        while pos < len(array):
            if pos + KEY.size > len(array):
                raise errors.Corrupt('btrfs: system chunk array is '
                                     'truncated')
            objectid, type_, offset = KEY.unpack_from(array, pos)
            if type_ != layout.CHUNK_ITEM:
                raise errors.Corrupt('btrfs: system chunk array holds an '
                                     'item of type %d' % type_)
            chunk, used = chunk_map.parse_chunk(
                offset, array[pos + KEY.size:], sb, self.source.size)
            chunks.append(chunk)
            pos += KEY.size + used
        if not chunks:
            raise errors.Corrupt('btrfs: empty system chunk array')
        self.chunks = chunk_map.ChunkMap(chunks)
        chunk_root = Root()
        chunk_root.tree = layout.CHUNK_TREE_OBJECTID
        chunk_root.bytenr = sb.chunk_root
        chunk_root.level = sb.chunk_root_level
        chunk_root.generation = sb.chunk_root_generation
        low = (layout.FIRST_CHUNK_TREE_OBJECTID, layout.CHUNK_ITEM, 0)
        high = (layout.FIRST_CHUNK_TREE_OBJECTID, layout.CHUNK_ITEM,
                layout.MAX_KEY)
        for key, data in self.items(chunk_root, low, high, 'chunk tree'):
            if len(chunks) >= MAX_CHUNKS:
                raise errors.LimitReached('btrfs: more than %d chunks'
                                          % MAX_CHUNKS)
            chunks.append(chunk_map.parse_chunk(
                key[2], data, sb, self.source.size)[0])
        return chunk_map.ChunkMap(chunks)

    def read_logical(self, logical, length, what, copy=0):
        """``length`` bytes at a logical address (<= MAX_READ)."""
        if length > source_mod.MAX_READ:
            raise errors.LimitReached('btrfs: %s of %d bytes is more than '
                                      'one read' % (what, length))
        parts = [self.source.read_at(p, n)
                 for p, n in self.chunks.physical(logical, length, what,
                                                  copy)]
        return parts[0] if len(parts) == 1 else b''.join(parts)

    # ------------------------------------------------------------- trees

    def _node(self, bytenr, level, generation, first_key, op):
        if bytenr in op.seen:
            raise errors.Corrupt('btrfs: %s loops (block %d twice)'
                                 % (op.what, bytenr))
        op.seen.add(bytenr)
        if len(op.seen) > MAX_BLOCKS_PER_OP:
            raise errors.LimitReached('btrfs: %s: more than %d tree blocks '
                                      'in one search'
                                      % (op.what, MAX_BLOCKS_PER_OP))
        node = self._cache.get(bytenr)
        if node is None:
            node = self._parse_node(bytenr, op.what)
            if len(self._cache) * self.sb.nodesize >= CACHE_BYTES:
                self._cache.clear()
            self._cache[bytenr] = node
        if node.level != level:
            raise errors.Corrupt('btrfs: %s: block %d at level %d, its '
                                 'parent says %d' % (op.what, bytenr,
                                                     node.level, level))
        if generation is not None and node.generation != generation:
            raise errors.TornRead('btrfs: %s: block %d of generation %d, '
                                  'its parent says %d' % (
                                      op.what, bytenr, node.generation,
                                      generation))
        if first_key is not None and node.keys and \
                node.keys[0] != first_key:
            raise errors.Corrupt('btrfs: %s: block %d does not start with '
                                 'the key its parent says' % (op.what,
                                                              bytenr))
        return node

    def _parse_node(self, bytenr, what):
        """The block at ``bytenr``; when a DUP/RAID1 block's first copy
        is broken, the kernel reads the other: so do we."""
        if bytenr % self.sb.sectorsize:
            raise errors.Corrupt('btrfs: %s: block %d is not aligned'
                                 % (what, bytenr))
        chunk = self.chunks.find(bytenr)
        copies = len(chunk.copies) if chunk is not None else 1
        first = None
        for copy in range(copies):
            try:
                return self._parse_copy(bytenr, what, copy)
            except (errors.Corrupt, errors.TornRead) as e:
                first = first or e
        raise first

    def _parse_copy(self, bytenr, what, copy):
        sb = self.sb
        raw = self.read_logical(bytenr, sb.nodesize, what, copy)
        (_, fsid, hbytenr, _, _, generation, owner, nritems,
         level) = HEADER.unpack_from(raw, 0)
        if hbytenr != bytenr:
            raise errors.TornRead('btrfs: %s: block %d names address %d'
                                  % (what, bytenr, hbytenr))
        if fsid != sb.tree_fsid:
            raise errors.Corrupt('btrfs: %s: block %d belongs to another '
                                 'filesystem' % (what, bytenr))
        if not superblock.csum_ok(raw, sb.csum_type):
            # Tree blocks are written whole or not at all, in a place
            # no live tree points at: a mismatch is a block rewritten
            # under us (or damage; either way read again, then give up).
            raise errors.TornRead('btrfs: %s: block %d fails its %s '
                                  'checksum' % (
                                      what, bytenr,
                                      superblock.CSUM_NAMES[sb.csum_type]))
        if level >= layout.MAX_LEVEL:
            raise errors.Corrupt('btrfs: %s: block %d at level %d'
                                 % (what, bytenr, level))
        if generation > sb.generation + 1:
            raise errors.TornRead('btrfs: %s: block %d is newer than the '
                                  'superblock' % (what, bytenr))
        space = sb.nodesize - HEADER_SIZE
        node = Node()
        node.bytenr, node.level, node.generation = bytenr, level, generation
        node.owner = owner
        node.raw = raw
        if level == 0:
            if nritems > space // ITEM.size:
                raise errors.Corrupt('btrfs: %s: leaf %d holds %d items'
                                     % (what, bytenr, nritems))
            table = raw[HEADER_SIZE:HEADER_SIZE + ITEM.size * nritems]
            keys, refs = [], []
            floor = ITEM.size * nritems
            for objectid, type_, offset, at, size in ITEM.iter_unpack(table):
                if at < floor or at + size > space:
                    raise errors.Corrupt('btrfs: %s: leaf %d has an item '
                                         'outside it' % (what, bytenr))
                keys.append((objectid, type_, offset))
                refs.append((HEADER_SIZE + at, size))
        else:
            if nritems == 0 or nritems > space // KEY_PTR.size:
                raise errors.Corrupt('btrfs: %s: node %d holds %d pointers'
                                     % (what, bytenr, nritems))
            table = raw[HEADER_SIZE:HEADER_SIZE + KEY_PTR.size * nritems]
            keys, refs = [], []
            for objectid, type_, offset, ptr, gen in KEY_PTR.iter_unpack(
                    table):
                keys.append((objectid, type_, offset))
                refs.append((ptr, gen))
        for a, b in zip(keys, keys[1:]):
            if a >= b:
                raise errors.Corrupt('btrfs: %s: block %d has keys out of '
                                     'order' % (what, bytenr))
        node.keys, node.refs = keys, refs
        return node

    def items(self, root, low, high, what):
        """(key, data) of the items of ``root``'s tree with
        low <= key <= high, in key order (a generator)."""
        op = _Op(what)
        return self._walk(root.bytenr, root.level, root.generation, None,
                          low, high, op)

    def _walk(self, bytenr, level, generation, first_key, low, high, op):
        node = self._node(bytenr, level, generation, first_key, op)
        keys = node.keys
        if node.level == 0:
            i = bisect.bisect_left(keys, low)
            while i < len(keys) and keys[i] <= high:
                at, size = node.refs[i]
                yield keys[i], node.raw[at:at + size]
                i += 1
            return
        i = max(0, bisect.bisect_right(keys, low) - 1)
        while i < len(keys) and keys[i] <= high:
            ptr, gen = node.refs[i]
            yield from self._walk(ptr, node.level - 1, gen, keys[i], low,
                                  high, op)
            i += 1

    def item(self, root, key, what):
        """The data of the item with exactly ``key``, or None."""
        for _, data in self.items(root, key, key, what):
            return data
        return None
