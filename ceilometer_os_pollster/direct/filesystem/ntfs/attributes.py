"""NTFS attributes: attribute records, resident and non-resident, data
runs (sparse runs read as zeros) decoded and bounded, a non-resident
attribute's bytes as a Source, and a file's $DATA (encrypted refused,
LZNT1-compressed read through ``compression``).
"""

import bisect
import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.block import source as source_mod
from ceilometer_os_pollster.direct.filesystem.ntfs import compression
from ceilometer_os_pollster.direct.filesystem.ntfs import layout

# Bounds a hostile volume can reach.
MAX_RUNS = 65536                # data runs of one attribute, all extents

# Attribute flags (sparse files may have a compression unit too: only
# the flag says a stream is compressed).
ATTR_COMPRESSION_MASK = 0x00FF
COMPRESSION_LZNT1 = 0x0001
ATTR_ENCRYPTED = 0x4000


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
        if atype == layout.AT_END:
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


class Attributes:
    """The attribute streams of Filesystem (its ``source``, ``boot`` and
    ``cluster_size``)."""

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
        extents = [a for a in f.attrs
                   if a.type == layout.AT_DATA and a.name == name]
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
        return compression.CompressedStream(raw, 1 << first.compression_unit,
                                            stream.size, stream.initialized,
                                            what)
