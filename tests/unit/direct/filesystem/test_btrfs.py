"""direct.btrfs on real filesystems: images made by mkfs.btrfs (single,
DUP and mixed metadata), filled by the kernel through a loop mount
(SUSE-style subvolumes, a snapshot of the root with another os-release
set as the default, nested subvolumes, zstd/zlib/lzo compression, inline
files, a large directory, a fragmented file, holes and preallocated
space, symlinks) and checked against what the kernel and ``btrfs``
report.  Then the images made hostile (patched bytes, truncation) and
fuzzed."""

import bisect
import os
import re
import shutil
import struct
import subprocess
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ceilometer_os_pollster.direct.filesystem import btrfs
from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import filesystems
from ceilometer_os_pollster.direct.filesystem import fs
from ceilometer_os_pollster.direct.block import source as S
from tests.unit.direct import hostile
from tests.unit.direct.hostile import FLIPS
from tests.unit.direct.hostile import FUZZ
from tests.unit.direct.hostile import Patched
from tests.unit.direct.hostile import patches_at

MiB = 1 << 20

ROOT_RELEASE = b'NAME="SLES"\nVERSION_ID="15.6"\nID="sles"\n'
SNAP_RELEASE = b'NAME="SLES"\nVERSION_ID="15.7"\nID="sles"\n'
ENTRIES = 3000
FRAGMENTS = 400

# name: (mkfs options, mount compression)
VARIANTS = {
    'single-zstd': (['-m', 'single', '-d', 'single'], 'zstd'),
    'dup-zlib': (['-m', 'dup', '-d', 'dup'], 'zlib'),
    'mixed-lzo': (['--mixed'], 'lzo'),
}
# Files compared with the kernel's bytes, as the top level (5) sees them.
FILES = ('/@/usr/lib/os-release', '/@/etc/os-release', '/@/big',
         '/@/random', '/@/small', '/@/sparse', '/@/prealloc',
         '/@/fragmented', '/@/many/name-2999', '/@/home/user/data',
         '/@/srv/a/b/deep/file', '/@/.snapshots/1/snapshot/etc/os-release')


def _run(*argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True,
                          **kw).stdout


def _subvolume(path):
    _run('btrfs', '-q', 'subvolume', 'create', str(path))


def _populate(top):
    """SLES' layout, inside the top level mounted at ``top``."""
    root = top / '@'
    _subvolume(root)
    (root / 'usr/lib').mkdir(parents=True)
    (root / 'etc').mkdir()
    (root / 'usr/lib/os-release').write_bytes(ROOT_RELEASE)
    os.symlink('../usr/lib/os-release', root / 'etc/os-release')
    os.symlink('/usr/lib/os-release', root / 'abs-link')
    os.symlink('loop2', root / 'loop1')
    os.symlink('loop1', root / 'loop2')
    (root / 'small').write_bytes(b'inline\n' * 20)
    (root / 'big').write_bytes(b''.join(b'line %d of a compressible file\n'
                                        % i for i in range(12000)))
    (root / 'random').write_bytes(os.urandom(300 * 1024 + 5))
    with open(root / 'sparse', 'wb') as f:
        f.seek(MiB)
        f.write(b'after a hole')
    with open(root / 'prealloc', 'wb') as f:
        os.posix_fallocate(f.fileno(), 0, 256 * 1024)
        f.seek(100 * 1024)
        f.write(b'written inside preallocated space')
    fd = os.open(root / 'fragmented', os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for i in range(FRAGMENTS):
            os.pwrite(fd, os.urandom(2048) + bytes([i % 251]) * 2048,
                      i * 8192)
            if i % 16 == 0:
                os.fsync(fd)
    finally:
        os.close(fd)
    (root / 'many').mkdir()
    for i in range(ENTRIES):
        (root / 'many' / ('name-%d' % i)).write_bytes(b'%d\n' % i)
    _subvolume(root / '.snapshots')
    (root / '.snapshots/1').mkdir()
    _subvolume(root / 'var')
    (root / 'home').mkdir()
    _subvolume(root / 'home/user')
    (root / 'home/user/data').write_bytes(b'user data\n')
    (root / 'srv/a/b').mkdir(parents=True)
    _subvolume(root / 'srv/a/b/deep')
    (root / 'srv/a/b/deep/file').write_bytes(b'deep\n')
    os.sync()
    snap = root / '.snapshots/1/snapshot'
    _run('btrfs', '-q', 'subvolume', 'snapshot', str(root), str(snap))
    (snap / 'usr/lib/os-release').write_bytes(SNAP_RELEASE)
    _run('btrfs', '-q', 'subvolume', 'snapshot', '-r', str(snap),
         str(root / '.snapshots/ro'))
    _run('btrfs', 'subvolume', 'set-default', str(snap))


def _kernel_view(top):
    """What the kernel and btrfs-progs say of the mounted top level."""
    listed = []
    for line in _run('btrfs', 'subvolume', 'list', str(top)).splitlines():
        m = re.match(r'ID (\d+) gen \d+ top level (\d+) path (.*)$', line)
        listed.append((int(m.group(1)), m.group(3), int(m.group(2))))
    snapshots = sorted(
        int(re.match(r'ID (\d+) ', line).group(1)) for line in
        _run('btrfs', 'subvolume', 'list', '-s', str(top)).splitlines())
    default = int(re.match(r'ID (\d+) ', _run(
        'btrfs', 'subvolume', 'get-default', str(top))).group(1))
    files = {}
    for path in FILES:
        files[path] = (top / path.lstrip('/')).read_bytes()
    files['listing'] = sorted(os.fsencode(n)
                              for n in os.listdir(top / '@/many'))
    return {'subvolumes': sorted(listed), 'snapshots': snapshots,
            'default': default, 'files': files}


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """{variant: (image path, the kernel's view)}."""
    work = tmp_path_factory.mktemp('btrfs')
    mnt = work / 'mnt'
    mnt.mkdir()
    built = {}
    for name, (options, compression) in VARIANTS.items():
        image = work / (name + '.img')
        with open(image, 'wb') as stream:
            stream.truncate(256 * MiB)
        _run('mkfs.btrfs', '-q', '-f', *options, str(image))
        _run('mount', '-t', 'btrfs', '-o', 'loop,compress-force=%s'
             % compression, str(image), str(mnt))
        try:
            _populate(mnt)
        finally:
            _run('umount', str(mnt))
        _run('mount', '-t', 'btrfs', '-o', 'loop,ro,subvolid=5',
             str(image), str(mnt))
        try:
            built[name] = (image, _kernel_view(mnt))
        finally:
            _run('umount', str(mnt))
    yield built
    shutil.rmtree(work, ignore_errors=True)


class Resummed(Patched):
    """Patched, with the crc32c of every patched tree block made right
    again (a tenant computes it as easily as the kernel): the checks
    behind the checksum are what is tested."""

    def __init__(self, parent, patches):
        super().__init__(parent, patches)
        raw = parent.read_at(btrfs.SUPER_OFFSETS[0], btrfs.SUPER_SIZE)
        self.fsid = raw[0x20:0x30]
        self.nodesize = struct.unpack_from('<I', raw, 0x94)[0]

    def _read(self, offset, length):
        data = super()._read(offset, length)
        touched = any(offset <= at < offset + length for at in self.patches)
        if (touched and length == self.nodesize
                and data[0x20:0x30] == self.fsid):
            data = bytearray(data)
            struct.pack_into('<I', data, 0, btrfs.crc32c(bytes(data[32:])))
            data = bytes(data)
        return data


def _open(path, budget=None, patches=None):
    budget = budget or S.Budget()
    source = S.FileSource(str(path), budget)
    if patches:
        source = Resummed(source, patches)
    return btrfs.Filesystem(source, budget), budget


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_subvolumes_equal_btrfs_progs(images, variant):
    image, kernel = images[variant]
    f, budget = _open(image)
    listed = f.subvolumes()
    assert sorted((s.id, s.path, s.parent) for s in listed) == \
        kernel['subvolumes']
    assert sorted(s.id for s in listed if s.snapshot) == \
        kernel['snapshots']
    assert f.default_subvolume() == kernel['default']
    by_path = {s.path: s for s in listed}
    assert by_path['@/.snapshots/ro'].readonly
    assert not by_path['@/.snapshots/1/snapshot'].readonly
    assert by_path['@/.snapshots/1/snapshot'].parent_uuid == \
        by_path['@'].uuid
    # The device mounted whole shows the default subvolume.
    assert f.subvolume_id == kernel['default']
    assert fs.read_file(f, '/etc/os-release', 4096) == SNAP_RELEASE
    for path, sub in by_path.items():
        assert f.subvolume_at(path) == sub.id
        assert f.subvolume_at('/' + path + '/') == sub.id
    assert f.subvolume_at('/') == btrfs.FS_TREE_OBJECTID
    assert f.subvolume_at('@/etc') is None
    assert f.subvolume_at('@/nothing') is None
    assert budget.used < 8 * MiB


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_files_equal_the_kernels(images, variant):
    image, kernel = images[variant]
    f, budget = _open(image)
    top = f.subvolume(btrfs.FS_TREE_OBJECTID)
    for path in FILES:
        assert fs.read_file(top, path, 64 * MiB) == \
            kernel['files'][path], path
    assert fs.read_file(top, '/@/abs-link', 100) is None   # '/' is top's
    root = f.subvolume(f.subvolume_at('@'))
    assert fs.read_file(root, '/abs-link', 100) == ROOT_RELEASE
    assert fs.readlink_at(root, '/etc/os-release') == \
        b'../usr/lib/os-release'
    assert sorted(root.listdir(fs.resolve(root, '/many'))) == \
        kernel['files']['listing']
    for i in range(0, ENTRIES, 97):
        assert fs.read_file(root, '/many/name-%d' % i, 100) == b'%d\n' % i
    assert fs.read_file(root, '/many/name-%d' % ENTRIES, 100) is None
    assert fs.read_file(root, '/many', 100) is None
    assert fs.read_file(root, '/big', 1000) == \
        kernel['files']['/@/big'][:1000]
    with pytest.raises(errors.Corrupt) as exc:
        fs.read_file(root, '/loop1', 100)
    assert 'symlink loop' in exc.value.reason
    assert budget.used < 16 * MiB


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_open_filesystem_finds_btrfs(images, variant):
    budget = S.Budget()
    source = S.FileSource(str(images[variant][0]), budget)
    found = filesystems.open_filesystem(source, budget)
    assert found.kind == 'btrfs'
    assert found.subvolume_id == images[variant][1]['default']
    assert found.sb.csum_type == btrfs.CSUM_CRC32C


def _extent_kinds(f, root, name):
    """[(extent type, compression)] of a file's EXTENT_DATA items."""
    node = fs.resolve(root, '/' + name)
    return [(data[20], data[16]) for _, data in f.volume.items(
        f.volume.root(node.tree), (node.ino, btrfs.EXTENT_DATA, 0),
        (node.ino, btrfs.EXTENT_DATA, btrfs.MAX_KEY), 'test')]


@pytest.mark.parametrize('variant, compression', [
    ('mixed-lzo', btrfs.COMPRESS_LZO), ('dup-zlib', btrfs.COMPRESS_ZLIB)])
def test_compressed_extents_are_the_ones_meant(images, variant,
                                               compression):
    f, _ = _open(images[variant][0])
    root = f.subvolume(f.subvolume_at('@'))
    assert _extent_kinds(f, root, 'big').count(
        (btrfs.EXTENT_REG, compression)) >= 2
    assert _extent_kinds(f, root, 'small') == [
        (btrfs.EXTENT_INLINE, compression)]


def test_compressed_and_fragmented_extents_are_the_ones_meant(images):
    f, _ = _open(images['single-zstd'][0])
    root = f.subvolume(f.subvolume_at('@'))
    kinds = {name: _extent_kinds(f, root, name)
             for name in ('big', 'small', 'random', 'fragmented', 'sparse',
                          'prealloc')}
    zstd = (btrfs.EXTENT_REG, btrfs.COMPRESS_ZSTD)
    assert kinds['big'].count(zstd) >= 2
    assert kinds['small'] in ([(btrfs.EXTENT_INLINE, btrfs.COMPRESS_ZSTD)],
                              [(btrfs.EXTENT_INLINE, btrfs.COMPRESS_NONE)])
    assert (btrfs.EXTENT_REG, btrfs.COMPRESS_NONE) in kinds['random']
    assert len(kinds['fragmented']) >= FRAGMENTS
    assert (btrfs.EXTENT_PREALLOC, btrfs.COMPRESS_NONE) in kinds['prealloc']


@pytest.mark.parametrize('csum, csum_type', [
    ('sha256', btrfs.CSUM_SHA256), ('blake2', btrfs.CSUM_BLAKE2),
    ('xxhash', btrfs.CSUM_XXHASH)])
def test_other_checksum_types(tmp_path, csum, csum_type):
    """mkfs.btrfs --rootdir fills the image itself (no mount: the
    kernel may lack the hash)."""
    (tmp_path / 'root/etc').mkdir(parents=True)
    (tmp_path / 'root/etc/os-release').write_bytes(ROOT_RELEASE)
    image = tmp_path / 'csum.img'
    with open(image, 'wb') as stream:
        stream.truncate(128 * MiB)
    _run('mkfs.btrfs', '-q', '-f', '--csum', csum, '--rootdir',
         str(tmp_path / 'root'), str(image))
    f, _ = _open(image)
    assert f.sb.csum_type == csum_type
    assert fs.read_file(f, '/etc/os-release', 4096) == ROOT_RELEASE
    # Both copies of the root tree's block (metadata is DUP).
    damage = {f.volume.chunks.physical(f.sb.root, 1, 'test', copy)[0][0]
              + f.sb.nodesize - 1: b'\x01' for copy in (0, 1)}
    assert len(damage) == 2
    budget = S.Budget()
    source = Patched(S.FileSource(str(image), budget), damage)
    if csum_type == btrfs.CSUM_XXHASH:
        # Not verified: the damage is in an unused byte.
        assert btrfs.Filesystem(source, budget).default_subvolume() == 5
    else:
        with pytest.raises(errors.TornRead) as exc:
            btrfs.Filesystem(source, budget)
        assert 'checksum' in exc.value.reason


class _Sb:
    sectorsize = 4096
    devid = 1


def _chunk_item(length, type_, stripes):
    return btrfs.CHUNK.pack(length, 2, 65536, type_, 4096, 4096, 4096,
                            len(stripes), 0) + b''.join(
        btrfs.STRIPE.pack(devid, offset, bytes(16))
        for devid, offset in stripes)


@pytest.mark.parametrize('type_, stripes, expected', [
    (btrfs.BG_DATA, [(1, 8192)], (8192,)),
    (btrfs.BG_METADATA | btrfs.BG_DUP, [(1, 8192), (1, 65536)],
     (8192, 65536)),
    (btrfs.BG_SYSTEM | btrfs.BG_RAID1, [(1, 8192), (1, 65536)],
     (8192, 65536)),
    (btrfs.BG_DATA, [(1, 8192), (1, 65536)], errors.Corrupt),
    (btrfs.BG_DATA | btrfs.BG_RAID10, [(1, 8192)], errors.Unsupported),
    (btrfs.BG_DATA | btrfs.BG_RAID1C3, [(1, 8192)], errors.Unsupported),
    (btrfs.BG_DATA | btrfs.BG_RAID5, [(1, 8192)], errors.Unsupported),
    (btrfs.BG_DATA, [(2, 8192)], errors.Unsupported),
    (btrfs.BG_DATA, [(1, MiB - 4096)], errors.Corrupt),    # past the end
    (btrfs.BG_DATA, [], errors.Corrupt),
])
def test_parse_chunk(type_, stripes, expected):
    data = _chunk_item(8192, type_, stripes)
    if isinstance(expected, tuple):
        chunk, used = btrfs.parse_chunk(1 << 20, data, _Sb, MiB)
        assert chunk.copies == expected and used == len(data)
        assert (chunk.logical, chunk.length) == (1 << 20, 8192)
    else:
        with pytest.raises(expected):
            btrfs.parse_chunk(1 << 20, data, _Sb, MiB)


def _chunk(logical, length, *copies):
    return btrfs.Chunk(logical, length, copies[0], btrfs.BG_DATA, copies)


@pytest.mark.parametrize('chunks, words', [
    ([_chunk(0, 8192, 0), _chunk(4096, 8192, 65536)], 'overlap'),
    ([_chunk(0, 8192, 0), _chunk(8192, 8192, 4096)], 'device offset'),
    ([_chunk(0, 8192, 0, 16384), _chunk(8192, 8192, 20480)],
     'device offset'),
])
def test_chunk_map_refuses_overlaps(chunks, words):
    with pytest.raises(errors.Corrupt) as exc:
        btrfs.ChunkMap(chunks)
    assert words in exc.value.reason


def test_chunk_map_addresses():
    # The system chunk again from the chunk tree: one chunk.
    m = btrfs.ChunkMap([_chunk(8192, 8192, 0), _chunk(0, 8192, 65536),
                        _chunk(8192, 8192, 0)])
    assert len(m.chunks) == 2
    assert m.physical(4096, 8192, 'x') == [(65536 + 4096, 4096), (0, 4096)]
    dup = btrfs.ChunkMap([_chunk(0, 8192, 0, 16384)])
    assert dup.physical(100, 10, 'x', copy=1) == [(16384 + 100, 10)]
    assert dup.physical(100, 10, 'x', copy=5) == [(16384 + 100, 10)]
    with pytest.raises(errors.Corrupt) as exc:
        m.physical(16384, 1, 'block')
    assert exc.value.reason == 'btrfs: block at logical 16384 is in no chunk'


def test_crc32c_and_name_hash(images):
    assert btrfs.crc32c(b'123456789') == 0xE3069283
    assert btrfs.crc32c(b'') == 0
    # Every DIR_ITEM the kernel wrote is keyed by the hash of its names.
    f, _ = _open(images['single-zstd'][0])
    node = fs.resolve(f.subvolume(5), '/@/many')
    count = 0
    for key, data in f.volume.items(
            f.volume.root(node.tree), (node.ino, btrfs.DIR_ITEM, 0),
            (node.ino, btrfs.DIR_ITEM, btrfs.MAX_KEY), 'test'):
        for name, _, _ in btrfs.parse_dir_entries(data, 'test'):
            assert key[2] == btrfs.name_hash(name)
            count += 1
    assert count == ENTRIES


# --------------------------------------------------------------------------
# Hostile images


def _superblock(image):
    with open(image, 'rb') as f:
        f.seek(btrfs.SUPER_OFFSETS[0])
        return bytearray(f.read(btrfs.SUPER_SIZE))


def _with_crc(raw):
    struct.pack_into('<I', raw, 0, btrfs.crc32c(bytes(raw[32:])))
    return bytes(raw)


def _super_patch(image, changes, offset=btrfs.SUPER_OFFSETS[0]):
    raw = _superblock(image)
    for at, value in changes.items():
        raw[at:at + len(value)] = value
    struct.pack_into('<Q', raw, 0x30, offset)
    return {offset: _with_crc(raw)}


def _hostile(image, patches, path, expected, budget_max=8 * MiB,
             subvolume=None):
    budget = S.Budget(budget_max)
    with pytest.raises(expected) as exc:
        f, _ = _open(image, budget, patches)
        if subvolume is not None:
            f = f.subvolume(subvolume)
        fs.read_file(f, path, 64 * MiB)
    assert exc.value.reason.startswith('btrfs') or 'disks' in \
        exc.value.reason
    assert budget.used <= budget_max
    return exc.value.reason


def _physical(f, logical):
    return f.volume.chunks.physical(logical, 1, 'test')[0][0]


def _leaf_with(f, root, key):
    """(physical offset of the leaf holding ``key``, its Node)."""
    op = btrfs.tree._Op('test')
    node = f.volume._node(root.bytenr, root.level, None, None, op)
    while node.level:
        i = max(0, bisect.bisect_right(node.keys, key) - 1)
        ptr, _ = node.refs[i]
        node = f.volume._node(ptr, node.level - 1, None, None, op)
    return _physical(f, node.bytenr), node


def test_truncated_image(images):
    budget = S.Budget()
    half = S.Window(S.FileSource(str(images['single-zstd'][0]), budget), 0,
                    80 * MiB)
    with pytest.raises(errors.Corrupt) as exc:
        btrfs.Filesystem(half, budget)
    assert 'larger than its volume' in exc.value.reason
    tiny = S.Window(half, 0, 64 * 1024 + 100)
    assert btrfs.probe(tiny)
    with pytest.raises(errors.Corrupt):
        btrfs.Filesystem(tiny, budget)
    assert budget.used < 64 * 1024


@pytest.mark.parametrize('at, value, expected, words', [
    (0x88, struct.pack('<Q', 2), errors.Unsupported, 'multi-device'),
    (0x88, struct.pack('<Q', 0), errors.Corrupt, 'no devices'),
    (0xC4, struct.pack('<H', 9), errors.Unsupported, 'checksum type'),
    (0xBC, struct.pack('<Q', 1 << 12), errors.Unsupported, 'zoned'),
    (0xBC, struct.pack('<Q', 1 << 40), errors.Unsupported, 'unknown'),
    (0x94, struct.pack('<I', 1000), errors.Corrupt, 'node size'),
    (0xC6, b'\x09', errors.Corrupt, 'level'),
    (0xA0, struct.pack('<I', 4000), errors.Corrupt, 'chunk array'),
])
def test_hostile_superblock(images, at, value, expected, words):
    image = images['single-zstd'][0]
    patches = _super_patch(image, {at: value})
    # The mirror at 64 MiB is valid: spoil it too, else it is used.
    patches[btrfs.SUPER_OFFSETS[1] + 0x40] = b'XXXXXXXX'
    reason = _hostile(image, patches, '/etc/os-release', expected)
    assert words in reason


def test_primary_superblock_damaged_mirror_used(images):
    image, kernel = images['single-zstd']
    f, _ = _open(image, patches={btrfs.SUPER_OFFSETS[0] + 100: b'\xff'})
    assert f.sb.offset == btrfs.SUPER_OFFSETS[1]
    assert fs.read_file(f, '/etc/os-release', 4096) == SNAP_RELEASE
    both = {btrfs.SUPER_OFFSETS[0] + 100: b'\xff',
            btrfs.SUPER_OFFSETS[1] + 100: b'\xff'}
    reason = _hostile(image, both, '/etc/os-release', errors.Corrupt)
    assert 'crc32c checksum' in reason


def test_newest_superblock_copy_wins(images):
    image = images['single-zstd'][0]
    sb = _superblock(image)
    generation = struct.unpack_from('<Q', sb, 0x48)[0]
    newer = _super_patch(image, {0x48: struct.pack('<Q', generation + 1)},
                         btrfs.SUPER_OFFSETS[1])
    disk = S.FileSource(str(image), S.Budget())
    assert btrfs.read_superblock(Patched(disk, newer)).offset == \
        btrfs.SUPER_OFFSETS[1]
    # Its trees are those of the older generation: a torn read.
    with pytest.raises(errors.TornRead):
        btrfs.Filesystem(Patched(disk, newer))
    # A mirror of another filesystem is never taken.
    other = _super_patch(image, {0x48: struct.pack('<Q', generation + 1),
                                 0x20: b'\x01' * 16},
                         btrfs.SUPER_OFFSETS[1])
    assert btrfs.read_superblock(Patched(disk, other)).offset == \
        btrfs.SUPER_OFFSETS[0]


def _sys_chunk(image):
    """(offset in the superblock of the first sys chunk item, its
    bytes)."""
    raw = _superblock(image)
    return 0x32B + 17, raw


@pytest.mark.parametrize('field, value, expected, words', [
    (48 + 8, struct.pack('<Q', 1 << 40), errors.Corrupt, 'past the end'),
    (24, struct.pack('<Q', btrfs.BG_SYSTEM | btrfs.BG_RAID0),
     errors.Unsupported, 'RAID0'),
    (24, struct.pack('<Q', btrfs.BG_SYSTEM | btrfs.BG_RAID6),
     errors.Unsupported, 'RAID6'),
    (48, struct.pack('<Q', 7), errors.Unsupported, 'multi-device'),
    (44, struct.pack('<H', 60), errors.Corrupt, 'stripes'),
    (0, struct.pack('<Q', 0), errors.Corrupt, 'not aligned'),
])
def test_hostile_system_chunk(images, field, value, expected, words):
    image = images['single-zstd'][0]
    at, _ = _sys_chunk(image)
    patches = _super_patch(image, {at + field: value})
    patches[btrfs.SUPER_OFFSETS[1] + 0x40] = b'XXXXXXXX'
    assert words in _hostile(image, patches, '/etc/os-release', expected)


def test_overlapping_chunks(images):
    image = images['single-zstd'][0]
    f, _ = _open(image)
    chunk_root = btrfs.Root()
    chunk_root.bytenr, chunk_root.level = (f.sb.chunk_root,
                                           f.sb.chunk_root_level)
    chunk_root.generation = None
    at, leaf = _leaf_with(f, chunk_root, (256, btrfs.CHUNK_ITEM, 0))
    chunks = [i for i, k in enumerate(leaf.keys)
              if k[1] == btrfs.CHUNK_ITEM]
    assert len(chunks) >= 2
    first, second = leaf.keys[chunks[0]], chunks[1]
    # The second chunk starts one sector into the first.
    key_at = at + btrfs.HEADER_SIZE + btrfs.ITEM.size * second + 9
    patches = {key_at: struct.pack('<Q', first[2] + f.sb.sectorsize)}
    assert 'overlap' in _hostile(image, patches, '/etc/os-release',
                                 errors.Corrupt)


def _root_item_leaf(f):
    return _leaf_with(f, f.volume.root_tree, (5, btrfs.ROOT_ITEM, 0))


def test_default_subvolume_that_does_not_exist(images):
    image = images['single-zstd'][0]
    f, _ = _open(image)
    at, leaf = _leaf_with(f, f.volume.root_tree,
                          (6, btrfs.DIR_ITEM, btrfs.name_hash(b'default')))
    name_at = leaf.raw.index(b'default', btrfs.HEADER_SIZE)
    location = at + name_at - 30
    patches = {location: struct.pack('<Q', 999)}
    reason = _hostile(image, patches, '/etc/os-release', errors.Corrupt)
    assert reason == 'btrfs: default subvolume 999 does not exist'
    # The subvolumes are still listed.
    volume = btrfs.Volume(Resummed(S.FileSource(str(image), S.Budget()),
                                   patches))
    assert len(volume.subvolumes()) == len(images['single-zstd'][1][
        'subvolumes'])


def test_tree_block_pointing_to_itself(images):
    image = images['single-zstd'][0]
    f, _ = _open(image)
    root = f.volume.root(f.subvolume_at('@'))
    assert root.level >= 1           # the large directory needs nodes
    at = _physical(f, root.bytenr)
    ptr_at = at + btrfs.HEADER_SIZE + 17
    reason = _hostile(image, {ptr_at: struct.pack('<Q', root.bytenr)},
                      '/many/name-7', errors.Corrupt, subvolume=root.tree)
    assert 'level' in reason or 'loops' in reason
    # Two pointers to one block.
    op = btrfs.tree._Op('test')
    node = f.volume._node(root.bytenr, root.level, None, None, op)
    second = ptr_at + btrfs.KEY_PTR.size
    patches = {second: struct.pack('<Q', node.refs[0][0]),
               second + 8: struct.pack('<Q', node.refs[0][1])}
    volume = btrfs.Volume(Resummed(S.FileSource(str(image), S.Budget()),
                                   patches))
    with pytest.raises(errors.Corrupt) as exc:
        for _ in volume.items(volume.root(root.tree), (0, 0, 0),
                              (btrfs.MAX_KEY, 255, btrfs.MAX_KEY), 'all'):
            pass
    assert exc.value.reason == 'btrfs: all loops (block %d twice)' % (
        node.refs[0][0])


def test_broken_first_copy_of_dup_metadata(images):
    image, kernel = images['dup-zlib']
    f, _ = _open(image)
    chunk = f.volume.chunks.find(f.sb.root)
    assert len(chunk.copies) == 2
    first = f.volume.chunks.physical(f.sb.root, 1, 'test', 0)[0][0]
    second = f.volume.chunks.physical(f.sb.root, 1, 'test', 1)[0][0]
    assert first != second
    # The root tree's first copy names another address: the second is
    # read, as the kernel would.
    spoilt = {first + 0x30: struct.pack('<Q', 4096)}
    f, _ = _open(image, patches=spoilt)
    assert f.default_subvolume() == kernel['default']
    assert fs.read_file(f, '/etc/os-release', 4096) == SNAP_RELEASE
    spoilt[second + 0x30] = struct.pack('<Q', 4096)
    reason = _hostile(image, spoilt, '/etc/os-release', errors.TornRead)
    assert 'names address 4096' in reason


def test_tree_block_failing_its_checksum_is_torn(images):
    image = images['single-zstd'][0]
    f, _ = _open(image)
    root = f.volume.root(f.subvolume_at('@'))
    at = _physical(f, root.bytenr) + f.sb.nodesize - 1
    budget = S.Budget()
    with pytest.raises(errors.TornRead) as exc:
        f = btrfs.Filesystem(Patched(S.FileSource(str(image), budget),
                                     {at: b'\x01'}), budget)
        fs.read_file(f.subvolume(root.tree), '/usr/lib/os-release', 100)
    assert exc.value.reason == (
        'btrfs: subvolume %d: block %d fails its crc32c checksum'
        % (root.tree, root.bytenr))


def test_stale_child_is_torn(images):
    image = images['single-zstd'][0]
    f, _ = _open(image)
    root = f.volume.root(f.subvolume_at('@'))
    at = _physical(f, root.bytenr)
    gen_at = at + btrfs.HEADER_SIZE + 25
    reason = _hostile(image, {gen_at: struct.pack('<Q', 1)}, '/many/name-1',
                      errors.TornRead, subvolume=root.tree)
    assert 'generation' in reason


def _extent_item(f, root, path):
    node = fs.resolve(root, path)
    key = (node.ino, btrfs.EXTENT_DATA, 0)
    at, leaf = _leaf_with(f, f.volume.root(node.tree), key)
    i = leaf.keys.index(key)
    return at + leaf.refs[i][0], leaf.raw[leaf.refs[i][0]:]


def test_compressed_extent_expanding_beyond_its_cap(images):
    image = images['single-zstd'][0]
    f, _ = _open(image)
    root = f.subvolume(f.subvolume_at('@'))
    at, data = _extent_item(f, root, '/big')
    assert data[16] == btrfs.COMPRESS_ZSTD and data[20] == btrfs.EXTENT_REG
    # ram_bytes and num_bytes say 4 KiB; the frame holds 128 KiB.
    patches = {at + 8: struct.pack('<Q', 4096),
               at + 21 + 24: struct.pack('<Q', 4096)}
    reason = _hostile(image, patches, '/big', errors.Corrupt,
                      subvolume=root.subvolume_id)
    assert 'expands beyond' in reason
    reason = _hostile(image, {at + 8: struct.pack('<Q', 1 << 40)}, '/big',
                      errors.Corrupt, subvolume=root.subvolume_id)
    assert 'more than btrfs writes' in reason


def test_decompression_is_capped():
    bomb = zlib.compress(bytes(64 * MiB))
    with pytest.raises(errors.Corrupt) as exc:
        btrfs.decompress(btrfs.COMPRESS_ZLIB, bomb, 128 * 1024, 'test')
    assert 'expands beyond' in exc.value.reason
    assert btrfs.decompress(btrfs.COMPRESS_ZLIB, zlib.compress(b'x' * 100),
                            4096, 'test') == b'x' * 100
    with pytest.raises(errors.Corrupt):
        btrfs.decompress(btrfs.COMPRESS_ZLIB, b'not zlib', 4096, 'test')
    with pytest.raises(errors.Corrupt):
        btrfs.decompress(9, b'', 4096, 'test')
    if btrfs.compressed.zstandard is not None:
        zstd = btrfs.compressed.zstandard.ZstdCompressor()
        with pytest.raises(errors.Corrupt) as exc:
            btrfs.decompress(btrfs.COMPRESS_ZSTD, zstd.compress(bytes(MiB)),
                             128 * 1024, 'test')
        assert 'expands beyond' in exc.value.reason
        # A frame asking for a window larger than btrfs writes.
        with pytest.raises(errors.Corrupt) as exc:
            btrfs.decompress(btrfs.COMPRESS_ZSTD,
                             zstd.compress(bytes(64 * MiB)), 128 * 1024,
                             'test')
        assert 'too much memory' in exc.value.reason


@pytest.mark.parametrize('stream, words', [
    (b'', 'truncated'),
    (b'\x11\x01', 'unknown bitstream'),
    (b'\x15abcd\x11\x00', 'truncated'),
    (b'\x15abcd\x40\xff\x11\x00\x00', 'before its start'),
    (b'\x00\x00\x00', 'truncated'),            # endless length bytes
    (b'\x15abcd\x20' + bytes(16) + b'\xff\x00\x00', 'expands beyond'),
    (b'\x15abcd\x12\x00\x00', 'bad marker'),
])
def test_hostile_lzo_streams(stream, words):
    with pytest.raises(errors.Corrupt) as exc:
        btrfs.lzo1x_decompress(stream, 4096, 'test')
    assert words in exc.value.reason


def test_lzo_streams():
    # 4 literals, a 4-byte match at distance 4 + 1 literal, the end.
    stream = b'\x15abcd' + bytes([0x60 | (3 << 2) | 1, 0]) + b'e' + \
        b'\x11\x00\x00'
    assert btrfs.lzo1x_decompress(stream, 4096, 'test') == b'abcdabcde'
    framed = struct.pack('<II', 8 + len(stream), len(stream)) + stream
    assert btrfs.decompress(btrfs.COMPRESS_LZO, framed, 4096, 'test') == \
        b'abcdabcde'
    with pytest.raises(errors.Corrupt):
        btrfs.decompress(btrfs.COMPRESS_LZO, framed, 5, 'test')
    with pytest.raises(errors.Corrupt):
        btrfs.decompress(btrfs.COMPRESS_LZO, framed[:-1], 4096, 'test')


@FUZZ
@given(stream=st.binary(max_size=300), cap=st.integers(0, 8192))
def test_any_lzo_stream_ends_within_its_cap(stream, cap):
    for decode in (lambda: btrfs.lzo1x_decompress(stream, cap, 'test'),
                   lambda: btrfs.decompress(btrfs.COMPRESS_LZO, stream, cap,
                                            'test')):
        try:
            assert len(decode()) <= cap
        except errors.Corrupt as exc:
            assert exc.reason.startswith('test: lzo')


def test_extent_past_the_device(images):
    image = images['single-zstd'][0]
    f, _ = _open(image)
    root = f.subvolume(f.subvolume_at('@'))
    at, data = _extent_item(f, root, '/random')
    assert data[16] == btrfs.COMPRESS_NONE
    reason = _hostile(image, {at + 21: struct.pack('<Q', 1 << 50)},
                      '/random', errors.Corrupt,
                      subvolume=root.subvolume_id)
    assert 'in no chunk' in reason


def test_budget_ends_a_large_read(images):
    reason = _hostile(images['single-zstd'][0], {}, '/@/random',
                      errors.LimitReached, budget_max=256 * 1024,
                      subvolume=5)
    assert reason == 'read more than 262144 bytes of the disks'


@pytest.mark.parametrize('part, bound, value, path, words', [
    ('subvolumes', 'MAX_SUBVOLUMES', 3, None, 'more than 3 subvolumes'),
    ('subvolumes', 'MAX_NAME_LOOKUPS', 2, None,
     'more than 2 directory names'),
    ('subvolumes', 'MAX_PATH_COMPONENTS', 2, None,
     'a directory deeper than 2'),
    ('tree', 'MAX_BLOCKS_PER_OP', 1, '/@/many/name-1',
     'more than 1 tree blocks'),
    ('files', 'MAX_EXTENTS', 10, '/@/fragmented', 'more than 10 extents'),
    ('files', 'MAX_DECOMPRESSED_PER_READ', 200 * 1024, '/@/big',
     'more than 0 MiB decompressed'),
    ('subvolumes', 'MAX_DIR_ENTRIES', 100, 'listdir',
     'more than 100 entries'),
])
def test_bounds(images, monkeypatch, part, bound, value, path, words):
    # Each bound lives in the part of the reader that enforces it.
    monkeypatch.setattr(getattr(btrfs, part), bound, value)
    budget = S.Budget(8 * MiB)
    with pytest.raises(errors.LimitReached) as exc:
        f, _ = _open(images['single-zstd'][0], budget)
        top = f.subvolume(5)
        if path is None:
            f.subvolumes()
        elif path == 'listdir':
            top.listdir(fs.resolve(top, '/@/many'))
        else:
            fs.read_file(top, path, 64 * MiB)
    assert words in exc.value.reason
    assert budget.used <= 8 * MiB


FUZZED = ['single-zstd', 'dup-zlib', 'mixed-lzo']


@pytest.fixture(scope='module')
def clean_reads(images):
    """{variant: the (offset, length) reads of a clean open and read of
    /etc/os-release and a compressed file}."""
    def read(disk, budget):
        f = btrfs.Filesystem(disk, budget)
        fs.read_file(f, '/etc/os-release', 4096)
        fs.read_file(f, '/big', 4096)
        f.subvolumes()
    return {variant: hostile.clean_reads(images[variant][0], read)
            for variant in FUZZED}


@pytest.mark.parametrize('variant', FUZZED)
@FUZZ
@given(flips=FLIPS, resum=st.booleans())
def test_fuzzed_images_end_within_bounds(images, clean_reads, variant,
                                         flips, resum):
    """Bytes flipped where a clean read looks (tree block checksums
    made right again, or not): the read ends with data, None or a
    DirectError, within the budget."""
    def read(source, budget):
        found = filesystems.open_filesystem(source, budget)
        if found is None:
            return []
        results = [fs.read_file(found, path, 4096)
                   for path in ('/etc/os-release', '/big')]
        assert isinstance(found.subvolumes(), list)
        return results

    outcome, used = hostile.read_flipped(
        images[variant][0], patches_at(clean_reads[variant], flips), read,
        source=Resummed if resum else Patched)
    assert hostile.ended_cleanly(outcome), outcome
    assert used <= 8 * MiB


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0x20, btrfs.SUPER_SIZE - 1),
                                st.integers(1, 255)), min_size=1,
                      max_size=4))
def test_fuzzed_superblocks_end_within_bounds(images, flips):
    """Bytes flipped in the primary superblock, its checksum made right
    again and the mirror spoilt: the system chunk array and every
    superblock field are parsed as the tenant wrote them."""
    image = images['single-zstd'][0]
    raw = _superblock(image)
    for at, xor in flips:
        raw[at] ^= xor
    patches = {btrfs.SUPER_OFFSETS[0]: _with_crc(raw),
               btrfs.SUPER_OFFSETS[1] + 0x40: b'XXXXXXXX'}
    outcome, used = hostile.read_flipped(
        image, patches, lambda source, budget: [fs.read_file(
            btrfs.Filesystem(source, budget), '/etc/os-release', 4096)])
    assert hostile.ended_cleanly(outcome), outcome
    assert used <= 8 * MiB
