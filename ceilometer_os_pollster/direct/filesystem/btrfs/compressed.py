"""btrfs compressed extents: zlib, zstd (the zstandard module) and lzo,
in btrfs' lzo framing over LZO1X streams decoded by our own pure-Python
code; every output capped.
"""

import struct
import zlib

from ceilometer_os_pollster.direct import errors

try:                                        # see pyproject.toml
    import zstandard
except ImportError:                         # pragma: no cover - host dependent
    zstandard = None

COMPRESS_NONE, COMPRESS_ZLIB, COMPRESS_LZO, COMPRESS_ZSTD = 0, 1, 2, 3


def decompress(compression, raw, cap, what, sectorsize=4096):
    """At most ``cap`` bytes decompressed from one extent's ``raw``
    bytes; more is Corrupt (the extent expands beyond its size)."""
    if compression == COMPRESS_ZLIB:
        try:
            d = zlib.decompressobj()
            out = d.decompress(bytes(raw), cap)
        except zlib.error as e:
            raise errors.Corrupt('%s: zlib extent does not inflate: %s'
                                 % (what, e))
        if d.unconsumed_tail and d.decompress(d.unconsumed_tail, 1):
            raise errors.Corrupt('%s: zlib extent expands beyond its %d '
                                 'bytes' % (what, cap))
        return out
    if compression == COMPRESS_ZSTD:
        if zstandard is None:
            raise errors.Unsupported('%s: zstd-compressed extents need the '
                                     'Python module zstandard, which is '
                                     'not installed' % what)
        try:
            dctx = zstandard.ZstdDecompressor(max_window_size=1 << 20)
            # One frame, then the sector's padding: one read past the
            # cap ends at the frame's end (read_across_frames=False).
            reader = dctx.stream_reader(bytes(raw), read_across_frames=False)
            out = reader.read(cap + 1)
        except zstandard.ZstdError as e:
            raise errors.Corrupt('%s: zstd extent does not decompress: %s'
                                 % (what, e))
        if len(out) > cap:
            raise errors.Corrupt('%s: zstd extent expands beyond its %d '
                                 'bytes' % (what, cap))
        return out
    if compression == COMPRESS_LZO:
        return _btrfs_lzo(bytes(raw), cap, what, sectorsize)
    raise errors.Corrupt('%s: unknown compression %d' % (what, compression))


def _btrfs_lzo(raw, cap, what, sector):
    """btrfs' lzo framing: a LE32 total length, then segments, each a
    LE32 length and one LZO1X stream of at most a sector (a page in
    older kernels: the same size on the filesystems they could mount);
    a segment's header never straddles a sector (zero padding instead)."""
    if len(raw) < 4:
        raise errors.Corrupt('%s: lzo extent is truncated' % what)
    total = struct.unpack_from('<I', raw, 0)[0]
    if total > len(raw) or total < 4:
        raise errors.Corrupt('%s: lzo extent of %d bytes in %d'
                             % (what, total, len(raw)))
    out = bytearray()
    pos = 4
    while pos < total and len(out) < cap:
        if sector - pos % sector < 4:
            pos += sector - pos % sector
            continue
        if pos + 4 > total:
            raise errors.Corrupt('%s: lzo segment header is truncated'
                                 % what)
        length = struct.unpack_from('<I', raw, pos)[0]
        pos += 4
        if length == 0 or pos + length > total:
            raise errors.Corrupt('%s: lzo segment of %d bytes past the '
                                 'extent' % (what, length))
        out += lzo1x_decompress(raw[pos:pos + length],
                                min(sector, cap - len(out) + 1), what)
        if len(out) > cap:
            raise errors.Corrupt('%s: lzo extent expands beyond its %d '
                                 'bytes' % (what, cap))
        pos += length
    return bytes(out)


def lzo1x_decompress(src, cap, what):
    """An LZO1X stream (bitstream version 0, as the kernel's lzo1x_1
    compressor writes it) decompressed to at most ``cap`` bytes; past
    that, or any malformed instruction, is Corrupt.  Written from the
    format's public description (the kernel's lzo.rst)."""
    out = bytearray()
    n = len(src)
    ip = 0

    def bad(why):
        return errors.Corrupt('%s: lzo stream %s' % (what, why))

    def need(k):
        if ip + k > n:
            raise bad('is truncated')

    def extend(base):
        # A length of 0 continues in following bytes: 255 per zero byte.
        nonlocal ip
        extra = 0
        while True:
            need(1)
            b = src[ip]
            ip += 1
            if b:
                return base + extra + b
            extra += 255

    def literals(k):
        nonlocal ip
        need(k)
        if len(out) + k > cap:
            raise bad('expands beyond %d bytes' % cap)
        out.extend(src[ip:ip + k])
        ip += k

    def match(distance, length):
        if distance <= 0 or distance > len(out):
            raise bad('refers before its start')
        if len(out) + length > cap:
            raise bad('expands beyond %d bytes' % cap)
        start = len(out) - distance
        if distance >= length:
            out.extend(out[start:start + length])
        else:
            chunk = bytes(out[start:])
            out.extend((chunk * (length // distance + 1))[:length])

    need(1)
    state = 0
    if src[0] > 17:
        count = src[0] - 17
        ip = 1
        literals(count)
        state = 4 if count >= 4 else count
    elif src[0] == 17:
        raise bad('of an unknown bitstream version (lzo-rle)')
    while True:
        need(1)
        op = src[ip]
        ip += 1
        if op < 16:
            if state == 0:
                literals(3 + (op or extend(15)))
                state = 4
                continue
            need(1)
            h = src[ip]
            ip += 1
            if state == 4:
                match((h << 2) + (op >> 2) + 2049, 3)
            else:
                match((h << 2) + (op >> 2) + 1, 2)
            trailing = op & 3
        elif op < 32:
            length = 2 + ((op & 7) or extend(7))
            need(2)
            le = src[ip] | src[ip + 1] << 8
            ip += 2
            distance = 16384 + ((op & 8) << 11) + (le >> 2)
            if distance == 16384:
                if length != 3:
                    raise bad('ends with a bad marker')
                return bytes(out)
            match(distance, length)
            trailing = le & 3
        elif op < 64:
            length = 2 + ((op & 31) or extend(31))
            need(2)
            le = src[ip] | src[ip + 1] << 8
            ip += 2
            match((le >> 2) + 1, length)
            trailing = le & 3
        else:
            need(1)
            h = src[ip]
            ip += 1
            if op < 128:
                length = 3 + ((op >> 5) & 1)
            else:
                length = 5 + ((op >> 5) & 3)
            match((h << 3) + ((op >> 2) & 7) + 1, length)
            trailing = op & 3
        if trailing:
            literals(trailing)
        state = trailing
