"""direct.source: the bounded read_at interface and its windows."""

import os

import pytest

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.block import source as S

DATA = bytes(range(256)) * 16     # 4096 distinct-ish bytes


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / 'disk.img'
    path.write_bytes(DATA)
    budget = S.Budget(1 << 20)
    with S.FileSource(str(path), budget) as src:
        yield src


def test_budget_charges_and_refuses():
    budget = S.Budget(100)
    budget.charge(60)
    budget.charge(40)
    assert budget.used == 100
    with pytest.raises(errors.LimitReached) as e:
        budget.charge(1)
    assert e.value.reason == 'read more than 100 bytes of the disks'
    assert budget.used == 100


def test_budget_reason_in_mib():
    budget = S.Budget()
    assert budget.max_bytes == 64 << 20
    with pytest.raises(errors.LimitReached) as e:
        budget.charge((64 << 20) + 1)
    assert e.value.reason == 'read more than 64 MiB of the disks'


def test_errors_carry_reason():
    for cls in (errors.Unsupported, errors.LimitReached, errors.Corrupt,
                errors.TornRead):
        e = cls('why')
        assert isinstance(e, errors.DirectError)
        assert e.reason == 'why' and str(e) == 'why'


def test_file_source_reads_exactly_and_charges(disk):
    assert disk.size == len(DATA)
    assert disk.read_at(0, 10) == DATA[:10]
    assert disk.read_at(4090, 6) == DATA[4090:]
    assert disk.read_at(100, 0) == b''
    assert disk.budget.used == 16


@pytest.mark.parametrize('offset, length, exc', [
    (4090, 7, errors.Corrupt),          # past the end
    (4097, 0, errors.Corrupt),
    (-1, 1, errors.Corrupt),
    (0, -1, errors.Corrupt),
    (0, S.MAX_READ + 1, errors.LimitReached),
])
def test_file_source_refuses_bad_ranges(disk, offset, length, exc):
    with pytest.raises(exc):
        disk.read_at(offset, length)
    assert disk.budget.used == 0


def test_file_source_budget_stops_reads(tmp_path):
    path = tmp_path / 'd'
    path.write_bytes(DATA)
    src = S.FileSource(str(path), S.Budget(1000))
    src.read_at(0, 1000)
    with pytest.raises(errors.LimitReached):
        src.read_at(0, 1)
    src.close()


def test_file_source_is_read_only(tmp_path):
    path = tmp_path / 'd'
    path.write_bytes(DATA)
    os.chmod(path, 0o400)
    with S.FileSource(str(path), S.Budget()) as src:
        assert src.read_at(1, 2) == DATA[1:3]
    assert path.read_bytes() == DATA


def test_file_source_missing_file_is_corrupt(tmp_path):
    with pytest.raises(errors.Corrupt):
        S.FileSource(str(tmp_path / 'absent'), S.Budget())


def test_file_source_shrunk_under_us_is_corrupt(tmp_path):
    path = tmp_path / 'd'
    path.write_bytes(DATA)
    with S.FileSource(str(path), S.Budget()) as src:
        os.truncate(path, 100)
        with pytest.raises(errors.Corrupt):
            src.read_at(50, 100)


def test_window_reads_inside_parent(disk):
    win = S.Window(disk, 1000, 500)
    assert win.size == 500
    assert win.read_at(0, 500) == DATA[1000:1500]
    inner = S.Window(win, 100, 50)
    assert inner.parent is disk and inner.offset == 1100
    assert inner.read_at(10, 5) == DATA[1110:1115]
    with pytest.raises(errors.Corrupt):
        win.read_at(499, 2)
    with pytest.raises(errors.Corrupt):
        inner.read_at(49, 2)


@pytest.mark.parametrize('offset, size', [
    (4000, 97), (-1, 10), (0, 4097), (4097, 0), (0, -1)])
def test_window_outside_parent_is_corrupt(disk, offset, size):
    with pytest.raises(errors.Corrupt):
        S.Window(disk, offset, size)


def test_concat_spans_parts():
    parts = [S.BytesSource(b'abc'), S.BytesSource(b''),
             S.BytesSource(b'defgh'), S.BytesSource(b'ij')]
    cat = S.Concat(parts)
    assert cat.size == 10
    assert cat.read_at(0, 10) == b'abcdefghij'
    assert cat.read_at(2, 5) == b'cdefg'
    assert cat.read_at(8, 2) == b'ij'
    with pytest.raises(errors.Corrupt):
        cat.read_at(9, 2)


def test_striped_deals_chunks_round_robin():
    # Three stripes of 2 chunks of 4 bytes: chunk k is on stripe k % 3.
    whole = bytes(range(24))
    chunks = [whole[i:i + 4] for i in range(0, 24, 4)]
    stripes = [S.BytesSource(chunks[s] + chunks[s + 3]) for s in range(3)]
    striped = S.Striped(stripes, 4)
    assert striped.size == 24
    assert striped.read_at(0, 24) == whole
    for off in range(24):
        for n in range(24 - off + 1):
            assert striped.read_at(off, n) == whole[off:off + n]


def test_striped_refuses_uneven_stripes():
    with pytest.raises(errors.Corrupt):
        S.Striped([S.BytesSource(b'1234'), S.BytesSource(b'12')], 2)
    with pytest.raises(errors.Unsupported):
        S.Striped([S.BytesSource(b'123'), S.BytesSource(b'123')], 2)
    with pytest.raises(errors.Corrupt):
        S.Striped([], 2)
