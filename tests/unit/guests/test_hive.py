"""tests/guests/hive.py: the phony guests' registry hive writer and
.reg text, checked on the structure hivex reads (and by hivexregedit)."""

import functools
import operator
import struct
import subprocess

import pytest

from tests.guests import hive


def _cells(data, start, end):
    """[(offset, size, used)] of the cells of one hbin, in order."""
    cells = []
    offset = start
    while offset < end:
        size, = struct.unpack_from('<i', data, offset)
        assert size != 0 and abs(size) % 8 == 0, offset
        cells.append((offset, abs(size), size < 0))
        offset += abs(size)
    assert offset == end
    return cells


def _sid_string(data, offset):
    revision, count = data[offset], data[offset + 1]
    authority = int.from_bytes(data[offset + 2:offset + 8], 'big')
    subs = struct.unpack_from('<%dI' % count, data, offset + 8)
    return 'S-%d-%d-%s' % (revision, authority, '-'.join(map(str, subs)))


def test_empty_hive_base_block():
    data = hive.empty_hive('ROOT', 'SOFTWARE')
    assert len(data) == 0x2000          # hivex refuses anything smaller
    magic, seq1, seq2, _, major, minor, ftype, fmt, root, size = (
        struct.unpack_from('<4sIIqIIIIII', data, 0))
    assert (magic, seq1 == seq2, major, minor) == (b'regf', True, 1, 3)
    assert (ftype, fmt, root, size) == (0, 1, 0x20, 0x1000)
    assert data[0x30:0x40] == 'SOFTWARE'.encode('utf-16-le')
    words = struct.unpack_from('<127I', data, 0)
    assert struct.unpack_from('<I', data, 0x1fc)[0] == functools.reduce(
        operator.xor, words)


def test_empty_hive_bin_and_cells():
    data = hive.empty_hive('ROOT')
    magic, first, size = struct.unpack_from('<4sII', data, 0x1000)
    assert (magic, first, size) == (b'hbin', 0, 0x1000)
    cells = _cells(data, 0x1020, 0x2000)
    assert [used for _, _, used in cells] == [True, True, False]
    (nk_off, _, _), (sk_off, _, _), _ = cells
    assert nk_off - 0x1000 == 0x20      # the base block's root offset
    nk = data[nk_off + 4:]
    assert nk[:2] == b'nk'
    flags, = struct.unpack_from('<H', nk, 2)
    assert flags & 0x04 and flags & 0x20         # hive entry, ASCII name
    subkeys, _, subkey_list = struct.unpack_from('<III', nk, 0x14)
    values, value_list, sk_ref = struct.unpack_from('<III', nk, 0x24)
    assert (subkeys, subkey_list, values, value_list) == (
        0, 0xffffffff, 0, 0xffffffff)
    assert sk_ref + 0x1000 == sk_off
    name_len, = struct.unpack_from('<H', nk, 0x48)
    assert nk[0x4c:0x4c + name_len] == b'ROOT'
    sk = data[sk_off + 4:]
    assert sk[:2] == b'sk'
    next_, prev, refcount, length = struct.unpack_from('<IIII', sk, 4)
    assert (next_ + 0x1000, prev + 0x1000, refcount) == (sk_off, sk_off, 1)
    assert sk[20:20 + length] == hive.security_descriptor()


def test_security_descriptor_owner_group():
    sd = hive.security_descriptor()
    revision, _, control, owner, group, sacl, dacl = struct.unpack_from(
        '<BBHIIII', sd, 0)
    assert (revision, control & 0x8000, control & 0x0004) == (1, 0x8000, 4)
    assert _sid_string(sd, owner) == 'S-1-5-32-544'
    assert _sid_string(sd, group) == 'S-1-5-18'
    assert sacl == 0
    acl_revision, _, acl_size, ace_count = struct.unpack_from(
        '<BBHH', sd, dacl)
    assert (acl_revision, ace_count, dacl + acl_size) == (2, 2, len(sd))


def test_empty_hive_is_deterministic_and_name_bounded():
    assert hive.empty_hive('ROOT', 'SYSTEM') == hive.empty_hive('ROOT',
                                                                'SYSTEM')
    with pytest.raises(ValueError):
        hive.empty_hive('R' * 5000)


@pytest.mark.parametrize('value,reg_type,data', [
    (hive.sz('Ab'), hive.REG_SZ, b'A\0b\0\0\0'),
    (hive.sz(''), hive.REG_SZ, b'\0\0'),
    (hive.dword(10), hive.REG_DWORD, b'\x0a\0\0\0'),
    (hive.qword(1), hive.REG_QWORD, b'\x01' + b'\0' * 7),
    (hive.multi_sz('a', 'b'), hive.REG_MULTI_SZ, b'a\0\0\0b\0\0\0\0\0'),
    (hive.binary(b'\x01\x02'), hive.REG_BINARY, b'\x01\x02'),
    (hive.raw(hive.REG_SZ, b'\x00\xd8'), hive.REG_SZ, b'\x00\xd8'),
])
def test_value_encodings(value, reg_type, data):
    assert value == (reg_type, data)


@pytest.mark.parametrize('name,value,line', [
    ('N', hive.dword(0x1a), '"N"=dword:0000001a'),
    ('N', hive.sz('A'), '"N"=hex(1):41,00,00,00'),
    ('N', hive.binary(b'\xff'), '"N"=hex(3):ff'),
    ('a"b\\c', hive.dword(1), '"a\\"b\\\\c"=dword:00000001'),
    ('', hive.sz('d'), '""=hex(1):64,00,00,00'),
])
def test_reg_text_value_lines(name, value, line):
    text = hive.reg_text({'K': {name: value}})
    assert text.splitlines()[2:] == ['[\\K]', line]


def test_reg_text_creates_ancestors_first():
    text = hive.reg_text({'A\\B\\C': {'v': hive.dword(1)},
                          'A\\b2': {}, 'Z': {}})
    sections = [line for line in text.splitlines() if line.startswith('[')]
    assert sections == ['[\\A]', '[\\A\\B]', '[\\A\\B\\C]', '[\\A\\b2]',
                        '[\\Z]']
    assert text.startswith('Windows Registry Editor Version 5.00\n')


@pytest.mark.parametrize('keys', [
    {'': {}}, {'\\A': {}}, {'A\\\\B': {}},
    {'A': {'caf\u00e9': hive.dword(1)}}, {'A': {'a\nb': hive.dword(1)}},
])
def test_reg_text_rejects_bad_paths_and_names(keys):
    with pytest.raises(ValueError):
        hive.reg_text(keys)


def test_hivexregedit_merges_into_empty_hive(tmp_path):
    """The real hivex library accepts the hive and the regedit text."""
    path = tmp_path / 'SOFTWARE'
    path.write_bytes(hive.empty_hive('ROOT', 'SOFTWARE'))
    reg = tmp_path / 'in.reg'
    reg.write_text(hive.reg_text({
        'Microsoft\\Windows NT\\CurrentVersion': {
            'ProductName': hive.sz('Windows\x1b[31m \u202e'),
            'CurrentMajorVersionNumber': hive.dword(10)}}))
    subprocess.run(['hivexregedit', '--merge', str(path), str(reg)],
                   check=True)
    out = subprocess.run(
        ['hivexregedit', '--export', str(path),
         '\\Microsoft\\Windows NT\\CurrentVersion'],
        check=True, capture_output=True, text=True).stdout
    assert '"CurrentMajorVersionNumber"=dword:0000000a' in out
    product = hive.sz('Windows\x1b[31m \u202e')[1]
    assert ('"ProductName"=hex(1):%s' % ','.join('%02x' % b for b in product)
            in out)
