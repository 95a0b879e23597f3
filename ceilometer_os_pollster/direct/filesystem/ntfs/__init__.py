"""NTFS, read-only: what the direct method needs of it (Windows roots).

Owns the on-disk structures (the Linux-NTFS documentation and ntfs-3g's
``layout.h``): the boot sector, MFT records with their update-sequence
fixups, attribute lists (a file's attributes spread over several
records), resident and non-resident attributes with data runs (sparse
runs read as zeros), and directory lookup through the ``$I30`` index
(``$INDEX_ROOT`` and the INDX blocks of ``$INDEX_ALLOCATION``), compared
case-insensitively with the volume's own ``$UpCase`` table as Windows
does.  Every number read is checked against the volume's geometry before
it is followed; runs, records, index nodes and depths are bounded, and
no index block or extension record is visited twice.

Names.  ``lookup(dir, name)`` takes the bytes of one path component as
``fs.resolve`` splits it: UTF-8 (lone surrogates allowed, as in WTF-8),
turned into UTF-16 and compared with the names of the Win32 and POSIX
namespaces.  DOS 8.3 names (``PROGRA~1``) never match: the appliance
path (ntfs-3g's readdir, libguestfs' case-insensitive path walk) does
not see them either, and both methods must give the same answers.  A
component that is not valid UTF-8 matches nothing.  Hard links are
several names of one record; alternate data streams are ignored.

Kinds.  A reparse point that is a relative symbolic link is a 'symlink'
(its target with '/' separators); other symbolic links and junctions
name drive letters we cannot map, so they are 'other'.  A file with any
other reparse tag (WOF, deduplication, cloud files) or whose ``$DATA``
is encrypted is a 'file' whose read is Unsupported, with its path in
the reason: a hive we cannot read must fall back to the appliance,
never look absent.  NTFS-compressed ``$DATA`` (LZNT1 in units of 16
clusters of at most 4 KiB) is decompressed, a unit at a time, each
unit's output capped at its size.

Beyond ``fs.Filesystem``: ``open_stream(node)`` gives a file's data as
a Source to read piecewise (a registry hive larger than one wants in
memory), ``listdir(node)`` a directory's names (bounded), and a node's
``path`` is the path as the volume spells it, for reasons.

Live disks: a fixup mismatch (a record or index block written while we
read it), a directory entry naming a record that is free, reused (its
sequence number changed) or no longer has a name in that directory is a
TornRead.  The $LogFile is not replayed.  Everything is little-endian.

The parts, each owning its structures: ``layout`` (record numbers,
attribute types and flags every part shares), ``records`` (the boot
sector, fixups, MFT records and attribute lists), ``attributes``
(attribute records, data runs, streams, a file's $DATA),
``compression`` (LZNT1), ``directories`` (the $I30 index and $UpCase)
and ``files`` (``Filesystem``: nodes, kinds, lookups, reads).
"""

# What the rest of the reader stack and the tests use, from its parts.
from ceilometer_os_pollster.direct.filesystem.ntfs.attributes import \
    ATTR_COMPRESSION_MASK
from ceilometer_os_pollster.direct.filesystem.ntfs.attributes import \
    ATTR_ENCRYPTED
from ceilometer_os_pollster.direct.filesystem.ntfs.attributes import Attribute
from ceilometer_os_pollster.direct.filesystem.ntfs.attributes import Stream
from ceilometer_os_pollster.direct.filesystem.ntfs.attributes import \
    decode_runs
from ceilometer_os_pollster.direct.filesystem.ntfs.attributes import \
    parse_attributes
from ceilometer_os_pollster.direct.filesystem.ntfs.compression import \
    CompressedStream
from ceilometer_os_pollster.direct.filesystem.ntfs.compression import lznt1
from ceilometer_os_pollster.direct.filesystem.ntfs.directories import ENTRY_END
from ceilometer_os_pollster.direct.filesystem.ntfs.directories import \
    ENTRY_NODE
from ceilometer_os_pollster.direct.filesystem.ntfs.files import Filesystem
from ceilometer_os_pollster.direct.filesystem.ntfs.files import \
    IO_REPARSE_TAG_MOUNT_POINT
from ceilometer_os_pollster.direct.filesystem.ntfs.files import \
    IO_REPARSE_TAG_SYMLINK
from ceilometer_os_pollster.direct.filesystem.ntfs.files import Node
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import \
    AT_ATTRIBUTE_LIST
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import AT_DATA
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import AT_END
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import AT_FILE_NAME
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import \
    AT_INDEX_ALLOCATION
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import AT_INDEX_ROOT
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import \
    AT_REPARSE_POINT
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import \
    AT_STANDARD_INFORMATION
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import MFT_DIRECTORY
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import MFT_IN_USE
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import MFT_RECORD
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import ROOT_RECORD
from ceilometer_os_pollster.direct.filesystem.ntfs.layout import UPCASE_RECORD
from ceilometer_os_pollster.direct.filesystem.ntfs.records import BootSector
from ceilometer_os_pollster.direct.filesystem.ntfs.records import File
from ceilometer_os_pollster.direct.filesystem.ntfs.records import apply_fixups
from ceilometer_os_pollster.direct.filesystem.ntfs.records import probe

__all__ = [
    'apply_fixups', 'AT_ATTRIBUTE_LIST', 'AT_DATA', 'AT_END', 'AT_FILE_NAME',
    'AT_INDEX_ALLOCATION', 'AT_INDEX_ROOT', 'AT_REPARSE_POINT',
    'AT_STANDARD_INFORMATION', 'ATTR_COMPRESSION_MASK', 'ATTR_ENCRYPTED',
    'Attribute', 'BootSector', 'CompressedStream', 'decode_runs', 'ENTRY_END',
    'ENTRY_NODE', 'File', 'Filesystem', 'IO_REPARSE_TAG_MOUNT_POINT',
    'IO_REPARSE_TAG_SYMLINK', 'lznt1', 'MFT_DIRECTORY', 'MFT_IN_USE',
    'MFT_RECORD', 'Node', 'parse_attributes', 'probe', 'ROOT_RECORD', 'Stream',
    'UPCASE_RECORD',
]
