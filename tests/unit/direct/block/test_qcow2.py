"""direct.qcow2: our reader returns exactly what `qemu-img convert -O raw`
returns, for images made by the real qemu-img; hostile headers and
tables end with a DirectError within the byte budget."""

import hashlib
import os
import random
import struct
import subprocess

import pytest

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.block import qcow2
from ceilometer_os_pollster.direct.block import qcow2_header
from ceilometer_os_pollster.direct.block import source as S
from tests.rig.disks import encrypted_qcow2

MiB = 1 << 20
VSIZE = 4 * MiB + 1536          # not a whole number of clusters


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_raw(path, seed, size=VSIZE):
    """Random, text and zero regions (compressible and not)."""
    rng = random.Random(seed)
    data = bytearray(size)
    for _ in range(12):
        start = rng.randrange(0, size - 70000)
        n = rng.randrange(1, 70000)
        if rng.random() < 0.5:
            data[start:start + n] = rng.randbytes(n)
        else:
            data[start:start + n] = (b'guest text %d ' % seed * n)[:n]
    data[-512:] = b'E' * 512          # the last, partial cluster
    path.write_bytes(bytes(data))
    return path


def reference_hash(image, fmt='qcow2'):
    out = str(image) + '.ref.raw'
    run('qemu-img', 'convert', '-f', fmt, '-O', 'raw', str(image), out)
    try:
        with open(out, 'rb') as f:
            return hashlib.sha256(f.read()).hexdigest(), os.path.getsize(out)
    finally:
        os.unlink(out)


def reader_hash(src):
    h = hashlib.sha256()
    for off in range(0, src.size, MiB):
        h.update(src.read_at(off, min(MiB, src.size - off)))
    return h.hexdigest(), src.size


def open_file(path, budget=None):
    return S.FileSource(str(path), budget or S.Budget(256 * MiB))


def open_image(path, backing=None, budget=None):
    return qcow2.open_qcow2(open_file(path, budget), backing)


def kinds(image):
    cs = image.header.cluster_size
    return {image.mapping(i)[0] for i in range(-(-image.size // cs))}


@pytest.fixture(scope='module')
def raws(tmp_path_factory):
    d = tmp_path_factory.mktemp('qcow2')
    return d, [make_raw(d / ('r%d.raw' % i), i) for i in range(3)]


@pytest.mark.parametrize('options, compress, expect_kind', [
    (['-o', 'compat=0.10'], False, qcow2_header.DATA),
    (['-o', 'compat=1.1'], False, qcow2_header.DATA),
    (['-o', 'compat=1.1,cluster_size=4096'], False, qcow2_header.DATA),
    (['-o', 'compat=1.1,cluster_size=512'], False, qcow2_header.DATA),
    (['-o', 'compat=1.1,cluster_size=2M'], False, qcow2_header.DATA),
    (['-o', 'compat=0.10'], True, qcow2_header.COMPRESSED),
    (['-o', 'compat=1.1'], True, qcow2_header.COMPRESSED),
    (['-o', 'compat=1.1,cluster_size=4096'], True, qcow2_header.COMPRESSED),
    (['-o', 'compat=1.1,cluster_size=512'], True, qcow2_header.COMPRESSED),
])
def test_image_reads_as_qemu_img_converts(raws, options, compress,
                                          expect_kind):
    d, (raw, _, _) = raws
    image = d / 'img.qcow2'
    run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
        *(['-c'] if compress else []), *options, str(raw), str(image))
    try:
        src = open_image(image)
        assert src.header.version == (2 if 'compat=0.10' in options[1]
                                      else 3)
        assert expect_kind in kinds(src)
        assert reader_hash(src) == reference_hash(image)
        # Unaligned reads across cluster boundaries too.
        with open(raw, 'rb') as f:
            for off, n in ((1, 70000), (65535, 3), (VSIZE - 100, 100)):
                f.seek(off)
                assert src.read_at(off, n) == f.read(n)
    finally:
        image.unlink()


def test_zstd_compressed_clusters(raws):
    d, (raw, _, _) = raws
    image = d / 'zstd.qcow2'
    run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', '-c', '-o',
        'compression_type=zstd', str(raw), str(image))
    src = open_image(image)
    assert src.header.compression_type == qcow2_header.COMPRESSION_ZSTD
    if qcow2.zstandard is None:
        with pytest.raises(errors.Unsupported) as e:
            reader_hash(src)
        assert 'zstandard' in e.value.reason
    else:                       # pragma: no cover - host dependent
        assert reader_hash(src) == reference_hash(image)


@pytest.mark.parametrize('compat', ['0.10', '1.1'])
def test_backing_chain_reads_as_qemu_img_converts(raws, compat):
    d, (r0, _, _) = raws
    base, mid, top = (d / ('%s-%s.qcow2' % (n, compat))
                      for n in ('base', 'mid', 'top'))
    opts = ['-o', 'compat=%s,cluster_size=4096' % compat]
    run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', *opts,
        str(r0), str(base))
    for upper, lower, writes in (
            (mid, base, ['write -P 0x11 0 64k', 'write -z 1M 1M',
                         'write -P 0x12 3000 5000']),
            (top, mid, ['write -P 0x22 100k 10k', 'write -z 2M 12k',
                        'write -P 0x23 1040k 4k'])):
        run('qemu-img', 'create', '-f', 'qcow2', *opts, '-b', str(lower),
            '-F', 'qcow2', str(upper))
        for w in writes:
            run('qemu-io', '-f', 'qcow2', '-c', w, str(upper))
    budget = S.Budget(256 * MiB)
    chain = None
    for path in (base, mid, top):
        chain = open_image(path, chain, budget)
    assert chain.depth == 3
    found = kinds(chain)
    assert qcow2_header.UNALLOCATED in found
    if compat == '1.1':
        assert qcow2_header.ZERO in found | kinds(chain.backing)
    assert reader_hash(chain) == reference_hash(top)
    assert chain.read_at(2 * MiB, 12288) == bytes(12288)
    assert chain.read_at(1040 * 1024, 4096) == b'\x23' * 4096


def test_backing_smaller_than_image_reads_zeros_beyond(tmp_path):
    base = make_raw(tmp_path / 'base.raw', 7, size=MiB)
    top = tmp_path / 'top.qcow2'
    run('qemu-img', 'create', '-f', 'qcow2', '-b', str(base), '-F', 'raw',
        str(top), '3M')
    run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 2M 4k', str(top))
    budget = S.Budget(64 * MiB)
    src = open_image(top, open_file(base, budget), budget)
    assert reader_hash(src) == reference_hash(top)
    assert src.read_at(MiB, 4096) == bytes(4096)
    assert src.read_at(2 * MiB, 4096) == b'\x5a' * 4096


def test_qemu_io_zero_clusters(tmp_path):
    base = make_raw(tmp_path / 'base.raw', 8, size=MiB)
    top = tmp_path / 'top.qcow2'
    run('qemu-img', 'create', '-f', 'qcow2', '-b', str(base), '-F', 'raw',
        str(top), '1M')
    run('qemu-io', '-f', 'qcow2', '-c', 'write -z 64k 128k', str(top))
    src = open_image(top, open_file(base))
    assert src.mapping(1)[0] == qcow2_header.ZERO
    assert src.read_at(65536, 131072) == bytes(131072)
    assert reader_hash(src) == reference_hash(top)


def test_guest_written_qcow2_header_is_only_data(tmp_path):
    # The guest wrote a qcow2 header (naming a host file as its backing)
    # at the start of its disk and inside it: reading the virtual disk
    # returns those bytes and opens nothing.
    evil = tmp_path / 'evil.qcow2'
    run('qemu-img', 'create', '-f', 'qcow2', '-u', '-b', '/etc/shadow',
        '-F', 'raw', str(evil), '1G')
    header = evil.read_bytes()[:65536]
    raw = tmp_path / 'guest.raw'
    data = bytearray(make_raw(tmp_path / 'g0.raw', 9, size=2 * MiB)
                     .read_bytes())
    data[:len(header)] = header
    data[MiB:MiB + len(header)] = header
    raw.write_bytes(bytes(data))
    image = tmp_path / 'disk.qcow2'
    run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', str(raw),
        str(image))
    src = open_image(image)
    assert src.backing is None and not src.header.has_backing
    assert src.read_at(0, 4) == qcow2_header.MAGIC
    assert reader_hash(src) == reference_hash(image)
    assert reader_hash(src)[0] == hashlib.sha256(data).hexdigest()


# -- refusals ------------------------------------------------------------

@pytest.mark.parametrize('method', [1, 2])
def test_encrypted_is_refused(tmp_path, method):
    image = tmp_path / 'x.qcow2'
    encrypted_qcow2(image, method)          # 1 AES, 2 LUKS
    with pytest.raises(errors.Unsupported) as e:
        open_image(image)
    assert 'encrypted' in e.value.reason


@pytest.mark.parametrize('create_args, words', [
    (['-o', 'data_file=DATA'], 'external data file'),
    (['-o', 'extended_l2=on'], 'extended L2'),
])
def test_refused_features_say_why(tmp_path, create_args, words):
    image = tmp_path / 'x.qcow2'
    args = [a.replace('DATA', str(tmp_path / 'data.raw'))
            for a in create_args]
    run('qemu-img', 'create', '-f', 'qcow2', *args, str(image), '1M')
    with pytest.raises(errors.Unsupported) as e:
        open_image(image)
    assert words in e.value.reason


def test_backing_named_but_not_given(tmp_path):
    image = tmp_path / 'x.qcow2'
    run('qemu-img', 'create', '-f', 'qcow2', '-u', '-b', 'base.raw', '-F',
        'raw', str(image), '1M')
    with pytest.raises(errors.Unsupported) as e:
        open_image(image)
    assert 'backing file' in e.value.reason


def test_backing_given_to_an_image_without_one(tmp_path):
    image = tmp_path / 'x.qcow2'
    run('qemu-img', 'create', '-f', 'qcow2', str(image), '1M')
    with pytest.raises(errors.Unsupported) as e:
        open_image(image, S.BytesSource(bytes(MiB)))
    assert 'no backing file' in e.value.reason


def test_open_chain(tmp_path):
    base = make_raw(tmp_path / 'base.raw', 5, size=MiB)
    mid, top = tmp_path / 'mid.qcow2', tmp_path / 'top.qcow2'
    run('qemu-img', 'create', '-f', 'qcow2', '-b', str(base), '-F', 'raw',
        str(mid))
    run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x61 0 100k', str(mid))
    run('qemu-img', 'create', '-f', 'qcow2', '-b', str(mid), '-F', 'qcow2',
        str(top))
    run('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x62 50k 100k', str(top))
    budget = S.Budget(64 * MiB)
    disk = qcow2.open_chain([('qcow2', open_file(top, budget)),
                             ('qcow2', open_file(mid, budget)),
                             ('raw', open_file(base, budget))])
    assert disk.depth == 3
    assert reader_hash(disk) == reference_hash(top)
    for layers in ([('raw', open_file(base)), ('qcow2', open_file(mid))],
                   [('vmdk', open_file(base))]):
        with pytest.raises(errors.Unsupported):
            qcow2.open_chain(layers)


def test_chain_depth_is_capped(tmp_path):
    base = make_raw(tmp_path / 'base.raw', 1, size=MiB)
    top = tmp_path / 'top.qcow2'
    run('qemu-img', 'create', '-f', 'qcow2', '-u', '-b', str(base), '-F',
        'raw', str(top), '1M')
    chain = open_file(base)
    for _ in range(qcow2.MAX_CHAIN_DEPTH - 1):
        chain = open_image(top, chain)
    with pytest.raises(errors.Unsupported) as e:
        open_image(top, chain)
    assert 'deeper' in e.value.reason


# -- hostile images ------------------------------------------------------

@pytest.fixture
def small(tmp_path):
    """A v3 image with 4 KiB clusters: header, L1 at 3*4k or so."""
    raw = make_raw(tmp_path / 'small.raw', 3, size=MiB)
    image = tmp_path / 'small.qcow2'
    run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', '-o',
        'cluster_size=4096', str(raw), str(image))
    return image


def patch(path, offset, fmt, *values):
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(struct.pack(fmt, *values))


def header_of(path):
    with open(path, 'rb') as f:
        data = f.read(112)
    return qcow2_header.parse_header(data, os.path.getsize(path))


def read_all(path, budget):
    src = open_image(path, budget=budget)
    return reader_hash(src)


@pytest.mark.parametrize('offset, fmt, value, exc', [
    (0, '>4s', b'QFI\x00', errors.Corrupt),             # magic
    (4, '>I', 4, errors.Unsupported),                    # version
    (20, '>I', 8, errors.Corrupt),                       # cluster_bits
    (20, '>I', 40, errors.Corrupt),
    (24, '>Q', 1 << 62, errors.Corrupt),                 # absurd size
    (36, '>I', 0xffffffff, errors.Corrupt),              # absurd l1_size
    (40, '>Q', 1 << 50, errors.Corrupt),                 # L1 past the end
    (40, '>Q', 4096 + 8, errors.Corrupt),                # L1 unaligned
    (72, '>Q', 1 << 40, errors.Unsupported),             # unknown feature
    (100, '>I', 7, errors.Corrupt),                      # header_length
    (100, '>I', 1 << 30, errors.Corrupt),
])
def test_hostile_header(small, offset, fmt, value, exc):
    patch(small, offset, fmt, value)
    budget = S.Budget(4 * MiB)
    with pytest.raises(exc):
        read_all(small, budget)
    assert budget.used <= 4096


def test_l1_entry_past_the_end(small):
    h = header_of(small)
    patch(small, h.l1_table_offset, '>Q', (1 << 50) | (1 << 63))
    budget = S.Budget(4 * MiB)
    with pytest.raises(errors.Corrupt) as e:
        read_all(small, budget)
    assert 'past the end' in e.value.reason
    assert budget.used < 4 * 4096


def test_l2_entry_past_the_end_and_unaligned(small):
    h = header_of(small)
    with open(small, 'rb') as f:
        f.seek(h.l1_table_offset)
        l2 = struct.unpack('>Q', f.read(8))[0] & qcow2_header.L1E_OFFSET_MASK
    patch(small, l2, '>Q', (1 << 40) | (1 << 63))
    with pytest.raises(errors.Corrupt) as e:
        read_all(small, S.Budget(4 * MiB))
    assert 'past the end' in e.value.reason
    patch(small, l2, '>Q', 4096 * 3 + 512)
    with pytest.raises(errors.Corrupt) as e:
        read_all(small, S.Budget(4 * MiB))
    assert 'unaligned' in e.value.reason


def test_truncated_images(small):
    data = small.read_bytes()
    h = header_of(small)
    for cut in (0, 3, 71, 100, h.l1_table_offset + 4, len(data) // 2):
        small.write_bytes(data[:cut])
        budget = S.Budget(4 * MiB)
        with pytest.raises(errors.DirectError):
            read_all(small, budget)
        assert budget.used <= cut + 4096


def test_budget_stops_a_big_read(small):
    budget = S.Budget(64 * 1024)
    with pytest.raises(errors.LimitReached):
        read_all(small, budget)
    assert budget.used <= 64 * 1024


def test_corrupt_compressed_cluster(tmp_path):
    raw = make_raw(tmp_path / 'c.raw', 4, size=MiB)
    image = tmp_path / 'c.qcow2'
    run('qemu-img', 'convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o',
        'cluster_size=4096', str(raw), str(image))
    src = open_image(image)
    index = next(i for i in range(256)
                 if src.mapping(i)[0] == qcow2_header.COMPRESSED)
    _, host, _ = src.mapping(index)
    patch(image, host, '>8s', b'\xff' * 8)
    with pytest.raises(errors.Corrupt) as e:
        open_image(image).read_at(index * 4096, 4096)
    assert 'compressed cluster' in e.value.reason


def test_v2_zero_flag_is_corrupt():
    header = qcow2_header.Header(version=2, cluster_bits=16, size=1,
                                 l1_size=1, l1_table_offset=65536,
                                 has_backing=False)
    with pytest.raises(errors.Corrupt):
        qcow2_header.decode_l2_entry(1, header)
    v3 = qcow2_header.Header(version=3, cluster_bits=16, size=1, l1_size=1,
                             l1_table_offset=65536, has_backing=False)
    assert qcow2_header.decode_l2_entry(1, v3) == (qcow2_header.ZERO, 0, 0)
    assert qcow2_header.decode_l2_entry(0, v3) == (
        qcow2_header.UNALLOCATED, 0, 0)
    assert qcow2_header.decode_l2_entry((1 << 63) | 0x30000, v3) == (
        qcow2_header.DATA, 0x30000, 0)
    # Compressed: 16-bit clusters put the sector count at bit 54.
    entry = (1 << 62) | (3 << 54) | 0x12345
    assert qcow2_header.decode_l2_entry(entry, v3) == (
        qcow2_header.COMPRESSED, 0x12345, 4 * 512 - 0x145)


def test_image_that_grew_while_read_is_torn(small):
    # A running guest allocates clusters: a table pointing past the size
    # we saw at open, in a file that has since grown, is a torn read.
    src = open_image(small)
    h = src.header
    old = os.path.getsize(small)
    new = -(-old // 4096) * 4096
    with open(small, 'r+b') as f:
        f.truncate(new + 4096)
    patch(small, h.l1_table_offset, '>Q', new | (1 << 63))
    with pytest.raises(errors.TornRead):
        src.read_at(0, 512)
