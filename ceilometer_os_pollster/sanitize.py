"""Turning untrusted guest values into safe, bounded text and numbers.

Everything a guest's disk says (registry values, os-release lines, product
names) is attacker-controlled.  This module owns the one policy that makes
such a value fit to leave the engine: valid UTF-8, no control or invisible
formatting characters, single spaces, at most ``limit`` characters.  Pure
functions only; they never raise on odd input, except ``parse_xml``
(the one hardened XML parser for text a guest or a tenant chose), which
says why it refuses.
"""

import re
import unicodedata

from lxml import etree

# Work is bounded before cleaning: a hostile multi-megabyte value must not
# cost more than a few times the output size.  Generous, because invisible
# characters removed by cleaning do not count towards the limit.
_INPUT_FACTOR = 16
_INPUT_MINIMUM = 4096

# Terminal escape sequences are dropped whole (removing only the ESC
# would leave "[31m" in the text): CSI "ESC [ ... final" (or C1 CSI),
# string commands "ESC ] P X ^ _ ... BEL/ST" (titles, hyperlinks), and
# the short "ESC [intermediates] final" forms (ESC c, ESC ( B).
_ANSI_ESCAPE = re.compile(
    r'(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]'
    r'|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?'
    r'|\x1b[ -/]*[0-~]')

# Categories that never belong in a label: controls, format characters
# (bidi overrides such as U+202E, zero-width spaces and joiners, BOM,
# soft hyphen, tag characters), surrogates and private-use characters.
_DROPPED_CATEGORIES = frozenset(('Cc', 'Cf', 'Cs', 'Co'))

_TOKEN_UNSAFE = re.compile(r'[^A-Za-z0-9._+-]+')
_DIGITS = re.compile(r'[0-9]+')
_MAX_DIGITS = 32


def _input_cap(limit):
    return max(limit * _INPUT_FACTOR, _INPUT_MINIMUM)


def _looks_utf16le(data):
    """True when most 16-bit units have a zero high byte (Latin text).

    Raw REG_SZ values are UTF-16LE; their ASCII letters come out as
    "W\\0i\\0n\\0".  UTF-8 text never has that pattern.
    """
    pairs = len(data) // 2
    if pairs == 0:
        return False
    ascii_units = sum(1 for low, high in zip(data[0::2], data[1::2])
                      if low and not high)
    return ascii_units * 2 >= pairs


def _decode(data, cap):
    data = bytes(data[:cap * 4])
    if data.startswith(b'\xef\xbb\xbf'):
        return data[3:].decode('utf-8', 'replace')
    if data.startswith(b'\xff\xfe'):
        return data[2:].decode('utf-16-le', 'replace')
    if data.startswith(b'\xfe\xff'):
        return data[2:].decode('utf-16-be', 'replace')
    if _looks_utf16le(data):
        # An odd length means a truncated value: drop the half unit.
        return data[:len(data) // 2 * 2].decode('utf-16-le', 'replace')
    return data.decode('utf-8', 'replace')


def _to_str(value, cap):
    if value is None:
        return ''
    if isinstance(value, str):
        return value[:cap]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decode(value, cap)
    try:
        return str(value)[:cap]
    except Exception:  # a broken __str__ is not worth an exception
        return ''


def _is_noncharacter(char):
    code = ord(char)
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def _clean_chars(text):
    out = []
    for char in text:
        # NUL ends or separates REG_SZ/REG_MULTI_SZ strings; newlines
        # and tabs separate words: all become spaces, never glue.
        if char == '\x00' or char.isspace():
            out.append(' ')
        elif (unicodedata.category(char) in _DROPPED_CATEGORIES
              or _is_noncharacter(char)):
            continue
        else:
            out.append(char)
    return ''.join(out)


def clean_text(value, limit=255):
    """Any guest value as safe text of at most ``limit`` characters.

    Accepts str, bytes (UTF-8, UTF-16LE as read raw from a REG_SZ value,
    with or without a BOM or trailing NULs; undecodable bytes become
    U+FFFD), None (-> '') or anything with a str() (ints...).  Removes
    terminal escape sequences, control characters, bidi overrides,
    zero-width and other format characters, lone surrogates, private-use
    characters and noncharacters; collapses every whitespace run (newlines
    included) to one space; strips; truncates to ``limit`` code points.
    The result always encodes to UTF-8.
    """
    if not isinstance(limit, int) or limit <= 0:
        return ''
    cap = _input_cap(limit)
    text = _to_str(value, cap)
    text = _ANSI_ESCAPE.sub('', text)
    text = ' '.join(_clean_chars(text).split())
    # No surrogates are left, so cutting at any code point stays valid.
    return text[:limit].rstrip()


def clean_token(value, limit=64):
    """An identifier-like value (distro, osinfo, arch, edition) or ''.

    clean_text, then only ASCII letters, digits and ``._+-`` are kept
    (anything else is dropped, case preserved), at most ``limit``.
    """
    if not isinstance(limit, int) or limit <= 0:
        return ''
    text = clean_text(value, limit=_input_cap(limit))
    return _TOKEN_UNSAFE.sub('', text)[:limit]


def clean_int(value, default=0, maximum=1_000_000):
    """A non-negative version-like integer, or ``default``.

    Accepts ints and decimal strings/bytes ("9", "09", " 10 ", "9\\0").
    Booleans, floats, signs, non-ASCII digits, garbage and values above
    ``maximum`` give ``default``: a guest must not be able to make a
    version look like anything but a small number.
    """
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        number = value
    elif isinstance(value, (str, bytes, bytearray, memoryview)):
        text = clean_text(value, limit=_MAX_DIGITS + 1)
        # A longer run of digits is no version; never parse it.
        if len(text) > _MAX_DIGITS or not _DIGITS.fullmatch(text):
            return default
        number = int(text)
    else:
        return default
    if 0 <= number <= maximum:
        return number
    return default


class XMLRefused(ValueError):
    """parse_xml's refusal; the message completes "<what> ..."."""


def parse_xml(data, root_tag):
    """The root element of untrusted XML text (str or bytes), or
    XMLRefused: no DTD, no entity expansion, no network, lxml's size
    limits on (no huge_tree), no DOCTYPE at all, and the root must be
    ``root_tag``.  Comments and processing instructions are dropped."""
    if isinstance(data, str):
        try:
            data = data.encode('utf-8')
        except UnicodeEncodeError as exc:
            raise XMLRefused('is not valid text: %s' % exc)
    elif isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    else:
        raise XMLRefused('must be text, not %s' % type(data).__name__)
    parser = etree.XMLParser(resolve_entities=False, no_network=True,
                             huge_tree=False, load_dtd=False,
                             remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(data, parser)
    except (etree.LxmlError, ValueError) as exc:
        raise XMLRefused('cannot be parsed: %s' % clean_text(exc, limit=200))
    if root.getroottree().docinfo.doctype:
        raise XMLRefused('must not have a DOCTYPE')
    if root.tag != root_tag:
        raise XMLRefused('has root <%s>, not <%s>'
                         % (clean_text(root.tag, limit=64), root_tag))
    return root
