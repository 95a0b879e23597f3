"""Windows registry hive files ("regf"), read directly and bounded.

``Hive(source)`` checks the base block (magic, major version 1, the
header checksum hivex checks, that the hive bins fit in the file, the
first hive bin) and then reads cells on demand, through a page cache, as
lookups need them: ``key(path)``, ``child(key, name)``, ``subkeys(key)``,
``values(key)``, ``value(key, name)`` -> ``(type, bytes)`` exactly as
hivex's ``hivex_value_type``/``hivex_value_value`` give them, so
``guest_formats.registry_value`` turns both methods' answers into the
same values.

Structures (libyal's "Windows NT Registry File (REGF) format", and the
rules of hivex 1.3.23, the library the appliance runs): cell offsets are
relative to the first hive bin at 0x1000; a used cell has a negative
int32 size; an "nk" key names its subkey list (lf/lh/li leaves, ri
indexes of leaves) and its value list (an array of "vk" offsets); a vk's
data is inline when its length has the top bit set, else in a cell, or
for values longer than that cell, in a "db" big-data record whose
segments hold 16344 bytes each.  Names are Latin-1 when the key's or
value's "compressed" flag says so, else UTF-16LE.

Lookups by name fold ASCII case only: hivex compares with strcasecmp in
the appliance's C locale, and the same answers matter more than
Windows' Unicode upcase table for the ASCII names the facts ask for.
The first match in list order wins, as in hivex.

A dirty hive (the two base block sequence numbers differ: written
without a clean flush, the newest changes are still in .LOG1/.LOG2) is
read as it is, as hivex reads it; ``dirty`` says so, for the caller's
reason.  The logs are not replayed: the appliance path does not replay
them either, and both must give the same answers.  A structure that
does not hold together in a dirty hive is a TornRead (Windows may be
writing the primary file right now), in a clean one Corrupt.

Bounds: bytes read from the source, keys read, subkeys and values of one
key (hivex's own limits), value data size, ri nesting.  Every offset is
checked against the hive bins' size before it is followed; a structure
that does not fit is Corrupt, a bound is LimitReached.

The base block, hive bins and cells are read by ``cells``; this module
reads keys and values out of them.
"""

import dataclasses
import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.block import source as source_mod
from ceilometer_os_pollster.direct.hives import cells

# hivex 1.3.23's limits (hivex-internal.h): a key the appliance cannot
# list is one we do not list either.
MAX_SUBKEYS = 70000
MAX_VALUES = 110000
HIVEX_MAX_VALUE_LEN = 8000000
# Ours.  nk and vk cells parsed by one Hive (every child of each key
# looked into, every value of each key listed).
MAX_KEYS = 100000
MAX_VALUES_READ = 250000
# Bytes of one key or value name kept.  Windows names keys in at most
# 255 characters; a longer name (only a prefix kept) never matches a
# lookup, and costs no more memory however often it is listed.
MAX_NAME_BYTES = 1024
# One value's data: the facts read short strings and numbers.
MAX_VALUE_BYTES = 1 << 20
# hivex stops at 32 nested ri records (CVE-2021-3622); Windows writes 1.
MAX_RI_DEPTH = 2

DB_SEGMENT = 16344

REG_NONE, REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD = 0, 1, 2, 3, 4
REG_DWORD_BIG_ENDIAN, REG_LINK, REG_MULTI_SZ, REG_QWORD = 5, 6, 7, 11

_NK = struct.Struct('<2sHqIIIIIIIIIIHHIIIIHH')     # 76 bytes, name follows
_VK = struct.Struct('<2sHIIIHH')                   # 20 bytes, name follows
_KEY_COMP_NAME = 0x0020
_VALUE_COMP_NAME = 0x0001
_INLINE = 0x80000000
_NONE = 0xffffffff

_ASCII_LOWER = {c: c + 32 for c in range(ord('A'), ord('Z') + 1)}


def fold(name):
    """A name as hivex compares it: ASCII letters lowercased only."""
    return name.translate(_ASCII_LOWER)


@dataclasses.dataclass(frozen=True)
class Key:
    offset: int              # cell offset (relative to the first hbin)
    name: str
    subkey_count: int
    subkey_list: int
    value_count: int
    value_list: int
    long: bool = False       # name longer than MAX_NAME_BYTES: a prefix


@dataclasses.dataclass(frozen=True)
class Value:
    offset: int
    name: str
    type: int
    length: int              # declared data length (top bit cleared)
    inline: bool
    data_field: int          # the data offset field (inline bytes)
    long: bool = False       # name longer than MAX_NAME_BYTES: a prefix


class Hive(cells.Cells):
    """One hive file, read through ``source`` (a direct.source.Source).

    ``name`` says which hive in reasons ('SOFTWARE').
    """

    def __init__(self, source, name='hive', *,
                 max_bytes=cells.MAX_HIVE_BYTES, max_keys=MAX_KEYS,
                 max_value_bytes=MAX_VALUE_BYTES):
        self.max_keys = max_keys
        self.max_value_bytes = max_value_bytes
        self.keys_read = 0
        self.values_read = 0
        self._keys = {}
        self._vks = {}
        self._subkeys = {}
        self._index = {}
        self._values = {}
        super().__init__(source, name, max_bytes)
        self.root = self._key(self.root_offset)

    # --------------------------------------------------------------- keys

    def _key(self, offset):
        found = self._keys.get(offset)
        if found is not None:
            return found
        self.keys_read += 1
        if self.keys_read > self.max_keys:
            self._fail(errors.LimitReached, 'more than %d keys read',
                       self.max_keys)
        size, fixed = self._cell(offset, _NK.size, 'key')
        (sig, flags, _, _, _, subkeys, _, subkey_list, _, values,
         value_list, _, _, _, _, _, _, _, _, name_len, _) = _NK.unpack(fixed)
        if sig != b'nk':
            self._fail(errors.Corrupt, 'cell 0x%x is not a key', offset)
        name, long = self._name(offset, _NK.size, name_len,
                                flags & _KEY_COMP_NAME, 'key')
        found = Key(offset, name, subkeys, subkey_list, values, value_list,
                    long)
        self._keys[offset] = found
        return found

    def _name(self, offset, start, length, compressed, what):
        """(name, whether it is longer than MAX_NAME_BYTES).  A long
        name is checked to fit in its cell and kept as a prefix only."""
        long = length > MAX_NAME_BYTES
        if long:
            size, _ = self._cell(offset, 0, what)
            if start + length > size - 4:
                self._fail(errors.Corrupt, '%s name at 0x%x does not fit '
                           'in its cell', what, offset)
        _, raw = self._cell(offset, start + min(length, MAX_NAME_BYTES),
                            what + ' name')
        raw = raw[start:]
        if compressed:
            return raw.decode('latin-1'), long
        if long:
            return raw[:len(raw) // 2 * 2].decode('utf-16-le',
                                                  'replace'), long
        try:
            return raw.decode('utf-16-le'), long
        except UnicodeError:
            self._fail(errors.Corrupt, '%s name at 0x%x is not UTF-16',
                       what, offset)

    def subkeys(self, key):
        """The subkeys of ``key``, in list order (hivex's order)."""
        found = self._subkeys.get(key.offset)
        if found is not None:
            return found
        if key.subkey_count == 0:
            found = []
        else:
            if key.subkey_count > MAX_SUBKEYS:
                self._fail(errors.LimitReached, 'key %r has %d subkeys, more '
                           'than %d', key.name[:64], key.subkey_count,
                           MAX_SUBKEYS)
            offsets = []
            self._list(key.subkey_list, offsets, key, 0, set())
            if len(offsets) != key.subkey_count:
                self._fail(errors.Corrupt, 'key %r says %d subkeys, its '
                           'lists hold %d', key.name[:64], key.subkey_count,
                           len(offsets))
            found = [self._key(offset) for offset in offsets]
        self._subkeys[key.offset] = found
        return found

    def _list(self, offset, out, key, depth, seen):
        """Append the key offsets of the subkey list at ``offset``."""
        if offset in seen:
            self._fail(errors.Corrupt, 'subkey lists of %r loop',
                       key.name[:64])
        seen.add(offset)
        size, head = self._cell(offset, 4, 'subkey list')
        sig, count = struct.unpack('<2sH', head)
        if sig in (b'lf', b'lh'):
            width = 8
        elif sig in (b'li', b'ri'):
            width = 4
        else:
            self._fail(errors.Corrupt, 'subkey list at 0x%x is not '
                       'lf/lh/li/ri', offset)
        if sig != b'ri' and len(out) + count > key.subkey_count:
            self._fail(errors.Corrupt, 'subkey lists of %r hold more than '
                       'its %d subkeys', key.name[:64], key.subkey_count)
        _, body = self._cell(offset, 4 + count * width, 'subkey list')
        entries = [struct.unpack_from('<I', body, 4 + i * width)[0]
                   for i in range(count)]
        if sig != b'ri':
            out.extend(entries)
            return
        if depth >= MAX_RI_DEPTH:
            self._fail(errors.Corrupt, 'ri subkey lists of %r nested more '
                       'than %d deep', key.name[:64], MAX_RI_DEPTH)
        for entry in entries:
            self._list(entry, out, key, depth + 1, seen)

    def child(self, key, name):
        """The subkey of ``key`` called ``name`` (ASCII case folded), or
        None.  The first of equal names wins."""
        index = self._index.get(key.offset)
        if index is None:
            index = {}
            for sub in self.subkeys(key):
                if not sub.long:
                    index.setdefault(fold(sub.name), sub)
            self._index[key.offset] = index
        return index.get(fold(name))

    def key(self, path):
        """The key at ``path`` ('A\\B' or a sequence of names) from the
        root, or None."""
        if isinstance(path, str):
            path = [p for p in path.split('\\') if p]
        node = self.root
        for name in path:
            node = self.child(node, name)
            if node is None:
                return None
        return node

    # ------------------------------------------------------------- values

    def _value_offsets(self, key):
        found = self._values.get(key.offset)
        if found is not None:
            return found
        if key.value_count == 0:
            found = []
        else:
            if key.value_count > MAX_VALUES:
                self._fail(errors.LimitReached, 'key %r has %d values, more '
                           'than %d', key.name[:64], key.value_count,
                           MAX_VALUES)
            _, body = self._cell(key.value_list, 4 * key.value_count,
                                 'value list')
            found = list(struct.unpack('<%dI' % key.value_count, body))
        self._values[key.offset] = found
        return found

    def values(self, key):
        """The values of ``key`` in list order, read one by one (an
        iterator: a caller that stops early reads no more)."""
        for offset in self._value_offsets(key):
            yield self._vk(offset)

    def _vk(self, offset):
        found = self._vks.get(offset)
        if found is not None:
            return found
        self.values_read += 1
        if self.values_read > MAX_VALUES_READ:
            self._fail(errors.LimitReached, 'more than %d values read',
                       MAX_VALUES_READ)
        _, fixed = self._cell(offset, _VK.size, 'value')
        sig, name_len, length, data, vtype, flags, _ = _VK.unpack(fixed)
        if sig != b'vk':
            self._fail(errors.Corrupt, 'cell 0x%x is not a value', offset)
        name, long = self._name(offset, _VK.size, name_len,
                                flags & _VALUE_COMP_NAME, 'value')
        found = Value(offset, name, vtype, length & ~_INLINE,
                      bool(length & _INLINE), data, long)
        self._vks[offset] = found
        return found

    def find_value(self, key, name):
        """The Value of ``key`` called ``name`` (ASCII case folded, the
        first match, as hivex_node_get_value), or None."""
        wanted = fold(name)
        for value in self.values(key):
            if not value.long and fold(value.name) == wanted:
                return value
        return None

    def value(self, key, name, limit=None):
        """(type, data bytes) of a value of ``key``, or None."""
        found = self.find_value(key, name)
        if found is None:
            return None
        return found.type, self.data(found, limit)

    def data(self, value, limit=None):
        """The data of ``value``, as hivex_value_value returns it; only
        its first ``limit`` bytes when given (the structure is checked
        all the same)."""
        length = value.length
        what = 'value %r' % value.name[:64]
        if value.inline:
            if length > 4:
                self._fail(errors.Corrupt, '%s: inline data of %d bytes',
                           what, length)
            return struct.pack('<I', value.data_field)[:length][:limit]
        if length > min(self.max_value_bytes, HIVEX_MAX_VALUE_LEN):
            self._fail(errors.LimitReached, '%s claims %d bytes, more than '
                       '%d', what, length, self.max_value_bytes)
        if length == 0:
            return b''
        want = length if limit is None else min(length, limit)
        size, _ = self._cell(value.data_field, 0, what)
        if length <= size - 4:
            return self._cell(value.data_field, want, what)[1]
        return self._big_data(value.data_field, length, want, what)

    def _big_data(self, offset, length, want, what):
        _, head = self._cell(offset, 8, what)
        sig, count, segments = struct.unpack('<2sHI', head)
        if sig != b'db':
            self._fail(errors.Corrupt, '%s: data of %d bytes is longer than '
                       'its cell', what, length)
        _, body = self._cell(segments, 4 * count, what)
        out = []
        done = 0
        for (segment,) in struct.iter_unpack('<I', body):
            if done >= want:
                break
            size, _ = self._cell(segment, 0, what)
            # hivex copies all but the cell's last 4 bytes.
            take = min(size - 8, want - done)
            if take <= 0:
                self._fail(errors.Corrupt, '%s: empty big data segment',
                           what)
            out.append(self._cell(segment, take, what)[1])
            done += take
        # Fewer bytes than declared: hivex returns what the segments
        # hold, and so do we.
        return b''.join(out)


def open_hive(data, name='hive', **limits):
    """A Hive over bytes already read (tests, small hives)."""
    return Hive(source_mod.BytesSource(data, name=name), name=name,
                **limits)
