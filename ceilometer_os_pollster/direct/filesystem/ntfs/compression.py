"""NTFS-compressed data: LZNT1 in compression units of 16 clusters of
at most 4 KiB, decompressed a unit at a time, each unit's output capped
at its size.
"""

import bisect

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.block import source as source_mod

LZNT1_CHUNK = 4096


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
