"""NTFS boot sector and MFT records: the volume's geometry, validated;
update-sequence fixups (a sector written while read is a TornRead);
records parsed into their attributes, with the extension records an
$ATTRIBUTE_LIST names; the $MFT's own data bootstrapped from record 0.
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem.ntfs import attributes
from ceilometer_os_pollster.direct.filesystem.ntfs import layout

OEM_ID = b'NTFS    '
# Fixups protect every 512 bytes of a record, whatever the sector size.
FIXUP_STRIDE = 512

# Bounds a hostile volume can reach.
MAX_ATTRIBUTE_LIST = 256 << 10  # bytes of one $ATTRIBUTE_LIST
MAX_EXTENSIONS = 1024           # extension records of one file
MAX_CACHED = 256                # parsed files kept


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


class File:
    """An MFT record and the attributes of its extension records."""

    __slots__ = ('number', 'seq', 'flags', 'base', 'attrs')


class Records(attributes.Attributes):
    """The MFT records of Filesystem (its ``source``, ``boot``,
    ``cluster_size``, ``record_size``, ``_mft`` and ``_files`` cache)."""

    def _mft_stream(self):
        """The $MFT's data, bootstrapped from record 0 read in place
        (its extension records are found through its first runs)."""
        offset = self.boot.mft_lcn * self.cluster_size
        raw = self.source.read_at(offset, self.record_size)
        base = self._parse_record(raw, layout.MFT_RECORD)
        what = 'ntfs: $MFT'
        first = [a for a in base.attrs
                 if a.type == layout.AT_DATA and not a.name]
        if not first or first[0].resident:
            raise errors.Corrupt('%s has no non-resident data' % what)
        self._mft = self._stream_of(first, what, partial=True)
        data = self._attributes(layout.MFT_RECORD, layout.AT_DATA, b'')
        stream = self._stream_of(data, what)
        if stream.size < (layout.UPCASE_RECORD + 1) * self.record_size:
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
        f.attrs = (attributes.parse_attributes(rec, attrs_offset, used,
                                               number, what)
                   if flags & layout.MFT_IN_USE else [])
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
                                 'file' % (what, f.base & layout.REF_MASK))
        lists = [a for a in f.attrs if a.type == layout.AT_ATTRIBUTE_LIST]
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
            number = ref & layout.REF_MASK
            if number != f.number and number not in wanted:
                wanted.append(number)
                if len(wanted) > MAX_EXTENSIONS:
                    raise errors.LimitReached(
                        '%s: attributes in more than %d records'
                        % (what, MAX_EXTENSIONS))
            pos += length
        attrs = [a for a in f.attrs if a.type != layout.AT_ATTRIBUTE_LIST]
        for number in wanted:
            ext = self._parse_record(self._record_bytes(number), number)
            if not ext.flags & layout.MFT_IN_USE:
                raise errors.TornRead('%s: its extension record %d is free'
                                      % (what, number))
            if ext.base & layout.REF_MASK != f.number:
                raise errors.Corrupt('%s: its attribute list names record '
                                     '%d, which is not its extension'
                                     % (what, number))
            attrs.extend(a for a in ext.attrs
                         if a.type != layout.AT_ATTRIBUTE_LIST)
        return attrs

    def _attributes(self, number, atype, name):
        return [a for a in self._file(number).attrs
                if a.type == atype and a.name == name]
