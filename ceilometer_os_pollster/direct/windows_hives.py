"""The hives of a Windows root read directly: opening them, and the
billing values read in them.

``open_hive`` gives a regf.Hive over a hive file: cell by cell when the
filesystem's ``open_stream(inode)`` gives a random-access Source of a
file, else the whole file read, up to MAX_HIVE_FILE.
``read_software_hive`` reads the values the bill needs with the lists
``windows`` and ``sqlserver`` keep for both inspection methods
(CurrentVersion values; every SQL Server instance through
``sqlserver.sql_editions``, with its bound and fail-safe), decoded by
``guest_formats.registry_value``, so the policy sees the same RootFacts
as the appliance path's ``inspection.guest_files.read_software_hive``
gives.  ``find_software_hive`` is the hand scan's (a SOFTWARE hive
under ``windows.SYSTEM_ROOTS``).  A dirty hive is read as it is (as
hivex reads it); ``dirty_hives(root)`` names the ones that were.
"""

from ceilometer_os_pollster.direct.block import source as source_mod
from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod
from ceilometer_os_pollster.direct.hives import regf
from ceilometer_os_pollster.families import guest_formats
from ceilometer_os_pollster.families import sqlserver
from ceilometer_os_pollster.families import windows

# A hive read whole when the filesystem cannot serve random access.
MAX_HIVE_FILE = source_mod.MAX_READ
# Bytes of a hive whose base block and root key only are checked.
HIVE_HEAD = 64 * 1024
# The reasons of dirty hives read, by RootFacts (kept beside the facts:
# RootFacts has no field for it).
_DIRTY = '_direct_dirty_hives'


def dirty_hives(root):
    """Names of the hives read although their base block said they were
    not flushed cleanly (for the record's reason); [] for none."""
    return list(getattr(root, _DIRTY, ()))


def hive_file(fs, path):
    """The inode of a hive file at ``path`` (no symlink at the end, as
    libguestfs' is_file), or None."""
    inode = fs_mod.resolve(fs, path, follow_last=False)
    if inode is None or fs.kind_of(inode) != fs_mod.FILE:
        return None
    return inode


class _Prefix(source_mod.Source):
    """The first bytes of a file, standing for the whole of it: enough
    for a hive's base block and root key."""

    def __init__(self, data, size, name):
        self._data, self.size, self.name = data, size, name

    def _read(self, offset, length):
        if offset + length > len(self._data):
            raise errors.LimitReached('windows: %s hive read past its first '
                                      '%d KiB' % (self.name,
                                                  len(self._data) // 1024))
        return self._data[offset:offset + length]


def open_hive(fs, inode, name, head_only=False):
    """A regf.Hive over the file ``inode`` of ``fs`` (``head_only``: its
    base block and root key are all that will be read)."""
    opener = getattr(fs, 'open_stream', None)
    if opener is not None:
        source = opener(inode)
    elif head_only:
        source = _Prefix(fs.read(inode, HIVE_HEAD), fs.size(inode), name)
    else:
        size = fs.size(inode)
        if size > MAX_HIVE_FILE:
            raise errors.LimitReached(
                'windows: %s hive of %d bytes is more than %d MiB to read '
                'whole' % (name, size, MAX_HIVE_FILE >> 20))
        source = source_mod.BytesSource(fs.read(inode, size), name=name)
    return regf.Hive(source, name)


def note_dirty(root, hive):
    if hive.dirty:
        seen = getattr(root, _DIRTY, [])
        if hive.name not in seen:
            seen.append(hive.name)
        setattr(root, _DIRTY, seen)


def read_software_hive(hive, root=None):
    """inspection.guest_files.read_software_hive over a regf.Hive:
    (CurrentVersion values, SQL Server editions, whether the instance
    list was read to its end)."""
    if root is not None:
        note_dirty(root, hive)
    values = {}
    current = hive.key(windows.CURRENT_VERSION)
    if current is not None:
        for name in windows.WINDOWS_VALUES:
            value = _value(hive, current, name)
            if value is not None:
                values[name] = value
    editions, complete = sqlserver.sql_editions(
        _instance_names(hive),
        lambda server, instance: _instance_edition(hive, server, instance))
    return values, editions, complete


def _value(hive, key, name):
    # registry_value looks at no more than this.
    found = hive.value(key, name, guest_formats.MAX_VALUE_BYTES)
    if found is None:
        return None
    return guest_formats.registry_value(*found)


def _instance_names(hive):
    for path in sqlserver.SQL_SERVER_KEYS:
        server = hive.key(path)
        names = server
        for name in sqlserver.INSTANCE_NAMES:
            names = hive.child(names, name) if names is not None else None
        if names is None:
            continue
        for value in hive.values(names):
            data = hive.data(value, guest_formats.MAX_VALUE_BYTES)
            yield server, guest_formats.registry_value(value.type, data)


def _instance_edition(hive, server, instance):
    node = hive.child(server, instance)
    setup = (hive.child(node, sqlserver.SETUP) if node is not None
             else None)
    return (_value(hive, setup, sqlserver.EDITION_VALUE)
            if setup is not None else None)


def find_software_hive(fs):
    """inspection.guest_files.find_software_hive: the SOFTWARE hive's
    inode under /Windows or /WINNT (a regular file, symlinks followed),
    or None."""
    for systemroot in windows.SYSTEM_ROOTS:
        path = systemroot + windows.SOFTWARE_HIVE
        if fs_mod.kind_at(fs, path, follow_last=False) == fs_mod.FILE:
            return fs_mod.resolve(fs, path, follow_last=False)
    return None
