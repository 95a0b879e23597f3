"""NTFS, read-only: what the direct method needs of it (Windows roots).

Owns the on-disk structures (the Linux-NTFS documentation and ntfs-3g's
``layout.h``): the boot sector, MFT records with their update-sequence
fixups, attribute lists (a file's attributes spread over several
records), resident and non-resident attributes with data runs (sparse
runs read as zeros), and directory lookup through the ``$I30`` index
(``$INDEX_ROOT`` and the INDX blocks of ``$INDEX_ALLOCATION``), compared
case-insensitively with the volume's own ``$UpCase`` table as Windows
does.  Every number read is checked against the volume's geometry before
it is followed; runs, records, index nodes and depths are bounded, and
no index block or extension record is visited twice.

Names.  ``lookup(dir, name)`` takes the bytes of one path component as
``fs.resolve`` splits it: UTF-8 (lone surrogates allowed, as in WTF-8),
turned into UTF-16 and compared with the names of the Win32 and POSIX
namespaces.  DOS 8.3 names (``PROGRA~1``) never match: the appliance
path (ntfs-3g's readdir, libguestfs' case-insensitive path walk) does
not see them either, and both methods must give the same answers.  A
component that is not valid UTF-8 matches nothing.  Hard links are
several names of one record; alternate data streams are ignored.

Kinds.  A reparse point that is a relative symbolic link is a 'symlink'
(its target with '/' separators); other symbolic links and junctions
name drive letters we cannot map, so they are 'other'.  A file with any
other reparse tag (WOF, deduplication, cloud files) or whose ``$DATA``
is encrypted is a 'file' whose read is Unsupported, with its path in
the reason: a hive we cannot read must fall back to the appliance,
never look absent.  NTFS-compressed ``$DATA`` (LZNT1 in units of 16
clusters of at most 4 KiB) is decompressed, a unit at a time, each
unit's output capped at its size.

Beyond ``fs.Filesystem``: ``open_stream(node)`` gives a file's data as
a Source to read piecewise (a registry hive larger than one wants in
memory), ``listdir(node)`` a directory's names (bounded), and a node's
``path`` is the path as the volume spells it, for reasons.

Live disks: a fixup mismatch (a record or index block written while we
read it), a directory entry naming a record that is free, reused (its
sequence number changed) or no longer has a name in that directory is a
TornRead.  The $LogFile is not replayed.  Everything is little-endian.
"""

import bisect
import struct
import sys
from array import array

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.block import source as source_mod

OEM_ID = b'NTFS    '
# Fixups protect every 512 bytes of a record, whatever the sector size.
FIXUP_STRIDE = 512

MFT_RECORD = 0
ROOT_RECORD = 5
UPCASE_RECORD = 10
UPCASE_BYTES = 65536 * 2

# Bounds a hostile volume can reach.
MAX_RUNS = 65536                # data runs of one attribute, all extents
MAX_ATTRIBUTE_LIST = 256 << 10  # bytes of one $ATTRIBUTE_LIST
MAX_EXTENSIONS = 1024           # extension records of one file
MAX_INDEX_DEPTH = 16            # levels of one directory's B+tree
MAX_INDEX_NODES = 256           # INDX blocks visited by one lookup
MAX_DIR_ENTRIES = 100000        # entries listed in one directory
MAX_CACHED = 256                # parsed files kept
MAX_VALUE = 1 << 20             # a small attribute's value (reparse data)
MAX_SYMLINK = 4096
# read() assembles at most this much of one file in memory (hives are
# up to ~100 MiB; open_stream reads larger ones piecewise).
MAX_FILE_READ = 128 << 20

# Attribute types.
AT_STANDARD_INFORMATION = 0x10
AT_ATTRIBUTE_LIST = 0x20
AT_FILE_NAME = 0x30
AT_DATA = 0x80
AT_INDEX_ROOT = 0x90
AT_INDEX_ALLOCATION = 0xA0
AT_REPARSE_POINT = 0xC0
AT_END = 0xFFFFFFFF

# Attribute flags (sparse files may have a compression unit too: only
# the flag says a stream is compressed).
ATTR_COMPRESSION_MASK = 0x00FF
COMPRESSION_LZNT1 = 0x0001
LZNT1_CHUNK = 4096
ATTR_ENCRYPTED = 0x4000

# MFT record flags.
MFT_IN_USE = 0x1
MFT_DIRECTORY = 0x2

# File name namespaces.
NS_POSIX, NS_WIN32, NS_DOS, NS_WIN32_AND_DOS = 0, 1, 2, 3

# Index entry flags.
ENTRY_NODE = 0x1
ENTRY_END = 0x2
COLLATION_FILE_NAME = 0x1

IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003
IO_REPARSE_TAG_SYMLINK = 0xA000000C
SYMLINK_FLAG_RELATIVE = 0x1

I30 = '$I30'.encode('utf-16-le')
REF_MASK = (1 << 48) - 1


def probe(source):
    """True when ``source`` starts with an NTFS boot sector's OEM id."""
    try:
        return source.read_at(3, 8) == OEM_ID
    except errors.DirectError:
        return False


class BootSector:
    """The geometry of the volume from its boot sector, validated."""

    def __init__(self, raw, source_size):
        if raw[3:11] != OEM_ID:
            raise errors.Corrupt('ntfs: bad boot sector OEM id')
        if raw[510:512] != b'\x55\xaa':
            raise errors.Corrupt('ntfs: boot sector has no 55AA signature')
        self.sector_size, spc = struct.unpack_from('<HB', raw, 0x0B)
        if self.sector_size not in (256, 512, 1024, 2048, 4096):
            raise errors.Corrupt('ntfs: %d bytes per sector is not valid'
                                 % self.sector_size)
        # Above 128 sectors the byte is a negative power of two.
        if spc > 0x80:
            if 256 - spc > 21:
                raise errors.Corrupt('ntfs: cluster size 2^%d is not valid'
                                     % (256 - spc))
            self.cluster_size = 1 << (256 - spc)
        elif spc and not spc & (spc - 1):
            self.cluster_size = spc * self.sector_size
        else:
            raise errors.Corrupt('ntfs: %d sectors per cluster is not valid'
                                 % spc)
        if not 512 <= self.cluster_size <= 2 << 20:
            raise errors.Corrupt('ntfs: cluster size %d is not valid'
                                 % self.cluster_size)
        (self.sectors, self.mft_lcn, self.mftmirr_lcn) = struct.unpack_from(
            '<QQQ', raw, 0x28)
        self.record_size = self._size(raw[0x40], 'MFT record')
        self.index_size = self._size(raw[0x44], 'index record')
        self.size = self.sectors * self.sector_size
        if not self.sectors or self.size > source_size:
            raise errors.Corrupt(
                'ntfs: volume of %d sectors is larger than its device '
                '(%d bytes)' % (self.sectors, source_size))
        self.clusters = self.size // self.cluster_size
        if self.mft_lcn >= self.clusters or (
                (self.mft_lcn * self.cluster_size + self.record_size)
                > self.size):
            raise errors.Corrupt('ntfs: the MFT at cluster %d is past the '
                                 'end of the volume' % self.mft_lcn)

    def _size(self, value, what):
        """Clusters per record, or a negative power of two in bytes."""
        if value >= 0x80:
            shift = 256 - value
            size = 1 << shift if shift < 32 else 0
        else:
            size = value * self.cluster_size
        if not 512 <= size <= 65536 or size & (size - 1):
            raise errors.Corrupt('ntfs: %s size %d is not valid'
                                 % (what, size))
        return size


def apply_fixups(buf, magic, what):
    """Check and undo the update-sequence fixups of a multi-sector
    record (``buf`` a bytearray of a multiple of 512 bytes), in place.

    A sector whose last two bytes are not the update sequence number was
    written after the others: the record changed while it was read."""
    if bytes(buf[:4]) != magic:
        raise errors.Corrupt('%s: bad magic %r' % (what, bytes(buf[:4])))
    usa_ofs, usa_count = struct.unpack_from('<HH', buf, 4)
    sectors = len(buf) // FIXUP_STRIDE
    if (usa_count != sectors + 1 or usa_ofs & 1 or usa_ofs < 8
            or usa_ofs + 2 * usa_count > FIXUP_STRIDE - 2):
        raise errors.Corrupt('%s: bad update sequence array' % what)
    usn = bytes(buf[usa_ofs:usa_ofs + 2])
    for i in range(sectors):
        end = (i + 1) * FIXUP_STRIDE - 2
        if buf[end:end + 2] != usn:
            raise errors.TornRead('%s: update sequence mismatch in sector '
                                  '%d (written while read)' % (what, i))
        at = usa_ofs + 2 + 2 * i
        buf[end:end + 2] = buf[at:at + 2]
    return buf


class Attribute:
    """One attribute record (untrusted values, checked where used)."""

    __slots__ = ('type', 'name', 'flags', 'resident', 'value', 'lowest_vcn',
                 'highest_vcn', 'pairs', 'allocated', 'data_size',
                 'initialized', 'compression_unit', 'record')


def parse_attributes(rec, attrs_offset, used, number, what):
    """The attribute records of one fixed-up MFT record."""
    out = []
    pos = attrs_offset
    while True:
        if pos + 8 > used:
            raise errors.Corrupt('%s: attributes run past the record' % what)
        atype, length = struct.unpack_from('<II', rec, pos)
        if atype == AT_END:
            return out
        if length < 24 or length & 7 or pos + length > used:
            raise errors.Corrupt('%s: attribute of type 0x%x has a bad '
                                 'length' % (what, atype))
        a = Attribute()
        a.type = atype
        a.record = number
        non_resident, name_length, name_offset, a.flags = struct.unpack_from(
            '<BBHH', rec, pos + 8)
        if name_length and (name_offset < 16
                            or name_offset + 2 * name_length > length):
            raise errors.Corrupt('%s: attribute name outside its attribute'
                                 % what)
        a.name = bytes(rec[pos + name_offset:
                           pos + name_offset + 2 * name_length])
        if non_resident > 1:
            raise errors.Corrupt('%s: bad non-resident flag' % what)
        a.resident = not non_resident
        if a.resident:
            value_length, value_offset = struct.unpack_from(
                '<IH', rec, pos + 16)
            if value_offset + value_length > length:
                raise errors.Corrupt('%s: resident value outside its '
                                     'attribute' % what)
            a.value = bytes(rec[pos + value_offset:
                                pos + value_offset + value_length])
            a.data_size = a.initialized = a.allocated = value_length
            a.lowest_vcn, a.highest_vcn = 0, -1
            a.pairs = None
            a.compression_unit = 0
        else:
            if length < 64:
                raise errors.Corrupt('%s: non-resident attribute header too '
                                     'short' % what)
            (a.lowest_vcn, a.highest_vcn, pairs_offset,
             a.compression_unit) = struct.unpack_from('<qqHB', rec, pos + 16)
            (a.allocated, a.data_size, a.initialized) = struct.unpack_from(
                '<qqq', rec, pos + 40)
            if not 64 <= pairs_offset <= length:
                raise errors.Corrupt('%s: data runs outside their attribute'
                                     % what)
            a.pairs = bytes(rec[pos + pairs_offset:pos + length])
            a.value = None
        out.append(a)
        pos += length


class File:
    """An MFT record and the attributes of its extension records."""

    __slots__ = ('number', 'seq', 'flags', 'base', 'attrs')


class Node:
    """The handle callers get: a file and the path it was reached by
    (for reasons; a hard-linked file has several)."""

    __slots__ = ('file', 'path', 'kind', 'target', 'refusal')

    @property
    def number(self):
        return self.file.number


def decode_runs(pairs, vcn, clusters, what):
    """[(vcn, count, lcn or None)] from mapping pairs starting at
    ``vcn``; runs must lie inside the volume's ``clusters``."""
    runs = []
    pos = 0
    lcn = 0
    while pos < len(pairs) and pairs[pos]:
        header = pairs[pos]
        len_size, off_size = header & 0xF, header >> 4
        if not 1 <= len_size <= 8 or off_size > 8 or (
                pos + 1 + len_size + off_size > len(pairs)):
            raise errors.Corrupt('%s: bad data run header' % what)
        count = int.from_bytes(pairs[pos + 1:pos + 1 + len_size], 'little',
                               signed=True)
        if count <= 0:
            raise errors.Corrupt('%s: data run of %d clusters'
                                 % (what, count))
        if off_size:
            lcn += int.from_bytes(
                pairs[pos + 1 + len_size:pos + 1 + len_size + off_size],
                'little', signed=True)
            if lcn < 0 or lcn + count > clusters:
                raise errors.Corrupt('%s: data run at cluster %d is past the '
                                     'end of the volume' % (what, lcn))
            runs.append((vcn, count, lcn))
        else:
            runs.append((vcn, count, None))         # sparse
        vcn += count
        if len(runs) > MAX_RUNS:
            raise errors.LimitReached('%s: more than %d data runs'
                                      % (what, MAX_RUNS))
        pos += 1 + len_size + off_size
    return runs


class Stream(source_mod.Source):
    """A non-resident attribute's bytes as a Source: runs mapped to the
    volume, sparse runs and bytes past the initialized size as zeros."""

    def __init__(self, volume, cluster_size, runs, size, initialized,
                 name):
        self.volume = volume
        self.cluster_size = cluster_size
        self.runs = runs
        self._starts = [r[0] for r in runs]
        self.size = size
        self.initialized = min(initialized, size)
        self.name = name

    def _read(self, offset, length):
        out = bytearray()
        pos, end = offset, offset + length
        cs = self.cluster_size
        while pos < end:
            if pos >= self.initialized:
                out += bytes(end - pos)
                break
            vcn = pos // cs
            i = bisect.bisect_right(self._starts, vcn) - 1
            if i < 0 or vcn >= self.runs[i][0] + self.runs[i][1]:
                raise errors.Corrupt('%s: byte %d is in no data run'
                                     % (self.name, pos))
            start, count, lcn = self.runs[i]
            n = min(end, (start + count) * cs, self.initialized) - pos
            if lcn is None:
                out += bytes(n)
            else:
                out += self.volume.read_at(lcn * cs + pos - start * cs, n)
            pos += n
        return bytes(out)


class CompressedStream(source_mod.Source):
    """An LZNT1-compressed stream's bytes.  In each compression unit of
    ``unit`` clusters: all clusters allocated means stored as is, none
    means zeros, some then sparse means those clusters hold LZNT1
    chunks of the unit's bytes."""

    def __init__(self, raw, unit, size, initialized, name):
        self.stream = raw
        self.runs = raw.runs
        self.unit = unit
        self.unit_bytes = unit * raw.cluster_size
        self.size = size
        self.initialized = min(initialized, size)
        self.name = name
        self._cached = (None, None)

    def _unit(self, index):
        if self._cached[0] == index:
            return self._cached[1]
        cs = self.stream.cluster_size
        first = index * self.unit
        allocated = 0
        for vcn in range(first, first + self.unit):
            lcn = self._lcn(vcn)
            if lcn is None:
                break
            allocated += 1
        start = first * cs
        if allocated == self.unit:
            data = self._raw(start, self.unit_bytes)
        elif allocated == 0:
            data = bytes(self.unit_bytes)
        else:
            data = lznt1(self._raw(start, allocated * cs), self.unit_bytes,
                         self.name)
            data = data + bytes(self.unit_bytes - len(data))
        self._cached = (index, data)
        return data

    def _lcn(self, vcn):
        runs = self.stream.runs
        i = bisect.bisect_right(self.stream._starts, vcn) - 1
        if i < 0 or vcn >= runs[i][0] + runs[i][1]:
            return None             # past the runs: nothing stored
        return runs[i][2]

    def _raw(self, start, length):
        # The stream's own bounds are the allocated size here, not the
        # decompressed size.
        end = min(length, max(0, self.stream.size - start))
        raw = self.stream.read_at(start, end) if end else b''
        return raw + bytes(length - len(raw))

    def _read(self, offset, length):
        out = bytearray()
        pos, end = offset, offset + length
        while pos < end:
            index, inner = divmod(pos, self.unit_bytes)
            n = min(end - pos, self.unit_bytes - inner)
            if pos >= self.initialized:
                out += bytes(n)
            else:
                out += self._unit(index)[inner:inner + n]
            pos += n
        return bytes(out)


def lznt1(data, limit, what):
    """Decompress LZNT1 ``data`` (chunks of 4 KiB with a 2-byte header)
    to at most ``limit`` bytes (a few more are cut)."""
    out = bytearray()
    pos = 0
    while pos + 2 <= len(data) and len(out) < limit:
        header = data[pos] | data[pos + 1] << 8
        pos += 2
        if header == 0:
            break
        end = pos + (header & 0xFFF) + 1
        if end > len(data):
            raise errors.Corrupt('%s: compressed chunk past its unit'
                                 % what)
        if not header & 0x8000:
            out += data[pos:end]
            pos = end
            continue
        start = len(out)
        while pos < end:
            flags = data[pos]
            pos += 1
            for bit in range(8):
                if pos >= end:
                    break
                if not flags >> bit & 1:
                    out.append(data[pos])
                    pos += 1
                    continue
                if pos + 2 > end:
                    raise errors.Corrupt('%s: truncated compressed token'
                                         % what)
                token = data[pos] | data[pos + 1] << 8
                pos += 2
                done = len(out) - start
                # The split between offset and length bits grows with
                # the position in the chunk.
                length_mask, offset_shift, p = 0xFFF, 12, done - 1
                while p >= 0x10:
                    length_mask >>= 1
                    offset_shift -= 1
                    p >>= 1
                length = (token & length_mask) + 3
                offset = (token >> offset_shift) + 1
                if done == 0 or offset > done:
                    raise errors.Corrupt('%s: compressed back-reference '
                                         'before its chunk' % what)
                src = len(out) - offset
                if offset >= length:
                    out += out[src:src + length]
                else:
                    # An overlapping copy repeats the last ``offset``.
                    pattern = out[src:]
                    out += (pattern * (length // offset + 1))[:length]
                if len(out) - start > LZNT1_CHUNK:
                    raise errors.Corrupt('%s: compressed chunk larger than '
                                         '4 KiB' % what)
    return bytes(out[:limit])


class Filesystem(fs_mod.Filesystem):
    """An NTFS volume on a Source (the partition)."""

    kind = 'ntfs'

    def __init__(self, source, budget=None):
        self.source = source
        self.budget = budget
        self.boot = BootSector(source.read_at(0, 512), source.size)
        self.cluster_size = self.boot.cluster_size
        self.record_size = self.boot.record_size
        self._files = {}
        self._upcase = None
        self._mft = None
        self._mft = self._mft_stream()
        root = self._file(ROOT_RECORD)
        self.root = self._node(root, '')
        if self.root.kind != fs_mod.DIRECTORY:
            raise errors.Corrupt('ntfs: the root directory (record 5) is '
                                 'not a directory')

    # ------------------------------------------------------------ records

    def _mft_stream(self):
        """The $MFT's data, bootstrapped from record 0 read in place
        (its extension records are found through its first runs)."""
        offset = self.boot.mft_lcn * self.cluster_size
        raw = self.source.read_at(offset, self.record_size)
        base = self._parse_record(raw, MFT_RECORD)
        what = 'ntfs: $MFT'
        first = [a for a in base.attrs if a.type == AT_DATA and not a.name]
        if not first or first[0].resident:
            raise errors.Corrupt('%s has no non-resident data' % what)
        self._mft = self._stream_of(first, what, partial=True)
        data = self._attributes(MFT_RECORD, AT_DATA, b'')
        stream = self._stream_of(data, what)
        if stream.size < (UPCASE_RECORD + 1) * self.record_size:
            raise errors.Corrupt('%s is too small' % what)
        return stream

    def _record_bytes(self, number):
        if number * self.record_size + self.record_size > self._mft.size:
            raise errors.Corrupt('ntfs: record %d is past the end of the MFT'
                                 % number)
        return self._mft.read_at(number * self.record_size,
                                 self.record_size)

    def _parse_record(self, raw, number):
        what = 'ntfs: MFT record %d' % number
        rec = apply_fixups(bytearray(raw), b'FILE', what)
        (usa_ofs, _count, _lsn, seq, _links, attrs_offset, flags, used,
         allocated, base) = struct.unpack_from('<HHQHHHHIIQ', rec, 4)
        if used > len(rec) or allocated != len(rec) or not (
                usa_ofs < attrs_offset < used) or attrs_offset & 7:
            raise errors.Corrupt('%s: bad header' % what)
        if usa_ofs >= 0x30:
            # NTFS 3.1 records name themselves.
            own = struct.unpack_from('<I', rec, 0x2C)[0]
            if own != number & 0xFFFFFFFF:
                raise errors.Corrupt('%s says it is record %d'
                                     % (what, own))
        f = File()
        f.number = number
        f.seq = seq
        f.flags = flags
        f.base = base
        # A free record's attributes are stale: the caller says torn.
        f.attrs = (parse_attributes(rec, attrs_offset, used, number, what)
                   if flags & MFT_IN_USE else [])
        return f

    def _file(self, number):
        """The File of base record ``number`` with all its attributes
        (an $ATTRIBUTE_LIST followed), cached."""
        cached = self._files.get(number)
        if cached is not None:
            return cached
        what = 'ntfs: MFT record %d' % number
        f = self._parse_record(self._record_bytes(number), number)
        if f.base:
            raise errors.Corrupt('%s is an extension of record %d, not a '
                                 'file' % (what, f.base & REF_MASK))
        lists = [a for a in f.attrs if a.type == AT_ATTRIBUTE_LIST]
        if len(lists) > 1:
            raise errors.Corrupt('%s has %d attribute lists'
                                 % (what, len(lists)))
        if lists:
            f.attrs = self._follow_list(f, lists[0], what)
        if len(self._files) >= MAX_CACHED:
            self._files.clear()
        self._files[number] = f
        return f

    def _follow_list(self, f, alist, what):
        data = self._value(alist, what + ' attribute list', MAX_ATTRIBUTE_LIST)
        wanted = []
        pos = 0
        while pos + 26 <= len(data):
            length = struct.unpack_from('<H', data, pos + 4)[0]
            if length < 26 or pos + length > len(data):
                raise errors.Corrupt('%s: bad attribute list entry' % what)
            ref = struct.unpack_from('<Q', data, pos + 16)[0]
            number = ref & REF_MASK
            if number != f.number and number not in wanted:
                wanted.append(number)
                if len(wanted) > MAX_EXTENSIONS:
                    raise errors.LimitReached(
                        '%s: attributes in more than %d records'
                        % (what, MAX_EXTENSIONS))
            pos += length
        attrs = [a for a in f.attrs if a.type != AT_ATTRIBUTE_LIST]
        for number in wanted:
            ext = self._parse_record(self._record_bytes(number), number)
            if not ext.flags & MFT_IN_USE:
                raise errors.TornRead('%s: its extension record %d is free'
                                      % (what, number))
            if ext.base & REF_MASK != f.number:
                raise errors.Corrupt('%s: its attribute list names record '
                                     '%d, which is not its extension'
                                     % (what, number))
            attrs.extend(a for a in ext.attrs
                         if a.type != AT_ATTRIBUTE_LIST)
        return attrs

    def _attributes(self, number, atype, name):
        return [a for a in self._file(number).attrs
                if a.type == atype and a.name == name]

    # -------------------------------------------------------- attributes

    def _stream_of(self, extents, what, partial=False):
        """A Stream over the non-resident extents of one attribute.

        ``partial``: the runs may stop short of the size (the $MFT's
        first extent, used to find its others)."""
        extents = sorted(extents, key=lambda a: a.lowest_vcn)
        first = extents[0]
        if any(a.resident for a in extents):
            raise errors.Corrupt('%s is resident and non-resident' % what)
        if first.lowest_vcn != 0:
            raise errors.Corrupt('%s has no first extent' % what)
        size, init, allocated = (first.data_size, first.initialized,
                                 first.allocated)
        if not 0 <= init <= size <= allocated:
            raise errors.Corrupt('%s: sizes are not consistent' % what)
        runs = []
        vcn = 0
        for a in extents:
            if a.lowest_vcn != vcn:
                raise errors.Corrupt('%s: extents do not follow each other'
                                     % what)
            more = decode_runs(a.pairs, vcn, self.boot.clusters, what)
            if len(runs) + len(more) > MAX_RUNS:
                raise errors.LimitReached('%s: more than %d data runs'
                                          % (what, MAX_RUNS))
            runs.extend(more)
            if more:
                vcn = more[-1][0] + more[-1][1]
            if a.highest_vcn != vcn - 1:
                raise errors.Corrupt('%s: runs do not end where the extent '
                                     'says' % what)
        if not partial and vcn * self.cluster_size < size:
            raise errors.Corrupt('%s: data runs shorter than its size'
                                 % what)
        return Stream(self.source, self.cluster_size, runs, size, init,
                      what)

    def _value(self, attr, what, cap):
        """The whole value of a small attribute (at most ``cap`` bytes)."""
        if attr.resident:
            value = attr.value
        else:
            stream = self._stream_of([attr], what)
            if stream.size > cap:
                raise errors.LimitReached('%s is larger than %d bytes'
                                          % (what, cap))
            value = stream.read_at(0, stream.size)
        if len(value) > cap:
            raise errors.LimitReached('%s is larger than %d bytes'
                                      % (what, cap))
        return value

    def _data(self, f, name, what):
        """(resident bytes or None, Stream or None) of a named stream."""
        extents = [a for a in f.attrs if a.type == AT_DATA and a.name == name]
        if not extents:
            return None, None
        for a in extents:
            if a.flags & ATTR_ENCRYPTED:
                raise errors.Unsupported('%s is encrypted' % what)
        if len(extents) == 1 and extents[0].resident:
            return extents[0].value, None
        stream = self._stream_of(extents, what)
        if extents[0].flags & ATTR_COMPRESSION_MASK:
            return None, self._compressed(extents[0], stream, what)
        return None, stream

    def _compressed(self, first, stream, what):
        if (first.flags & ATTR_COMPRESSION_MASK != COMPRESSION_LZNT1
                or first.compression_unit != 4
                or self.cluster_size > 4096):
            raise errors.Unsupported(
                '%s is compressed in a way Windows does not write (unit '
                '2^%d of %d-byte clusters)' % (what, first.compression_unit,
                                               self.cluster_size))
        # The compressed bytes of a unit may lie past the data size.
        end = stream.runs[-1][0] + stream.runs[-1][1] if stream.runs else 0
        raw = Stream(self.source, self.cluster_size, stream.runs,
                     end * self.cluster_size, end * self.cluster_size, what)
        return CompressedStream(raw, 1 << first.compression_unit,
                                stream.size, stream.initialized, what)

    # -------------------------------------------------------- interface

    def _node(self, f, path):
        node = Node()
        node.file = f
        node.path = path
        node.target = None
        node.refusal = None
        what = 'ntfs: %s' % (path or '\\')
        if not f.flags & MFT_IN_USE:
            raise errors.TornRead('%s: its MFT record %d is free'
                                  % (what, f.number))
        reparse = [a for a in f.attrs if a.type == AT_REPARSE_POINT]
        if f.flags & MFT_DIRECTORY:
            node.kind = fs_mod.DIRECTORY
        else:
            node.kind = fs_mod.FILE
        if reparse:
            data = self._value(reparse[0], what + ' reparse point',
                               MAX_VALUE)
            if len(data) < 8:
                raise errors.Corrupt('%s: reparse point too short' % what)
            tag = struct.unpack_from('<I', data, 0)[0]
            if tag == IO_REPARSE_TAG_SYMLINK:
                node.target = _relative_target(data, what)
                node.kind = (fs_mod.SYMLINK if node.target is not None
                             else fs_mod.OTHER)
            elif tag == IO_REPARSE_TAG_MOUNT_POINT:
                node.kind = fs_mod.OTHER
            elif node.kind == fs_mod.FILE:
                node.refusal = ('%s is a reparse point (tag 0x%08x)'
                                % (what, tag))
        return node

    def key(self, inode):
        return inode.file.number

    def size(self, inode):
        if inode.kind != fs_mod.FILE:
            return 0
        # The first extent says, whatever its runs (cheap, never raises).
        for a in inode.file.attrs:
            if a.type == AT_DATA and not a.name and a.lowest_vcn == 0:
                return max(0, a.data_size)
        return 0

    def open_stream(self, inode):
        """The file's data as a Source (read piecewise: a large hive)."""
        what = 'ntfs: %s' % inode.path
        if inode.kind != fs_mod.FILE:
            raise errors.Corrupt('%s is not a regular file' % what)
        if inode.refusal:
            raise errors.Unsupported(inode.refusal)
        resident, stream = self._data(inode.file, b'', what)
        if stream is not None:
            return stream
        return source_mod.BytesSource(resident or b'', what)

    def read(self, inode, limit):
        stream = self.open_stream(inode)
        want = max(0, min(stream.size, limit))
        if want > MAX_FILE_READ:
            raise errors.LimitReached('ntfs: reading %d bytes of %s is more '
                                      'than %d' % (want, inode.path,
                                                   MAX_FILE_READ))
        out = bytearray()
        while len(out) < want:
            n = min(want - len(out), source_mod.MAX_READ)
            out += stream.read_at(len(out), n)
        return bytes(out)

    def readlink(self, inode):
        if inode.kind != fs_mod.SYMLINK:
            raise errors.Corrupt('ntfs: %s is not a symlink' % inode.path)
        return inode.target

    def lookup(self, dir_inode, name):
        if isinstance(name, str):
            name = name.encode('utf-8', 'surrogatepass')
        try:
            key = name.decode('utf-8', 'surrogatepass').encode(
                'utf-16-le', 'surrogatepass')
        except UnicodeError:
            return None             # no NTFS name is these bytes
        if not key or len(key) > 510:
            return None
        found = self._search(dir_inode, key)
        if found is None:
            return None
        ref, stored = found
        # Reasons name the path as the volume spells it.
        path = '%s\\%s' % (dir_inode.path, stored.decode('utf-16-le',
                                                         'replace'))
        number, seq = ref & REF_MASK, ref >> 48
        f = self._file(number)
        what = 'ntfs: %s' % path
        if not f.flags & MFT_IN_USE or (seq and f.seq != seq):
            raise errors.TornRead('%s: directory entry names record %d, '
                                  'which is free or reused' % (what, number))
        if not any(a.type == AT_FILE_NAME and a.resident
                   and len(a.value) >= 8 and struct.unpack_from(
                       '<Q', a.value, 0)[0] & REF_MASK == dir_inode.number
                   for a in f.attrs):
            raise errors.TornRead('%s: record %d has no name in its '
                                  'directory' % (what, number))
        return self._node(f, path)

    def listdir(self, dir_inode):
        """The Win32/POSIX names of a directory (UTF-8 bytes), in no
        particular order; bounded.  For tests and diagnostics."""
        out = []
        for entry, _child in self._walk_all(dir_inode):
            if entry[2] != NS_DOS:
                out.append(entry[0].decode('utf-16-le', 'surrogatepass')
                           .encode('utf-8', 'surrogatepass'))
                if len(out) > MAX_DIR_ENTRIES:
                    raise errors.LimitReached(
                        'ntfs: directory %s has more than %d entries'
                        % (dir_inode.path or '\\', MAX_DIR_ENTRIES))
        return out

    # ------------------------------------------------------ directories

    def _upcased(self, utf16):
        table = self._upcase_table()
        units = array('H')
        units.frombytes(utf16)
        if sys.byteorder == 'big':
            units.byteswap()
        return [table[u] for u in units]

    def _upcase_table(self):
        if self._upcase is None:
            what = 'ntfs: $UpCase'
            f = self._file(UPCASE_RECORD)
            resident, stream = self._data(f, b'', what)
            data = stream.read_at(0, stream.size) if stream else resident
            if data is None or len(data) != UPCASE_BYTES:
                raise errors.Corrupt('%s is not a 128 KiB table' % what)
            table = array('H')
            table.frombytes(data)
            if sys.byteorder == 'big':
                table.byteswap()
            self._upcase = table
        return self._upcase

    def _index(self, dir_inode):
        """(root entries, index block size, INDX Stream or None)."""
        f = dir_inode.file
        what = 'ntfs: directory %s' % (dir_inode.path or '\\')
        roots = [a for a in f.attrs if a.type == AT_INDEX_ROOT
                 and a.name == I30]
        if len(roots) != 1 or not roots[0].resident:
            raise errors.Corrupt('%s has no $I30 index root' % what)
        value = roots[0].value
        if len(value) < 32:
            raise errors.Corrupt('%s: index root too short' % what)
        atype, collation, block_size = struct.unpack_from('<III', value, 0)
        if atype != AT_FILE_NAME or collation != COLLATION_FILE_NAME:
            raise errors.Corrupt('%s: index root is not of file names'
                                 % what)
        if not 512 <= block_size <= 65536 or block_size & (block_size - 1):
            raise errors.Corrupt('%s: index block size %d is not valid'
                                 % (what, block_size))
        entries = _entries(value, 16, len(value), what)
        allocation = [a for a in f.attrs if a.type == AT_INDEX_ALLOCATION
                      and a.name == I30]
        stream = (self._stream_of(allocation, what + ' index')
                  if allocation else None)
        return entries, block_size, stream, what

    def _node_entries(self, stream, block_size, vcn, what):
        # VCNs count clusters, or 512-byte blocks when an index block is
        # smaller than a cluster.
        unit = (self.cluster_size if block_size >= self.cluster_size
                else FIXUP_STRIDE)
        if stream is None:
            raise errors.Corrupt('%s: index points below its root but has '
                                 'no allocation' % what)
        offset = vcn * unit
        if vcn < 0 or offset + block_size > stream.size:
            raise errors.Corrupt('%s: index block %d is past its '
                                 'allocation' % (what, vcn))
        node_what = '%s index block %d' % (what, vcn)
        block = apply_fixups(bytearray(stream.read_at(offset, block_size)),
                             b'INDX', node_what)
        if struct.unpack_from('<q', block, 16)[0] != vcn:
            raise errors.Corrupt('%s names itself block %d' % (
                node_what, struct.unpack_from('<q', block, 16)[0]))
        return _entries(block, 24, block_size, node_what)

    def _search(self, dir_inode, key):
        """(MFT reference, stored name) of the first entry of ``dir_inode``
        named ``key`` (UTF-16LE) ignoring case, not a DOS-only name; in
        collation order, as Windows finds it."""
        root, block_size, stream, what = self._index(dir_inode)
        want = self._upcased(key)
        visited = set()

        def search(entries, depth):
            for name, ref, namespace, child in entries:
                if name is None:            # the last entry
                    return descend(child, depth)
                upper = self._upcased(name)
                if upper < want:
                    continue
                found = descend(child, depth)
                if found is not None:
                    return found
                if upper == want and namespace != NS_DOS:
                    return ref, name
                if upper != want:
                    return None
            return None

        def descend(child, depth):
            if child is None:
                return None
            if child in visited:
                raise errors.Corrupt('%s: index loops (block %d twice)'
                                     % (what, child))
            visited.add(child)
            if depth >= MAX_INDEX_DEPTH:
                raise errors.Corrupt('%s: index deeper than %d levels'
                                     % (what, MAX_INDEX_DEPTH))
            if len(visited) > MAX_INDEX_NODES:
                raise errors.LimitReached('%s: more than %d index blocks '
                                          'for one name'
                                          % (what, MAX_INDEX_NODES))
            return search(self._node_entries(stream, block_size, child,
                                             what), depth + 1)

        return search(root, 0)

    def _walk_all(self, dir_inode):
        """Every entry of a directory's index (name, ref, namespace)."""
        root, block_size, stream, what = self._index(dir_inode)
        visited = set()
        out = []
        pending = [(root, 0)]
        while pending:
            entries, depth = pending.pop()
            for name, ref, namespace, child in entries:
                if child is not None:
                    if child in visited:
                        raise errors.Corrupt('%s: index loops (block %d '
                                             'twice)' % (what, child))
                    visited.add(child)
                    if depth >= MAX_INDEX_DEPTH:
                        raise errors.Corrupt('%s: index deeper than %d '
                                             'levels' % (what,
                                                         MAX_INDEX_DEPTH))
                    pending.append((self._node_entries(
                        stream, block_size, child, what), depth + 1))
                if name is not None:
                    out.append(((name, ref, namespace), child))
                    if len(out) > MAX_DIR_ENTRIES:
                        raise errors.LimitReached(
                            '%s has more than %d entries'
                            % (what, MAX_DIR_ENTRIES))
        return out


def _entries(buf, header_at, limit, what):
    """[(UTF-16LE name or None for the last entry, MFT reference,
    namespace, child VCN or None)] of an index node whose index header
    is at ``buf[header_at:]`` and which must end by ``limit``."""
    if header_at + 16 > limit:
        raise errors.Corrupt('%s: index header past its node' % what)
    first, length, _allocated = struct.unpack_from('<III', buf, header_at)
    pos, end = header_at + first, header_at + length
    if first < 16 or first & 7 or end > limit or pos > end:
        raise errors.Corrupt('%s: bad index header' % what)
    out = []
    while True:
        if pos + 16 > end:
            raise errors.Corrupt('%s: index node has no last entry' % what)
        ref, size, key_length, flags = struct.unpack_from('<QHHH', buf, pos)
        child_room = 8 if flags & ENTRY_NODE else 0
        if size < 16 + child_room or size & 7 or pos + size > end:
            raise errors.Corrupt('%s: bad index entry' % what)
        child = None
        if flags & ENTRY_NODE:
            child = struct.unpack_from('<q', buf, pos + size - 8)[0]
        if flags & ENTRY_END:
            out.append((None, 0, 0, child))
            return out
        key_at = pos + 16
        if key_length < 0x42 or 16 + key_length + child_room > size:
            raise errors.Corrupt('%s: index key outside its entry' % what)
        name_length, namespace = buf[key_at + 0x40], buf[key_at + 0x41]
        if 0x42 + 2 * name_length > key_length or not name_length:
            raise errors.Corrupt('%s: file name outside its key' % what)
        name = bytes(buf[key_at + 0x42:key_at + 0x42 + 2 * name_length])
        out.append((name, ref, namespace, child))
        pos += size


def _relative_target(data, what):
    """The target of a relative symbolic link reparse point as a path
    with '/' separators, or None for an absolute one."""
    if len(data) < 20:
        raise errors.Corrupt('%s: symlink reparse data too short' % what)
    sub_off, sub_len, _p_off, _p_len, flags = struct.unpack_from(
        '<HHHHI', data, 8)
    if not flags & SYMLINK_FLAG_RELATIVE:
        return None
    start = 20 + sub_off
    if sub_len & 1 or start + sub_len > len(data) or sub_len > MAX_SYMLINK:
        raise errors.Corrupt('%s: symlink target outside its data' % what)
    target = data[start:start + sub_len].decode('utf-16-le',
                                                'surrogatepass')
    return target.replace('\\', '/').encode('utf-8', 'surrogatepass')
