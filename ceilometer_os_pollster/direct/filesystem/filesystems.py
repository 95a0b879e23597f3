"""Which filesystem module reads a volume.

``open_filesystem(source, budget)`` asks each module's cheap ``probe``
(magic numbers only) and opens the volume with the first that
recognises it.  Kept apart from ``fs`` (the interface the modules
implement), so that no module imports the modules that import it.
"""

from ceilometer_os_pollster.direct.filesystem import btrfs
from ceilometer_os_pollster.direct.filesystem import ext4
from ceilometer_os_pollster.direct.filesystem import ntfs
from ceilometer_os_pollster.direct.filesystem import xfs

MODULES = (ext4, xfs, ntfs, btrfs)


def open_filesystem(source, budget):
    """The Filesystem on ``source`` (a Source), or None when no module
    recognises its magic.  A recognised but unreadable filesystem raises
    its DirectError (Unsupported, Corrupt...)."""
    for module in MODULES:
        if module.probe(source):
            return module.Filesystem(source, budget)
    return None
