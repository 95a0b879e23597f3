"""The direct method: an instance's disks read by our own readers.

``inspect(specs, stage)`` runs in the inspection worker, like the
appliance, and returns the same ``raw_facts.ApplianceFacts``, so one
policy (``facts``) bills whatever read the disks.  The stack, each layer
a window over the one below: the disk (a host file or block device, raw
or qcow2 along the chain ``overlay.local_tree`` pins, or an nbd or rbd
export (``network``), formats never
probed) -> its partition table (or none) -> LVM physical volumes and
their logical volumes -> a filesystem (ext2/3/4, XFS, NTFS, btrfs) ->
the Linux or Windows facts (the registry read by ``regf``).  Device
names follow the appliance's (/dev/sda2, /dev/VG/LV, and a btrfs volume
as libguestfs 1.48's list_filesystems lists it: the device for its
default subvolume, btrfsvol:/dev/sda2/PATH for each other subvolume),
so roots and reasons read alike.  A Linux root's billing inputs are
read through the mounts its /etc/fstab makes (``mounts``), as the
appliance path mounts it.

Anything it does not read (an iscsi or gluster disk, md-raid,
multi-device or RAID btrfs, an unknown filesystem, an unsupported LV) or
a bound it reaches raises an
``errors.DirectError``: the worker falls back to the appliance
(``inspection_method = auto``) or reports it (``direct``).

Opening the drives and finding their volumes is ``disks``'s; this
module lists the filesystems on the volumes and finds the roots.
"""

import contextlib

from ceilometer_os_pollster.families import facts
from ceilometer_os_pollster.storage import overlay
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster.direct.filesystem import btrfs
from ceilometer_os_pollster.direct import disks as disks_mod
from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import filesystems
from ceilometer_os_pollster.direct.filesystem import identify as id_mod
from ceilometer_os_pollster.direct import linux_root
from ceilometer_os_pollster.direct import mounts
from ceilometer_os_pollster.direct.block import source as source_mod
from ceilometer_os_pollster.direct import windows_root

# Partitions and logical volumes looked at per inspection; a real guest
# has a handful.  More falls back to the appliance (which bounds itself).
MAX_VOLUMES = 128
# Roots of filesystems kept: as many as the appliance reads in detail;
# more is a limit (billed as the dearest product, like the appliance's).
# btrfs subvolume roots fill the rest, without a limit (facts.kept_roots).
MAX_ROOTS = 16
# Subvolumes of one btrfs volume checked as roots (each a few tree
# lookups); SUSE's snapper keeps tens.  More, on the disk where the
# billed root could be, is a limit.
MAX_SUBVOLUMES = 256
# GPT partition types that hold no filesystem by design.
_NO_FILESYSTEM_TYPES = (
    '21686148-6449-6e6f-744e-656564454649',     # BIOS boot (grub's core)
    'e3c9e316-0b5c-4db8-817d-f92df00215ae',     # Microsoft reserved
)


class _Listed:
    """One filesystem list_filesystems would list: a volume, or a btrfs
    subvolume ('btrfsvol:/dev/sda2/@/var'); ``fs`` is None for the ones
    that hold no OS (swap, vfat, nothing)."""

    def __init__(self, device, disk_index, fs=None, kind=''):
        self.device = device
        self.disk_index = disk_index
        self.fs = fs
        self.kind = kind


class _Btrfs:
    """One btrfs volume: its device name and reader."""

    def __init__(self, device, volume):
        self.device = device
        self.volume = volume


class _Disks:
    """What the volumes of one inspection hold, for roots and mounts."""

    def __init__(self):
        self.listed = []            # [_Listed], list_filesystems' order
        self.ids = {}               # ('UUID'|'LABEL', value) -> device
        self.btrfs = []             # [_Btrfs]
        # (device, disk index, count) of volumes with more subvolumes
        # than MAX_SUBVOLUMES: the rest were not read.
        self.unread = []

    def add_ids(self, volume, kind):
        uuid, label = id_mod.fs_ids(volume.source, kind)
        for tag, value in (('UUID', uuid), ('LABEL', label)):
            if value:
                self.ids.setdefault((tag, value), volume.device)

    def resolve(self, tag, value):
        return self.ids.get((tag, value))

    def devices(self):
        return {item.device for item in self.listed}

    def open_mountable(self, name):
        """The Filesystem the appliance would mount for ``name`` (a
        device or btrfsvol:DEVICE/PATH), or None when that mount would
        fail."""
        for item in self.listed:
            if item.device == name:
                return item.fs
        if not name.startswith('btrfsvol:'):
            return None
        rest = name[len('btrfsvol:'):]
        for vol in self.btrfs:
            if rest.startswith(vol.device + '/'):
                # mount -o subvol=PATH: a path from the top level.
                subvolume = vol.volume.subvolume_at(
                    rest[len(vol.device) + 1:])
                return (vol.volume.subvolume(subvolume)
                        if subvolume is not None else None)
        return None


def _list_volume(volume, budget, disks, result, pvs):
    """Look at one volume: count it, note encryption, remember a PV,
    and list what it holds (a filesystem, or a btrfs volume's default
    subvolume and its other subvolumes)."""
    kind = id_mod.identify(volume.source)
    if kind in (id_mod.LUKS, id_mod.BITLOCKER):
        result.encrypted_devices.append(volume.device)
        result.encrypted_types[volume.device] = id_mod.VFS_TYPES[kind]
        return
    if kind == id_mod.LVM:
        pvs.append(volume)
        return
    if kind == id_mod.EMPTY or (kind is None and volume.part_type
                                in _NO_FILESYSTEM_TYPES):
        disks.listed.append(_Listed(volume.device, volume.disk_index))
        return
    if kind in (id_mod.SWAP, id_mod.VFAT):
        result.filesystems += 1
        disks.add_ids(volume, kind)
        disks.listed.append(_Listed(volume.device, volume.disk_index,
                                    kind=kind))
        return
    if kind == id_mod.BTRFS:
        _list_btrfs(volume, budget, disks, result)
        return
    if kind not in (id_mod.EXT, id_mod.XFS, id_mod.NTFS):
        raise id_mod.unsupported(kind, volume.device)
    filesystem = filesystems.open_filesystem(volume.source, budget)
    if filesystem is None:
        raise id_mod.unsupported(None, volume.device)
    result.filesystems += 1
    disks.add_ids(volume, kind)
    disks.listed.append(_Listed(volume.device, volume.disk_index,
                                filesystem, kind))


def _list_btrfs(volume, budget, disks, result):
    """A btrfs volume as list_filesystems lists it: the device itself
    (its default subvolume), then every other subvolume as
    btrfsvol:DEVICE/PATH, at most MAX_SUBVOLUMES of them."""
    reader = btrfs.Filesystem(volume.source, budget)
    vol = _Btrfs(volume.device, reader)
    disks.btrfs.append(vol)
    disks.add_ids(volume, id_mod.BTRFS)
    default = reader.default_subvolume()
    others = [(s, p) for s, p, _, _ in reader.subvolumes() if s != default]
    result.filesystems += 1 + len(others)
    disks.listed.append(_Listed(volume.device, volume.disk_index, reader,
                                id_mod.BTRFS))
    if len(others) > MAX_SUBVOLUMES:
        disks.unread.append((volume.device, volume.disk_index,
                             len(others)))
    for subvolume, path in others[:MAX_SUBVOLUMES]:
        disks.listed.append(_Listed(
            'btrfsvol:%s/%s' % (volume.device, path), volume.disk_index,
            reader.subvolume(subvolume), id_mod.BTRFS))


def _linux_roots(disks):
    """RootFacts of the Linux roots, as libguestfs' inspect_os finds
    them: each root's own release files and arch, merged with a separate
    /usr its fstab mounts; the billing inputs read through the mounts
    its fstab makes (guest_files.mount_root)."""
    candidates, usrs = [], []
    for item in disks.listed:
        if item.fs is None:
            continue
        data = linux_root.check_linux_root(item.fs)
        if data is not None:
            candidates.append((item, data))
            continue
        usr = linux_root.check_linux_usr(item.fs)
        if usr is not None:
            usrs.append((item.device, usr))
    roots = {}
    devices = disks.devices()
    for item, data in candidates:
        entries = mounts.read_fstab(item.fs)
        mountpoints = mounts.mountpoints(entries, item.device,
                                         disks.resolve, devices)
        # libguestfs' collect_linux_inspection_info: the first /usr
        # filesystem this root's fstab mounts anywhere.
        named = {device for _, device in mountpoints}
        for device, usr in usrs:
            if device in named:
                linux_root.merge(usr, data)
                break
        tree = _mounted_tree(item, dict(mountpoints), disks)
        roots[item.device] = linux_root.root_facts(
            data, item.device, item.disk_index, tree)
    return roots


def _mounted_tree(item, mountpoints, disks):
    """The root as guest_files.mount_root mounts it, or None when its
    fstab mounts nothing at '/'."""
    chosen = sorted(mountpoints.items(),
                    key=lambda pair: len(pair[0]))[:mounts.MAX_MOUNTS]
    if not chosen or chosen[0][0] != '/':
        return None
    root = disks.open_mountable(chosen[0][1])
    if root is None:
        raise errors.Unsupported(
            '%s: /etc/fstab mounts %s at /, which is not read directly'
            % (item.device, chosen[0][1][:100]))
    return mounts.Tree(root, {
        path: (lambda name=name: disks.open_mountable(name))
        for path, name in chosen[1:]})


def _all_roots(disks, linux, result):
    """Every root in list_filesystems' order: the Linux ones found
    already, the Windows ones looked for on every other filesystem."""
    roots = []
    for item in disks.listed:
        if item.device in linux:
            roots.append(linux[item.device])
            continue
        if item.fs is None:
            continue
        root = windows_root.windows_root(item.fs, item.device,
                                         item.disk_index)
        if root is not None:
            for hive in windows_root.dirty_hives(root):
                result.warnings.append(
                    '%s %s hive not closed cleanly: read as it is'
                    % (item.device, hive))
            roots.append(root)
    return roots


def inspect(specs, stage=None, budget=None, max_filesystems=None,
            network=None):
    """ApplianceFacts of ``specs`` (boot disk first), read directly;
    raises errors.DirectError when the appliance must do it.
    ``max_filesystems``: the [os_inspection] option of that name;
    ``network``: see disks.disk_source (without it, network disks are the
    appliance's)."""
    stage = stage or (lambda name: None)
    budget = budget or source_mod.Budget()
    result = raw_facts.ApplianceFacts(drives=len(specs))
    with contextlib.ExitStack() as stack:
        stage('reading disks directly')
        volumes = []
        for index, spec in enumerate(specs):
            if spec.encryption:
                result.encrypted_devices.append(spec.target)
                result.encrypted_types[spec.target] = raw_facts.LUKS
                continue
            try:
                disk = disks_mod.disk_source(spec, budget, stack, network)
            except overlay.EncryptedImage:
                result.encrypted_devices.append(spec.target)
                result.encrypted_types[spec.target] = raw_facts.LUKS
                continue
            volumes.extend(disks_mod.partition_volumes(index, disk))
        disks = _Disks()
        pvs = []
        seen = 0
        while volumes:
            seen += len(volumes)
            if seen > MAX_VOLUMES:
                raise errors.LimitReached(
                    'more than %d partitions and logical volumes'
                    % MAX_VOLUMES)
            for volume in volumes:
                _list_volume(volume, budget, disks, result, pvs)
            volumes, pvs = (disks_mod.logical_volumes(pvs) if pvs
                            else []), []
        roots = _all_roots(disks, _linux_roots(disks), result)
        if len(roots) > 1 and any(windows_root.inspection_fails(r)
                                  for r in roots):
            # libguestfs fails inspect_os for the whole handle then, and
            # the appliance path scans every filesystem by hand: let it.
            raise errors.Unsupported(
                'a Windows root libguestfs cannot inspect beside other '
                'roots')
        _limits(disks, roots, result, max_filesystems)
        result.roots, limited = facts.kept_roots(roots, MAX_ROOTS)
        if limited:
            result.limits.append('%d roots, more than %d read'
                                 % (len(roots), MAX_ROOTS))
        elif len(result.roots) < len(roots):
            result.warnings.append('%d roots read, the %d dearest kept'
                                   % (len(roots), len(result.roots)))
    return result


def _limits(disks, roots, result, max_filesystems):
    """The bounds that may hide the billed root."""
    listed = len(disks.listed)
    if max_filesystems and listed > max_filesystems:
        # The appliance path's bound on libguestfs' own walk, kept so
        # one option bills a flood alike whichever method reads it.
        result.limits.append('%d filesystems and subvolumes, more than '
                             'max_filesystems %d'
                             % (listed, max_filesystems))
    boot_root = any(root.disk_index == 0 for root in roots)
    for device, disk_index, count in disks.unread:
        if disk_index == 0 or not boot_root:
            result.limits.append(
                'btrfs %s: %d subvolumes, more than %d read'
                % (device, count, MAX_SUBVOLUMES))
