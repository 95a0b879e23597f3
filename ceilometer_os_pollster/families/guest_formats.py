"""What guest files and registry values say: pure parsers.

Both inspection methods hand over bytes exactly as the guest stored
them (the appliance's ``guest_files``, the direct readers); these
functions turn them into plain values: the os-release file, Windows
registry values, SUSE's base product XML.
Everything here is bounded and never raises on bad input, and what it
returns is still untrusted guest data (``facts.normalise`` cleans it).
"""

import re

from ceilometer_os_pollster import sanitize

# Bounds on what one (possibly hostile) guest file can make us parse.
MAX_FILE_BYTES = 64 * 1024          # os-release, SUSE base product
MAX_OS_RELEASE_KEYS = 64
MAX_VALUE_BYTES = 2048              # one registry value

REG_SZ, REG_EXPAND_SZ, REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_QWORD = (
    1, 2, 4, 5, 11)

_OS_RELEASE_LINE = re.compile(r'([A-Za-z_][A-Za-z0-9_]{0,63})=(.*)')


# --------------------------------------------------------------------------
# os-release


def parse_os_release(data):
    """os-release text (bytes or str) -> {KEY: value}, quotes removed.

    At most MAX_FILE_BYTES are looked at and MAX_OS_RELEASE_KEYS kept;
    values stay untrusted (facts.normalise cleans them).
    """
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data[:MAX_FILE_BYTES]).decode('utf-8', 'replace')
    result = {}
    for line in str(data)[:MAX_FILE_BYTES].splitlines():
        match = _OS_RELEASE_LINE.fullmatch(line.strip())
        if not match:
            continue
        key, value = match.groups()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
            value = value[1:-1]
            if line.strip()[len(key) + 1] == '"':
                value = re.sub(r'\\(.)', r'\1', value)
        result[key] = value[:1024]
        if len(result) >= MAX_OS_RELEASE_KEYS:
            break
    return result


# --------------------------------------------------------------------------
# Windows registry values


def registry_value(value_type, data):
    """A raw hivex value as raw_facts.RootFacts.windows wants it.

    REG_SZ/REG_EXPAND_SZ are UTF-16LE: decoded here, where the type is
    known (a NUL-free CJK string would defeat guessing later), up to the
    first NUL and at most MAX_VALUE_BYTES; the text is still untrusted.
    DWORD/QWORD become ints; other types give None.
    """
    data = bytes(data or b'')
    if value_type in (REG_SZ, REG_EXPAND_SZ):
        data = data[:MAX_VALUE_BYTES]
        data = data[:len(data) // 2 * 2]
        return data.decode('utf-16-le', 'replace').split('\x00')[0]
    if value_type == REG_DWORD and len(data) >= 4:
        return int.from_bytes(data[:4], 'little')
    if value_type == REG_DWORD_BIG_ENDIAN and len(data) >= 4:
        return int.from_bytes(data[:4], 'big')
    if value_type == REG_QWORD and len(data) >= 8:
        return int.from_bytes(data[:8], 'little')
    return None


def registry_text(value, limit=255):
    """A REG_SZ value as clean text.

    Bytes holding a NUL byte and of even length are UTF-16LE, which is how
    the registry stores strings; the text ends at the first NUL.  Other
    bytes and str go to sanitize.clean_text as they are.
    """
    if isinstance(value, bool):
        return ''
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value)
        if b'\x00' in value and len(value) % 2 == 0:
            value = value.decode('utf-16-le', 'replace').split('\x00')[0]
    return sanitize.clean_text(value, limit)


def registry_dword(value):
    """A REG_DWORD (int, 4 little-endian bytes, or decimal/0x text).

    Returns None when the value is absent or not a DWORD, so callers can
    fall back to another source.  8 bytes (REG_QWORD) are accepted too.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if 0 <= value < 2 ** 64 else None
    if isinstance(value, (bytes, bytearray)):
        if len(value) in (4, 8):
            return int.from_bytes(bytes(value), 'little')
        return None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r'[0-9]{1,10}', text):
            return int(text)
        if re.fullmatch(r'0[xX][0-9a-fA-F]{1,8}', text):
            return int(text, 16)
    return None


# --------------------------------------------------------------------------
# SUSE base product

_SUSE_PRODUCT_FIELDS = ('name', 'version', 'summary')


def parse_suse_product(data):
    """{name, version, summary} of a SUSE .prod file; {} if unusable.

    The file is guest data, parsed by the one hardened parser
    (sanitize.parse_xml); only the few text fields are kept (still
    untrusted).
    """
    if not isinstance(data, (bytes, bytearray)) or not data:
        return {}
    try:
        root = sanitize.parse_xml(data, 'product')
    except sanitize.XMLRefused:
        return {}
    found = {}
    for field in _SUSE_PRODUCT_FIELDS:
        child = root.find(field)
        if child is not None and child.text:
            found[field] = child.text
    return found
