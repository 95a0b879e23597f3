"""direct.xfs on real filesystems: v5 images filled by the kernel (loop
mount) and checked against what the mounted filesystem returns; v4
images (the kernel here refuses to mount them) made by mkfs.xfs -p from
the same files and checked against those.  Then the images made hostile
(patched bytes, truncation) and fuzzed."""

import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import given

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs
from ceilometer_os_pollster.direct.filesystem import filesystems
from ceilometer_os_pollster.direct.block import source as S
from tests.unit.direct import hostile
from tests.unit.direct.hostile import FLIPS
from tests.unit.direct.hostile import FUZZ
from tests.unit.direct.hostile import Patched
from tests.unit.direct.hostile import patches_at
from ceilometer_os_pollster.direct.filesystem import xfs
from ceilometer_os_pollster.direct.filesystem.crc32c import crc32c

MiB = 1 << 20
OS_RELEASE = b'NAME="Test"\nID=rhel\nVERSION_ID="9.4"\n'
# Longer than an inode's fork, two remote blocks of a 1 KiB-block v5.
REMOTE_TARGET = '/usr' + '/.' * 490 + '/lib/os-release'
# Directory sizes for the short-form, block, leaf and node forms.
DIRECTORIES = {'d10': 10, 'd60': 60, 'd200': 200, 'd5000': 5000}
FRAGMENTS = 1200

VARIANTS = {
    'v5': ['-m', 'crc=1'],
    'v5-dirblock-16k': ['-m', 'crc=1', '-n', 'size=16384'],
    'v5-1k-blocks': ['-m', 'crc=1', '-b', 'size=1024'],
    'v4': ['-m', 'crc=0'],
    'v4-no-ftype': ['-m', 'crc=0', '-n', 'ftype=0'],
}
# mkfs.xfs refuses filesystems under 300 MB unless told it is a test.
MKFS_ENV = dict(os.environ, LC_ALL='C', TEST_DEV='1', TEST_DIR='1',
                QA_CHECK_FS='1')

FILES = ('/etc/os-release', '/usr/lib/os-release', '/big',
         '/d10/name-9', '/d60/name-59',
         '/d200/a-rather-longer-file-name-to-fill-blocks-199',
         '/d5000/name-4999')
INSIDE = {'/abs': '/usr/lib/os-release', '/remote': '/usr/lib/os-release'}


def _name(directory, i):
    if directory == 'd200':
        return 'a-rather-longer-file-name-to-fill-blocks-%d' % i
    return 'name-%d' % i


def _run(*argv):
    return subprocess.run(argv, check=True, capture_output=True,
                          env=MKFS_ENV)


def _tree(big):
    """[(path, kind, content)]: kind 'dir', 'file' or 'link'."""
    tree = [('/etc', 'dir', None), ('/usr', 'dir', None),
            ('/usr/lib', 'dir', None),
            ('/usr/lib/os-release', 'file', OS_RELEASE),
            ('/etc/os-release', 'link', '../usr/lib/os-release'),
            ('/abs', 'link', '/usr/lib/os-release'),
            ('/remote', 'link', REMOTE_TARGET),
            ('/loop1', 'link', 'loop2'), ('/loop2', 'link', 'loop1'),
            ('/big', 'file', big)]
    for directory, count in DIRECTORIES.items():
        tree.append(('/' + directory, 'dir', None))
        for i in range(count):
            tree.append(('/%s/%s' % (directory, _name(directory, i)),
                         'file', b'%d\n' % i))
    return tree


def _populate(root, tree):
    for path, kind, content in tree:
        target = root / path.lstrip('/')
        if kind == 'dir':
            target.mkdir()
        elif kind == 'link':
            os.symlink(content, target)
        else:
            target.write_bytes(content)


def _protofile(tree, staged, out):
    """mkfs.xfs -p input for ``tree`` (files read from ``staged``)."""
    children = {}
    for path, kind, content in tree:
        parent, _, name = path.rpartition('/')
        children.setdefault(parent, []).append((path, name, kind, content))
    lines = ['/dev/null', '0 0', 'd--755 0 0']

    def emit(directory, indent):
        for path, name, kind, content in children.get(directory, ()):
            if kind == 'dir':
                lines.append('%s%s d--755 0 0' % (indent, name))
                emit(path, indent + ' ')
                lines.append(indent + '$')
            elif kind == 'link':
                lines.append('%s%s l--777 0 0 %s' % (indent, name, content))
            else:
                lines.append('%s%s ---644 0 0 %s' % (
                    indent, name, staged / path.lstrip('/')))

    emit('', ' ')
    lines.append('$')
    out.write_text('\n'.join(lines) + '\n')


def _fragment(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for i in range(FRAGMENTS):
            os.pwrite(fd, bytes([i % 251 + 1]) * 4096, i * 8192)
            if i % 64 == 0:
                os.fsync(fd)
    finally:
        os.close(fd)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """{variant: (image path, {path: expected bytes})}."""
    work = tmp_path_factory.mktemp('xfs')
    tree = _tree(os.urandom(300 * 1024 + 7))
    staged = work / 'stage'
    staged.mkdir()
    _populate(staged, tree)
    expected_v4 = {path: (staged / path.lstrip('/')).read_bytes()
                   for path in FILES}
    mnt = work / 'mnt'
    mnt.mkdir()
    built = {}
    for name, options in VARIANTS.items():
        image = work / (name + '.img')
        with open(image, 'wb') as stream:
            stream.truncate(64 * MiB)
        if name.startswith('v4'):
            proto = work / 'proto'
            _protofile(tree, staged, proto)
            _run('mkfs.xfs', '-q', '-f', *options, '-p', str(proto),
                 str(image))
            built[name] = (image, expected_v4)
            continue
        _run('mkfs.xfs', '-q', '-f', *options, str(image))
        _run('mount', '-t', 'xfs', '-o', 'loop', str(image), str(mnt))
        try:
            _populate(mnt, tree)
            _fragment(mnt / 'fragmented')
            os.sync()
            expected = {path: (mnt / path.lstrip('/')).read_bytes()
                        for path in FILES + ('/fragmented',)}
            expected['readlink /remote'] = os.readlink(
                mnt / 'remote').encode()
            for directory in DIRECTORIES:
                expected['listing ' + directory] = sorted(
                    os.fsencode(n) for n in os.listdir(mnt / directory))
        finally:
            _run('umount', str(mnt))
        built[name] = (image, expected)
    yield built
    shutil.rmtree(work, ignore_errors=True)


def _open(path, budget=None, patches=None):
    budget = budget or S.Budget()
    source = S.FileSource(str(path), budget)
    if patches:
        source = Patched(source, patches)
    return xfs.Filesystem(source, budget), budget


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_files_equal_the_kernels(images, variant):
    image, expected = images[variant]
    f, budget = _open(image)
    for path in FILES:
        assert fs.read_file(f, path, 64 * MiB) == expected[path], path
    for path, target in INSIDE.items():
        assert fs.read_file(f, path, 64 * MiB) == expected[target], path
    assert fs.readlink_at(f, '/remote') == REMOTE_TARGET.encode()
    for directory, count in DIRECTORIES.items():
        listing = sorted(f._directory(fs.resolve(f, '/' + directory)))
        assert listing == sorted(os.fsencode(_name(directory, i))
                                 for i in range(count))
        if 'listing ' + directory in expected:
            assert listing == expected['listing ' + directory]
    if '/fragmented' in expected:
        assert (fs.read_file(f, '/fragmented', 64 * MiB)
                == expected['/fragmented'])
    assert fs.read_file(f, '/d10', 100) is None
    assert fs.read_file(f, '/d10/nothing', 100) is None
    assert budget.used < 16 * MiB


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_open_filesystem_finds_xfs(images, variant):
    budget = S.Budget()
    source = S.FileSource(str(images[variant][0]), budget)
    found = filesystems.open_filesystem(source, budget)
    assert found.kind == 'xfs'
    assert found.sb.version == (4 if variant.startswith('v4') else 5)
    assert found.sb.ftype == (variant != 'v4-no-ftype')


def _data_magic(f, inode):
    extents = f._extents(inode, 1)
    return f._block(extents[0][1], 'test')[:4]


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_directory_forms_are_the_ones_meant(images, variant):
    f, _ = _open(images[variant][0])
    crc = not variant.startswith('v4')
    assert fs.resolve(f, '/d10').format == xfs.FMT_LOCAL
    d60 = fs.resolve(f, '/d60')
    assert d60.size == f.sb.dir_block_size
    assert _data_magic(f, d60) == (b'XDB3' if crc else b'XD2B')
    d200 = fs.resolve(f, '/d200')
    if f.sb.dirblklog == 0:          # 16 KiB blocks hold d200 in one
        assert _data_magic(f, d200) == (b'XDD3' if crc else b'XD2D')
    leaf = xfs.DIR2_LEAF_OFFSET >> f.sb.blocklog
    d5000 = fs.resolve(f, '/d5000')
    above = [e for e in f._extents(d5000, 1 << 40) if e[0] >= leaf]
    # Node form: several leaf blocks, and a free index past them.
    assert sum(e[2] for e in above) > 2 * (1 << f.sb.dirblklog)
    remote = fs.resolve(f, '/remote', follow_last=False)
    assert remote.format == xfs.FMT_EXTENTS
    if f.block_size == 1024:
        assert sum(e[2] for e in f._extents(remote, 8)) == 2


def test_fragmented_file_is_a_btree(images):
    f, _ = _open(images['v5'][0])
    node = fs.resolve(f, '/fragmented')
    assert node.format == xfs.FMT_BTREE
    assert len(f._extents(node, 1 << 40)) >= FRAGMENTS


# --------------------------------------------------------------------------
# Hostile images


def _inode_offset(f, ino):
    sb = f.sb
    agno = ino >> (sb.agblklog + sb.inopblog)
    agbno = (ino >> sb.inopblog) & ((1 << sb.agblklog) - 1)
    slot = ino & ((1 << sb.inopblog) - 1)
    return ((agno * sb.agblocks + agbno) * sb.block_size
            + slot * sb.inode_size)


def _sealed(image, patches, *structures):
    """``patches`` plus, for each (offset, length, crc offset) structure
    they touch, its crc32c made right: the structural check under test
    is reached (a hostile guest can write a valid checksum too)."""
    out = dict(patches)
    with open(image, 'rb') as stream:
        for at, length, crc_at in structures:
            stream.seek(at)
            data = bytearray(stream.read(length))
            for offset, value in patches.items():
                for i, byte in enumerate(value):
                    if at <= offset + i < at + length:
                        data[offset + i - at] = byte
            data[crc_at:crc_at + 4] = bytes(4)
            out[at + crc_at] = struct.pack('<I', crc32c(bytes(data)))
    return out


def _inode(f, ino):
    """The (offset, length, crc offset) of inode ``ino``."""
    return _inode_offset(f, ino), f.sb.inode_size, xfs.INODE_CRC


def _hostile(image, patches, path, expected, budget_max=4 * MiB):
    budget = S.Budget(budget_max)
    with pytest.raises(expected) as exc:
        f, _ = _open(image, budget, patches)
        fs.read_file(f, path, 64 * MiB)
    assert exc.value.reason.startswith('xfs') or 'disks' in \
        exc.value.reason
    assert budget.used <= budget_max
    return exc.value.reason


def test_truncated_image(images):
    budget = S.Budget()
    half = S.Window(S.FileSource(str(images['v5'][0]), budget), 0, 32 * MiB)
    with pytest.raises(errors.Corrupt) as exc:
        xfs.Filesystem(half, budget)
    assert 'larger than its device' in exc.value.reason
    assert budget.used < 8192


@pytest.mark.parametrize('offset, value, expected', [
    (100, struct.pack('>H', 0xB4A3), errors.Unsupported),       # version 3
    (216, struct.pack('>I', 0x80000001), errors.Unsupported),   # unknown
    (4, struct.pack('>I', 3), errors.Corrupt),                  # block size
    (88, struct.pack('>I', 0), errors.Corrupt),                 # no AGs
    (84, struct.pack('>I', 0xFFFFFFFF), errors.Corrupt),        # AG size
    (56, struct.pack('>Q', 1 << 60), errors.Corrupt),           # root ino
])
def test_hostile_superblock(images, offset, value, expected):
    image = images['v5'][0]
    f, _ = _open(image)
    _hostile(image, _sealed(image, {offset: value},
                            (0, f.sb.sectsize, xfs.SB_CRC)),
             '/etc/os-release', expected)


def test_bad_inode_magic(images):
    image = images['v5'][0]
    f, _ = _open(image)
    node = fs.resolve(f, '/big')
    _hostile(image, {_inode_offset(f, node.ino): b'XX'}, '/big',
             errors.Corrupt)


def test_inode_not_naming_itself_is_torn(images):
    image = images['v5'][0]
    f, _ = _open(image)
    node = fs.resolve(f, '/big')
    reason = _hostile(image, _sealed(image, {
        _inode_offset(f, node.ino) + 152: struct.pack('>Q', node.ino + 1)},
        _inode(f, node.ino)), '/big', errors.TornRead)
    assert 'does not name itself' in reason


def test_absurd_extent_count(images):
    image = images['v5'][0]
    f, _ = _open(image)
    node = fs.resolve(f, '/big')
    assert node.format == xfs.FMT_EXTENTS
    reason = _hostile(image, _sealed(image, {
        _inode_offset(f, node.ino) + 76: b'\xff\xff\xff\xff'},
        _inode(f, node.ino)), '/big', errors.Corrupt)
    assert 'more extents than room' in reason


def test_bmbt_loop(images):
    image = images['v5'][0]
    f, _ = _open(image)
    node = fs.resolve(f, '/fragmented')
    level, numrecs = struct.unpack_from('>HH', node.fork, 0)
    assert numrecs >= 2
    maxrecs = (len(node.fork) - 4) // 16
    ptrs = _inode_offset(f, node.ino) + 176 + 4 + maxrecs * 8
    first = node.fork[4 + maxrecs * 8:4 + maxrecs * 8 + 8]
    reason = _hostile(image, _sealed(image, {ptrs + 8: first},
                                     _inode(f, node.ino)),
                      '/fragmented', errors.Corrupt)
    assert 'loops' in reason


def test_bmbt_absurd_level(images):
    image = images['v5'][0]
    f, _ = _open(image)
    node = fs.resolve(f, '/fragmented')
    _hostile(image, _sealed(image, {
        _inode_offset(f, node.ino) + 176: b'\x00\xc8'},
        _inode(f, node.ino)), '/fragmented', errors.Corrupt)


def test_extent_outside_the_filesystem(images):
    image = images['v5'][0]
    f, _ = _open(image)
    node = fs.resolve(f, '/big')
    # Startblock bits in the first record: AG number far too large.
    at = _inode_offset(f, node.ino) + 176 + 7
    reason = _hostile(image, _sealed(image, {at: b'\x01\xff'},
                                     _inode(f, node.ino)),
                      '/big', errors.Corrupt)
    assert 'outside the filesystem' in reason or 'past' in reason


@pytest.mark.parametrize('patch_at, value', [
    (8, b'\x00'),                    # '.' entry with no name
    (-8, b'\x00\x00\xff\xff'),       # block tail: absurd leaf count
])
def test_bad_directory_block(images, patch_at, value):
    image = images['v5'][0]
    f, _ = _open(image)
    d60 = fs.resolve(f, '/d60')
    block = f._daddr(f._extents(d60, 1)[0][1], 'test') * f.block_size
    where = block + (64 + patch_at if patch_at > 0
                     else f.sb.dir_block_size + patch_at)
    _hostile(image, _sealed(image, {where: value},
                            (block, f.sb.dir_block_size, xfs.DIR3_CRC)),
             '/d60/name-1', errors.Corrupt)


def test_short_form_entry_past_its_size(images):
    image = images['v5'][0]
    f, _ = _open(image)
    d10 = fs.resolve(f, '/d10')
    # Entry count 200 in a fork holding 10.
    _hostile(image, _sealed(image, {_inode_offset(f, d10.ino) + 176:
                                    b'\xc8'}, _inode(f, d10.ino)),
             '/d10/name-1', errors.Corrupt)


def test_symlink_loop(images):
    assert 'symlink loop' in _hostile(images['v5'][0], {}, '/loop1',
                                      errors.Corrupt)


def test_budget_ends_a_large_read(images):
    reason = _hostile(images['v5'][0], {}, '/fragmented',
                      errors.LimitReached, budget_max=MiB)
    assert reason == 'read more than 1 MiB of the disks'


FUZZED = ['v5', 'v4']


@pytest.fixture(scope='module')
def clean_reads(images):
    """{variant: the (offset, length) reads of a clean /etc/os-release}."""
    def read(disk, budget):
        fs.read_file(xfs.Filesystem(disk, budget), '/etc/os-release', 4096)
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
    """The short-form entry says 'directory', the inode is a file."""
    image = images['v5'][0]
    f, _ = _open(image)
    d10 = fs.resolve(f, '/d10')
    fork_at = _inode_offset(f, d10.ino) + 176
    fork = d10.fork
    pos = 2 + (8 if fork[1] else 4)
    width = 8 if fork[1] else 4
    while fork[pos + 3:pos + 3 + fork[pos]] != b'name-3':
        pos += 3 + fork[pos] + 1 + width
    type_at = fork_at + pos + 3 + fork[pos]
    assert fork[pos + 3 + fork[pos]] == 1
    reason = _hostile(image, _sealed(image, {type_at: b'\x02'},
                                     _inode(f, d10.ino)),
                      '/d10/name-3', errors.TornRead)
    assert 'does not match its inode' in reason


# --------------------------------------------------------------------------
# v5 checksums: one byte changed where no structural check looks is a
# torn read naming the structure.


def _flip(f, where):
    """(offset of a byte nothing but a checksum covers, path to read)."""
    if where == 'superblock':
        return 108, '/etc/os-release'                  # sb_fname
    if where == 'inode':
        node = fs.resolve(f, '/big')
        return _inode_offset(f, node.ino) + 32, '/big'     # di_atime
    if where == 'B+tree block':
        node = fs.resolve(f, '/fragmented')
        maxrecs = (len(node.fork) - 4) // 16
        ptr = struct.unpack_from('>Q', node.fork, 4 + maxrecs * 8)[0]
        return (f._daddr(ptr, 'test') * f.block_size + 40,
                '/fragmented')                         # bb_uuid
    if where == 'directory block':
        d60 = fs.resolve(f, '/d60')
        block = f._daddr(f._extents(d60, 1)[0][1], 'test') * f.block_size
        return block + 24, '/d60/name-1'               # hdr.lsn
    if where == 'remote symlink block':
        node = fs.resolve(f, '/remote', follow_last=False)
        fsbno = f._extents(node, 1)[0][1]
        return (f._daddr(fsbno, 'test') * f.block_size + 24,
                '/remote')                             # sl_uuid
    raise AssertionError(where)


@pytest.mark.parametrize('variant', ['v5', 'v5-1k-blocks'])
@pytest.mark.parametrize('where, named', [
    ('superblock', 'xfs: superblock checksum mismatch'),
    ('inode', 'checksum mismatch'),
    ('B+tree block', 'B+tree block 0x'),
    ('directory block', 'directory block checksum mismatch'),
    ('remote symlink block', 'remote block checksum mismatch'),
])
def test_flipped_byte_fails_its_checksum(images, variant, where, named):
    image = images[variant][0]
    f, _ = _open(image)
    at, path = _flip(f, where)
    with open(image, 'rb') as stream:
        stream.seek(at)
        byte = stream.read(1)[0]
    reason = _hostile(image, {at: bytes([byte ^ 0x20])}, path,
                      errors.TornRead)
    assert named in reason and 'checksum mismatch' in reason
    if where == 'inode':
        assert reason == 'xfs: inode %d checksum mismatch' % (
            fs.resolve(f, '/big').ino)


def test_superblock_checksum_covers_a_4k_sector(tmp_path):
    image = tmp_path / 'sect4k.img'
    with open(image, 'wb') as stream:
        stream.truncate(320 * MiB)
    subprocess.run(['mkfs.xfs', '-q', '-f', '-m', 'crc=1', '-s',
                    'size=4096', str(image)], check=True,
                   capture_output=True, env=MKFS_ENV)
    f, _ = _open(image)
    assert f.sb.sectsize == 4096 and f.root.kind == fs.DIRECTORY
    # Past the first 512 bytes, inside the sector (mkfs leaves zeros).
    reason = _hostile(image, {3000: b'\x01'}, '/etc/os-release',
                      errors.TornRead)
    assert reason == 'xfs: superblock checksum mismatch'
