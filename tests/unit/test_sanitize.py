"""Table tests for sanitize.py with hostile guest values."""

import unicodedata

import pytest

from ceilometer_os_pollster import sanitize


def utf16(text):
    """A raw REG_SZ value: UTF-16LE with its terminating NUL."""
    return (text + '\x00').encode('utf-16-le')


def assert_safe(text, limit=255):
    assert isinstance(text, str)
    text.encode('utf-8')        # raises on lone surrogates
    assert len(text) <= limit
    assert text == text.strip()
    assert '  ' not in text
    for char in text:
        assert unicodedata.category(char) not in ('Cc', 'Cf', 'Cs', 'Co')
        assert char == ' ' or not char.isspace()


@pytest.mark.parametrize('value, expected', [
    # Plain values.
    ('Windows Server 2022 Datacenter', 'Windows Server 2022 Datacenter'),
    ('', ''),
    (None, ''),
    (2022, '2022'),
    (0, '0'),
    ('Caf\u00e9 \u4e2d\u6587', 'Caf\u00e9 \u4e2d\u6587'),
    # Whitespace and newline injection.
    ('  Red Hat\t Enterprise\r\nLinux  ', 'Red Hat Enterprise Linux'),
    ('ok\nos_edition=Datacenter', 'ok os_edition=Datacenter'),
    ('a\u2028b\u2029c\u0085d\u00a0e\u3000f', 'a b c d e f'),
    ('\n\t \r', ''),
    # NULs separate (REG_SZ terminators, REG_MULTI_SZ lists).
    ('Standard\x00', 'Standard'),
    ('Standard\x00Datacenter\x00\x00', 'Standard Datacenter'),
    # Terminal escapes are removed whole, other controls dropped.
    ('\x1b[31mRed\x1b[0m Hat', 'Red Hat'),
    ('\x1b[1;31;40mX\x1b[K', 'X'),
    ('\x1b]0;owned\x07Ubuntu', 'Ubuntu'),
    ('\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\', 'link'),
    ('\x9b2JClear', 'Clear'),
    ('\x1bcReset', 'Reset'),
    ('\x1b(BLatin\x1bPq#0;2;0;0;0\x1b\\ DCS', 'Latin DCS'),
    ('bell\x07back\x08space\x7fdel', 'bellbackspacedel'),
    # Bidi overrides and invisible characters that could spoof a label.
    ('Standard\u202e retneced\u202c', 'Standard retneced'),
    ('Data\u200bcen\u200dter\ufeff', 'Datacenter'),
    ('\u2066Enterprise\u2069\u061c', 'Enterprise'),
    ('Dat\u00adacenter', 'Datacenter'),
    ('Evil\U000e0041\U000e0042', 'Evil'),          # tag characters
    ('X\ue000Y\U000f0000', 'XY'),                   # private use
    ('X\ufdd0Y\uffffZ\U0010fffe', 'XYZ'),           # noncharacters
    # Lone surrogates (e.g. from surrogateescape) are dropped.
    ('bad\udcff\ud800text', 'badtext'),
    # Bytes: UTF-8, raw REG_SZ UTF-16LE, BOMs, invalid sequences.
    (b'Ubuntu 22.04 LTS', 'Ubuntu 22.04 LTS'),
    ('Caf\u00e9'.encode('utf-8'), 'Caf\u00e9'),
    (utf16('Windows Server 2019 Standard'), 'Windows Server 2019 Standard'),
    (utf16('ServerDatacenter') + b'\x00\x00\x00\x00', 'ServerDatacenter'),
    (utf16('Caf\u00e9'), 'Caf\u00e9'),
    (b'\xff\xfe' + '\u4e2d\u6587'.encode('utf-16-le'), '\u4e2d\u6587'),
    (b'\xfe\xff' + 'BE'.encode('utf-16-be'), 'BE'),
    (b'\xef\xbb\xbfBOM', 'BOM'),
    (bytearray(b'array'), 'array'),
    (memoryview(b'view'), 'view'),
    (b'Caf\xe9', 'Caf\ufffd'),                      # Latin-1 byte
    (b'\xc3\x28ok', '\ufffd(ok'),                   # invalid UTF-8
    (b'\xed\xa0\x80x', '\ufffd\ufffd\ufffdx'),       # encoded surrogate
    (b'9\x00', '9'),                                # 8-bit REG_SZ
    (utf16('odd')[:-1], 'odd'),                     # truncated unit
    (b'W\x00i\x00n\x00\x00', 'Win'),
    (b'\x00\x00\x00\x00', ''),
    (b'', ''),
    (b'A', 'A'),
    (b'\x01\x02\x03\x1b[2J', ''),
])
def test_clean_text(value, expected):
    result = sanitize.clean_text(value)
    assert result == expected
    assert_safe(result)


def test_invalid_utf16_is_replaced_not_raised():
    # An unpaired high surrogate in a raw REG_SZ.
    raw = 'ab'.encode('utf-16-le') + b'\x00\xd8' + 'cd'.encode('utf-16-le')
    result = sanitize.clean_text(raw)
    assert result == 'ab\ufffdcd'
    assert_safe(result)


@pytest.mark.parametrize('value, limit, expected', [
    ('x' * 1000, 255, 'x' * 255),
    ('abc def', 4, 'abc'),          # no trailing space after the cut
    ('\u4e2d' * 300, 255, '\u4e2d' * 255),
    ('\U0001f600' * 300, 10, '\U0001f600' * 10),    # astral, 4 bytes
    ('abc', 0, ''),
    ('abc', -5, ''),
    ('abc', None, ''),
    ('abcdef', 3, 'abc'),
])
def test_clean_text_limit(value, limit, expected):
    assert sanitize.clean_text(value, limit=limit) == expected


def test_huge_hostile_values_are_bounded():
    huge = ('\u202e\x1b[31m' + 'A' * 49 + '\x00\n') * 200000
    result = sanitize.clean_text(huge)
    assert_safe(result)
    assert len(result) == 255
    assert result.startswith('A' * 49 + ' ' + 'A' * 49 + ' A')
    result = sanitize.clean_text(huge.encode('utf-16-le'))
    assert_safe(result)
    assert result.startswith('A' * 49 + ' A')
    assert sanitize.clean_text(b'\xff' * 10_000_000) == '\ufffd' * 255


def test_invisible_padding_does_not_hide_text_within_bounds():
    # Zero-width characters do not count towards the limit.
    value = '\u200b' * 1000 + 'Datacenter'
    assert sanitize.clean_text(value) == 'Datacenter'


class _BrokenStr:
    def __str__(self):
        raise RuntimeError('boom')


@pytest.mark.parametrize('value, expected', [
    (_BrokenStr(), ''),
    (3.5, '3.5'),
    (True, 'True'),
    (['a', 'b'], "['a', 'b']"),
])
def test_clean_text_other_objects(value, expected):
    assert sanitize.clean_text(value) == expected


@pytest.mark.parametrize('value, expected', [
    ('rhel', 'rhel'),
    ('x86_64', 'x86_64'),
    ('win2k22', 'win2k22'),
    ('ServerDatacenter', 'ServerDatacenter'),
    ('opensuse-leap', 'opensuse-leap'),
    ('c++', 'c++'),
    ('Red Hat', 'RedHat'),
    ('../../etc/passwd', '....etcpasswd'),
    ('rhel\n$(reboot)', 'rhelreboot'),
    ('\x1b[31mubuntu\u202e', 'ubuntu'),
    ('\u0440hel', 'hel'),                      # Cyrillic lookalike
    ('caf\u00e9', 'caf'),
    (utf16('Enterprise'), 'Enterprise'),
    (None, ''),
    (12, '12'),
    ('a' * 100, 'a' * 64),
])
def test_clean_token(value, expected):
    result = sanitize.clean_token(value)
    assert result == expected
    assert_safe(result, limit=64)
    assert all(c.isascii() and (c.isalnum() or c in '._+-')
               for c in result)


def test_clean_token_limit():
    assert sanitize.clean_token('abcdef', limit=3) == 'abc'
    assert sanitize.clean_token('abc', limit=0) == ''
    # The limit applies after filtering, not before.
    assert sanitize.clean_token(' ' * 100 + 'rhel', limit=4) == 'rhel'


@pytest.mark.parametrize('value, expected', [
    (9, 9),
    (0, 0),
    ('9', 9),
    ('09', 9),
    (' 10 ', 10),
    ('10\x00', 10),
    (b'22', 22),
    (utf16('2022'), 2022),
    (1_000_000, 1_000_000),
    # Rejected: the default comes back.
    (1_000_001, -1),
    ('1000001', -1),
    (-1, -1),
    ('-1', -1),
    ('+5', -1),
    ('5.0', -1),
    (5.0, -1),
    (True, -1),
    (False, -1),
    (None, -1),
    ('', -1),
    ('abc', -1),
    ('1 0', -1),
    ('1_000', -1),
    ('\u0661\u0662', -1),           # Arabic-Indic digits
    ('\uff11', -1),                 # fullwidth 1
    ('0x10', -1),
    ('9' * 5000, -1),
    ('0' * 100 + '5', -1),
    ([1], -1),
])
def test_clean_int(value, expected):
    assert sanitize.clean_int(value, default=-1) == expected


def test_clean_int_default_and_maximum():
    assert sanitize.clean_int('x') == 0
    assert sanitize.clean_int('65536', maximum=65535) == 0
    assert sanitize.clean_int('65535', maximum=65535) == 65535


# -- the one hardened XML parser ------------------------------------------

@pytest.mark.parametrize('data, why', [
    ('<product><name>x</name></product>', None),
    (b'<?xml version="1.0" encoding="UTF-8"?><product/>', None),
    (bytearray(b'<product/>'), None),
    ('<!DOCTYPE product><product/>', 'must not have a DOCTYPE'),
    ('<!DOCTYPE p [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
     '<product><name>&b;</name></product>', 'must not have a DOCTYPE'),
    ('<domain/>', 'has root <domain>, not <product>'),
    ('<\u202eproduct/>', 'cannot be parsed: '),
    ('<product>', 'cannot be parsed: '),
    ('', 'cannot be parsed: '),
    ('<product>' + '<a>' * 5000 + '</a>' * 5000 + '</product>',
     'cannot be parsed: '),
    ('caf\udcc3', 'is not valid text: '),
    (None, 'must be text, not NoneType'),
    (42, 'must be text, not int'),
])
def test_parse_xml_refuses_all_but_plain_xml(data, why):
    if why is None:
        assert sanitize.parse_xml(data, 'product').tag == 'product'
        return
    with pytest.raises(sanitize.XMLRefused) as refused:
        sanitize.parse_xml(data, 'product')
    assert str(refused.value).startswith(why)
    assert_safe(str(refused.value))


def test_parse_xml_never_reads_a_file_or_the_network(tmp_path):
    secret = tmp_path / 'secret'
    secret.write_text('s3cr3t')
    for doctype in ('<!DOCTYPE p [<!ENTITY x SYSTEM "file://%s">]>' % secret,
                    '<!DOCTYPE p SYSTEM "http://192.0.2.1/x.dtd">'):
        with pytest.raises(sanitize.XMLRefused) as refused:
            sanitize.parse_xml(doctype + '<p>&x;</p>', 'p')
        assert 's3cr3t' not in str(refused.value)


def test_parse_xml_drops_comments_and_instructions():
    root = sanitize.parse_xml(
        '<p><!-- hidden --><?pi x?><name>n</name></p>', 'p')
    assert [child.tag for child in root] == ['name']


def test_domain_xml_and_suse_product_share_the_parser():
    # The same refusals for both kinds of untrusted XML.
    from ceilometer_os_pollster.families import guest_formats
    from ceilometer_os_pollster.instances import domain_xml
    for prolog in ('<!DOCTYPE x>', '<!-- c --><!DOCTYPE x [<!ENTITY e "">]>'):
        with pytest.raises(domain_xml.DomainXMLError) as refused:
            domain_xml.parse(prolog + '<domain/>')
        assert str(refused.value) == 'domain XML must not have a DOCTYPE'
        assert guest_formats.parse_suse_product(
            (prolog + '<product><name>SLES</name></product>').encode()) == {}
    assert guest_formats.parse_suse_product(
        b'<product><name>SLES</name></product>') == {'name': 'SLES'}
