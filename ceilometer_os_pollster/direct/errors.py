"""Why a direct reader stopped: the only exceptions the reader stack raises.

Every layer (block sources, qcow2, partition tables, LVM, filesystems)
ends with one of these when it cannot or will not go on.  ``reason`` is
short, public and operator-actionable; the caller turns it into the
fallback to the appliance and the record's reason, so it never escapes.
"""


class DirectError(Exception):
    """A layer stopped; ``reason`` is short, public, operator-actionable
    ('xfs: directory /etc has more than 100000 entries')."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class Unsupported(DirectError):
    """Not something we read (falls back to the appliance)."""


class LimitReached(DirectError):
    """A bound was hit (falls back)."""


class Corrupt(DirectError):
    """A structure is invalid or loops (falls back)."""


class TornRead(DirectError):
    """A structure changed under the reader (live disk): retry once, then
    fall back."""
