"""Property tests: bytes flipped in real images (a qcow2 made by qemu-img,
GPT and MBR tables made by sfdisk, an LVM PV) end with data or a
DirectError, within the byte budget, and nothing else."""

import struct
import subprocess
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.volumes import lvm
from ceilometer_os_pollster.direct.volumes import partitions
from ceilometer_os_pollster.direct.block import qcow2
from ceilometer_os_pollster.direct.block import source as S
from tests.unit.direct import hostile
from tests.unit.direct.volumes.lvm_text import SMALL
from tests.unit.direct.volumes.lvm_text import build_pv

MiB = 1 << 20
BUDGET = 4 * MiB

FUZZ = hostile.fuzz(max_examples=80)


def flips(limit):
    return st.lists(st.tuples(st.integers(0, limit - 1),
                              st.integers(1, 255)), min_size=1, max_size=8)


def flipped(data, changes):
    data = bytearray(data)
    for pos, xor in changes:
        if pos < len(data):
            data[pos] ^= xor
    return data


def run(*args, **kw):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, **kw)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp('fuzz')
    raw = d / 'disk.raw'
    raw.write_bytes((b'some guest data ' * 4096 + bytes(65536)) * 8)
    out = {}
    for name, extra in (('plain', []), ('compressed', ['-c'])):
        path = d / (name + '.qcow2')
        run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', *extra,
            '-o', 'cluster_size=4096', str(raw), str(path))
        out[name] = path.read_bytes()
    for name, script in (
            ('gpt', 'label: gpt\nsize=1M, type=L, name=a\n'
             'size=2M, type=U, name=b\n'),
            ('dos', 'label: dos\n,1M,83,*\n,4M,E\n,1M,83\n,1M,8e\n')):
        path = d / (name + '.img')
        with open(path, 'wb') as f:
            f.truncate(8 * MiB)
        run('sfdisk', '-q', str(path), input=script.encode())
        out[name] = path.read_bytes()
    return out


def ends_within_bounds(action):
    budget = S.Budget(BUDGET)
    try:
        action(budget)
    except errors.DirectError as e:
        assert isinstance(e.reason, str) and e.reason
    assert budget.used <= BUDGET


def read_qcow2(data, budget):
    disk = qcow2.open_qcow2(hostile.Charged(data, budget))
    for off in (0, 12345, disk.size // 2, max(0, disk.size - 4096)):
        n = min(256 * 1024, disk.size - off)
        if off >= 0 and n > 0:
            assert len(disk.read_at(off, n)) == n


@pytest.mark.parametrize('kind', ['plain', 'compressed'])
def test_qcow2_flips(images, kind):
    data = images[kind]

    @FUZZ
    @given(flips(6 * 4096))             # header, tables, first clusters
    def check(changes):
        ends_within_bounds(lambda b: read_qcow2(flipped(data, changes), b))

    @FUZZ
    @given(flips(len(data)))
    def check_anywhere(changes):
        ends_within_bounds(lambda b: read_qcow2(flipped(data, changes), b))

    check()
    check_anywhere()


def fix_gpt_crcs(data):
    hsize = struct.unpack_from('<I', data, 512 + 12)[0]
    lba, n, esize = struct.unpack_from('<QII', data, 512 + 72)
    start, length = lba * 512, n * esize
    if 0 < length <= MiB and start + length <= len(data):
        struct.pack_into('<I', data, 512 + 88,
                         zlib.crc32(data[start:start + length]))
    if 92 <= hsize <= 512:
        hdr = bytearray(data[512:512 + hsize])
        hdr[16:20] = bytes(4)
        struct.pack_into('<I', data, 512 + 16, zlib.crc32(hdr))
    return data


def read_partitions(data, budget):
    disk = hostile.Charged(data, budget)
    table = partitions.read_table(disk)
    for p in (table.partitions if table else ()):
        win = S.Window(disk, p.start, p.size)
        win.read_at(0, min(win.size, 512))


@pytest.mark.parametrize('kind', ['gpt', 'dos'])
def test_partition_table_flips(images, kind):
    data = images[kind]
    # The tables live in the first 34 sectors, EBRs a little further.
    limit = 34 * 512 if kind == 'gpt' else 6 * MiB

    @FUZZ
    @given(flips(limit), st.booleans())
    def check(changes, fix):
        mutated = flipped(data, changes)
        if kind == 'gpt' and fix:
            fix_gpt_crcs(mutated)
        ends_within_bounds(lambda b: read_partitions(mutated, b))

    check()


def test_lvm_pv_flips():
    # Extents of 4 KiB so that the LV lies on this 2 MiB PV.
    text = SMALL.replace(b'extent_size = 8192', b'extent_size = 8').replace(
        b'pe_count = 5119', b'pe_count = 200')
    data = build_pv(text, size=2 * MiB)

    def fix_crcs(d):
        struct.pack_into('<I', d, 512 + 16, lvm.lvm_crc(bytes(d[532:1024])))
        struct.pack_into('<I', d, 4096, lvm.lvm_crc(bytes(d[4100:4608])))
        return d

    def read(d, budget):
        pv = lvm.read_pv(hostile.Charged(d, budget))
        if pv is not None and pv.metadata is not None:
            vg = lvm.parse_vg(pv.metadata)
            sources = {n: hostile.Charged(d, budget) for n in vg.pvs}
            vg = lvm.VolumeGroup(vg.name, vg.id, vg.seqno, vg.extent_size,
                                 vg.pvs, vg.lvs, sources)
            for lv in vg.lvs:
                src = lvm.open_lv(vg, lv)
                src.read_at(0, min(src.size, 4096))

    @FUZZ
    @given(flips(8192), st.booleans())
    def check(changes, fix):
        mutated = flipped(data, changes)
        if fix:
            fix_crcs(mutated)
        ends_within_bounds(lambda b: read(mutated, b))

    check()
