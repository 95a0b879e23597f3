"""direct.fs: the path walker, read_file, extent_bytes and the choice of
filesystem module, over an in-memory filesystem (``FakeFs``)."""

import pytest

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs
from ceilometer_os_pollster.direct.filesystem import filesystems
from ceilometer_os_pollster.direct.block import source as S
from tests.unit.direct.fakefs import FakeFs
from tests.unit.direct import hostile
from tests.unit.direct.hostile import Patched
from tests.unit.direct.hostile import patches_at


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
# The hostile-input helpers the reader tests share (tests.unit.direct.hostile)

def test_patched_source():
    src = Patched(S.BytesSource(bytes(16)), {2: b'ab', 15: b'z'})
    assert src.read_at(0, 16) == b'\0\0ab' + bytes(11) + b'z'
    assert src.read_at(3, 2) == b'b\0'


def test_patches_at():
    assert patches_at([(100, 2), (10, 1)], [(0, 1), (2, 2), (4, 3)]) == {
        10: b'\x01', 101: b'\x02', 100: b'\x03'}


def test_read_flipped_ends_with_the_result_or_the_reason(tmp_path):
    image = tmp_path / 'disk'
    image.write_bytes(bytes(8192))
    outcome, used = hostile.read_flipped(
        image, {10: b'x'}, lambda src, budget: [src.read_at(8, 4)])
    assert (outcome, used) == ([b'\0\0x\0'], 4)
    outcome, used = hostile.read_flipped(
        image, {}, lambda src, budget: src.read_at(0, 8192), limit=4096)
    assert isinstance(outcome, errors.LimitReached)
    assert hostile.ended_cleanly(outcome)
    assert used == 0                       # refused before it was read
    # No filesystem on a blank disk: nothing read, a clean end.
    outcome, _ = hostile.read_flipped(image, {}, hostile.read_files('/x'))
    assert outcome == [] and hostile.ended_cleanly(outcome)


@pytest.mark.parametrize('outcome, clean', [
    ([b'data', None], True),
    ([], True),
    (errors.Corrupt('xfs: bad magic'), True),
    (errors.Corrupt(''), False),          # a stop must say why
    (['text'], False),                    # a read gives bytes or None
    ([b'data', 0], False),
])
def test_ended_cleanly(outcome, clean):
    assert hostile.ended_cleanly(outcome) is clean
