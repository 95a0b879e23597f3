"""direct.regf: registry hives read back as hivex reads them.

Hives are made by the project's own builder (an empty hive from
tests/guests/hive.py merged by hivexregedit, as the catalog's images
are), some reshaped afterwards into the structures hivex does not write
(ri and li subkey lists, big data "db" values); every answer is
compared with hivex's own (Perl's Win::Hivex, the library
hivexregedit and hivexget are built on).  Then hostile hives: loops,
absurd sizes and counts, truncation, a dirty base block; and a fuzz
test flipping bytes in a real hive.
"""

import functools
import pathlib
import shutil
import struct
import subprocess
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.hives import cells
from ceilometer_os_pollster.direct.hives import regf
from tests.guests import builder
from tests.guests import hive
from tests.guests import layout
from tests.unit.direct import hostile

pytestmark = pytest.mark.skipif(
    shutil.which('hivexregedit') is None, reason='hivexregedit missing')

NK_SUBKEY_COUNT, NK_SUBKEY_LIST = 4 + 20, 4 + 28
NK_VALUE_COUNT, NK_VALUE_LIST = 4 + 36, 4 + 40
VK_LENGTH, VK_DATA = 4 + 4, 4 + 8

_WORK = pathlib.Path(tempfile.mkdtemp(prefix='test-regf-'))

# Win::Hivex: "type hex" of each (key path, value name), or "-".
_HIVEX_GET = r'''
use Win::Hivex;
my $h = Win::Hivex->open(shift @ARGV);
while (@ARGV) {
  my ($path, $name) = (shift @ARGV, shift @ARGV);
  my $n = $h->root;
  for my $p (grep { length } split /\\/, $path) {
    $n = $n ? $h->node_get_child($n, $p) : undef;
  }
  # node_get_value croaks when there is no such value.
  my $v = $n ? eval { $h->node_get_value($n, $name) } : undef;
  if ($v) { my ($t, $d) = $h->value_value($v);
            print "$t ", unpack("H*", $d), "\n"; }
  else { print "-\n"; }
}
'''


def hivex_get(data, queries):
    """hivex's (type, bytes) for each (key path, value name), or None."""
    path = _WORK / 'query.hive'
    path.write_bytes(data)
    args = [a for query in queries for a in query]
    out = subprocess.run(['perl', '-e', _HIVEX_GET, str(path)] + args,
                         check=True, capture_output=True).stdout
    answers = []
    for line in out.decode().splitlines():
        if line == '-':
            answers.append(None)
        else:
            vtype, _, hexdata = line.partition(' ')
            answers.append((int(vtype), bytes.fromhex(hexdata)))
    return answers


def ours(data, queries):
    h = regf.open_hive(data)
    answers = []
    for path, name in queries:
        key = h.key(path)
        answers.append(None if key is None else h.value(key, name))
    return answers


@functools.lru_cache(maxsize=None)
def build(keys):
    """A hive made as builder._make_hive makes the catalog's."""
    spec = layout.Hive('ROOT', 'TEST', keys)
    work = pathlib.Path(tempfile.mkdtemp(dir=_WORK))
    builder._make_hive(spec, work / 'hive', work)
    return (work / 'hive').read_bytes()


def spec(mapping):
    return tuple((p, tuple(sorted(v.items())))
                 for p, v in sorted(mapping.items()))


# 20 480 bytes: its last big data segment (4136 bytes) leaves 4 bytes of
# cell padding, which hivex needs (see test_big_data_short_padding).
BIG = bytes(range(256)) * 80
VALUES = {
    'sz': hive.sz('Windows Server 2022 Datacenter'),
    'expand': (hive.REG_EXPAND_SZ, '%SystemRoot%\0'.encode('utf-16-le')),
    'multi': hive.multi_sz('one', 'two', 'three'),
    'dword': hive.dword(0xdeadbeef),
    'dword_be': (5, b'\x00\x00\x00\x0a'),
    'qword': hive.qword(0x0123456789abcdef),
    'binary': hive.binary(b'\x00\x01\x02\xff'),
    'empty': hive.binary(b''),
    'big': hive.binary(BIG),
    'cjk': hive.sz('\u4e2d\u6587'),
    '': hive.sz('default value'),
}
SMALL_SPEC = spec({'Software\\Vendor\\Product': VALUES,
                   'Software\\Other': {'x': hive.dword(1)}})
MANY = 2000
MANY_SPEC = spec(dict({'Many\\Key%04d' % i: {'n': hive.dword(i)}
                       for i in range(MANY)},
                      **{'Software\\Vendor\\Product': VALUES}))


def small():
    return build(SMALL_SPEC)


def many():
    return build(MANY_SPEC)


# --------------------------------------------------------- hive surgery

def reseal(data):
    """The base block checksum recomputed after an edit."""
    data = bytearray(data)
    struct.pack_into('<I', data, 0x1fc, hive.checksum(bytes(data)))
    return bytes(data)


def append_cells(data, payloads):
    """``data`` with one more hive bin holding a used cell per payload,
    and the cell offsets."""
    data = bytearray(data)
    hbins = struct.unpack_from('<I', data, 0x28)[0]
    assert len(data) == 0x1000 + hbins
    cells, offsets = b'', []
    pos = hive.HBIN_HEADER
    for payload in payloads:
        size = (4 + len(payload) + 7) & ~7
        offsets.append(hbins + pos)
        cells += struct.pack('<i', -size) + payload.ljust(size - 4, b'\0')
        pos += size
    total = (pos + 8 + 0xfff) & ~0xfff
    free = total - pos
    hbin = (struct.pack('<4sIIqqI', b'hbin', hbins, total, 0, 0, 0) + cells
            + struct.pack('<i', free).ljust(free, b'\0'))
    data += hbin
    struct.pack_into('<I', data, 0x28, hbins + total)
    return reseal(data), offsets


def patch(data, cell, field, fmt, value):
    data = bytearray(data)
    struct.pack_into(fmt, data, 0x1000 + cell + field, value)
    return bytes(data)


def lh_entries(data, path):
    """(nk offset, hash) pairs of the lf/lh list of the key at path."""
    h = regf.open_hive(data)
    key = h.key(path)
    _, body = h._cell(key.subkey_list, 4 + 8 * key.subkey_count, 'list')
    assert body[:2] in (b'lf', b'lh')
    return key, [struct.unpack_from('<II', body, 4 + 8 * i)
                 for i in range(key.subkey_count)]


def as_ri(data, path, parts=3, leaf=b'lh'):
    """The subkey list of ``path`` split into ``parts`` leaves under
    one ri record (what Windows writes for large keys)."""
    key, entries = lh_entries(data, path)
    size = -(-len(entries) // parts)
    leaves = []
    for i in range(0, len(entries), size):
        chunk = entries[i:i + size]
        if leaf == b'li':
            body = b''.join(struct.pack('<I', o) for o, _ in chunk)
        else:
            body = b''.join(struct.pack('<II', o, h) for o, h in chunk)
        leaves.append(leaf + struct.pack('<H', len(chunk)) + body)
    data, offsets = append_cells(data, leaves)
    ri = b'ri' + struct.pack('<H', len(offsets)) + b''.join(
        struct.pack('<I', o) for o in offsets)
    data, (ri_offset,) = append_cells(data, [ri])
    return patch(data, key.offset, NK_SUBKEY_LIST, '<I', ri_offset), key


def as_big_data(data, path, name):
    """The value moved into a "db" record of 16344-byte segments."""
    h = regf.open_hive(data)
    value = h.find_value(h.key(path), name)
    content = h.data(value)
    segments = [content[i:i + regf.DB_SEGMENT]
                for i in range(0, len(content), regf.DB_SEGMENT)]
    data, offsets = append_cells(data, segments)
    data, (seglist,) = append_cells(
        data, [b''.join(struct.pack('<I', o) for o in offsets)])
    data, (db,) = append_cells(
        data, [b'db' + struct.pack('<HI', len(offsets), seglist)])
    return patch(data, value.offset, VK_DATA, '<I', db)


# ------------------------------------------------------ same as hivex

QUERIES = [('Software\\Vendor\\Product', name) for name in VALUES] + [
    ('software\\VENDOR\\product', 'SZ'),          # case folded
    ('Software\\Vendor\\Product', 'missing'),
    ('Software\\Nothing', 'x'),
    ('Software\\Other', 'X')]


def test_values_as_hivex_reads_them():
    data = small()
    expected = hivex_get(data, QUERIES)
    assert ours(data, QUERIES) == expected
    # The builder's values came back byte for byte.
    assert expected[:len(VALUES)] == list(VALUES.values())
    assert expected[len(VALUES):] == [VALUES['sz'], None, None,
                                      hive.dword(1)]


def test_many_subkeys_lh_as_hivex():
    data = many()
    queries = [('Many\\Key%04d' % i, 'n') for i in (0, 1, 999, 1999)] + [
        ('many\\key1500', 'N'), ('Many\\Key2000', 'n')]
    assert ours(data, queries) == hivex_get(data, queries)
    h = regf.open_hive(data)
    names = [k.name for k in h.subkeys(h.key('Many'))]
    assert names == ['Key%04d' % i for i in range(MANY)]


@pytest.mark.parametrize('leaf', [b'lh', b'lf', b'li'])
def test_ri_lists_as_hivex(leaf):
    data, _ = as_ri(many(), 'Many', parts=3, leaf=leaf)
    queries = [('Many\\Key%04d' % i, 'n') for i in (0, 666, 667, 1334,
                                                    1999)]
    expected = hivex_get(data, queries)
    assert None not in expected
    assert ours(data, queries) == expected
    h = regf.open_hive(data)
    assert len(h.subkeys(h.key('Many'))) == MANY


def test_big_data_as_hivex():
    data = as_big_data(small(), 'Software\\Vendor\\Product', 'big')
    query = [('Software\\Vendor\\Product', 'big')]
    expected = hivex_get(data, query)
    assert expected == [(hive.REG_BINARY, BIG)]
    assert ours(data, query) == expected
    h = regf.open_hive(data)
    assert h.bytes_read < 64 * 1024


def test_big_data_short_padding_as_hivex():
    # hivex copies all but the last 4 bytes of each segment's cell: a
    # last segment of 4139 bytes (cell padding 1) loses 3 bytes.  The
    # appliance bills on what hivex reads, so this reader does the same.
    data = build(spec({'K': {'big': hive.binary(BIG + b'end')}}))
    data = as_big_data(data, 'K', 'big')
    expected = hivex_get(data, [('K', 'big')])
    assert expected == [(hive.REG_BINARY, BIG)]
    assert ours(data, [('K', 'big')]) == expected


def test_reading_is_lazy_and_counted():
    data = many()
    h = regf.open_hive(data)
    assert h.value(h.key('Software\\Vendor\\Product'), 'dword') == (
        hive.REG_DWORD, struct.pack('<I', 0xdeadbeef))
    assert h.bytes_read < len(data) // 4
    assert not h.dirty


# ------------------------------------------------------------- hostile

def test_ri_that_lists_itself_is_a_loop():
    data, key = as_ri(many(), 'Many', parts=2)
    h = regf.open_hive(data)
    ri = h.key('Many').subkey_list
    looped = patch(data, ri, 4 + 4, '<I', ri)       # first entry: itself
    with pytest.raises(errors.Corrupt, match='loop'):
        regf.open_hive(looped).child(regf.open_hive(looped).key('Many'),
                                     'Key0001')


def test_ri_nested_too_deep():
    data = many()
    key = regf.open_hive(data).key('Many')
    offset = key.subkey_list
    for _ in range(regf.MAX_RI_DEPTH + 1):
        data, (offset,) = append_cells(
            data, [b'ri' + struct.pack('<HI', 1, offset)])
    data = patch(data, key.offset, NK_SUBKEY_LIST, '<I', offset)
    h = regf.open_hive(data)
    with pytest.raises(errors.Corrupt, match='nested'):
        h.subkeys(h.key('Many'))


def test_key_that_is_its_own_subkey_is_bounded():
    data = small()
    h = regf.open_hive(data)
    other = h.key('Software\\Other')
    data, (lf,) = append_cells(
        data, [b'lf' + struct.pack('<HII', 1, other.offset, 0)])
    data = patch(data, other.offset, NK_SUBKEY_LIST, '<I', lf)
    data = patch(data, other.offset, NK_SUBKEY_COUNT, '<I', 1)
    h = regf.open_hive(data)
    deep = h.key('Software' + '\\Other' * 500)
    assert deep.offset == other.offset
    assert h.keys_read < 10


def test_list_with_more_entries_than_the_key_says():
    data = small()
    h = regf.open_hive(data)
    product = h.key('Software\\Vendor')
    data = patch(data, product.offset, NK_SUBKEY_COUNT, '<I', 0)
    h = regf.open_hive(patch(data, product.offset, NK_SUBKEY_COUNT, '<I',
                             3))
    with pytest.raises(errors.Corrupt):
        h.subkeys(h.key('Software\\Vendor'))


def test_a_million_keys_is_a_limit():
    data = small()
    h = regf.open_hive(data)
    other = h.key('Software\\Other')
    data = patch(data, other.offset, NK_SUBKEY_COUNT, '<I', 1000000)
    h = regf.open_hive(data)
    with pytest.raises(errors.LimitReached, match='subkeys'):
        h.child(h.key('Software\\Other'), 'x')


def nk(parent, name, flags=0x20):
    return struct.pack('<2sHqIIIIIIIIIIHHIIIIHH', b'nk', flags, 0, 0, parent,
                       0, 0, 0xffffffff, 0xffffffff, 0, 0xffffffff,
                       0xffffffff, 0xffffffff, 0, 0, 0, 0, 0, 0, len(name),
                       0) + name


def with_children(data, path, children):
    """The key at ``path`` given one lf list of the ``children``
    offsets (any number of times the same)."""
    key = regf.open_hive(data).key(path)
    data, (lf,) = append_cells(
        data, [b'lf' + struct.pack('<H', len(children)) + b''.join(
            struct.pack('<II', c, 0) for c in children)])
    data = patch(data, key.offset, NK_SUBKEY_LIST, '<I', lf)
    return patch(data, key.offset, NK_SUBKEY_COUNT, '<I', len(children))


def test_many_distinct_keys_stop_at_the_keys_cap():
    data = small()
    parent = regf.open_hive(data).key('Software\\Other').offset
    data, cells = append_cells(data, [nk(parent, b'K%05d' % i)
                                      for i in range(6000)])
    data = with_children(data, 'Software\\Other', cells)
    h = regf.open_hive(data, max_keys=5000)
    with pytest.raises(errors.LimitReached, match='keys read'):
        h.child(h.key('Software\\Other'), 'x')
    assert h.keys_read == 5001


def test_one_key_listed_60000_times_costs_one_read():
    data = small()
    h = regf.open_hive(data)
    other = h.key('Software\\Other')
    data, (child,) = append_cells(data, [nk(other.offset, b'Same')])
    data = with_children(data, 'Software\\Other', [child] * 60000)
    h = regf.open_hive(data)
    assert h.child(h.key('Software\\Other'), 'same').offset == child
    assert h.keys_read < 10


def test_names_of_64_kib_are_bounded_and_never_match():
    data = small()
    h = regf.open_hive(data)
    other = h.key('Software\\Other')
    name = b'Z' * 65535
    data, (child,) = append_cells(data, [nk(other.offset, name)])
    data = with_children(data, 'Software\\Other', [child] * 60000)
    vk = struct.pack('<2sHIIIHH', b'vk', len(name), 0x80000004, 7, 4, 1,
                     0) + name
    data, (value,) = append_cells(data, [vk])
    data, (vlist,) = append_cells(data, [struct.pack('<I', value) * 100000])
    data = patch(data, other.offset, NK_VALUE_LIST, '<I', vlist)
    data = patch(data, other.offset, NK_VALUE_COUNT, '<I', 100000)
    h = regf.open_hive(data)
    key = h.key('Software\\Other')
    subkeys = h.subkeys(key)
    assert len(subkeys) == 60000 and len({id(k) for k in subkeys}) == 1
    assert subkeys[0].long and len(subkeys[0].name) == regf.MAX_NAME_BYTES
    assert h.child(key, subkeys[0].name) is None
    assert h.value(key, 'Z' * 10) is None
    assert h.values_read == 1


@pytest.mark.parametrize('length, error', [
    (0x7fffffff, errors.LimitReached),      # 2 GiB in a cell
    (0xffffffff, errors.Corrupt),           # "inline" 2 GiB
    (0x00100000 - 1, errors.Corrupt),       # longer than its cell, no db
])
def test_value_claiming_gigabytes(length, error):
    data = small()
    h = regf.open_hive(data)
    value = h.find_value(h.key('Software\\Vendor\\Product'), 'sz')
    data = patch(data, value.offset, VK_LENGTH, '<I', length)
    h = regf.open_hive(data)
    with pytest.raises(error):
        h.value(h.key('Software\\Vendor\\Product'), 'sz')
    assert h.bytes_read < 64 * 1024


def test_value_over_our_cap():
    h = regf.open_hive(small(), max_value_bytes=1024)
    with pytest.raises(errors.LimitReached, match='claims'):
        h.value(h.key('Software\\Vendor\\Product'), 'big')


@pytest.mark.parametrize('cut', [0x1000 + 0x800, 0x2000, 100])
def test_truncated_hive(cut):
    with pytest.raises(errors.Corrupt):
        regf.open_hive(small()[:cut])


def test_offsets_outside_the_hive():
    data = small()
    h = regf.open_hive(data)
    other = h.key('Software\\Other')
    for field in (NK_SUBKEY_LIST, NK_VALUE_LIST):
        bad = patch(data, other.offset, field, '<I', 0x7ffffff0)
        bad = patch(bad, other.offset, NK_SUBKEY_COUNT, '<I', 1)
        h = regf.open_hive(bad)
        with pytest.raises(errors.Corrupt, match='outside'):
            key = h.key('Software\\Other')
            h.subkeys(key)
            list(h.values(key))


def test_free_cell_is_not_followed():
    data = bytearray(small())
    h = regf.open_hive(bytes(data))
    other = h.key('Software\\Other')
    struct.pack_into('<i', data, 0x1000 + other.offset,
                     -struct.unpack_from('<i', data,
                                         0x1000 + other.offset)[0])
    with pytest.raises(errors.Corrupt, match='free'):
        regf.open_hive(bytes(data)).key('Software\\Other')


@pytest.mark.parametrize('offset, value, error', [
    (0, b'rege', errors.Unsupported),
    (0x14, struct.pack('<I', 2), errors.Unsupported),   # version 2.x
    (0x30, b'X', errors.Corrupt),                       # checksum
    (0x1000, b'hbim', errors.Corrupt),
])
def test_base_block_checks(offset, value, error):
    data = bytearray(small())
    data[offset:offset + len(value)] = value
    if offset == 0x14:
        data = bytearray(reseal(data))
    with pytest.raises(error):
        regf.open_hive(bytes(data))


def test_dirty_hive_is_read_as_it_is_and_flagged():
    data = bytearray(small())
    struct.pack_into('<I', data, 4, 42)
    h = regf.open_hive(reseal(data))
    assert h.dirty
    assert h.value(h.key('Software\\Other'), 'x') == hive.dword(1)


def test_bytes_cap():
    h = regf.open_hive(many(), max_bytes=256 * 1024)
    with pytest.raises(errors.LimitReached, match='MiB|hive'):
        for i in range(MANY):
            h.child(h.key('Many'), 'Key%04d' % i)


def test_name_that_is_not_utf16():
    data = small()
    h = regf.open_hive(data)
    other = h.key('Software\\Other')
    # The compressed (Latin-1) flag cleared: 'Other', 5 bytes, is not
    # UTF-16 (hivex's iconv fails on it too).
    flags = struct.unpack_from('<H', data, 0x1000 + other.offset + 6)[0]
    data = patch(data, other.offset, 6, '<H', flags & ~0x20)
    h = regf.open_hive(data)
    with pytest.raises(errors.Corrupt, match='UTF-16'):
        h.key('Software\\Other')


# ---------------------------------------------------------------- fuzz

FUZZ = hostile.fuzz(max_examples=150)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)),
                min_size=1, max_size=8), st.booleans())
def test_fuzz_flipped_hive_ends_within_bounds(changes, in_base_block):
    """Flips in the hive bins (the checksum then resealed, or the base
    block would stop every read at once), or anywhere."""
    data = bytearray(small())
    for pos, xor in changes:
        if in_base_block:
            data[pos % len(data)] ^= xor
        else:
            data[0x1000 + pos % (len(data) - 0x1000)] ^= xor
    if not in_base_block:
        data = bytearray(reseal(data))
    limit = 1 << 20
    h = None
    try:
        h = regf.open_hive(bytes(data), max_bytes=limit, max_keys=1000)
        for path, name in QUERIES:
            key = h.key(path)
            if key is not None:
                h.subkeys(key)
                for value in h.values(key):
                    h.data(value)
                h.value(key, name)
    except errors.DirectError as exc:
        assert exc.reason.startswith('regf: ')
    if h is not None:
        assert h.bytes_read <= limit and h.keys_read <= 1000


def test_utf16_key_names_fold_ascii_only_as_hivex():
    data = small()
    h = regf.open_hive(data)
    other = h.key('Software\\Other')
    name = '\u00dcn\u00efcode'.encode('utf-16-le')
    nk = struct.pack('<2sHqIIIIIIIIIIHHIIIIHH', b'nk', 0, 0, 0,
                     other.offset, 0, 0, 0xffffffff, 0xffffffff, 0,
                     0xffffffff, 0xffffffff, 0xffffffff, 0, 0, 0, 0, 0, 0,
                     len(name), 0) + name
    data, (child,) = append_cells(data, [nk])
    data, (lf,) = append_cells(
        data, [b'lf' + struct.pack('<HII', 1, child, 0)])
    data = patch(data, other.offset, NK_SUBKEY_LIST, '<I', lf)
    data = patch(data, other.offset, NK_SUBKEY_COUNT, '<I', 1)
    h = regf.open_hive(data)
    parent = h.key('Software\\Other')
    assert [k.name for k in h.subkeys(parent)] == ['\u00dcn\u00efcode']
    assert h.child(parent, '\u00dcN\u00efCODE').offset == child
    # strcasecmp in the C locale: non-ASCII letters keep their case.
    assert h.child(parent, '\u00fcn\u00efcode') is None
    path = _WORK / 'utf16.hive'
    path.write_bytes(data)
    found = subprocess.run(
        ['perl', '-MWin::Hivex', '-e',
         'my $h = Win::Hivex->open($ARGV[0]); my $n = $h->root;'
         '$n = $h->node_get_child($n, $_) for qw(Software Other);'
         'for my $c ($ARGV[1], $ARGV[2]) {'
         '  my $k = $h->node_get_child($n, $c); print $k ? "y" : "n" }',
         str(path), '\u00dcN\u00efCODE', '\u00fcn\u00efcode'],
        check=True, capture_output=True).stdout
    assert found == b'yn'


def test_corrupt_structure_in_a_dirty_hive_is_a_torn_read():
    data = small()
    h = regf.open_hive(data)
    other = h.key('Software\\Other')
    data = bytearray(patch(data, other.offset, NK_VALUE_LIST, '<I',
                           0x7ffffff0))
    struct.pack_into('<I', data, 4, 43)
    h = regf.open_hive(reseal(data))
    with pytest.raises(errors.TornRead, match='being written'):
        h.value(h.key('Software\\Other'), 'x')


@pytest.mark.parametrize('db', [False, True])
def test_value_prefix_reads_only_what_is_asked(db):
    data = small()
    if db:
        data = as_big_data(data, 'Software\\Vendor\\Product', 'big')
    h = regf.open_hive(data)
    key = h.key('Software\\Vendor\\Product')
    before = h.bytes_read
    assert h.value(key, 'big', 100) == (hive.REG_BINARY, BIG[:100])
    assert h.bytes_read - before <= 3 * cells.PAGE
    assert h.value(key, 'big', 17000) == (hive.REG_BINARY, BIG[:17000])
    assert h.value(key, 'dword', 2) == (hive.REG_DWORD, b'\xef\xbe')
