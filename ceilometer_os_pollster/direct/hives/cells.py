"""A registry hive file's base block, hive bins and cells, read bounded.

``Cells(source, name)`` checks the base block (magic, major version 1,
the header checksum hivex checks, that the hive bins fit in the file,
the first hive bin) and then reads cells on demand through a page cache:
``_cell(offset, want, what)`` is a used cell's size and payload, its
offset relative to the first hive bin at 0x1000 and checked against the
hive bins' size before it is followed.  ``regf.Hive`` reads keys and
values out of them.

A structure that does not hold together in a dirty hive (the two base
block sequence numbers differ) is a TornRead: Windows may be writing
the primary file right now; in a clean one it is Corrupt.  Bytes read
from the source are bounded.
"""

import struct

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.block import source as source_mod

BASE_BLOCK = 0x1000
HBIN_HEADER = 0x20
PAGE = 0x1000

# Bytes of the hive fetched from the source (real SOFTWARE hives
# are 50-100 MiB, a lookup reads a few hundred KiB of them).
MAX_HIVE_BYTES = 32 << 20
# Pages kept in memory at once; older ones are read again if needed.
MAX_CACHED_PAGES = 4096


class Cells:
    """The cells of one hive file, read through ``source`` (a
    direct.source.Source).

    ``name`` says which hive in reasons ('SOFTWARE').
    """

    def __init__(self, source, name='hive', max_bytes=MAX_HIVE_BYTES):
        self.source = source
        self.name = name
        self.max_bytes = max_bytes
        self.bytes_read = 0
        self._pages = {}
        self._base_block()

    def _fail(self, cls, message, *args):
        reason = 'regf: %s: %s' % (self.name, message % args)
        if cls is errors.Corrupt and getattr(self, 'dirty', False):
            # Windows marks the base block dirty before it writes the
            # primary file and clean after: what does not hold together
            # in a dirty hive may be a write in progress (a live disk).
            raise errors.TornRead(reason + ' (the hive is being written)')
        raise cls(reason)

    def _read(self, offset, length):
        """``length`` bytes at ``offset`` in the file, through pages."""
        if offset < 0 or length < 0 or offset + length > self.source.size:
            self._fail(errors.Corrupt, 'read of %d bytes at %d is past the '
                       'end of the file', length, offset)
        out = []
        end = offset + length
        while offset < end:
            page, inner = divmod(offset, PAGE)
            data = self._page(page)
            take = min(end - offset, len(data) - inner)
            if take <= 0:
                self._fail(errors.Corrupt, 'short page at %d', offset)
            out.append(data[inner:inner + take])
            offset += take
        return b''.join(out)

    def _page(self, number):
        data = self._pages.get(number)
        if data is not None:
            return data
        start = number * PAGE
        length = min(PAGE, self.source.size - start)
        if self.bytes_read + length > self.max_bytes:
            self._fail(errors.LimitReached, 'read more than %d MiB of the '
                       'hive', self.max_bytes >> 20)
        self.bytes_read += length
        data = self.source.read_at(start, length)
        if len(self._pages) >= MAX_CACHED_PAGES:
            self._pages.clear()
        self._pages[number] = data
        return data

    def _base_block(self):
        if self.source.size < BASE_BLOCK + HBIN_HEADER:
            self._fail(errors.Corrupt, 'file of %d bytes is too small for '
                       'a hive', self.source.size)
        base = self._read(0, BASE_BLOCK)
        if base[:4] != b'regf':
            self._fail(errors.Unsupported, 'not a registry hive (no "regf" '
                       'signature)')
        (self.sequence1, self.sequence2, _, self.major, self.minor,
         self.file_type, self.file_format, root, hbins) = struct.unpack_from(
             '<IIqIIIIII', base, 4)
        if self.major != 1:
            self._fail(errors.Unsupported, 'format version %d.%d (only '
                       '1.x is read)', self.major, self.minor)
        words = struct.unpack_from('<127I', base)
        checksum = 0
        for word in words:
            checksum ^= word
        if checksum != struct.unpack_from('<I', base, 0x1fc)[0]:
            self._fail(errors.Corrupt, 'base block checksum mismatch')
        self.dirty = self.sequence1 != self.sequence2
        if hbins < HBIN_HEADER or BASE_BLOCK + hbins > self.source.size:
            self._fail(errors.Corrupt, 'hive bins of %d bytes do not fit in '
                       'the file (%d bytes): truncated', hbins,
                       self.source.size)
        self.hbins_size = hbins
        first = self._read(BASE_BLOCK, HBIN_HEADER)
        magic, offset, size = struct.unpack_from('<4sII', first)
        if magic != b'hbin' or offset != 0 or size < PAGE or size % PAGE:
            self._fail(errors.Corrupt, 'first hive bin header is invalid')
        self.root_offset = root

    def _cell(self, offset, want, what):
        """(cell size, the first ``want`` payload bytes, or the whole
        payload if ``want`` is None) of the used cell at ``offset``."""
        if offset % 4 or offset < HBIN_HEADER or offset + 4 > self.hbins_size:
            self._fail(errors.Corrupt, '%s at cell offset 0x%x is outside '
                       'the hive bins', what, offset)
        (size,) = struct.unpack('<i', self._read(BASE_BLOCK + offset, 4))
        if size >= 0:
            self._fail(errors.Corrupt, '%s at 0x%x is a free cell', what,
                       offset)
        size = -size
        if size < 8 or offset + size > self.hbins_size:
            self._fail(errors.Corrupt, '%s at 0x%x has an invalid size %d',
                       what, offset, size)
        payload = size - 4
        if want is None:
            want = payload
        if want > payload:
            self._fail(errors.Corrupt, '%s at 0x%x does not fit in its cell',
                       what, offset)
        if want > source_mod.MAX_READ:
            self._fail(errors.LimitReached, '%s at 0x%x is a cell of %d '
                       'bytes', what, offset, size)
        return size, self._read(BASE_BLOCK + offset + 4, want)
