"""direct.partitions: MBR and GPT made by sfdisk read as `sfdisk --json`
reads them; hostile tables end with a DirectError within the budget."""

import json
import re
import struct
import subprocess
import zlib

import pytest

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.volumes import partitions as P
from ceilometer_os_pollster.direct.block import source as S
from tests.unit.direct.loops import loop_device

MiB = 1 << 20


def sfdisk(path, script, *args):
    subprocess.run(('sfdisk', '-q', *args, str(path)), input=script.encode(),
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def sfdisk_json(path):
    out = subprocess.run(('sfdisk', '--json', str(path)), check=True,
                         capture_output=True).stdout
    return json.loads(out)['partitiontable']


def disk(tmp_path, script, size=64 * MiB, *args):
    path = tmp_path / 'disk.img'
    path.write_bytes(b'')
    with open(path, 'r+b') as f:
        f.truncate(size)
    sfdisk(path, script, *args)
    return path


def read(path, budget=None):
    with S.FileSource(str(path), budget or S.Budget()) as src:
        return P.read_table(src)


def assert_same_as_sfdisk(path):
    table = read(path)
    ref = sfdisk_json(path)
    assert table.kind == ref['label']
    assert table.sector_size == ref['sectorsize']
    assert table.disk_id.lower() == ref['id'].lower()
    ss = ref['sectorsize']
    expected = []
    for p in ref.get('partitions', []):
        number = int(re.search(r'(\d+)$', p['node']).group(1))
        if table.kind == 'dos':
            ptype = '0x%02x' % int(p['type'], 16)
        else:
            ptype = p['type'].lower()
        expected.append((number, p['start'] * ss, p['size'] * ss, ptype,
                         p.get('name', ''), p.get('uuid', '').lower(),
                         bool(p.get('bootable'))))
    got = [(q.number, q.start, q.size, q.type, q.name, q.guid, q.bootable)
           for q in table.partitions]
    assert sorted(got) == sorted(expected)
    return table


@pytest.mark.parametrize('script', [
    'label: dos\n,8M,83,*\n,,8e\n',
    'label: dos\n,8M,83,*\n,4M,82\n,40M,E\n,4M,83\n,2M,83\n,3M,8e\n,,7\n',
    'label: dos\n,,E\n,1M\n,1M\n,1M\n,1M\n,1M\n,1M\n,1M\n,1M\n',
    'label: dos\n',
])
def test_mbr_like_sfdisk(tmp_path, script):
    table = assert_same_as_sfdisk(disk(tmp_path, script))
    for p in table.partitions:
        assert p.container == (p.type == '0x05')


def test_mbr_logical_numbers(tmp_path):
    path = disk(tmp_path, 'label: dos\n,8M,83,*\n,4M,82\n,40M,E\n,4M,83\n'
                ',2M,83\n,3M,8e\n,,7\n')
    table = read(path)
    by_number = {p.number: p for p in table.partitions}
    assert sorted(by_number) == [1, 2, 3, 4, 5, 6, 7]
    assert by_number[3].container and by_number[6].type == '0x8e'
    assert by_number[1].bootable and not by_number[2].bootable


@pytest.mark.parametrize('script', [
    'label: gpt\nsize=8M, type=U, name=esp\n'
    'size=16M, type=L, name="root fs"\ntype=E6D6D379-F507-44C2-A23C-'
    '238F2A3DF928, name="\u00e9t\u00e9"\n',
    'label: gpt\n',
    'label: gpt\nsize=1M, type=L\n',
])
def test_gpt_like_sfdisk(tmp_path, script):
    assert_same_as_sfdisk(disk(tmp_path, script))


def test_gpt_unused_slots_keep_numbers(tmp_path):
    path = disk(tmp_path, 'label: gpt\n1: size=1M, type=L\n'
                '7: size=2M, type=L, name=seven\n')
    table = assert_same_as_sfdisk(path)
    assert [p.number for p in table.partitions] == [1, 7]


def test_gpt_on_4k_sectors(tmp_path):
    # A 4Kn disk: the protective MBR in sector 0, the header at 4096.
    path = tmp_path / 'disk4k.img'
    with open(path, 'wb') as f:
        f.truncate(64 * MiB)
    with loop_device(path, '-b', '4096') as dev:
        sfdisk(dev, 'label: gpt\nsize=8M, type=L, name=data\n')
        ref = sfdisk_json(dev)
    table = read(path)
    assert table.kind == 'gpt' and table.sector_size == 4096
    (p,) = table.partitions
    (q,) = ref['partitions']
    assert (p.name, p.start, p.size, p.guid) == (
        'data', q['start'] * 4096, q['size'] * 4096, q['uuid'].lower())


def test_partition_sources(tmp_path):
    path = disk(tmp_path, 'label: dos\n,8M,83,*\n,4M,82\n,40M,E\n,4M,83\n'
                ',2M,83\n,3M,8e\n,,7\n')
    data = bytearray(path.read_bytes())
    table = read(path)
    part5 = next(p for p in table.partitions if p.number == 5)
    data[part5.start + 512:part5.start + 520] = b'LOGICAL!'
    path.write_bytes(bytes(data))
    with S.FileSource(str(path), S.Budget()) as src:
        pairs = P.partition_sources(src, read(path))
        assert [p.number for p, _ in pairs] == [1, 2, 4, 5, 6, 7]
        got5, win5 = pairs[3]
        assert got5 == part5
        assert win5.size == part5.size and win5.name.endswith('partition 5')
        assert win5.read_at(512, 8) == b'LOGICAL!'


def test_no_table(tmp_path):
    path = tmp_path / 'fs.img'
    path.write_bytes(bytes(MiB))
    assert read(path) is None
    ntfs = bytearray(MiB)
    ntfs[3:11] = b'NTFS    '
    ntfs[510:512] = b'\x55\xaa'
    path.write_bytes(bytes(ntfs))
    assert read(path) is None
    path.write_bytes(b'\x55')
    assert read(path) is None


# -- hostile tables ------------------------------------------------------

def mbr_entry(status, ptype, lba, sectors):
    return P.MBR_ENTRY.pack(status, b'\0' * 3, ptype, b'\0' * 3, lba,
                            sectors)


def sector(*entries):
    data = bytearray(512)
    for i, e in enumerate(entries):
        data[446 + 16 * i:462 + 16 * i] = e
    data[510:512] = b'\x55\xaa'
    return bytes(data)


def image(sectors_at, size=8 * MiB):
    data = bytearray(size)
    for lba, sec in sectors_at.items():
        data[lba * 512:lba * 512 + 512] = sec
    return S.BytesSource(data)


class CountingSource(S.Source):
    """Counts bytes read, as the Budget of a FileSource would."""

    def __init__(self, inner, budget):
        self.inner, self.budget = inner, budget
        self.size, self.name = inner.size, 'disk'

    def _read(self, offset, length):
        self.budget.charge(length)
        return self.inner.read_at(offset, length)


def read_hostile(src):
    budget = S.Budget(1 * MiB)
    with pytest.raises(errors.DirectError) as e:
        P.read_table(CountingSource(src, budget))
    assert budget.used <= 200 * 512
    return e.value


def test_looping_ebr_chain():
    # EBR at 100 links to EBR at 200, which links back to 100.
    mbr = sector(mbr_entry(0, 0x05, 100, 1000))
    ebr1 = sector(mbr_entry(0, 0x83, 10, 10), mbr_entry(0, 0x05, 100, 50))
    ebr2 = sector(mbr_entry(0, 0x83, 10, 10), mbr_entry(0, 0x05, 0, 50))
    e = read_hostile(image({0: mbr, 100: ebr1, 200: ebr2}))
    assert isinstance(e, errors.Corrupt) and 'loops' in e.reason


def test_self_linked_ebr():
    mbr = sector(mbr_entry(0, 0x05, 100, 1000))
    ebr = sector(mbr_entry(0, 0x83, 10, 10), mbr_entry(0, 0x05, 0, 50))
    e = read_hostile(image({0: mbr, 100: ebr}))
    assert 'loops' in e.reason


def test_long_ebr_chain_is_bounded():
    sectors = {0: sector(mbr_entry(0, 0x05, 1, 10000))}
    for i in range(1, 400):
        sectors[i] = sector(mbr_entry(0, 0x83, 0, 1),
                            mbr_entry(0, 0x05, i, 1))
    e = read_hostile(image(sectors))
    assert isinstance(e, errors.LimitReached)


def test_ebr_outside_the_extended_partition():
    mbr = sector(mbr_entry(0, 0x05, 100, 10))
    ebr = sector(mbr_entry(0, 0x83, 1, 5), mbr_entry(0, 0x05, 5000, 5))
    e = read_hostile(image({0: mbr, 100: ebr}))
    assert 'outside the extended' in e.reason


@pytest.mark.parametrize('entry', [
    mbr_entry(0, 0x83, 2048, 0xffffffff),          # absurd size
    mbr_entry(0x80, 0x07, 0xfffffff0, 100),         # past the end
])
def test_mbr_partition_past_the_end(entry):
    e = read_hostile(image({0: sector(entry)}))
    assert 'not on the disk' in e.reason


def test_logical_past_the_end():
    mbr = sector(mbr_entry(0, 0x05, 100, 1000))
    ebr = sector(mbr_entry(0, 0x83, 10, 1 << 30))
    e = read_hostile(image({0: mbr, 100: ebr}))
    assert 'partition 5' in e.reason


def gpt_image(tmp_path):
    path = disk(tmp_path, 'label: gpt\nsize=1M, type=L, name=a\n'
                'size=1M, type=L, name=b\n', 8 * MiB)
    return bytearray(path.read_bytes())


def fix_header_crc(data):
    size = struct.unpack_from('<I', data, 512 + 12)[0]
    hdr = bytearray(data[512:512 + size])
    hdr[16:20] = bytes(4)
    struct.pack_into('<I', data, 512 + 16, zlib.crc32(hdr))


def fix_entries_crc(data):
    lba, n, size = struct.unpack_from('<QII', data, 512 + 72)
    crc = zlib.crc32(data[lba * 512:lba * 512 + n * size])
    struct.pack_into('<I', data, 512 + 88, crc)
    fix_header_crc(data)


@pytest.mark.parametrize('patch, words', [
    (lambda d: d.__setitem__(600, d[600] ^ 1), 'header checksum'),
    (lambda d: d.__setitem__(1024 + 60, d[1024 + 60] ^ 1),
     'entries checksum'),
    (lambda d: (struct.pack_into('<I', d, 512 + 80, 1 << 30),
                fix_header_crc(d)), 'more than'),               # entries
    (lambda d: (struct.pack_into('<I', d, 512 + 84, 7), fix_header_crc(d)),
     'entry size'),
    (lambda d: (struct.pack_into('<Q', d, 512 + 72, 1 << 40),
                fix_header_crc(d)), 'not on the disk'),
    (lambda d: (struct.pack_into('<I', d, 512 + 12, 1 << 20),
                fix_header_crc(d)), 'header size'),
    (lambda d: (struct.pack_into('<Q', d, 1024 + 40, 1 << 40),
                fix_entries_crc(d)), 'outside the usable'),    # ending_lba
    (lambda d: d.__setitem__(slice(512, 520), b'EFI PARX'), 'no GPT'),
])
def test_hostile_gpt(tmp_path, patch, words):
    data = gpt_image(tmp_path)
    patch(data)
    e = read_hostile(S.BytesSource(data))
    assert words in e.reason
    assert isinstance(e, errors.TornRead) == ('checksum' in words)


def test_gpt_crc_helpers_keep_a_valid_table(tmp_path):
    # The hostile cases above change one thing each: this is the control.
    data = gpt_image(tmp_path)
    fix_entries_crc(data)
    table = P.read_table(S.BytesSource(data))
    assert [p.name for p in table.partitions] == ['a', 'b']
