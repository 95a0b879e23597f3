"""What the appliance path mounts for a Linux root, read directly.

The appliance reads a root's billing inputs (os-release, SUSE's base
product) after ``guest_files.mount_root``: the mountpoints libguestfs
1.48 took from the root's ``/etc/fstab`` (``inspect_get_mountpoints``),
'/' first.  So a btrfs snapshot whose fstab mounts the running system's
subvolume at '/' shows the running system's os-release there, a Fedora
root named ``btrfsvol:/dev/sda2/root`` is read through ``subvol=root``,
and a separate /usr filesystem supplies ``/usr/lib/os-release``.

``fstab_entries`` parses the file as Augeas' fstab lens does (a line it
cannot parse empties the whole file); ``mountpoints`` turns entries into
libguestfs' (mountable, mountpoint) pairs, with ``UUID=``/``LABEL=``
and guest device names resolved by the caller's ``resolve`` and btrfs
``subvol=`` options turned into ``btrfsvol:`` names (libguestfs'
check_fstab); ``Tree`` is a Filesystem seen through those mounts, for
``fs.resolve`` and ``fs.read_file``.  Pure: the caller opens the
filesystems.
"""

import re

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs as fs_mod

# An fstab larger than this is not one a real guest has; the appliance
# would parse it: let it.
MAX_FSTAB = 1 << 20
# Filesystems mounted for one root (guest_files.MAX_MOUNTS).
MAX_MOUNTS = 32

_IGNORED_SPECS = re.compile(r'^(/dev/fd[0-9]|/dev/cd[0-9]|/dev/floppy$|'
                            r'/dev/cdrom$|/dev/iso9660/)')
_IGNORED_MOUNTPOINTS = ('/dev', '/media', '/proc', '/selinux', '/sys')
_NUMBER = re.compile(r'^[0-9]+$')
# /dev/vdb1, /dev/xvda2, /dev/hda1: the appliance calls every disk sdX.
_XDEV = re.compile(r'^/dev/(?:h|s|v|xv)d([a-z]+)([0-9]*)$')


def canonical_path(path):
    """'///usr//local//' -> '/usr/local' (libguestfs' unix_canonical_path)."""
    absolute = path.startswith('/')
    parts = [p for p in path.split('/') if p]
    text = '/'.join(parts)
    return '/' + text if absolute else text


def fstab_entries(data):
    """[(spec, file, vfstype, [(option, value or None)])] of an fstab, as
    Augeas reads it: comments and blank lines skipped; spec, file and
    vfstype required, then options, dump and passno.  A line that does
    not parse makes the whole file unreadable ([]), as in Augeas."""
    entries = []
    for line in bytes(data).decode('utf-8', 'replace').split('\n'):
        fields = line.split('#', 1)[0].split()
        if not fields:
            continue
        if len(fields) < 3 or len(fields) > 6 or not all(
                _NUMBER.match(f) for f in fields[4:]):
            return []
        options = []
        if len(fields) > 3:
            for option in fields[3].split(','):
                name, equals, value = option.partition('=')
                options.append((name, value if equals else None))
        entries.append((fields[0], fields[1], fields[2], options))
    return entries


def _shell_unquote(value):
    if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
        return value[1:-1]
    return value


def guest_device(spec, devices):
    """The appliance's name of a guest device name (libguestfs'
    resolve_fstab_device, the cases a KVM guest has): /dev/vdb1 ->
    /dev/sdb1 when that exists, /dev/mapper/VG-LV -> /dev/VG/LV;
    anything else unchanged."""
    match = _XDEV.match(spec)
    if match:
        name = '/dev/sd%s%s' % match.groups()
        return name if name in devices else spec
    if spec.startswith('/dev/mapper/'):
        rest = spec[len('/dev/mapper/'):]
        # LVM doubles a '-' inside a name; a single '-' separates VG, LV.
        pieces = re.split(r'(?<!-)-(?!-)', rest)
        if len(pieces) == 2 and all(pieces):
            name = '/dev/%s/%s' % tuple(p.replace('--', '-')
                                        for p in pieces)
            if name in devices:
                return name
    return spec


def mountpoints(entries, root_device, resolve, devices=()):
    """libguestfs' inspect_get_mountpoints of a root from its fstab
    entries: [(mountpoint, mountable)], in fstab order.

    ``resolve(tag, value)`` names the device holding a filesystem whose
    UUID or LABEL (tag 'UUID', 'LABEL') is value, or None (the entry is
    then dropped, as findfs failing drops it); guest device names go
    through guest_device (``devices``: the appliance's device names).
    No entry left: the root alone at '/'."""
    found = []
    for spec, path, vfstype, options in entries:
        if _IGNORED_SPECS.match(spec):
            continue
        path = canonical_path(path)
        if any(path == p or path.startswith(p + '/')
               for p in _IGNORED_MOUNTPOINTS):
            continue
        if spec.startswith('UUID=') or spec.startswith('LABEL='):
            tag, _, value = spec.partition('=')
            device = resolve(tag, _shell_unquote(value))
            if device is None:
                continue
        elif spec == '/dev/root':
            device = root_device
        elif spec.startswith('/dev/'):
            device = guest_device(spec, devices)
        else:
            continue                # tmpfs, proc, /.swap ...
        if vfstype == 'btrfs' and not device.startswith('btrfsvol:'):
            for name, value in options:
                if name == 'subvol' and value is not None:
                    device = 'btrfsvol:%s/%s' % (device, value)
                    break
        found.append((path, device))
    mounts = [(path, device) for path, device in found
              if path.startswith('/')]
    return mounts if found else [('/', root_device)]


class _Handle:
    __slots__ = ('fs', 'inode', 'path')

    def __init__(self, fs, inode, path):
        self.fs, self.inode, self.path = fs, inode, path


class Tree(fs_mod.Filesystem):
    """A root filesystem with others mounted on its directories.

    ``mounts`` maps a mountpoint ('/usr') to a function returning the
    Filesystem mounted there (or None: that mount failed, the directory
    below shows).  A mountpoint only takes effect on an existing
    directory, and a path is matched by its components as walked
    (fs.resolve keeps the parents itself), as the kernel mounts them."""

    def __init__(self, root_fs, mounts=None):
        self.kind = root_fs.kind
        self.root = _Handle(root_fs, root_fs.root, ())
        self._mounts = {}
        for path, opener in (mounts or {}).items():
            key = tuple(p.encode('utf-8', 'surrogateescape')
                        for p in canonical_path(path).split('/') if p)
            if key:
                self._mounts[key] = opener
        self._opened = {}

    def _mounted(self, path):
        if path not in self._opened:
            self._opened[path] = self._mounts[path]()
        return self._opened[path]

    def lookup(self, dir_handle, name):
        inode = dir_handle.fs.lookup(dir_handle.inode, name)
        if inode is None:
            return None
        path = dir_handle.path + (bytes(name),)
        if (path in self._mounts
                and dir_handle.fs.kind_of(inode) == fs_mod.DIRECTORY):
            mounted = self._mounted(path)
            if mounted is not None:
                return _Handle(mounted, mounted.root, path)
        return _Handle(dir_handle.fs, inode, path)

    def kind_of(self, handle):
        return handle.fs.kind_of(handle.inode)

    def read(self, handle, limit):
        return handle.fs.read(handle.inode, limit)

    def size(self, handle):
        return handle.fs.size(handle.inode)

    def readlink(self, handle):
        return handle.fs.readlink(handle.inode)

    def key(self, handle):
        return (id(handle.fs), handle.fs.key(handle.inode))


def read_fstab(fs):
    """The fstab entries of a root filesystem ([] when absent)."""
    inode = fs_mod.resolve(fs, '/etc/fstab')
    if inode is None or fs.kind_of(inode) != fs_mod.FILE:
        return []
    if fs.size(inode) > MAX_FSTAB:
        raise errors.LimitReached('/etc/fstab is larger than %d bytes'
                                  % MAX_FSTAB)
    return fstab_entries(fs.read(inode, MAX_FSTAB))
