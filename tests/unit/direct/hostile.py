"""Helpers for the readers' hostile-input tests: real images with bytes
flipped where a clean read looks (hypothesis), shared by the block,
volume, filesystem and hive tests."""

from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.block import source as S
from ceilometer_os_pollster.direct.filesystem import filesystems
from ceilometer_os_pollster.direct.filesystem import fs

MiB = 1 << 20

# Up to 8 (position, byte) flips; positions are mapped onto the bytes a
# clean read looked at by patches_at().
FLIPS = st.lists(st.tuples(st.integers(0, 1 << 32), st.integers(0, 255)),
                 min_size=1, max_size=8)


def fuzz(max_examples=100):
    """hypothesis settings for a fuzz test: reproducible (derandomized,
    no example database), no deadline (real images on a loaded CI)."""
    return settings(max_examples=max_examples, deadline=None,
                    derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


FUZZ = fuzz()


class Charged(S.Source):
    """Bytes in memory, charged to a Budget as a FileSource would be."""

    def __init__(self, data, budget, name='fuzzed'):
        self.data, self.budget, self.name = bytes(data), budget, name
        self.size = len(self.data)

    def _read(self, offset, length):
        self.budget.charge(length)
        return self.data[offset:offset + length]


class Patched(S.Source):
    """``parent`` with some bytes replaced: {offset: bytes}.  Reads go
    through the parent, so its Budget is charged as for the real disk."""

    def __init__(self, parent, patches):
        self.parent = parent
        self.size = parent.size
        self.name = 'patched'
        self.patches = dict(patches)

    def _read(self, offset, length):
        data = bytearray(self.parent.read_at(offset, length))
        for at, new in self.patches.items():
            start = max(at, offset)
            end = min(at + len(new), offset + length)
            if start < end:
                data[start - offset:end - offset] = new[start - at:end - at]
        return bytes(data)


class Spy(S.Source):
    """Records the (offset, length) of every read."""

    def __init__(self, parent):
        self.parent = parent
        self.size = parent.size
        self.name = 'spy'
        self.reads = []

    def _read(self, offset, length):
        self.reads.append((offset, length))
        return self.parent.read_at(offset, length)


def clean_reads(image, read):
    """The (offset, length) reads that ``read(source, budget)`` makes of
    the unmodified ``image``: where the fuzz tests flip bytes."""
    budget = S.Budget()
    with S.FileSource(str(image), budget) as disk:
        spy = Spy(disk)
        read(spy, budget)
    return spy.reads


def patches_at(reads, flips):
    """{offset: byte} from hypothesis' (position, value) pairs: each
    position is taken modulo the bytes a clean run read, so every flip
    lands where the reader looks."""
    spans = sorted({(offset, length) for offset, length in reads if length})
    total = sum(length for _, length in spans)
    patches = {}
    for position, value in flips:
        position %= total
        for offset, length in spans:
            if position < length:
                patches[offset + position] = bytes([value])
                break
            position -= length
    return patches


def read_flipped(image, patches, read, limit=8 * MiB, source=Patched):
    """``read(source, budget)`` on ``image`` seen through ``source(disk,
    patches)`` (Patched, or a variant that reseals checksums), within a
    budget of ``limit`` bytes: (what it returned, or the DirectError it
    ended with; the bytes the budget was charged)."""
    budget = S.Budget(limit)
    with S.FileSource(str(image), budget) as disk:
        try:
            outcome = read(source(disk, patches), budget)
        except errors.DirectError as exc:
            outcome = exc
    return outcome, budget.used


def read_files(*paths):
    """A ``read`` for read_flipped: open whichever filesystem is there
    and read each of ``paths`` (4 KiB); [] when none is recognised."""
    def read(source, budget):
        found = filesystems.open_filesystem(source, budget)
        if found is None:
            return []
        return [fs.read_file(found, path, 4096) for path in paths]
    return read


def ended_cleanly(outcome):
    """A reader of flipped bytes ended as it must: with a DirectError
    that says why, or with file contents (bytes) or None for each read,
    never another exception (read_flipped lets those through)."""
    if isinstance(outcome, errors.DirectError):
        return bool(outcome.reason)
    return all(result is None or isinstance(result, bytes)
               for result in outcome)
