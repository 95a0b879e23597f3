"""direct.ext4 on real filesystems made by mkfs.ext4 -d, checked against
what the kernel returns for the same image mounted read-only; then the
same images made hostile (patched bytes, truncation) and fuzzed."""

import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import given

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import ext4
from ceilometer_os_pollster.direct.filesystem import fs
from ceilometer_os_pollster.direct.filesystem import filesystems
from ceilometer_os_pollster.direct import linux_root
from ceilometer_os_pollster.direct.block import source as S
from tests.unit.direct import hostile
from tests.unit.direct.hostile import FLIPS
from tests.unit.direct.hostile import FUZZ
from tests.unit.direct.hostile import Patched
from tests.unit.direct.hostile import patches_at

MiB = 1 << 20
OS_RELEASE = b'NAME="Test"\nID=rhel\nVERSION_ID="9.4"\n'
SLOW_TARGET = '/usr' + '/.' * 40 + '/lib/os-release'      # > 60 bytes
HTREE_ENTRIES = 3000
PLAIN = 'ext4-no-csum'
FRAGMENTS = 2000

# name -> mkfs.ext4 options
VARIANTS = {
    'ext4': ['-t', 'ext4', '-b', '4096'],
    'ext4-1k': ['-t', 'ext4', '-b', '1024'],
    'ext2': ['-t', 'ext2', '-b', '4096'],
    'ext2-no-filetype': ['-t', 'ext2', '-O', '^filetype'],
    'ext3': ['-t', 'ext3'],
    'ext4-no-extents': ['-t', 'ext4', '-b', '4096', '-O', '^extent,^64bit'],
    # Large inodes: room for inline data past i_block, in the xattr.
    'ext4-inline': ['-t', 'ext4', '-b', '4096', '-I', '1024', '-O',
                    'inline_data'],
    'ext4-meta-bg': ['-t', 'ext4', '-O', 'meta_bg,^resize_inode'],
    # No metadata_csum (gdt_csum's crc16 instead): the structural checks
    # below are reached by patched bytes, not stopped by a checksum.
    PLAIN: ['-t', 'ext4', '-b', '4096', '-O', '^metadata_csum,uninit_bg'],
}

# Files compared with the mounted filesystem.
FILES = ('/etc/os-release', '/usr/lib/os-release', '/big', '/fragmented',
         '/htree/f02999', '/small/tiny', '/inline-dir/name-number-04',
         '/kernel/file', '/kernel/dir/name-number-04')
# Absolute symlinks: the mount would follow them on the host; the
# reader must read their target inside the image.
INSIDE = {'/abs': '/usr/lib/os-release', '/slow': '/usr/lib/os-release'}


def _run(*argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True,
                          env=dict(os.environ, LC_ALL='C'), **kwargs)


def _stage(root):
    (root / 'etc').mkdir()
    (root / 'usr/lib').mkdir(parents=True)
    (root / 'usr/lib/os-release').write_bytes(OS_RELEASE)
    os.symlink('../usr/lib/os-release', root / 'etc/os-release')
    os.symlink('/usr/lib/os-release', root / 'abs')
    os.symlink(SLOW_TARGET, root / 'slow')
    os.symlink('loop2', root / 'loop1')
    os.symlink('loop1', root / 'loop2')
    (root / 'big').write_bytes(os.urandom(300 * 1024 + 7))
    # A block of data, a hole, ...: one extent per block.
    with open(root / 'fragmented', 'wb') as stream:
        for i in range(FRAGMENTS):
            stream.seek(i * 8192)
            stream.write(bytes([i % 251 + 1]) * 4096)
    (root / 'htree').mkdir()
    for i in range(HTREE_ENTRIES):
        (root / 'htree' / ('f%05d' % i)).write_bytes(b'%d\n' % i)
    (root / 'small').mkdir()
    (root / 'small/tiny').write_bytes(b'tiny\n')
    (root / 'inline-dir').mkdir()
    for i in range(5):
        (root / 'inline-dir' / ('name-number-%02d' % i)).write_bytes(b'x')
    # Sparse: 64 MiB long, a few bytes of data.
    with open(root / 'huge', 'wb') as stream:
        stream.write(OS_RELEASE)
        stream.truncate(64 * MiB)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """{variant: (image path, {path: bytes the kernel read})}."""
    work = tmp_path_factory.mktemp('ext4')
    stage = work / 'stage'
    stage.mkdir()
    _stage(stage)
    mnt = work / 'mnt'
    mnt.mkdir()
    built = {}
    for name, options in VARIANTS.items():
        image = work / (name + '.img')
        with open(image, 'wb') as stream:
            stream.truncate(64 * MiB)
        _run('mkfs.ext4', '-q', '-F', *options, '-d', str(stage), str(image))
        # Rebuild the directories as the kernel would index them (htree);
        # exit status 1 says it did.
        subprocess.run(['e2fsck', '-fyD', str(image)], capture_output=True)
        _run('mount', '-t', 'ext4', '-o', 'loop', str(image), str(mnt))
        try:
            # Written by the kernel: inline data continued in the xattr.
            (mnt / 'kernel/dir').mkdir(parents=True)
            for i in range(5):
                (mnt / 'kernel/dir' / ('name-number-%02d' % i)).write_bytes(
                    b'')
            (mnt / 'kernel/file').write_bytes(os.urandom(300))
            mounted = {path: (mnt / path.lstrip('/')).read_bytes()
                       for path in FILES}
            mounted['readlink /slow'] = os.readlink(mnt / 'slow').encode()
            mounted['listing /htree'] = sorted(
                os.fsencode(n) for n in os.listdir(mnt / 'htree'))
        finally:
            _run('umount', str(mnt))
        built[name] = (image, mounted)
    yield built
    shutil.rmtree(work, ignore_errors=True)


def _open(path, budget=None, patches=None):
    budget = budget or S.Budget()
    source = S.FileSource(str(path), budget)
    if patches:
        source = Patched(source, patches)
    return ext4.Filesystem(source, budget), budget


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_files_equal_the_kernels(images, variant):
    image, mounted = images[variant]
    f, budget = _open(image)
    for path in FILES:
        assert fs.read_file(f, path, 64 * MiB) == mounted[path], path
    for path, target in INSIDE.items():
        assert fs.read_file(f, path, 64 * MiB) == mounted[target], path
    assert fs.readlink_at(f, '/slow') == mounted['readlink /slow']
    htree = fs.resolve(f, '/htree')
    assert sorted(f._directory(htree)) == mounted['listing /htree']
    assert fs.read_file(f, '/htree', 100) is None
    assert fs.read_file(f, '/nothing/here', 100) is None
    # Everything above, including 8 MiB of fragments, and no more.
    assert budget.used < 16 * MiB


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_open_filesystem_finds_ext4(images, variant):
    budget = S.Budget()
    source = S.FileSource(str(images[variant][0]), budget)
    assert ext4.probe(source)
    assert filesystems.open_filesystem(source, budget).kind == 'ext4'


def test_structures_are_the_ones_meant(images):
    """The images exercise what they claim: a two-level extent tree,
    an htree, inline data, double-indirect blocks, meta_bg."""
    f, _ = _open(images['ext4'][0])
    fragmented = fs.resolve(f, '/fragmented')
    assert fragmented.flags & ext4.FLAG_EXTENTS
    assert struct.unpack_from('<H', fragmented.i_block, 6)[0] >= 2
    assert fs.resolve(f, '/htree').flags & 0x1000          # INDEX_FL
    inline, _ = _open(images['ext4-inline'][0])
    assert fs.resolve(inline, '/small/tiny').flags & ext4.FLAG_INLINE_DATA
    for path in ('/kernel/dir', '/kernel/file'):
        node = fs.resolve(inline, path)
        assert node.flags & ext4.FLAG_INLINE_DATA
        assert node.size > 60                   # continues in the xattr
    old, _ = _open(images['ext4-no-extents'][0])
    node = fs.resolve(old, '/fragmented')
    assert not node.flags & ext4.FLAG_EXTENTS
    assert struct.unpack('<15I', node.i_block)[13]   # double indirect
    meta, _ = _open(images['ext4-meta-bg'][0])
    assert meta.sb.incompat & ext4.INCOMPAT_META_BG


def test_reads_are_bounded_by_limit(images):
    f, budget = _open(images['ext4'][0])
    data = fs.read_file(f, '/huge', 64 * 1024)
    assert data.startswith(OS_RELEASE) and len(data) == 64 * 1024
    assert budget.used < MiB


def test_64_mib_os_release_is_read_bounded(images, tmp_path):
    """linux_root on a root whose os-release is 64 MiB."""
    stage = tmp_path / 'stage'
    (stage / 'etc').mkdir(parents=True)
    (stage / 'bin').mkdir()
    (stage / 'etc/fstab').write_bytes(b'')
    with open(stage / 'etc/os-release', 'wb') as stream:
        stream.write(OS_RELEASE)
        stream.truncate(64 * MiB)
    image = tmp_path / 'root.img'
    with open(image, 'wb') as stream:
        stream.truncate(32 * MiB)
    _run('mkfs.ext4', '-q', '-F', '-d', str(stage), str(image))
    f, budget = _open(image)
    root = linux_root.linux_root(f, '/dev/sda1', 0)
    assert root.os_release == {'NAME': 'Test', 'ID': 'rhel',
                               'VERSION_ID': '9.4'}
    assert root.distro == 'unknown'      # too large for libguestfs too
    assert budget.used < MiB


# --------------------------------------------------------------------------
# Hostile images


def _inode_offset(f, ino):
    group, index = divmod(ino - 1, f.sb.inodes_per_group)
    return (f._inode_table(group) * f.block_size
            + index * f.sb.inode_size)


def _hostile(image, patches, path, expected, budget_max=4 * MiB):
    budget = S.Budget(budget_max)
    with pytest.raises(expected) as exc:
        f, _ = _open(image, budget, patches)
        fs.read_file(f, path, 64 * MiB)
    assert exc.value.reason.startswith('ext4') or 'disks' in \
        exc.value.reason
    assert budget.used <= budget_max
    return exc.value.reason


def test_truncated_image(images):
    image = images['ext4'][0]
    budget = S.Budget()
    half = S.Window(S.FileSource(str(image), budget), 0, 32 * MiB)
    with pytest.raises(errors.Corrupt) as exc:
        ext4.Filesystem(half, budget)
    assert 'larger than its device' in exc.value.reason
    assert budget.used < 8192


def test_extent_tree_loop(images):
    image = images[PLAIN][0]
    f, _ = _open(image)
    node = fs.resolve(f, '/fragmented')
    # The root's child (depth 1): its index entries 0 and 1 both point
    # at entry 0's block.
    child = struct.unpack_from('<I', node.i_block, 12 + 4)[0]
    raw = f._block(child, 'test')
    assert struct.unpack_from('<HH', raw, 2)[0] >= 2
    at = child * f.block_size
    reason = _hostile(image, {at + 24 + 4: raw[12 + 4:12 + 10]},
                      '/fragmented', errors.Corrupt)
    assert 'loops' in reason


@pytest.mark.parametrize('field, value, expected', [
    (2, b'\xff\xff', errors.Corrupt),             # eh_entries: absurd
    (0, b'\x00\x00', errors.Corrupt),             # bad magic
    (6, b'\x09\x00', errors.Corrupt),             # depth 9
])
def test_absurd_extent_header(images, field, value, expected):
    image = images[PLAIN][0]
    f, _ = _open(image)
    node = fs.resolve(f, '/fragmented')
    at = _inode_offset(f, node.ino) + 0x28 + field
    _hostile(image, {at: value}, '/fragmented', expected)


def test_extent_past_the_end(images):
    image = images[PLAIN][0]
    f, _ = _open(image)
    node = fs.resolve(f, '/big')
    at = _inode_offset(f, node.ino) + 0x28 + 12 + 6   # ee_start_hi
    reason = _hostile(image, {at: b'\xff\x00'}, '/big', errors.Corrupt)
    assert 'past the end' in reason


def test_directory_entry_length_zero(images):
    image = images[PLAIN][0]
    f, _ = _open(image)
    htree = fs.resolve(f, '/htree')
    block = f._extents(htree, 1)[0][1]
    _hostile(image, {block * f.block_size + 4: b'\0\0'}, '/htree/f00001',
             errors.Corrupt)


def test_directory_absurdly_large(images):
    image = images[PLAIN][0]
    f, _ = _open(image)
    htree = fs.resolve(f, '/htree')
    at = _inode_offset(f, htree.ino)
    reason = _hostile(image, {at + 4: b'\0\0\0\0', at + 0x6C: b'\1\0\0\0'},
                      '/htree/f00001', errors.LimitReached)
    assert 'larger than' in reason


def test_entry_naming_a_free_inode_is_torn(images):
    image = images[PLAIN][0]
    f, _ = _open(image)
    node = fs.resolve(f, '/big')
    _hostile(image, {_inode_offset(f, node.ino): b'\0\0'}, '/big',
             errors.TornRead)


def test_encrypted_inode_is_unsupported(images):
    image = images[PLAIN][0]
    f, _ = _open(image)
    node = fs.resolve(f, '/big')
    flags = struct.pack('<I', node.flags | ext4.FLAG_ENCRYPT)
    _hostile(image, {_inode_offset(f, node.ino) + 0x20: flags}, '/big',
             errors.Unsupported)


@pytest.mark.parametrize('offset, value, expected', [
    (0x60, struct.pack('<I', 0x80000042), errors.Unsupported),  # unknown
    (0x60, struct.pack('<I', 0x1 | 0x2), errors.Unsupported),   # compressed
    (0x00, struct.pack('<I', 0xFFFFFFFF), errors.Corrupt),      # inodes
    (0x18, struct.pack('<I', 20), errors.Corrupt),              # block size
    (0x58, struct.pack('<H', 100), errors.Corrupt),             # inode size
    (0x20, struct.pack('<I', 0xFFFFFFFF), errors.Corrupt),      # group size
])
def test_hostile_superblock(images, offset, value, expected):
    _hostile(images[PLAIN][0], {1024 + offset: value}, '/etc/os-release',
             expected)


def test_symlink_loop(images):
    reason = _hostile(images['ext4'][0], {}, '/loop1', errors.Corrupt)
    assert 'symlink loop' in reason


def test_budget_ends_a_large_read(images):
    reason = _hostile(images['ext4'][0], {}, '/fragmented',
                      errors.LimitReached, budget_max=MiB)
    assert reason == 'read more than 1 MiB of the disks'


FUZZED = ['ext4', 'ext2', 'ext4-inline']


@pytest.fixture(scope='module')
def clean_reads(images):
    """{variant: the (offset, length) reads of a clean /etc/os-release}."""
    def read(disk, budget):
        fs.read_file(ext4.Filesystem(disk, budget), '/etc/os-release', 4096)
    return {variant: hostile.clean_reads(images[variant][0], read)
            for variant in FUZZED}


@pytest.mark.parametrize('variant', FUZZED)
@FUZZ
@given(flips=FLIPS)
def test_fuzzed_images_end_within_bounds(images, clean_reads, variant,
                                         flips):
    """Bytes flipped where a clean read of /etc/os-release looks: the
    read ends with data, None or a DirectError, within the budget."""
    outcome, used = hostile.read_flipped(
        images[variant][0], patches_at(clean_reads[variant], flips),
        hostile.read_files('/etc/os-release'))
    assert hostile.ended_cleanly(outcome), outcome
    assert used <= 8 * MiB


def test_entry_type_not_the_inodes_is_torn(images):
    """The directory says 'directory', the inode is a regular file."""
    image = images[PLAIN][0]
    f, _ = _open(image)
    small = fs.resolve(f, '/small')
    block = f._extents(small, 1)[0][1] * f.block_size
    raw = f._block(block // f.block_size, 'test')
    pos = 0
    while raw[pos + 8:pos + 8 + raw[pos + 6]] != b'tiny':
        pos += struct.unpack_from('<H', raw, pos + 4)[0]
    reason = _hostile(image, {block + pos + 7: b'\x02'}, '/small/tiny',
                      errors.TornRead)
    assert 'does not match its inode' in reason


# --------------------------------------------------------------------------
# Checksums (metadata_csum on 'ext4', gdt_csum's crc16 on PLAIN): one
# byte changed where no structural check looks is a torn read naming
# the structure.


def _dir_entry(f, block, name):
    raw = f._block(block, 'test')
    pos = 0
    while raw[pos + 8:pos + 8 + raw[pos + 6]] != name:
        pos += struct.unpack_from('<H', raw, pos + 4)[0]
    return block * f.block_size + pos


def _flip(f, where):
    """(offset of a byte nothing but a checksum covers, path to read)."""
    if where == 'superblock':
        return 1024 + 0x78, '/etc/os-release'         # s_volume_name
    if where == 'group descriptor 0':
        return ((f.sb.first_data_block + 1) * f.block_size + 0x0C,
                '/etc/os-release')                     # free blocks
    if where == 'inode':
        node = fs.resolve(f, '/big')
        return _inode_offset(f, node.ino) + 0x08, '/big'   # i_atime
    if where == 'extent block':
        node = fs.resolve(f, '/fragmented')
        child = struct.unpack_from('<I', node.i_block, 12 + 4)[0]
        return child * f.block_size + 8, '/fragmented'    # eh_generation
    if where == 'directory block':
        small = fs.resolve(f, '/small')
        block = f._extents(small, 1)[0][1]
        return _dir_entry(f, block, b'tiny') + 8, '/small/tiny'
    if where == 'htree block':
        htree = fs.resolve(f, '/htree')
        block = f._extents(htree, 1)[0][1]
        return block * f.block_size + 24, '/htree/f00001'  # reserved_zero
    raise AssertionError(where)


@pytest.mark.parametrize('variant, where, named', [
    ('ext4', 'superblock', 'ext4: superblock checksum mismatch'),
    ('ext4', 'group descriptor 0', 'ext4: group descriptor 0 checksum'),
    (PLAIN, 'group descriptor 0', 'ext4: group descriptor 0 checksum'),
    ('ext4', 'inode', 'checksum mismatch'),
    ('ext4', 'extent block', 'extent block checksum mismatch'),
    ('ext4', 'directory block', 'directory block 0 checksum mismatch'),
    ('ext4', 'htree block', 'htree block 0 checksum mismatch'),
])
def test_flipped_byte_fails_its_checksum(images, variant, where, named):
    image = images[variant][0]
    f, _ = _open(image)
    assert (f.sb.metadata_csum, f.sb.gdt_csum) == (
        (True, False) if variant == 'ext4' else (False, True))
    at, path = _flip(f, where)
    with open(image, 'rb') as stream:
        stream.seek(at)
        byte = stream.read(1)[0]
    reason = _hostile(image, {at: bytes([byte ^ 0x20])}, path,
                      errors.TornRead)
    assert named in reason
    if where == 'inode':
        assert reason == 'ext4: inode %d checksum mismatch' % (
            fs.resolve(f, '/big').ino)


def test_two_level_htree_nodes_are_verified(tmp_path):
    """1 KiB blocks and long names: an htree with an index level below
    its root, whose node blocks carry their own checksum tail."""
    stage = tmp_path / 'stage'
    (stage / 'wide').mkdir(parents=True)
    for i in range(1500):
        (stage / 'wide' / ('%04d-' % i + 'n' * 200)).write_bytes(b'')
    image = tmp_path / 'wide.img'
    with open(image, 'wb') as stream:
        stream.truncate(16 * MiB)
    _run('mkfs.ext4', '-q', '-F', '-b', '1024', '-d', str(stage),
         str(image))
    subprocess.run(['e2fsck', '-fyD', str(image)], capture_output=True)
    f, _ = _open(image)
    wide = fs.resolve(f, '/wide')
    blocks = [pblk + i for _, pblk, count, _ in
              f._extents(wide, wide.size // f.block_size)
              for i in range(count)]
    root = f._block(blocks[0], 'test')
    assert root[0x1E] >= 1                          # indirect_levels
    assert len(f._directory(wide)) == 1500
    node = next(n for n, b in enumerate(blocks) if n and struct.unpack_from(
        '<H', f._block(b, 'test'), 4)[0] == f.block_size)
    at = blocks[node] * f.block_size + 6            # fake entry's name_len
    reason = _hostile(image, {at: b'\x01'}, '/wide/0001-' + 'n' * 200,
                      errors.TornRead)
    assert reason.endswith('htree block %d checksum mismatch' % node)
