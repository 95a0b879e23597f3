"""Windows registry pieces for phony guests, as pure bytes and text.

Owns two things: ``empty_hive`` (a minimal valid "regf" hive that
hivex opens and hivexregedit can merge into) and ``reg_text`` (a
regedit-format file, as hivexregedit reads it, from a plain mapping of
key paths to values).  No I/O here; builder.py runs hivexregedit.

Hive layout written by ``empty_hive`` (all integers little endian)::

  0x0000  base block, 4 KiB: "regf", sequence numbers, version 1.3,
          root cell offset, size of the hive bins, XOR checksum at 0x1fc
  0x1000  one hbin of 4 KiB: 32-byte header, then cells
          (int32 size, negative when used): the root "nk" key, the one
          "sk" security cell every key shares, and a free cell
          covering the rest of the bin (hivex walks cells to the end).

Cell offsets stored in the hive are relative to 0x1000.
"""

import struct

BLOCK = 0x1000
HBIN_HEADER = 0x20

REG_SZ = 1
REG_EXPAND_SZ = 2
REG_BINARY = 3
REG_DWORD = 4
REG_MULTI_SZ = 7
REG_QWORD = 11

# 2024-01-01T00:00:00Z as a Windows FILETIME (100 ns since 1601): a
# fixed stamp keeps the hive byte-for-byte reproducible.
FIXED_FILETIME = 133485408000000000

_NK_ROOT_FLAGS = 0x04 | 0x08 | 0x20   # hive entry, no delete, ASCII name
_NONE = 0xffffffff


def _sid(authority, *subs):
    return (struct.pack('<BB', 1, len(subs))
            + authority.to_bytes(6, 'big')
            + b''.join(struct.pack('<I', s) for s in subs))


def security_descriptor():
    """Self-relative descriptor: owner Administrators, group SYSTEM,
    a DACL giving both full control (what real hive roots carry)."""
    admins = _sid(5, 32, 544)
    system = _sid(5, 18)
    aces = b''
    for sid in (system, admins):
        # ACCESS_ALLOWED, container inherit, KEY_ALL_ACCESS.
        aces += struct.pack('<BBHI', 0, 0x02, 8 + len(sid), 0xf003f) + sid
    acl = struct.pack('<BBHHH', 2, 0, 8 + len(aces), 2, 0) + aces
    header_len = 20
    owner_off = header_len
    group_off = owner_off + len(admins)
    dacl_off = group_off + len(system)
    header = struct.pack('<BBHIIII', 1, 0, 0x8004,
                         owner_off, group_off, 0, dacl_off)
    return header + admins + system + acl


def _cell(payload):
    """A used cell: negative size, padded to 8 bytes as hivex does."""
    size = (4 + len(payload) + 7) & ~7
    return struct.pack('<i', -size) + payload.ljust(size - 4, b'\0')


def _root_nk(sk_offset, name):
    encoded = name.encode('ascii')
    fixed = struct.pack(
        '<2sHqIIIIIIIIIIHHIIIIHH',
        b'nk', _NK_ROOT_FLAGS, FIXED_FILETIME,
        0,                  # access bits
        _NONE,              # parent: none for the root
        0, 0,               # subkeys, volatile subkeys
        _NONE, _NONE,       # subkey lists
        0, _NONE,           # values, value list
        sk_offset,
        _NONE,              # class name
        0, 0, 0,            # max subkey name, unknown, max class name
        0, 0,               # max value name, max value data
        0,                  # work var
        len(encoded), 0)    # name length, class name length
    return fixed + encoded


def _sk(self_offset, descriptor):
    return struct.pack('<2sHIIII', b'sk', 0, self_offset, self_offset,
                       1, len(descriptor)) + descriptor


def checksum(base_block):
    """XOR of the first 127 dwords, as hivex verifies it."""
    words = struct.unpack('<127I', base_block[:0x1fc])
    total = 0
    for word in words:
        total ^= word
    return total


def empty_hive(root_name='ROOT', file_name=''):
    """Bytes of a valid hive holding only an empty root key."""
    root_off = HBIN_HEADER
    # The nk cell size does not depend on the sk offset, so size it
    # first with a placeholder.
    nk_len = len(_cell(_root_nk(0, root_name)))
    sk_off = root_off + nk_len
    cells = (_cell(_root_nk(sk_off, root_name))
             + _cell(_sk(sk_off, security_descriptor())))
    free = BLOCK - HBIN_HEADER - len(cells)
    if free < 8:
        raise ValueError('root name too long for one hive bin')
    hbin = (struct.pack('<4sIIqqI', b'hbin', 0, BLOCK, 0, FIXED_FILETIME, 0)
            + cells + struct.pack('<i', free).ljust(free, b'\0'))
    name = file_name.encode('utf-16-le')[:64].ljust(64, b'\0')
    base = struct.pack(
        '<4sIIqIIIIIII', b'regf', 1, 1, FIXED_FILETIME,
        1, 3,               # format version 1.3
        0, 1,               # primary file, direct memory load
        root_off, BLOCK,    # root cell, size of hive bins
        1) + name           # clustering factor, file name
    base = base.ljust(0x1fc, b'\0')
    base += struct.pack('<I', checksum(base))
    base = base.ljust(BLOCK, b'\0')
    return base + hbin


# -- regedit text ---------------------------------------------------------

def sz(text):
    """REG_SZ value from text (UTF-16LE, NUL terminated, like Windows)."""
    return (REG_SZ, (text + '\0').encode('utf-16-le'))


def raw(reg_type, data):
    """A value with exact bytes, e.g. ill-formed UTF-16 in a REG_SZ."""
    return (reg_type, bytes(data))


def dword(number):
    return (REG_DWORD, struct.pack('<I', number))


def qword(number):
    return (REG_QWORD, struct.pack('<Q', number))


def binary(data):
    return (REG_BINARY, bytes(data))


def multi_sz(*texts):
    data = ''.join(t + '\0' for t in texts) + '\0'
    return (REG_MULTI_SZ, data.encode('utf-16-le'))


def _quote(text):
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"')


def _hex(data):
    return ','.join('%02x' % b for b in data)


def _value_line(name, value):
    reg_type, data = value
    if not name.isascii() or not name.isprintable():
        raise ValueError('value names must be printable ASCII: %r' % name)
    if reg_type == REG_DWORD and len(data) == 4:
        text = 'dword:%08x' % struct.unpack('<I', data)[0]
    else:
        # hivexregedit reads the file as bytes: hex keeps every string
        # (non-ASCII, control characters, bad UTF-16) exact.
        text = 'hex(%x):%s' % (reg_type, _hex(data))
    return '%s=%s' % (_quote(name), text)


def _ancestors(path):
    parts = path.split('\\')
    return ['\\'.join(parts[:i]) for i in range(1, len(parts) + 1)]


def reg_text(keys):
    """A regedit file for hivexregedit --merge (no --prefix).

    ``keys`` maps key paths relative to the hive root ('A\\B\\C') to
    {value name: (type, bytes)}.  hivexregedit only creates a key whose
    parent exists, so every ancestor gets its own (empty) section.
    """
    sections = {}
    for path in sorted(keys):
        if not path or path.startswith('\\') or '\\\\' in path:
            raise ValueError('bad key path %r' % path)
        for ancestor in _ancestors(path):
            sections.setdefault(ancestor, {})
        sections[path].update(keys[path])
    lines = ['Windows Registry Editor Version 5.00', '']
    for path in sorted(sections, key=lambda p: p.lower().split('\\')):
        lines.append('[\\%s]' % path)
        for name in sorted(sections[path]):
            lines.append(_value_line(name, sections[path][name]))
        lines.append('')
    return '\n'.join(lines)
