"""direct.lvm: PVs made by the real `lvm` on loop devices read back as
lvm reports them; the text format parser; refusals and hostile PVs.

This host's kernel has no device-mapper, so LVs are never activated
(``--driverloaded n``): the expected bytes of an LV are read from the PV
files at the physical extents `lvs --segments` reports, dealt over the
stripes the way dm-stripe does.
"""

import hashlib
import struct

import pytest

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.volumes import lvm
from ceilometer_os_pollster.direct.block import source as S
from tests.unit.direct import hostile
from tests.unit.direct import loops
from tests.unit.direct.volumes.lvm_text import SMALL
from tests.unit.direct.volumes.lvm_text import STRIPED
from tests.unit.direct.volumes.lvm_text import build_pv
from tests.unit.direct.volumes.lvm_text import vg_text

MiB = 1 << 20


@pytest.fixture(scope='module')
def vg(tmp_path_factory):
    with loops.built_vg(tmp_path_factory.mktemp('lvm')) as info:
        yield info


def expected_lv(info, lv_name):
    """The LV's bytes from lvm's own segment report and the PV files."""
    ext = info['extent']
    pe_start = {p['pv_name']: int(p['pe_start']) for p in info['pvs']}
    segs = sorted((s for s in info['segments'] if s['lv_name'] == lv_name),
                  key=lambda s: int(s['seg_start_pe']))
    out = bytearray()
    for s in segs:
        stripes = []
        for rng in s['seg_pe_ranges'].split():
            dev, pes = rng.rsplit(':', 1)
            first, last = (int(x) for x in pes.split('-'))
            with open(info['files'][dev], 'rb') as f:
                f.seek(pe_start[dev] + first * ext)
                stripes.append(f.read((last - first + 1) * ext))
        if len(stripes) == 1:
            out += stripes[0]
            continue
        chunk = int(s['stripe_size'])
        total = sum(len(x) for x in stripes)
        for k in range(total // chunk):
            where = (k // len(stripes)) * chunk
            out += stripes[k % len(stripes)][where:where + chunk]
    return bytes(out)


def open_vgs(info, budget=None):
    budget = budget or S.Budget(256 * MiB)
    sources = [S.FileSource(str(p), budget) for p in info['files'].values()]
    return lvm.volume_groups(sources)


def test_vg_read_as_lvm_reports(vg):
    (group,) = open_vgs(vg)
    assert group.name == vg['name']
    assert group.extent_size == vg['extent'] == MiB
    names = {s['lv_name'] for s in vg['segments']}
    assert {lv.name for lv in group.lvs} == names
    assert {r.uuid for r in group.pvs.values()} == {
        p['pv_uuid'].replace('-', '') for p in vg['pvs']}
    assert all(lv.visible for lv in group.lvs)


@pytest.mark.parametrize('lv_name, segments', [
    ('lin', 2), ('str', 1), ('odd.name+1', 1), ('root-lv', 2)])
def test_lv_bytes_as_lvm_maps_them(vg, lv_name, segments):
    (group,) = open_vgs(vg)
    lv = next(x for x in group.lvs if x.name == lv_name)
    assert len(lv.segments) == segments
    src = lvm.open_lv(group, lv)
    expected = expected_lv(vg, lv_name)
    assert src.size == lv.size == len(expected)
    got = b''.join(src.read_at(off, min(MiB, src.size - off))
                   for off in range(0, src.size, MiB))
    assert hashlib.sha256(got).digest() == hashlib.sha256(expected).digest()
    # Reads across stripe and segment boundaries.
    for off, n in ((4095, 2), (65535, 70000), (src.size - 5, 5)):
        assert src.read_at(off, n) == expected[off:off + n]


def test_pv_read_through_the_loop_device(vg):
    dev = next(iter(vg['files']))
    with S.FileSource(dev, S.Budget()) as src:
        pv = lvm.read_pv(src)
    assert pv.label.uuid in {p['pv_uuid'].replace('-', '')
                             for p in vg['pvs']}
    assert vg['name'] in pv.metadata


def test_not_a_pv():
    assert lvm.read_pv(S.BytesSource(bytes(8192))) is None
    assert lvm.volume_groups([S.BytesSource(bytes(8192))]) == []


def test_missing_pv_makes_lvs_unreadable(vg):
    path = next(iter(vg['files'].values()))
    (group,) = lvm.volume_groups([S.FileSource(str(path), S.Budget())])
    missing = [lv for lv in group.lvs if len(lv.segments[0].stripes) > 1]
    assert missing
    with pytest.raises(errors.Unsupported) as e:
        lvm.open_lv(group, missing[0])
    assert 'missing' in e.value.reason


# -- the text format (texts from tests.unit.direct.volumes.lvm_text) --------

def test_parse_text_values():
    config = lvm.parse_text(vg_text((b'ubuntu-lv', b'striped', STRIPED)))
    assert config['description'] == 'with "quotes" and \\'
    assert config['version'] == 1
    vg = lvm.parse_vg(config)
    assert vg.name == 'ubuntu-vg' and vg.seqno == 7
    assert vg.extent_size == 4 * MiB
    (lv,) = vg.lvs
    assert lv.name == 'ubuntu-lv' and lv.size == 40 * MiB
    assert lv.segments[0].stripes == (('pv0', 0),)
    assert vg.pvs['pv0'].pe_start == 2048 * 512
    assert vg.pvs['pv0'].uuid == 'PVUUID' + '0' * 26


@pytest.mark.parametrize('seg_type, extra, words', [
    (b'thin', b'thin_pool = "pool"\ndevice_id = 1', 'thin'),
    (b'thin-pool', b'metadata = "m"\npool = "p"', 'thin-pool'),
    (b'raid1', b'device_count = 2\nraids = ["a", "b", "c", "d"]', 'raid1'),
    (b'mirror', b'mirror_count = 2\nmirrors = ["a", 0, "b", 0]', 'mirror'),
    (b'cache', b'cache_pool = "c"\norigin = "o"', 'cache'),
    (b'snapshot', b'origin = "lv0"\ncow_store = "snap"\nchunk_size = 8',
     'snapshot'),
])
def test_unsupported_segment_types_say_why(seg_type, extra, words):
    lvs = [(b'lv0', b'striped', STRIPED), (b'other', seg_type, extra)]
    if seg_type == b'snapshot':
        lvs.append((b'snap', b'striped', STRIPED))
    vg = lvm.parse_vg(lvm.parse_text(vg_text(*lvs)))
    by_name = {lv.name: lv for lv in vg.lvs}
    assert not by_name['lv0'].unsupported
    target = by_name['snap' if seg_type == b'snapshot' else 'other']
    with pytest.raises(errors.Unsupported) as e:
        lvm.open_lv(vg, target)
    assert words in e.value.reason and 'not read' in e.value.reason


@pytest.mark.parametrize('text, exc', [
    (b'a { b = 1 ', errors.Corrupt),                   # unclosed
    (b'a = ', errors.Corrupt),
    (b'a = [1, ', errors.Corrupt),
    (b'a = 1 a = 2', errors.Corrupt),                  # duplicate
    (b'a = "x" } ', errors.Corrupt),
    (b'a = \x01', errors.Corrupt),
    (b'a {' * 40 + b'}' * 40, errors.LimitReached),    # deep nesting
    (b'a = [' + b'1,' * (lvm.MAX_TOKENS // 2) + b'1]', errors.LimitReached),
    (b'x' * (lvm.MAX_METADATA + 1), errors.LimitReached),
])
def test_parse_text_refuses(text, exc):
    with pytest.raises(exc):
        lvm.parse_text(text)


@pytest.mark.parametrize('lv_extra, words', [
    (b'stripe_count = 1\nstripes = ["pv0", 5115]', 'uses extents'),
    (b'stripe_count = 1\nstripes = ["pv9", 0]', 'unknown PV'),
    (b'stripe_count = 3\nstripes = ["pv0", 0]', 'malformed'),
    (b'stripe_count = 3\nstripe_size = 128\n'
     b'stripes = ["pv0", 0, "pv0", 9, "pv0", 20]', 'divide'),
    (b'stripe_count = 1\nstripes = [0, "pv0"]', 'malformed'),
])
def test_bad_segments(lv_extra, words):
    with pytest.raises(errors.Corrupt) as e:
        lvm.parse_vg(lvm.parse_text(vg_text((b'lv', b'striped', lv_extra))))
    assert words in e.value.reason


def test_segment_gap_is_corrupt():
    text = vg_text((b'lv', b'striped', STRIPED)).replace(
        b'start_extent = 0', b'start_extent = 3')
    with pytest.raises(errors.Corrupt) as e:
        lvm.parse_vg(lvm.parse_text(text))
    assert 'gap' in e.value.reason


# -- PVs built by lvm_text.build_pv: the circular buffer, hostile headers ---

def read_hostile(data):
    budget = S.Budget(1 * MiB)
    with pytest.raises(errors.DirectError) as e:
        lvm.read_pv(hostile.Charged(data, budget, name='pv'))
    assert budget.used <= 128 * 1024
    return e.value


@pytest.mark.parametrize('sector', [0, 1, 3])
def test_built_pv_reads(sector):
    pv = lvm.read_pv(S.BytesSource(build_pv(SMALL, sector=sector)))
    assert pv.label.sector == sector and pv.label.uuid == 'U' * 32
    assert 'ubuntu-vg' in pv.metadata


def test_text_wrapping_round_the_circular_buffer():
    data = build_pv(SMALL, text_offset=64 * 1024 - 100)
    pv = lvm.read_pv(S.BytesSource(data))
    assert lvm.parse_vg(pv.metadata).name == 'ubuntu-vg'


def test_torn_metadata_text():
    data = build_pv(SMALL)
    data[4096 + 512 + 10] ^= 0x20
    e = read_hostile(data)
    assert isinstance(e, errors.TornRead) and 'checksum' in e.reason


def test_torn_mda_header():
    data = build_pv(SMALL)
    data[4096 + 40] ^= 1
    assert isinstance(read_hostile(data), errors.TornRead)


def test_label_checksum():
    data = build_pv(SMALL)
    data[512 + 40] ^= 1
    e = read_hostile(data)
    assert isinstance(e, errors.Corrupt) and 'label' in e.reason


def fix_mda(data):
    hdr = bytearray(data[4096:4096 + 512])
    struct.pack_into('<I', hdr, 0, lvm.lvm_crc(bytes(hdr[4:])))
    data[4096:4096 + 512] = hdr


@pytest.mark.parametrize('offset, size, exc', [
    (1 << 40, 100, errors.Corrupt),                    # past the area
    (100, 100, errors.Corrupt),                        # inside the header
    (512, 1 << 40, errors.LimitReached),               # absurd size
    (512, 64 * 1024, errors.Corrupt),                  # larger than area
])
def test_hostile_raw_locn(offset, size, exc):
    data = build_pv(SMALL)
    struct.pack_into('<QQ', data, 4096 + 40, offset, size)
    fix_mda(data)
    assert isinstance(read_hostile(data), exc)


def test_hostile_pv_header_areas():
    data = build_pv(SMALL)
    # A metadata area past the end of the PV.
    struct.pack_into('<QQ', data, 512 + 32 + 40 + 32, 1 << 50, 1 << 20)
    struct.pack_into('<I', data, 512 + 16, lvm.lvm_crc(bytes(
        data[512 + 20:1024])))
    e = read_hostile(data)
    assert 'not on the PV' in e.reason
