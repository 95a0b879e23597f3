"""Random access to bytes: the one interface every direct reader reads through.

A ``Source`` has a ``size`` and ``read_at(offset, length)``, which returns
exactly ``length`` bytes or raises (Go's io.ReaderAt, without short
reads).  Layers stack: a partition is a ``Window`` of a disk, a linear LV
a ``Concat`` of windows of its PVs, a striped LV a ``Striped`` set of
them, a qcow2 disk a Source over its file.  Only the bottom of the stack
(``FileSource``, or another protocol's source) touches the host and
charges the inspection's ``Budget``, so the bytes read by one inspection
are bounded however the layers above combine.
"""

import bisect
import os

from ceilometer_os_pollster.direct.errors import Corrupt
from ceilometer_os_pollster.direct.errors import LimitReached
from ceilometer_os_pollster.direct.errors import Unsupported

MiB = 1 << 20

# One read_at never asks for more than this: no layer can make us
# allocate more than this at once because a tenant wrote a large length.
MAX_READ = 16 * MiB


class Budget:
    """Bytes a whole inspection may read (shared by every layer)."""

    def __init__(self, max_bytes=64 * MiB):
        if max_bytes < 0:
            raise ValueError('max_bytes must not be negative')
        self.max_bytes = max_bytes
        self.used = 0

    def charge(self, n):
        """Account ``n`` bytes about to be read; refuse past the cap."""
        if n < 0:
            raise ValueError('cannot charge a negative byte count')
        if self.used + n > self.max_bytes:
            raise LimitReached('read more than %s of the disks'
                               % _human(self.max_bytes))
        self.used += n


def _human(n):
    if n % MiB == 0:
        return '%d MiB' % (n // MiB)
    return '%d bytes' % n


class Source:
    """Random access to bytes: size and read_at.  read_at(offset, length)
    returns exactly `length` bytes or raises Corrupt (past the end)/
    LimitReached (budget).  Lengths are capped (MAX_READ per call).

    Subclasses set ``size`` and implement ``_read``, which is only called
    with a range already checked to lie inside ``[0, size)``.
    """

    size = 0
    # What the source is, for reasons ('disk vda', 'partition 2').
    name = 'disk'

    def read_at(self, offset, length):
        check_range(self, offset, length)
        if length == 0:
            return b''
        data = self._read(offset, length)
        if len(data) != length:
            # A file or device shrank under us, or a layer is wrong.
            raise Corrupt('%s: short read of %d bytes at offset %d'
                          % (self.name, length, offset))
        return data

    def _read(self, offset, length):
        raise NotImplementedError

    def __repr__(self):
        return '<%s %s size=%d>' % (type(self).__name__, self.name,
                                    self.size)


def check_range(source, offset, length):
    """Raise unless ``[offset, offset+length)`` is a readable range."""
    if not isinstance(offset, int) or not isinstance(length, int):
        raise TypeError('offset and length must be integers')
    if offset < 0 or length < 0:
        raise Corrupt('%s: negative offset or length (%d, %d)'
                      % (source.name, offset, length))
    if length > MAX_READ:
        raise LimitReached('%s: one read of %d bytes is more than %s'
                           % (source.name, length, _human(MAX_READ)))
    if offset + length > source.size:
        raise Corrupt('%s: read of %d bytes at offset %d is past its end '
                      '(%d bytes)' % (source.name, length, offset,
                                      source.size))


class FileSource(Source):
    """A local file or block device, opened read-only.

    No lock is taken (running guests hold qemu's locks) and nothing is
    ever written.  Every read is charged to the Budget first.
    """

    def __init__(self, path, budget, name=None):
        self.path = path
        self.budget = budget
        self.name = name or os.fspath(path)
        flags = os.O_RDONLY | os.O_CLOEXEC | getattr(os, 'O_NOCTTY', 0)
        try:
            self._fd = os.open(path, flags)
        except OSError as e:
            raise Corrupt('%s: cannot open: %s' % (self.name, e.strerror))
        try:
            # lseek gives the size of block devices too (fstat says 0).
            self.size = os.lseek(self._fd, 0, os.SEEK_END)
        except OSError as e:
            os.close(self._fd)
            self._fd = None
            raise Corrupt('%s: cannot find its size: %s'
                          % (self.name, e.strerror))

    def _read(self, offset, length):
        if self._fd is None:
            raise ValueError('read from a closed FileSource')
        self.budget.charge(length)
        chunks = []
        done = 0
        while done < length:
            try:
                chunk = os.pread(self._fd, length - done, offset + done)
            except OSError as e:
                raise Corrupt('%s: read error at offset %d: %s'
                              % (self.name, offset + done, e.strerror))
            if not chunk:
                break
            chunks.append(chunk)
            done += len(chunk)
        return b''.join(chunks)

    def current_size(self):
        """The size now (a live disk's file grows): tells a torn read
        from a corrupt one."""
        if self._fd is None:
            return self.size
        try:
            return os.fstat(self._fd).st_size or self.size
        except OSError:
            return self.size

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BytesSource(Source):
    """Bytes already in memory (tests, decompressed data).  Not charged:
    whatever produced the bytes was."""

    def __init__(self, data, name='bytes'):
        self._data = bytes(data)
        self.size = len(self._data)
        self.name = name

    def _read(self, offset, length):
        return self._data[offset:offset + length]


class Window(Source):
    """Window(parent, offset, size): a partition / region of ``parent``.

    The region must lie inside the parent (a partition table that says
    otherwise is Corrupt).  Windows of windows read the bottom directly.
    """

    def __init__(self, parent, offset, size, name=None):
        if not isinstance(offset, int) or not isinstance(size, int):
            raise TypeError('offset and size must be integers')
        if offset < 0 or size < 0 or offset + size > parent.size:
            raise Corrupt('%s: region of %d bytes at offset %d is outside '
                          'it (%d bytes)' % (parent.name, size, offset,
                                             parent.size))
        while isinstance(parent, Window):
            offset += parent.offset
            parent = parent.parent
        self.parent = parent
        self.offset = offset
        self.size = size
        self.name = name or '%s@%d' % (parent.name, offset)

    def _read(self, offset, length):
        return self.parent.read_at(self.offset + offset, length)


class Concat(Source):
    """Sources one after the other (the segments of a linear LV)."""

    def __init__(self, parts, name='concat'):
        self.parts = [p for p in parts if p.size > 0]
        self.name = name
        self._starts = []
        pos = 0
        for part in self.parts:
            self._starts.append(pos)
            pos += part.size
        self.size = pos

    def _read(self, offset, length):
        out = []
        i = bisect.bisect_right(self._starts, offset) - 1
        while length > 0:
            part = self.parts[i]
            inner = offset - self._starts[i]
            n = min(length, part.size - inner)
            out.append(part.read_at(inner, n))
            offset += n
            length -= n
            i += 1
        return b''.join(out)


class Striped(Source):
    """Chunks of ``stripe_size`` bytes dealt round-robin over ``stripes``
    (an LVM striped segment, device-mapper's dm-stripe).

    Chunk k of the whole is chunk k // n of stripe k % n.  Every stripe
    has the same size, a multiple of ``stripe_size``.
    """

    def __init__(self, stripes, stripe_size, name='striped'):
        stripes = list(stripes)
        self.name = name
        if not stripes:
            raise Corrupt('%s: no stripes' % name)
        if stripe_size <= 0:
            raise Corrupt('%s: stripe size %d is not positive'
                          % (name, stripe_size))
        each = stripes[0].size
        if any(s.size != each for s in stripes):
            raise Corrupt('%s: stripes of different sizes' % name)
        if each % stripe_size:
            raise Unsupported('%s: stripe of %d bytes is not a multiple of '
                              'the stripe size %d' % (name, each,
                                                      stripe_size))
        self.stripes = stripes
        self.stripe_size = stripe_size
        self.size = each * len(stripes)

    def _read(self, offset, length):
        n = len(self.stripes)
        out = []
        while length > 0:
            chunk, inner = divmod(offset, self.stripe_size)
            stripe = self.stripes[chunk % n]
            take = min(length, self.stripe_size - inner)
            out.append(stripe.read_at(
                (chunk // n) * self.stripe_size + inner, take))
            offset += take
            length -= take
        return b''.join(out)
