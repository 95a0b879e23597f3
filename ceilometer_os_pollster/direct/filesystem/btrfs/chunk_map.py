"""The btrfs chunk map: logical to physical addresses on this one
device (single, DUP and RAID1 chunks; other profiles are refused).
"""

import bisect
import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem.btrfs import layout

# Block group (chunk) types and profiles.
BG_DATA, BG_SYSTEM, BG_METADATA = 1, 2, 4
BG_RAID0, BG_RAID1, BG_DUP, BG_RAID10 = 8, 16, 32, 64
BG_RAID5, BG_RAID6, BG_RAID1C3, BG_RAID1C4 = 128, 256, 512, 1024
_REFUSED_PROFILES = ((BG_RAID0, 'RAID0'), (BG_RAID10, 'RAID10'),
                     (BG_RAID5, 'RAID5'), (BG_RAID6, 'RAID6'),
                     (BG_RAID1C3, 'RAID1C3'), (BG_RAID1C4, 'RAID1C4'))

CHUNK = struct.Struct('<QQQQIIIHH')             # 48 bytes
STRIPE = struct.Struct('<QQ16s')                # 32 bytes


class Chunk:
    """One chunk: ``length`` bytes at ``logical`` stored at ``physical``
    of this device (the first of its copies here)."""

    __slots__ = ('logical', 'length', 'physical', 'type', 'copies')

    def __init__(self, logical, length, physical, type_, copies):
        self.logical = logical
        self.length = length
        self.physical = physical
        self.type = type_
        self.copies = copies


def parse_chunk(logical, data, sb, source_size):
    """A Chunk from a CHUNK_ITEM's bytes; (Chunk, bytes used)."""
    if len(data) < CHUNK.size:
        raise errors.Corrupt('btrfs: chunk item at %d is truncated'
                             % logical)
    (length, _, _, type_, _, _, _, num_stripes,
     _) = CHUNK.unpack_from(data, 0)
    used = CHUNK.size + STRIPE.size * num_stripes
    if num_stripes == 0 or used > len(data):
        raise errors.Corrupt('btrfs: chunk at %d has %d stripes'
                             % (logical, num_stripes))
    if length == 0 or length % sb.sectorsize or logical % sb.sectorsize:
        raise errors.Corrupt('btrfs: chunk at %d of %d bytes is not '
                             'aligned' % (logical, length))
    if logical + length > layout.MAX_KEY:
        raise errors.Corrupt('btrfs: chunk at %d wraps' % logical)
    for bit, name in _REFUSED_PROFILES:
        if type_ & bit:
            raise errors.Unsupported('btrfs: %s chunks are read by the '
                                     'appliance' % name)
    copies = []
    for i in range(num_stripes):
        devid, offset, _ = STRIPE.unpack_from(data, CHUNK.size
                                              + STRIPE.size * i)
        if devid != sb.devid:
            raise errors.Unsupported('btrfs: chunk at %d has a stripe on '
                                     'device %d (multi-device btrfs)'
                                     % (logical, devid))
        if offset + length > source_size:
            raise errors.Corrupt('btrfs: chunk at %d is stored past the '
                                 'end of the device' % logical)
        copies.append(offset)
    if num_stripes > 1 and not type_ & (BG_DUP | BG_RAID1):
        raise errors.Corrupt('btrfs: single chunk at %d with %d stripes'
                             % (logical, num_stripes))
    return Chunk(logical, length, copies[0], type_, tuple(copies)), used


class ChunkMap:
    """Logical to physical addresses: sorted, non-overlapping chunks."""

    def __init__(self, chunks):
        chunks = sorted(chunks, key=lambda c: c.logical)
        merged = []
        for chunk in chunks:
            if merged and merged[-1].logical + merged[-1].length \
                    > chunk.logical:
                last = merged[-1]
                if (last.logical, last.length, last.physical) == (
                        chunk.logical, chunk.length, chunk.physical):
                    continue            # the sys array's copy again
                raise errors.Corrupt('btrfs: chunks at %d and %d overlap'
                                     % (last.logical, chunk.logical))
            merged.append(chunk)
        spans = sorted((p, c.length) for c in merged for p in c.copies)
        for (p1, l1), (p2, _) in zip(spans, spans[1:]):
            if p1 + l1 > p2:
                raise errors.Corrupt('btrfs: two chunks are stored at '
                                     'device offset %d' % p2)
        self.chunks = merged
        self._starts = [c.logical for c in merged]

    def find(self, logical):
        i = bisect.bisect_right(self._starts, logical) - 1
        if i >= 0:
            chunk = self.chunks[i]
            if logical < chunk.logical + chunk.length:
                return chunk
        return None

    def physical(self, logical, length, what, copy=0):
        """[(physical, length)] of a logical range, checked: the
        ``copy``-th copy of DUP/RAID1 chunks (the last one if fewer)."""
        out = []
        while length > 0:
            chunk = self.find(logical)
            if chunk is None:
                raise errors.Corrupt('btrfs: %s at logical %d is in no '
                                     'chunk' % (what, logical))
            inner = logical - chunk.logical
            n = min(length, chunk.length - inner)
            base = chunk.copies[min(copy, len(chunk.copies) - 1)]
            out.append((base + inner, n))
            logical += n
            length -= n
        return out
