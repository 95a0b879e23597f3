"""Filesystems read directly: the interface every filesystem module
implements and the path walker over it (``filesystems`` chooses the
module for a volume).

A filesystem module (``ext4``, ``xfs``) has a cheap ``probe(source)``
(magic only) and a ``Filesystem`` class: ``kind``, ``root`` (the root
directory's inode handle), ``lookup(dir, name)``, ``kind_of(inode)``,
``read(inode, limit)``, ``size(inode)`` and ``readlink(inode)``.  The
OS-facts modules ask for files by path through ``resolve`` and
``read_file`` only, so symlinks are followed the same way for every
filesystem: inside the guest's filesystem ('/' is its root, '..' stops
there), at most MAX_HOPS of them, loops named as such.

``extent_bytes`` is shared by the modules: a file's bytes from a list of
extents, holes and unwritten extents read as zeros.
"""

import os

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.block import source as source_mod

# Symlinks followed in one resolution: Linux's own limit (MAXSYMLINKS).
MAX_HOPS = 40
# A symlink target longer than PATH_MAX is not one the guest's kernel
# would follow either.
MAX_LINK = 4096
# Path components waiting to be walked (each hop adds its target's).
MAX_COMPONENTS = 4096

FILE, DIRECTORY, SYMLINK, OTHER = 'file', 'dir', 'symlink', 'other'


class Filesystem:
    """What every filesystem module provides (see the module docstring).

    Inode handles are the module's own objects; callers only pass them
    back.  ``key(inode)`` names an inode uniquely (for loop detection);
    by default a handle carries its ``kind`` and ``size``.
    """

    kind = ''
    root = None

    def lookup(self, dir_inode, name):
        raise NotImplementedError

    def kind_of(self, inode):
        """The handle's ``kind`` (FILE, DIRECTORY, SYMLINK or OTHER)."""
        return inode.kind

    def read(self, inode, limit):
        raise NotImplementedError

    def size(self, inode):
        """The handle's ``size`` in bytes."""
        return inode.size

    def readlink(self, inode):
        raise NotImplementedError

    def key(self, inode):
        return inode


# Directory entry file types (ext4's FILETYPE and XFS' ftype agree) by
# the inode mode's type bits.
_ENTRY_TYPES = {0x8000: 1, 0x4000: 2, 0x2000: 3, 0x6000: 4, 0x1000: 5,
                0xC000: 6, 0xA000: 7}


# POSIX file types in an inode's mode (ext2/3/4 and XFS alike).
S_IFMT = 0xF000
_MODE_KINDS = {0x8000: FILE, 0x4000: DIRECTORY, 0xA000: SYMLINK}


def kind_of_mode(mode):
    """FILE, DIRECTORY, SYMLINK or OTHER for an inode's POSIX mode."""
    return _MODE_KINDS.get(mode & S_IFMT, OTHER)


def check_entry_type(fs_kind, name, entry_type, mode):
    """TornRead when a directory entry's file type (0: not recorded)
    is not its inode's: the directory or the inode changed while we read
    them (a live disk), or the inode was reused."""
    if entry_type and _ENTRY_TYPES.get(mode & S_IFMT) != entry_type:
        raise errors.TornRead('%s: directory entry %r does not match its '
                              'inode' % (fs_kind, name[:64].decode(
                                  'utf-8', 'replace')))


def _components(path):
    if isinstance(path, str):
        path = os.fsencode(path)
    return [c for c in bytes(path).split(b'/') if c and c != b'.']


def resolve(fs, path, follow_last=True, max_hops=MAX_HOPS):
    """The inode at ``path`` in ``fs``, or None when absent.

    Absolute symlink targets start again at the filesystem's root, '..'
    never climbs above it, and a directory's own '..' entry is never
    trusted (the walker keeps its own stack of parents).  More than
    ``max_hops`` symlinks is LimitReached, or Corrupt when a symlink
    came round again (a loop).  A component under a non-directory is
    absent, as ENOTDIR would make it.
    """
    pending = list(reversed(_components(path)))
    stack = [fs.root]
    hops = 0
    seen_links = set()
    looped = False
    while pending:
        name = pending.pop()
        if name == b'..':
            if len(stack) > 1:
                stack.pop()
            continue
        current = stack[-1]
        if fs.kind_of(current) != DIRECTORY:
            return None
        inode = fs.lookup(current, name)
        if inode is None:
            return None
        kind = fs.kind_of(inode)
        if kind == SYMLINK and (pending or follow_last):
            hops += 1
            link_key = fs.key(inode)
            looped = looped or link_key in seen_links
            seen_links.add(link_key)
            if hops > max_hops:
                if looped:
                    raise errors.Corrupt('%s: symlink loop at %s' % (
                        fs.kind, _show(path)))
                raise errors.LimitReached(
                    '%s: more than %d symlinks to follow for %s' % (
                        fs.kind, max_hops, _show(path)))
            target = fs.readlink(inode)
            if not target:
                return None             # ENOENT, as Linux says
            if target.startswith(b'/'):
                stack = [fs.root]
            parts = _components(target)
            if len(pending) + len(parts) > MAX_COMPONENTS:
                raise errors.LimitReached(
                    '%s: more than %d path components to walk for %s' % (
                        fs.kind, MAX_COMPONENTS, _show(path)))
            pending.extend(reversed(parts))
            continue
        stack.append(inode)
    return stack[-1]


def _show(path):
    if isinstance(path, bytes):
        path = path.decode('utf-8', 'replace')
    return repr(str(path)[:200])


def read_file(fs, path, limit):
    """At most ``limit`` bytes of the regular file at ``path`` (symlinks
    followed), or None when absent or not a regular file."""
    inode = resolve(fs, path)
    if inode is None or fs.kind_of(inode) != FILE:
        return None
    return fs.read(inode, limit)


def kind_at(fs, path, follow_last=True):
    """'file', 'dir', 'symlink', 'other' or None (absent)."""
    inode = resolve(fs, path, follow_last=follow_last)
    return None if inode is None else fs.kind_of(inode)


def readlink_at(fs, path):
    """The target of the symlink at ``path`` (bytes), or None."""
    inode = resolve(fs, path, follow_last=False)
    if inode is None or fs.kind_of(inode) != SYMLINK:
        return None
    return fs.readlink(inode)


def extent_bytes(source, block_size, extents, size, limit, what):
    """The first min(size, limit) bytes of a file whose data is
    ``extents``: (logical block, physical block, blocks, unwritten), in
    any order.  Holes and unwritten extents read as zeros.  Physical
    blocks are checked against ``source``'s size before reading."""
    want = max(0, min(size, limit))
    if want > source_mod.MAX_READ:
        raise errors.LimitReached('%s: reading %d bytes of one file is more '
                                  'than %d' % (what, want,
                                               source_mod.MAX_READ))
    out = bytearray(want)
    for logical, physical, count, unwritten in extents:
        start = logical * block_size
        if unwritten or start >= want or count <= 0:
            continue
        length = min(count * block_size, want - start)
        offset = physical * block_size
        if offset + length > source.size:
            raise errors.Corrupt('%s: data extent at block %d is past the '
                                 'end of the filesystem' % (what, physical))
        pos = 0
        while pos < length:
            n = min(length - pos, source_mod.MAX_READ)
            out[start + pos:start + pos + n] = source.read_at(offset + pos, n)
            pos += n
    return bytes(out)
