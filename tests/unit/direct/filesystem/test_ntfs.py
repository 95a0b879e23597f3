"""direct.ntfs on real volumes: made by mkntfs, filled through ntfs-3g
(FUSE) and read back byte for byte; then made hostile (patched bytes,
truncation) and fuzzed."""

import contextlib
import os
import random
import shutil
import struct
import subprocess
import time

import pytest
from hypothesis import given

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs
from ceilometer_os_pollster.direct.filesystem import filesystems
from ceilometer_os_pollster.direct.filesystem import ntfs
from ceilometer_os_pollster.direct.volumes import partitions
from ceilometer_os_pollster.direct.block import source as S
from tests.unit.direct import hostile
from tests.unit.direct.hostile import FLIPS
from tests.unit.direct.hostile import FUZZ
from tests.unit.direct.hostile import Patched
from tests.unit.direct.hostile import patches_at
from tests.guests import builder
from tests.guests import catalog
from tests.unit.direct.loops import loop_device

MiB = 1 << 20

CONFIG = '/Windows/System32/config'
MANY = 2000
# Clusters written last to first: one run each, more than one MFT
# record can describe, so the file needs an attribute list.
FRAGMENTS = 1200
SMALL_FRAGMENTS = 60
UNICODE_DIR = 'Ünïcødé'
UNICODE_NAME = 'Фaйл-日本-\U0001d11e.txt'
LONG_NAME = 'A long file name.txt'
DOS_NAME = 'ALONGF~1.TXT'
WOF_TAG = 0x80000017


def _many(i):
    return 'File-%04d.txt' % i


@contextlib.contextmanager
def _mounted(image, mountpoint):
    """ntfs-3g in the foreground: once it exits after the unmount, every
    byte is on the image."""
    proc = subprocess.Popen(['ntfs-3g', '-o', 'no_detach,compression',
                             str(image), str(mountpoint)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mountpoint):
            assert proc.poll() is None, 'ntfs-3g could not mount'
            assert time.monotonic() < deadline, 'ntfs-3g did not mount'
            time.sleep(0.02)
        yield mountpoint
    finally:
        if os.path.ismount(mountpoint):
            subprocess.run(['umount', str(mountpoint)], check=True)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            # A mount namespace made meanwhile by another process keeps
            # the FUSE connection open: SIGTERM makes ntfs-3g flush and
            # exit as an unmount would.
            proc.terminate()
            proc.wait(timeout=30)


def _write_backwards(path, clusters):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        for i in reversed(range(clusters)):
            os.pwrite(fd, bytes([i % 251 + 1]) * 4096, i * 4096)
    finally:
        os.close(fd)


def _reparse_symlink(target, relative):
    name = target.encode('utf-16-le')
    body = struct.pack('<HHHHI', 0, len(name), len(name), len(name),
                       1 if relative else 0) + name + name
    return struct.pack('<IHH', ntfs.IO_REPARSE_TAG_SYMLINK, len(body),
                       0) + body


def _fill(mnt):
    """Write the test tree; returns {path: expected bytes}."""
    expected = {}
    config = mnt / CONFIG.lstrip('/')
    config.mkdir(parents=True)
    for name, size in (('SOFTWARE', MiB + 3), ('SYSTEM', 300 * 1024)):
        data = os.urandom(size)
        (config / name).write_bytes(data)
        expected['%s/%s' % (CONFIG, name)] = data
    (config / 'small').write_bytes(b'resident\n')
    expected[CONFIG + '/small'] = b'resident\n'
    os.link(config / 'SYSTEM', mnt / 'Windows' / 'system.link')
    expected['/Windows/system.link'] = expected[CONFIG + '/SYSTEM']
    (mnt / 'Many').mkdir()
    for i in range(MANY):
        (mnt / 'Many' / _many(i)).write_bytes(b'%d\n' % i)
    _write_backwards(mnt / 'frag', FRAGMENTS)
    expected['/frag'] = b''.join(bytes([i % 251 + 1]) * 4096
                                 for i in range(FRAGMENTS))
    _write_backwards(mnt / 'frag-small', SMALL_FRAGMENTS)
    expected['/frag-small'] = expected['/frag'][:SMALL_FRAGMENTS * 4096]
    fd = os.open(mnt / 'sparse', os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b'head', 0)
    os.pwrite(fd, b'tail', 20 * MiB)
    os.close(fd)
    expected['/sparse'] = b'head' + bytes(20 * MiB - 4) + b'tail'
    (mnt / UNICODE_DIR).mkdir()
    (mnt / UNICODE_DIR / UNICODE_NAME).write_bytes(b'unicode\n')
    expected['/%s/%s' % (UNICODE_DIR, UNICODE_NAME)] = b'unicode\n'
    (mnt / LONG_NAME).write_bytes(b'long\n')
    os.setxattr(mnt / LONG_NAME, 'system.ntfs_dos_name', DOS_NAME.encode())
    expected['/' + LONG_NAME] = b'long\n'
    (mnt / 'Comp').mkdir()
    # FILE_ATTRIBUTE_DIRECTORY | COMPRESSED: new files in it compress.
    os.setxattr(mnt / 'Comp', 'system.ntfs_attrib_be',
                (0x810).to_bytes(4, 'big'))
    rng = random.Random(24)
    words = [bytes(rng.choice(b'abcdefghij') for _ in range(rng.randint(
        2, 9))) for _ in range(300)]
    text = b' '.join(rng.choice(words) for _ in range(100000))
    compressed = {'SOFTWARE': text,
                  'random': os.urandom(200000),
                  'mixed': text[:70000] + os.urandom(50000)
                  + bytes(100000) + text[:12345],
                  'just-over-a-unit': text[:65536 + 100]}
    for name, data in compressed.items():
        (mnt / 'Comp' / name).write_bytes(data)
        expected['/Comp/' + name] = data
    fd = os.open(mnt / 'Comp' / 'sparse', os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, text[:5000], 300000)
    os.close(fd)
    expected['/Comp/sparse'] = bytes(300000) + text[:5000]
    for name, target, relative in (
            ('rel-link', 'Windows\\System32\\config\\small', True),
            ('abs-link', '\\??\\C:\\Windows', False)):
        (mnt / name).write_bytes(b'')
        os.setxattr(mnt / name, 'system.ntfs_reparse_data',
                    _reparse_symlink(target, relative))
    # A WOF-compressed system file: its data is elsewhere.
    (mnt / 'wof.dll').write_bytes(b'MZ' + bytes(100))
    os.setxattr(mnt / 'wof.dll', 'system.ntfs_reparse_data',
                struct.pack('<IHH', WOF_TAG, 8, 0) + bytes(8))
    return expected


@pytest.fixture(scope='module')
def volume(tmp_path_factory):
    """(image path, {path: expected bytes}, {'listing': Many's names})."""
    work = tmp_path_factory.mktemp('ntfs')
    image = work / 'ntfs.img'
    with open(image, 'wb') as stream:
        stream.truncate(48 * MiB)
    subprocess.run(['mkntfs', '-F', '-Q', '-q', '-L', 'test', str(image)],
                   check=True, capture_output=True)
    mnt = work / 'mnt'
    mnt.mkdir()
    with _mounted(image, mnt):
        expected = _fill(mnt)
        listing = sorted(os.fsencode(n) for n in os.listdir(mnt / 'Many'))
    yield image, expected, listing
    shutil.rmtree(work, ignore_errors=True)


# mkntfs geometries: index blocks larger than clusters, smaller than
# clusters (their VCNs count 512-byte blocks), 4 KiB sectors and records.
GEOMETRIES = {
    'clusters-512': ['-c', '512'],
    'clusters-64k': ['-c', '65536'],
    'sectors-4k': ['-s', '4096'],
    'sectors-1k-clusters-2k': ['-s', '1024', '-c', '2048'],
}


@pytest.fixture(scope='module')
def geometries(tmp_path_factory):
    """{geometry: (image, SOFTWARE's bytes)}, each with a directory
    /d of 300 names."""
    work = tmp_path_factory.mktemp('ntfs-geometry')
    built = {}
    for name, options in GEOMETRIES.items():
        image = work / (name + '.img')
        with open(image, 'wb') as stream:
            stream.truncate(16 * MiB)
        subprocess.run(['mkntfs', '-F', '-Q', '-q', *options, str(image)],
                       check=True, capture_output=True)
        mnt = work / ('mnt-' + name)
        mnt.mkdir()
        data = os.urandom(200000)
        with _mounted(image, mnt):
            (mnt / CONFIG.lstrip('/')).mkdir(parents=True)
            (mnt / CONFIG.lstrip('/') / 'SOFTWARE').write_bytes(data)
            (mnt / 'd').mkdir()
            for i in range(300):
                (mnt / 'd' / ('name-%d' % i)).write_bytes(b'%d' % i)
        built[name] = (image, data)
    yield built
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize('geometry', sorted(GEOMETRIES))
def test_geometries(geometries, geometry):
    image, data = geometries[geometry]
    f, budget = _open(image)
    assert fs.read_file(f, '/WINDOWS/System32/config/software',
                        64 * MiB) == data
    for i in range(0, 300, 7):
        assert fs.read_file(f, '/d/NAME-%d' % i, 10) == b'%d' % i
    assert len(f.listdir(fs.resolve(f, '/d'))) == 300
    assert budget.used < 2 * MiB


def _open(image, budget=None, patches=None):
    budget = budget or S.Budget()
    source = S.FileSource(str(image), budget)
    if patches:
        source = Patched(source, patches)
    return ntfs.Filesystem(source, budget), budget


# --------------------------------------------------------------------------
# Clean volumes


def test_probe_and_open_filesystem(volume):
    budget = S.Budget()
    source = S.FileSource(str(volume[0]), budget)
    assert ntfs.probe(source)
    found = filesystems.open_filesystem(source, budget)
    assert found.kind == 'ntfs'
    assert found.cluster_size == 4096 and found.record_size == 1024
    assert not ntfs.probe(S.BytesSource(bytes(4096)))
    assert filesystems.open_filesystem(S.BytesSource(bytes(4096)),
                                       budget) is None


def test_files_read_back_byte_identical(volume):
    image, expected, _ = volume
    f, budget = _open(image)
    for path, data in expected.items():
        if path in ('/sparse', '/frag'):
            continue            # below, with their own budgets
        assert fs.read_file(f, path, 64 * MiB) == data, path
        assert f.size(fs.resolve(f, path)) == len(data)
    assert fs.read_file(f, CONFIG + '/SOFTWARE', 10) == \
        expected[CONFIG + '/SOFTWARE'][:10]
    assert budget.used < 4 * MiB


def test_lookups_ignore_case_with_the_volumes_upcase(volume):
    image, expected, _ = volume
    f, _ = _open(image)
    node = fs.resolve(f, '/WINDOWS/system32/CONFIG/software')
    assert node.path == '\\Windows\\System32\\config\\SOFTWARE'
    assert f.read(node, 64 * MiB) == expected[CONFIG + '/SOFTWARE']
    # Non-ASCII letters too: $UpCase maps ü and ф.
    upper = '/%s/%s' % (UNICODE_DIR.upper(), UNICODE_NAME.upper())
    assert fs.read_file(f, upper, 100) == b'unicode\n'
    assert fs.resolve(f, '/windows/system32/config/SOFTWARES') is None
    assert fs.resolve(f, '/windows/system3/config') is None


def test_non_ascii_names_are_utf8_components(volume):
    image, _, _ = volume
    f, _ = _open(image)
    d = fs.resolve(f, '/' + UNICODE_DIR)
    assert f.lookup(d, UNICODE_NAME.encode()) is not None
    assert f.lookup(d, UNICODE_NAME) is not None
    assert f.lookup(d, b'\xff\xfe') is None          # not UTF-8
    assert f.lookup(d, b'x' * 600) is None           # longer than NTFS's
    assert UNICODE_NAME.encode() in f.listdir(d)


def test_dos_names_are_not_matched(volume):
    image, _, _ = volume
    f, _ = _open(image)
    assert fs.read_file(f, '/' + LONG_NAME.upper(), 100) == b'long\n'
    assert fs.resolve(f, '/' + DOS_NAME) is None
    assert fs.resolve(f, '/' + DOS_NAME.lower()) is None


def test_large_directory_uses_index_blocks(volume):
    image, _, listing = volume
    f, budget = _open(image)
    many = fs.resolve(f, '/Many')
    assert any(a.type == ntfs.AT_INDEX_ALLOCATION for a in many.file.attrs)
    assert sorted(f.listdir(many)) == listing
    assert len(listing) == MANY
    before = budget.used
    for i in list(range(0, MANY, 97)) + [MANY - 1]:
        name = _many(i)
        assert fs.read_file(f, '/Many/' + name, 100) == b'%d\n' % i
        assert fs.read_file(f, '/many/' + name.lower(), 100) == b'%d\n' % i
    assert fs.resolve(f, '/Many/File-9999.txt') is None
    assert fs.resolve(f, '/Many/File-0000.tx') is None
    assert fs.resolve(f, '/Many/zzz') is None
    # A lookup reads a few index blocks, not the directory.
    assert budget.used - before < 2 * MiB


def test_fragmented_file_needs_its_attribute_list(volume):
    image, expected, _ = volume
    f, budget = _open(image)
    node = fs.resolve(f, '/frag')
    records = {a.record for a in node.file.attrs if a.type == ntfs.AT_DATA}
    assert len(records) > 1                 # extension records
    stream = f.open_stream(node)
    assert len(stream.runs) > FRAGMENTS // 2
    assert f.read(node, 64 * MiB) == expected['/frag']
    small = fs.resolve(f, '/frag-small')
    assert not any(a.type == ntfs.AT_ATTRIBUTE_LIST
                   for a in small.file.attrs)
    assert len(f.open_stream(small).runs) > SMALL_FRAGMENTS // 2
    assert budget.used < 8 * MiB


def test_sparse_runs_read_as_zeros_without_reading_them(volume):
    image, expected, _ = volume
    f, budget = _open(image)
    node = fs.resolve(f, '/sparse')
    assert any(lcn is None for _, _, lcn in f.open_stream(node).runs)
    assert f.read(node, 64 * MiB) == expected['/sparse']
    assert budget.used < 2 * MiB


def test_hard_links_are_one_record(volume):
    image, expected, _ = volume
    f, _ = _open(image)
    a = fs.resolve(f, CONFIG + '/SYSTEM')
    b = fs.resolve(f, '/windows/SYSTEM.LINK')
    assert f.key(a) == f.key(b)
    assert f.read(b, 64 * MiB) == expected[CONFIG + '/SYSTEM']
    names = [x for x in a.file.attrs if x.type == ntfs.AT_FILE_NAME]
    assert len(names) >= 2


def test_compressed_data_is_decompressed(volume):
    image, expected, _ = volume
    f, budget = _open(image)
    for name in ('SOFTWARE', 'random', 'mixed', 'just-over-a-unit',
                 'sparse'):
        node = fs.resolve(f, '/comp/' + name.upper())
        flags = [a.flags for a in node.file.attrs if a.type == ntfs.AT_DATA]
        assert flags[0] & ntfs.ATTR_COMPRESSION_MASK, name
        stream = f.open_stream(node)
        assert isinstance(stream, ntfs.CompressedStream)
        data = expected['/Comp/' + name]
        assert f.size(node) == len(data)
        assert f.read(node, 64 * MiB) == data, name
        middle = len(data) // 2
        assert stream.read_at(middle, 5) == data[middle:middle + 5]
    # The text compresses: fewer bytes read than it has.
    before = budget.used
    fs.read_file(f, '/Comp/SOFTWARE', 64 * MiB)
    assert budget.used - before < len(expected['/Comp/SOFTWARE']) * 3 // 4


@pytest.mark.parametrize('data, reason', [
    (b'\x05\xb0\x01ab', 'past its unit'),
    (b'\x02\xb0\x01\x00\x00', 'before its chunk'),
    (b'\x03\xb0\x02a\x00\x10', 'before its chunk'),
    (b'\x02\xb0\x02a\x00', 'truncated'),
    (b'\x03\xb0\x02a\xff\x0f', 'larger than 4 KiB'),
])
def test_lznt1_hostile(data, reason):
    with pytest.raises(errors.Corrupt) as exc:
        ntfs.lznt1(data, 65536, 'ntfs: x')
    assert reason in exc.value.reason


def test_lznt1_output_is_capped():
    # A chunk of one literal and a long repeat, many times over.
    chunk = b'\x03\xb0\x02a\xfc\x0f'
    out = ntfs.lznt1(chunk * 1000, 8192, 'ntfs: x')
    assert len(out) == 8192 and set(out) == {ord('a')}
    assert ntfs.lznt1(b'\x03\x30abcd', 100, 'x') == b'abcd'


def test_reparse_points(volume):
    image, _, _ = volume
    f, _ = _open(image)
    rel = fs.resolve(f, '/rel-link', follow_last=False)
    assert f.kind_of(rel) == fs.SYMLINK
    assert f.readlink(rel) == b'Windows/System32/config/small'
    assert fs.read_file(f, '/rel-link', 100) == b'resident\n'
    absolute = fs.resolve(f, '/abs-link')
    assert f.kind_of(absolute) == fs.OTHER
    assert fs.read_file(f, '/abs-link', 100) is None
    # Other tags on a file: never absent, never the wrong bytes.
    wof = fs.resolve(f, '/WOF.DLL')
    assert f.kind_of(wof) == fs.FILE
    with pytest.raises(errors.Unsupported) as exc:
        f.read(wof, 100)
    assert exc.value.reason == ('ntfs: \\wof.dll is a reparse point '
                                '(tag 0x80000017)')


def test_open_stream_reads_piecewise(volume):
    image, expected, _ = volume
    f, budget = _open(image)
    stream = f.open_stream(fs.resolve(f, CONFIG + '/SOFTWARE'))
    data = expected[CONFIG + '/SOFTWARE']
    assert stream.size == len(data)
    assert stream.read_at(500000, 7) == data[500000:500007]
    with pytest.raises(errors.Corrupt):
        stream.read_at(len(data) - 1, 2)
    assert budget.used < MiB


@pytest.mark.parametrize('name', catalog.WINDOWS)
def test_catalog_windows_hives_equal_ntfscat(name):
    """Each Windows guest of the catalog (MBR with System Reserved,
    GPT with ESP/MSR/Recovery): the hives read through direct.partitions
    and this reader are the bytes ntfs-3g's ntfscat reads."""
    image = builder.build(name)
    budget = S.Budget()
    found = {}
    with S.FileSource(str(image), budget) as disk:
        table = partitions.read_table(disk)
        for part, window in partitions.partition_sources(disk, table):
            f = filesystems.open_filesystem(window, budget)
            if f is None or f.kind != 'ntfs':
                continue
            for hive in ('SOFTWARE', 'SYSTEM'):
                data = fs.read_file(f, '/windows/system32/config/' + hive,
                                    64 * MiB)
                if data is not None:
                    found[(part.start, part.size, hive)] = data
    assert any(hive == 'SYSTEM' for _, _, hive in found)
    assert budget.used < 4 * MiB
    for (start, size, hive), data in found.items():
        with loop_device(image, '-r', '-o', str(start), '--sizelimit',
                         str(size)) as dev:
            expected = subprocess.run(
                ['ntfscat', dev, CONFIG + '/' + hive], check=True,
                capture_output=True).stdout
        assert data == expected, (start, hive)


def _pairs(runs):
    """Mapping pairs for [(count, lcn)] (no sparse runs)."""
    out = bytearray()
    previous = 0
    for count, lcn in runs:
        length = count.to_bytes(8, 'little', signed=True).rstrip(b'\0')
        length = length + b'\0' if length[-1] & 0x80 else length
        delta = lcn - previous
        size = 1
        while not -(1 << (8 * size - 1)) <= delta < 1 << (8 * size - 1):
            size += 1
        out += bytes([size << 4 | len(length)]) + length + delta.to_bytes(
            size, 'little', signed=True)
        previous = lcn
    out += b'\0'
    return bytes(out + bytes(-len(out) % 8))


def _with_fixups(record):
    """``record`` (fixed-up bytes) as written on disk."""
    record = bytearray(record)
    usa = struct.unpack_from('<H', record, 4)[0]
    usn = record[usa:usa + 2]
    for i in range(len(record) // 512):
        end = (i + 1) * 512 - 2
        record[usa + 2 + 2 * i:usa + 4 + 2 * i] = record[end:end + 2]
        record[end:end + 2] = usn
    return bytes(record)


def test_mft_with_an_attribute_list(volume):
    """The $MFT's own runs split over record 0 and an extension record
    (as on a volume whose MFT grew in many fragments): found through the
    first extent, then every record read through both."""
    image, expected, _ = volume
    f, _ = _open(image)
    split, extension = 4, 15                # records 0-15 in clusters 0-3
    runs = [(vcn, count, lcn) for vcn, count, lcn in f._mft.runs]
    assert runs[0][1] > split
    head = [(split, runs[0][2])]
    tail = [(runs[0][1] - split, runs[0][2] + split)] + [
        (count, lcn) for _, count, lcn in runs[1:]]
    end_vcn = sum(count for _, count, _ in runs) - 1
    raw0 = ntfs.apply_fixups(bytearray(f._record_bytes(0)), b'FILE', 't')
    attrs_at = struct.unpack_from('<H', raw0, 0x14)[0]
    seq0 = struct.unpack_from('<H', raw0, 0x10)[0]
    attributes = []
    pos = attrs_at
    while struct.unpack_from('<I', raw0, pos)[0] != ntfs.AT_END:
        length = struct.unpack_from('<I', raw0, pos + 4)[0]
        attributes.append(bytearray(raw0[pos:pos + length]))
        pos += length
    ref0 = seq0 << 48
    entries = b''
    for atype, lowest, ref in ((ntfs.AT_STANDARD_INFORMATION, 0, ref0),
                               (ntfs.AT_DATA, 0, ref0),
                               (ntfs.AT_DATA, split, extension)):
        entries += struct.pack('<IHBBQQH6x', atype, 32, 0, 0x1A, lowest,
                               ref, 0)
    alist = struct.pack('<IIBBHHHIHBB', ntfs.AT_ATTRIBUTE_LIST,
                        24 + len(entries), 0, 0, 0, 0, 0, len(entries), 24,
                        0, 0) + entries
    rebuilt = []
    for attr in attributes:
        atype = struct.unpack_from('<I', attr, 0)[0]
        if atype == ntfs.AT_DATA and not attr[9]:
            pairs = _pairs(head)
            attr = attr[:0x40] + pairs
            struct.pack_into('<I', attr, 4, len(attr))
            struct.pack_into('<HBB', attr, 0x20, 0x40, 0, 0)
            struct.pack_into('<q', attr, 0x18, split - 1)
        rebuilt.append(bytes(attr))
        if atype == ntfs.AT_STANDARD_INFORMATION:
            rebuilt.append(alist)
    body = b''.join(rebuilt) + struct.pack('<II', ntfs.AT_END, 0)
    record0 = bytearray(raw0)
    record0[attrs_at:] = bytes(len(record0) - attrs_at)
    record0[attrs_at:attrs_at + len(body)] = body
    struct.pack_into('<I', record0, 0x18, attrs_at + len(body))
    # The extension: record 0's header, then the rest of the runs.
    data = bytearray(struct.pack('<IIBBHHHqqHB5xqqq', ntfs.AT_DATA, 0, 1, 0,
                                 0, 0, 1, split, end_vcn, 0x40, 0, 0, 0, 0))
    data += _pairs(tail)
    struct.pack_into('<I', data, 4, len(data))
    ext = bytearray(len(raw0))
    ext[:attrs_at] = raw0[:attrs_at]
    ext[attrs_at:attrs_at + len(data) + 8] = data + struct.pack(
        '<II', ntfs.AT_END, 0)
    struct.pack_into('<HH', ext, 0x14, attrs_at, ntfs.MFT_IN_USE)
    struct.pack_into('<I', ext, 0x18, attrs_at + len(data) + 8)
    struct.pack_into('<Q', ext, 0x20, ref0)
    struct.pack_into('<I', ext, 0x2C, extension)
    patches = {_record_offset(f, 0): _with_fixups(record0),
               _record_offset(f, extension): _with_fixups(ext)}
    g, budget = _open(image, patches=patches)
    mft = g._file(0)
    assert sorted(a.record for a in mft.attrs if a.type == ntfs.AT_DATA
                  and not a.name) == [0, extension]
    assert len(g._mft.runs) == len(runs) + 1        # the split run
    assert fs.read_file(g, CONFIG + '/SOFTWARE', 64 * MiB) == \
        expected[CONFIG + '/SOFTWARE']
    assert fs.read_file(g, '/Many/' + _many(1999), 100) == b'1999\n'
    # Without its extension, the MFT ends at record 15.
    patches[_record_offset(f, extension) + 0x16] = b'\0\0'
    with pytest.raises(errors.TornRead):
        _open(image, patches=patches)


# --------------------------------------------------------------------------
# Hostile volumes


def _record_offset(f, number):
    """Where MFT record ``number`` is on the volume."""
    stream = f._mft
    pos = number * f.record_size
    for vcn, count, lcn in stream.runs:
        if vcn * f.cluster_size <= pos < (vcn + count) * f.cluster_size:
            return lcn * f.cluster_size + pos - vcn * f.cluster_size
    raise AssertionError('record %d not mapped' % number)


def _attribute_at(f, number, atype):
    """Offset in record ``number`` of its first attribute of ``atype``."""
    raw = ntfs.apply_fixups(bytearray(f._record_bytes(number)), b'FILE', 't')
    pos = struct.unpack_from('<H', raw, 0x14)[0]
    while True:
        t, length = struct.unpack_from('<II', raw, pos)
        assert t != ntfs.AT_END
        if t == atype:
            return pos, raw
        pos += length


def _hostile(image, patches, path, expected, budget_max=4 * MiB):
    budget = S.Budget(budget_max)
    with pytest.raises(expected) as exc:
        f, _ = _open(image, budget, patches)
        fs.read_file(f, path, 64 * MiB)
    assert exc.value.reason.startswith('ntfs') or 'disks' in \
        exc.value.reason
    assert budget.used <= budget_max
    return exc.value.reason


@pytest.mark.parametrize('offset, value, reason', [
    (0x0B, struct.pack('<H', 300), 'bytes per sector'),
    (0x0D, b'\x03', 'sectors per cluster'),
    (0x0D, b'\xe0', 'cluster size'),
    (0x28, struct.pack('<Q', 1 << 40), 'larger than its device'),
    (0x30, struct.pack('<Q', 1 << 40), 'past the end of the volume'),
    (0x40, b'\x00', 'MFT record size'),
    (0x40, b'\x40', 'MFT record size'),
    (0x44, b'\xe0', 'index record size'),
    (0x1FE, b'\x00', '55AA'),
])
def test_hostile_boot_sector(volume, offset, value, reason):
    assert reason in _hostile(volume[0], {offset: value}, CONFIG,
                              errors.Corrupt)


def test_truncated_volume(volume):
    budget = S.Budget()
    half = S.Window(S.FileSource(str(volume[0]), budget), 0, 24 * MiB)
    with pytest.raises(errors.Corrupt) as exc:
        ntfs.Filesystem(half, budget)
    assert 'larger than its device' in exc.value.reason
    assert budget.used <= 512


def test_fixup_mismatch_is_a_torn_read(volume):
    image = volume[0]
    f, _ = _open(image)
    node = fs.resolve(f, CONFIG + '/SOFTWARE')
    at = _record_offset(f, node.number) + 1022
    reason = _hostile(image, {at: b'\x12\x34'}, CONFIG + '/SOFTWARE',
                      errors.TornRead)
    assert 'update sequence mismatch' in reason


def test_record_naming_itself_its_base_is_corrupt(volume):
    image = volume[0]
    f, _ = _open(image)
    node = fs.resolve(f, CONFIG + '/SOFTWARE')
    at = _record_offset(f, node.number) + 0x20
    reason = _hostile(image, {at: struct.pack('<Q', node.number)},
                      CONFIG + '/SOFTWARE', errors.Corrupt)
    assert 'is an extension of record %d' % node.number in reason


def test_reused_record_is_a_torn_read(volume):
    image = volume[0]
    f, _ = _open(image)
    node = fs.resolve(f, CONFIG + '/SOFTWARE')
    at = _record_offset(f, node.number) + 0x10
    reason = _hostile(image, {at: struct.pack('<H', node.file.seq + 1)},
                      CONFIG + '/SOFTWARE', errors.TornRead)
    assert 'free or reused' in reason


def test_record_named_elsewhere_is_a_torn_read(volume):
    """The record's only name is now in another directory (moved or
    reused while we read the index)."""
    image = volume[0]
    f, _ = _open(image)
    node = fs.resolve(f, CONFIG + '/SOFTWARE')
    pos, raw = _attribute_at(f, node.number, ntfs.AT_FILE_NAME)
    value = pos + struct.unpack_from('<H', raw, pos + 0x14)[0]
    at = _record_offset(f, node.number) + value
    reason = _hostile(image, {at: struct.pack('<Q', ntfs.ROOT_RECORD)},
                      CONFIG + '/SOFTWARE', errors.TornRead)
    assert 'has no name in its directory' in reason


def test_record_saying_it_is_another(volume):
    image = volume[0]
    f, _ = _open(image)
    node = fs.resolve(f, CONFIG + '/SOFTWARE')
    at = _record_offset(f, node.number) + 0x2C
    reason = _hostile(image, {at: struct.pack('<I', node.number + 1)},
                      CONFIG + '/SOFTWARE', errors.Corrupt)
    assert 'says it is record %d' % (node.number + 1) in reason


def test_free_extension_record_is_a_torn_read(volume):
    image = volume[0]
    f, _ = _open(image)
    node = fs.resolve(f, '/frag')
    extension = max(a.record for a in node.file.attrs)
    at = _record_offset(f, extension) + 0x16
    reason = _hostile(image, {at: b'\x00\x00'}, '/frag', errors.TornRead)
    assert 'extension record %d is free' % extension in reason


def test_attribute_list_naming_another_files_record(volume):
    image = volume[0]
    f, _ = _open(image)
    node = fs.resolve(f, '/frag')
    extension = max(a.record for a in node.file.attrs)
    # The extension says it belongs to the root directory.
    at = _record_offset(f, extension) + 0x20
    reason = _hostile(image, {at: struct.pack('<Q', ntfs.ROOT_RECORD)},
                      '/frag', errors.Corrupt)
    assert 'not its extension' in reason


def _data_runs_at(f, number):
    pos, raw = _attribute_at(f, number, ntfs.AT_DATA)
    assert raw[pos + 8] == 1                # non-resident
    pairs = pos + struct.unpack_from('<H', raw, pos + 0x20)[0]
    return _record_offset(f, number), pos, pairs, raw


def test_data_run_past_the_volume(volume):
    image = volume[0]
    f, _ = _open(image)
    node = fs.resolve(f, CONFIG + '/SOFTWARE')
    base, _, pairs, raw = _data_runs_at(f, node.number)
    header = raw[pairs]
    len_size, off_size = header & 0xF, header >> 4
    assert off_size >= 2
    at = base + pairs + 1 + len_size
    value = b'\xff' * (off_size - 1) + b'\x3f'
    reason = _hostile(image, {at: value}, CONFIG + '/SOFTWARE',
                      errors.Corrupt)
    assert 'past the end of the volume' in reason


@pytest.mark.parametrize('field, value', [
    (0x30, 1 << 60),                        # data size past the runs
    (0x38, 1 << 62),                        # initialized past data size
    (0x28, -4096),                          # negative allocated size
])
def test_absurd_sizes(volume, field, value):
    image = volume[0]
    f, _ = _open(image)
    node = fs.resolve(f, CONFIG + '/SOFTWARE')
    base, pos, _, _ = _data_runs_at(f, node.number)
    reason = _hostile(image, {base + pos + field: struct.pack('<q', value)},
                      CONFIG + '/SOFTWARE', errors.Corrupt)
    assert 'size' in reason


@pytest.mark.parametrize('flags, unit, expected', [
    (0x4000, None, 'is encrypted'),
    (0x0001, 0, 'is compressed in a way Windows does not write'),
    (0x0002, 4, 'is compressed in a way Windows does not write'),
])
def test_unsupported_data(volume, flags, unit, expected):
    image = volume[0]
    f, _ = _open(image)
    node = fs.resolve(f, CONFIG + '/SOFTWARE')
    base, pos, _, _ = _data_runs_at(f, node.number)
    patches = {base + pos + 0x0C: struct.pack('<H', flags)}
    if unit is not None:
        patches[base + pos + 0x22] = bytes([unit])
    reason = _hostile(image, patches, CONFIG + '/SOFTWARE',
                      errors.Unsupported)
    assert reason.startswith('ntfs: \\Windows\\System32\\config\\SOFTWARE '
                             + expected)


def test_index_block_fixup_mismatch_is_a_torn_read(volume):
    image = volume[0]
    f, _ = _open(image)
    many = fs.resolve(f, '/Many')
    root, block_size, stream, _ = f._index(many)
    child = next(c for _, _, _, c in root if c is not None)
    unit = f.cluster_size if block_size >= f.cluster_size else 512
    at = _stream_offset(f, stream, child * unit + 510)
    reason = _hostile(image, {at: b'\xde\xad'}, '/Many/File-0000.txt',
                      errors.TornRead)
    assert 'index block %d: update sequence mismatch' % child in reason


def test_absurd_run_length(volume):
    image = volume[0]
    f, _ = _open(image)
    node = fs.resolve(f, CONFIG + '/SOFTWARE')
    base, _, pairs, raw = _data_runs_at(f, node.number)
    # Length and offset sizes of 8 bytes, past the attribute's end.
    _hostile(image, {base + pairs: b'\x88'}, CONFIG + '/SOFTWARE',
             errors.Corrupt)


def _internal_block(f, directory):
    """(vcn, entries) of an index block of ``directory`` with children."""
    root, block_size, stream, what = f._index(directory)
    pending = [child for _, _, _, child in root if child is not None]
    while pending:
        vcn = pending.pop()
        entries = f._node_entries(stream, block_size, vcn, what)
        if any(child is not None for _, _, _, child in entries):
            return vcn, entries, stream, block_size
    return None


def _stream_offset(f, stream, pos):
    for vcn, count, lcn in stream.runs:
        if vcn * f.cluster_size <= pos < (vcn + count) * f.cluster_size:
            return lcn * f.cluster_size + pos - vcn * f.cluster_size
    raise AssertionError('not mapped')


def test_looping_index_nodes(volume):
    image = volume[0]
    f, _ = _open(image)
    many = fs.resolve(f, '/Many')
    found = _internal_block(f, many)
    if found is None:
        # Two levels: make the root's first child point at itself
        # through its last entry (an index block is its own child).
        pytest.fail('/Many has no internal index block: make it larger')
    vcn, entries, stream, block_size = found
    unit = f.cluster_size if block_size >= f.cluster_size else 512
    block = ntfs.apply_fixups(bytearray(stream.read_at(vcn * unit,
                                                       block_size)),
                              b'INDX', 't')
    # The first entry with a child: point it at this very block.
    first, _ = struct.unpack_from('<II', block, 24)
    pos = 24 + first
    while True:
        ref, size, _, flags = struct.unpack_from('<QHHH', block, pos)
        if flags & ntfs.ENTRY_NODE:
            break
        pos += size
    child_at = pos + size - 8
    assert child_at % 512 < 510             # not under a fixup
    name = entries[[e[3] is not None for e in entries].index(True)][0]
    at = _stream_offset(f, stream, vcn * unit + child_at)
    reason = _hostile(image, {at: struct.pack('<q', vcn)},
                      '/Many/' + (name.decode('utf-16-le')
                                  if name else 'zzzz'), errors.Corrupt)
    assert 'index loops' in reason


def test_index_block_naming_another_vcn(volume):
    image = volume[0]
    f, _ = _open(image)
    many = fs.resolve(f, '/Many')
    root, block_size, stream, _ = f._index(many)
    child = next(c for _, _, _, c in root if c is not None)
    unit = f.cluster_size if block_size >= f.cluster_size else 512
    at = _stream_offset(f, stream, child * unit + 16)
    reason = _hostile(image, {at: struct.pack('<q', child + 1000)},
                      '/Many/File-0000.txt', errors.Corrupt)
    assert 'names itself block' in reason


def test_bad_upcase_table(volume):
    image = volume[0]
    f, _ = _open(image)
    base, pos, _, _ = _data_runs_at(f, ntfs.UPCASE_RECORD)
    reason = _hostile(image, {base + pos + 0x30: struct.pack('<q', 4096),
                              base + pos + 0x38: struct.pack('<q', 4096)},
                      CONFIG, errors.Corrupt)
    assert '$UpCase' in reason


def test_budget_ends_a_large_read(volume):
    reason = _hostile(volume[0], {}, '/frag', errors.LimitReached,
                      budget_max=2 * MiB)
    assert reason == 'read more than 2 MiB of the disks'


# --------------------------------------------------------------------------
# Fuzz

FUZZED_PATH = CONFIG + '/SOFTWARE'
FUZZED_LOOKUP = '/Many/' + _many(1234)
FUZZED_COMPRESSED = '/Comp/mixed'


@pytest.fixture(scope='module')
def clean_reads(volume):
    """The (offset, length) structure reads of a clean read of the
    SOFTWARE hive's first KiB, of a lookup in a directory of index
    blocks and of a compressed file ($UpCase's 128 KiB left out)."""
    def read(disk, budget):
        f = ntfs.Filesystem(disk, budget)
        fs.read_file(f, '/WINDOWS/System32/config/software', 1024)
        fs.read_file(f, FUZZED_LOOKUP, 100)
        fs.read_file(f, FUZZED_COMPRESSED, 4096)
    return [(o, n) for o, n in hostile.clean_reads(volume[0], read)
            if n < 64 * 1024]


@FUZZ
@given(flips=FLIPS)
def test_fuzzed_volumes_end_within_bounds(volume, clean_reads, flips):
    """Bytes replaced where a clean read looks: the read ends with data,
    None or a DirectError, within the budget."""
    outcome, used = hostile.read_flipped(
        volume[0], patches_at(clean_reads, flips),
        hostile.read_files(FUZZED_PATH, FUZZED_LOOKUP, FUZZED_COMPRESSED))
    assert hostile.ended_cleanly(outcome), outcome
    assert used <= 8 * MiB
