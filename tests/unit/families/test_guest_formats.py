"""Tables of guest bytes and the values the pure parsers make of them
(ceilometer_os_pollster.families.guest_formats)."""

import pytest

from ceilometer_os_pollster.families import guest_formats as GF


def utf16(text):
    return text.encode('utf-16-le') + b'\x00\x00'


def dword(number):
    return number.to_bytes(4, 'little')


# --------------------------------------------------------------------------
# os-release


@pytest.mark.parametrize('text,expected', [
    (b'ID=rhel\nVERSION_ID="9.4"\n', {'ID': 'rhel', 'VERSION_ID': '9.4'}),
    (b"NAME='Alma Linux'\n", {'NAME': 'Alma Linux'}),
    (b'# comment\n\nBAD LINE\n=x\nID=x=y\n', {'ID': 'x=y'}),
    (b'PRETTY_NAME="say \\"hi\\""\n', {'PRETTY_NAME': 'say "hi"'}),
    (b'ID="unterminated\n', {'ID': '"unterminated'}),
    (b'NAME=\xff\xfeX\n', {'NAME': '\ufffd\ufffdX'}),
    ('ID=str\n', {'ID': 'str'}),
    (b'  ID = spaced\n', {}),
])
def test_parse_os_release(text, expected):
    assert GF.parse_os_release(text) == expected


def test_parse_os_release_is_bounded():
    many = b''.join(b'K%d=v\n' % n for n in range(1000))
    assert len(GF.parse_os_release(many)) == GF.MAX_OS_RELEASE_KEYS
    long_value = GF.parse_os_release(b'X=' + b'y' * 5000)
    assert len(long_value['X']) == 1024


# --------------------------------------------------------------------------
# Registry values


@pytest.mark.parametrize('value_type,data,expected', [
    (1, utf16('Windows 10 Pro'), 'Windows 10 Pro'),
    (2, utf16('%SystemRoot%'), '%SystemRoot%'),
    (1, 'Windows 11 专业版'.encode('utf-16-le'), 'Windows 11 专业版'),
    (1, utf16('A') + utf16('hidden'), 'A'),            # ends at NUL
    (1, b'W\x00i\x00n', 'Wi'),          # odd length: half unit dropped
    (1, b'\x00\xd8A\x00', '\ufffdA'),                   # lone surrogate
    (1, b'', ''),
    (4, dword(22631), 22631),
    (4, dword(10) + b'junk', 10),
    (4, b'\x01', None),                                # short DWORD
    (5, b'\x00\x00\x00\x0a', 10),                      # big endian
    (11, (2 ** 40).to_bytes(8, 'little'), 2 ** 40),    # QWORD
    (3, b'\x01\x02', None),                            # REG_BINARY
    (7, utf16('a') + utf16('b'), None),                # REG_MULTI_SZ
])
def test_registry_value_decoding(value_type, data, expected):
    assert GF.registry_value(value_type, data) == expected


def test_registry_strings_are_bounded():
    value = GF.registry_value(1, utf16('x' * 100000))
    assert len(value) == GF.MAX_VALUE_BYTES // 2


@pytest.mark.parametrize('value,expected', [
    (10, 10),
    (0, 0),
    (b'\x0a\x00\x00\x00', 10),
    (bytearray(b'\x06\x00\x00\x00'), 6),
    (b'\x00\x00\x01\x00', 65536),
    (b'\xff\xff\xff\xff', 2 ** 32 - 1),
    (b'\x03\x00\x00\x00\x00\x00\x00\x00', 3),      # REG_QWORD
    ('10', 10),
    (' 3 ', 3),
    ('0x0000000a', 10),
    (None, None),
    (True, None),
    (-1, None),
    (b'\x0a\x00', None),
    (b'', None),
    ('ten', None),
    ('1' * 20, None),
    (3.0, None),
])
def test_registry_dword(value, expected):
    assert GF.registry_dword(value) == expected


@pytest.mark.parametrize('value,expected', [
    ('Server', 'Server'),
    ('Server Core'.encode('utf-16-le') + b'\x00\x00', 'Server Core'),
    # text ends at the terminator; junk after it is not the value
    ('Client'.encode('utf-16-le') + b'\x00\x00' + 'junk'.encode(
        'utf-16-le'), 'Client'),
    ('Windows Server 2022 Datacenter'.encode('utf-16-le'),
     'Windows Server 2022 Datacenter'),
    ('Windows 10 Pro für Workstations'.encode('utf-16-le') + b'\x00\x00',
     'Windows 10 Pro für Workstations'),
    ('Windows 10 Pro'.encode('utf-8'), 'Windows 10 Pro'),
    (17763, '17763'),
    (None, ''),
    (True, ''),
    (b'\xfa\xfb\xfc', '\ufffd\ufffd\ufffd'),
])
def test_registry_text(value, expected):
    assert GF.registry_text(value) == expected
