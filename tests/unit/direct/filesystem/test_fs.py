"""direct.fs: the path walker, read_file, extent_bytes and the choice of
filesystem module, over an in-memory filesystem (``FakeFs``, also used
by test_linux_root)."""

import pytest

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs
from ceilometer_os_pollster.direct.filesystem import filesystems
from ceilometer_os_pollster.direct.block import source as S


class Node:
    def __init__(self, kind, data=b'', children=None):
        self.kind = kind
        self.data = data
        self.children = children if children is not None else {}


class FakeFs(fs.Filesystem):
    """A filesystem from {path: bytes | '->target' str | None (dir)}.

    Counts lookups and bytes read, so tests can assert bounds.
    """

    kind = 'fake'

    def __init__(self, files):
        self.root = Node(fs.DIRECTORY)
        self.lookups = 0
        self.bytes_read = 0
        for path, content in sorted(files.items()):
            parts = [p for p in path.split('/') if p]
            node = self.root
            for part in parts[:-1]:
                node = node.children.setdefault(part.encode(),
                                                Node(fs.DIRECTORY))
            if content is None:
                leaf = Node(fs.DIRECTORY)
            elif isinstance(content, str) and content.startswith('->'):
                leaf = Node(fs.SYMLINK, content[2:].encode())
            else:
                leaf = Node(fs.FILE, content)
            node.children.setdefault(parts[-1].encode(), leaf)

    def lookup(self, dir_inode, name):
        self.lookups += 1
        return dir_inode.children.get(name)

    def kind_of(self, inode):
        return inode.kind

    def read(self, inode, limit):
        data = inode.data[:limit]
        self.bytes_read += len(data)
        return data

    def size(self, inode):
        return len(inode.data)

    def readlink(self, inode):
        return inode.data

    def key(self, inode):
        return id(inode)


TREE = {
    '/etc/os-release': '->../usr/lib/os-release',
    '/usr/lib/os-release': b'ID=test\n',
    '/etc/abs': '->/usr/lib/os-release',
    '/etc/escape': '->../../../../../../usr/lib/os-release',
    '/etc/dotdot-abs': '->/../../usr/lib/../lib/./os-release',
    '/etc/dir-link': '->/usr/lib',
    '/etc/dangling': '->/nowhere',
    '/etc/empty-link': '->',
    '/etc/self': '->self',
    '/etc/a': '->b',
    '/etc/b': '->a',
    '/bin': '->usr/bin',
    '/usr/bin/ls': b'\x7fELF',
    '/file': b'not a directory',
    '/emptydir': None,
}


@pytest.fixture
def tree():
    return FakeFs(TREE)


@pytest.mark.parametrize('path, expected', [
    ('/etc/os-release', b'ID=test\n'),
    ('etc/os-release', b'ID=test\n'),
    ('//etc///./os-release', b'ID=test\n'),
    ('/etc/abs', b'ID=test\n'),
    ('/etc/escape', b'ID=test\n'),               # '..' stops at the root
    ('/../../etc/os-release', b'ID=test\n'),
    ('/etc/dotdot-abs', b'ID=test\n'),
    ('/etc/dir-link/os-release', b'ID=test\n'),
    ('/bin/ls', b'\x7fELF'),
    ('/etc/dangling', None),
    ('/etc/empty-link', None),
    ('/etc/missing', None),
    ('/file/below', None),                       # ENOTDIR: absent
    ('/emptydir', None),                         # not a regular file
    ('/etc/dir-link', None),
])
def test_read_file(tree, path, expected):
    assert fs.read_file(tree, path, 1024) == expected


def test_read_file_is_bounded(tree):
    assert fs.read_file(tree, '/usr/lib/os-release', 3) == b'ID='
    assert tree.bytes_read == 3


def test_symlink_loops_are_corrupt(tree):
    for path in ('/etc/self', '/etc/a', '/etc/a/below'):
        with pytest.raises(errors.Corrupt) as exc:
            fs.resolve(tree, path)
        assert 'symlink loop' in exc.value.reason
    # Bounded: at most MAX_HOPS + 1 links followed.
    assert tree.lookups < 3 * (fs.MAX_HOPS + 2) * 3


def test_too_many_hops_is_a_limit():
    files = {'/l%d' % i: '->l%d' % (i + 1) for i in range(60)}
    files['/l60'] = b'end'
    chain = FakeFs(files)
    assert fs.read_file(chain, '/l20', 10) == b'end'     # 40 hops: fine
    with pytest.raises(errors.LimitReached) as exc:
        fs.read_file(chain, '/l19', 10)                  # 41 hops
    assert 'more than 40 symlinks' in exc.value.reason


def test_link_not_followed_last(tree):
    node = fs.resolve(tree, '/etc/os-release', follow_last=False)
    assert tree.kind_of(node) == fs.SYMLINK
    assert fs.readlink_at(tree, '/etc/os-release') == b'../usr/lib/os-release'
    assert fs.readlink_at(tree, '/usr/lib/os-release') is None
    assert fs.kind_at(tree, '/bin', follow_last=False) == fs.SYMLINK
    assert fs.kind_at(tree, '/bin') == fs.DIRECTORY
    assert fs.kind_at(tree, '/nothing') is None


def test_directory_cycle_and_dotdot_are_the_walkers():
    """A directory holding itself costs one lookup per component, and
    '..' is never asked of the guest (its entry could point anywhere)."""
    cyclic = FakeFs({'/d/x': b'x', '/d/..': b'planted parent'})
    d = cyclic.root.children[b'd']
    d.children[b'loop'] = d
    path = '/d' + '/loop' * 100 + '/x'
    assert fs.read_file(cyclic, path, 10) == b'x'
    assert cyclic.lookups == 102
    # '..' goes back to where the walk came from.
    assert fs.read_file(cyclic, '/d/loop/loop/../../x', 10) == b'x'
    assert fs.resolve(cyclic, '/d/loop/..') is d
    assert fs.resolve(cyclic, '/d/loop/../..') is cyclic.root


def test_component_flood_is_a_limit():
    target = '/'.join(['x'] * (fs.MAX_COMPONENTS + 1))
    flood = FakeFs({'/link': '->' + target})
    with pytest.raises(errors.LimitReached):
        fs.resolve(flood, '/link')


def test_extent_bytes_holes_and_unwritten():
    data = bytes(range(256)) * 64                       # 16 KiB
    src = S.BytesSource(data)
    extents = [(0, 1, 1, False),      # logical 0 <- physical block 1
               (2, 3, 1, True),       # unwritten: zeros
               (3, 0, 2, False)]      # runs past the size: cut
    out = fs.extent_bytes(src, 1024, extents, 4000, 1 << 20, 'test')
    assert len(out) == 4000
    assert out[:1024] == data[1024:2048]
    assert out[1024:3072] == bytes(2048)
    assert out[3072:] == data[:928]
    assert fs.extent_bytes(src, 1024, extents, 4000, 10, 'test') == \
        data[1024:1034]


def test_extent_bytes_refuses_past_the_end():
    src = S.BytesSource(bytes(4096))
    with pytest.raises(errors.Corrupt):
        fs.extent_bytes(src, 1024, [(0, 4, 1, False)], 1024, 1024, 'test')


def test_extent_bytes_refuses_huge_reads():
    src = S.BytesSource(bytes(4096))
    with pytest.raises(errors.LimitReached):
        fs.extent_bytes(src, 1024, [], 1 << 40, 1 << 40, 'test')


@pytest.mark.parametrize('data', [b'', bytes(4096), b'\xff' * 70000])
def test_open_filesystem_none_for_unknown(data):
    assert filesystems.open_filesystem(S.BytesSource(data), S.Budget()) is None


# --------------------------------------------------------------------------
# Sources for the filesystem tests (test_ext4, test_xfs, test_linux_root)

class Patched(S.Source):
    """``parent`` with some bytes replaced: {offset: bytes}.  Reads go
    through the parent, so its Budget is charged as for the real disk."""

    def __init__(self, parent, patches):
        self.parent = parent
        self.size = parent.size
        self.name = 'patched'
        self.patches = dict(patches)

    def _read(self, offset, length):
        data = bytearray(self.parent.read_at(offset, length))
        for at, new in self.patches.items():
            start = max(at, offset)
            end = min(at + len(new), offset + length)
            if start < end:
                data[start - offset:end - offset] = new[start - at:end - at]
        return bytes(data)


class Spy(S.Source):
    """Records the (offset, length) of every read."""

    def __init__(self, parent):
        self.parent = parent
        self.size = parent.size
        self.name = 'spy'
        self.reads = []

    def _read(self, offset, length):
        self.reads.append((offset, length))
        return self.parent.read_at(offset, length)


def test_patched_source():
    src = Patched(S.BytesSource(bytes(16)), {2: b'ab', 15: b'z'})
    assert src.read_at(0, 16) == b'\0\0ab' + bytes(11) + b'z'
    assert src.read_at(3, 2) == b'b\0'


def patches_at(reads, flips):
    """{offset: byte} from hypothesis' (position, value) pairs: each
    position is taken modulo the bytes a clean run read, so every flip
    lands where the reader looks."""
    spans = sorted({(offset, length) for offset, length in reads if length})
    total = sum(length for _, length in spans)
    patches = {}
    for position, value in flips:
        position %= total
        for offset, length in spans:
            if position < length:
                patches[offset + position] = bytes([value])
                break
            position -= length
    return patches


def test_patches_at():
    assert patches_at([(100, 2), (10, 1)], [(0, 1), (2, 2), (4, 3)]) == {
        10: b'\x01', 101: b'\x02', 100: b'\x03'}
