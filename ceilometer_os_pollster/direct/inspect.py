"""The direct method: an instance's disks read by our own readers.

``inspect(specs, stage)`` runs in the inspection worker, like the
appliance, and returns the same ``raw_facts.ApplianceFacts``, so one
policy (``facts``) bills whatever read the disks.  The stack, each layer
a window over the one below: the disk (a host file or block device, raw
or qcow2 along the chain ``overlay.local_tree`` pins, or an nbd or rbd
export (``network``), formats never
probed) -> its partition table (or none) -> LVM physical volumes and
their logical volumes -> a filesystem (ext2/3/4, XFS, NTFS) -> the Linux
or Windows facts (the registry read by ``regf``).  Device names
follow the appliance's (/dev/sda2, /dev/VG/LV) so reasons read alike.

Anything it does not read (an iscsi or gluster disk, btrfs, md-raid, an
unknown filesystem, an unsupported LV) or a bound it reaches raises an
``errors.DirectError``: the worker falls back to the appliance
(``inspection_method = auto``) or reports it (``direct``).
"""

import contextlib

from ceilometer_os_pollster import drives
from ceilometer_os_pollster import overlay
from ceilometer_os_pollster import raw_facts
from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct import filesystems
from ceilometer_os_pollster.direct import identify as id_mod
from ceilometer_os_pollster.direct import linux_root
from ceilometer_os_pollster.direct import lvm
from ceilometer_os_pollster.direct import network as network_mod
from ceilometer_os_pollster.direct import partitions
from ceilometer_os_pollster.direct import qcow2
from ceilometer_os_pollster.direct import source as source_mod
from ceilometer_os_pollster.direct import windows_root

# Partitions and logical volumes looked at per inspection; a real guest
# has a handful.  More falls back to the appliance (which bounds itself).
MAX_VOLUMES = 128
# Roots read: as many as the appliance reads in detail; more is a limit
# (billed as the dearest product, like the appliance's).
MAX_ROOTS = 16
# GPT partition types that hold no filesystem by design.
_NO_FILESYSTEM_TYPES = (
    '21686148-6449-6e6f-744e-656564454649',     # BIOS boot (grub's core)
    'e3c9e316-0b5c-4db8-817d-f92df00215ae',     # Microsoft reserved
)


class _Volume:
    """One place a filesystem may be: a whole disk, a partition, an LV."""

    def __init__(self, device, disk_index, source, part_type=''):
        self.device = device
        self.disk_index = disk_index
        self.source = source
        self.part_type = part_type


def disk_name(index):
    """The appliance's name of the index-th disk: /dev/sda, ..., /dev/sdz,
    /dev/sdaa ..."""
    letters = ''
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord('a') + rest) + letters
    return '/dev/sd' + letters


def _node_source(node, budget, stack, depth=0):
    """A Source for one pinned node (overlay.local_tree's tree)."""
    protocol = node['file']
    base = source_mod.FileSource(protocol['filename'], budget)
    stack.callback(base.close)
    if node['driver'] == 'raw':
        return base
    below = node.get('backing')
    backing = (_node_source(below, budget, stack, depth + 1)
               if below is not None else None)
    return qcow2.open_qcow2(base, backing)


def disk_source(spec, budget, stack, network=None):
    """The guest-visible bytes of one drive, or raises Unsupported.
    ``network`` (a network.NetworkDisks) opens nbd and rbd drives."""
    if (spec.kind == drives.KIND_NETWORK and network is not None
            and spec.protocol in network_mod.PROTOCOLS):
        # The format from the domain XML, never probed.  A qcow2 image
        # naming a backing file there is the appliance's (whose header we
        # cannot pin a chain from): open_qcow2 refuses it.
        fmt = spec.format
        if fmt not in ('raw', 'qcow2'):
            raise errors.Unsupported('%s: disk format %s not supported'
                                     % (spec.target, spec.format[:16]))
        base = network.open(spec, budget, stack)
        if fmt == 'raw':
            return base
        return qcow2.open_qcow2(base, None)
    if spec.kind not in (drives.KIND_FILE, drives.KIND_BLOCK):
        raise errors.Unsupported('%s: %s disks are read by the appliance'
                                 % (spec.target, spec.protocol or spec.kind))
    try:
        tree = overlay.local_tree(spec.path, spec.format)
    except overlay.EncryptedImage:
        raise
    except overlay.OverlayError as exc:
        raise errors.Unsupported(str(exc)) from None
    return _node_source(tree, budget, stack)


def _partitions(index, disk):
    """The volumes of one disk: its partitions, or the whole disk."""
    name = disk_name(index)
    table = partitions.read_table(disk)
    if table is None:
        return [_Volume(name, index, disk)]
    volumes = []
    for part in table.partitions:
        if part.container:
            continue
        device = '%s%d' % (name, part.number)
        volumes.append(_Volume(device, index, source_mod.Window(
            disk, part.start, part.size, name=device), part.type.lower()))
    return volumes


def _read_volume(volume, budget, result, pvs):
    """Look at one volume: count it, note encryption, remember a PV,
    and return its RootFacts when it is a Linux root."""
    kind = id_mod.identify(volume.source)
    if kind in (id_mod.LUKS, id_mod.BITLOCKER):
        result.encrypted_devices.append(volume.device)
        result.encrypted_types[volume.device] = id_mod.VFS_TYPES[kind]
        return None
    if kind == id_mod.LVM:
        pvs.append(volume)
        return None
    if kind == id_mod.EMPTY or (kind is None and volume.part_type
                                in _NO_FILESYSTEM_TYPES):
        return None
    if kind in (id_mod.SWAP, id_mod.VFAT):
        result.filesystems += 1
        return None
    if kind not in (id_mod.EXT, id_mod.XFS, id_mod.NTFS):
        raise id_mod.unsupported(kind, volume.device)
    filesystem = filesystems.open_filesystem(volume.source, budget)
    if filesystem is None:
        raise id_mod.unsupported(None, volume.device)
    result.filesystems += 1
    root = linux_root.linux_root(filesystem, volume.device,
                                 volume.disk_index)
    if root is None:
        root = windows_root.windows_root(filesystem, volume.device,
                                         volume.disk_index)
    if root is not None:
        for hive in windows_root.dirty_hives(root):
            result.warnings.append(
                '%s %s hive not closed cleanly: read as it is'
                % (volume.device, hive))
    return root


def _logical_volumes(pvs):
    """The visible LVs of the VGs on ``pvs``, as volumes on the lowest
    disk holding one of their PVs."""
    disk_of = {id(pv.source): pv.disk_index for pv in pvs}
    volumes = []
    for vg in lvm.volume_groups([pv.source for pv in pvs]):
        disks = [disk_of[id(s)] for s in vg.sources.values()
                 if s is not None and id(s) in disk_of]
        for lv in vg.lvs:
            if not lv.visible:
                continue
            device = '/dev/%s/%s' % (vg.name, lv.name)
            volumes.append(_Volume(device, min(disks) if disks else 0,
                                   lvm.open_lv(vg, lv)))
    return volumes


def inspect(specs, stage=None, budget=None, network=None):
    """ApplianceFacts of ``specs`` (boot disk first), read directly;
    raises errors.DirectError when the appliance must do it.
    ``network``: see disk_source (without it, network disks are the
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
                result.encrypted_types[spec.target] = 'crypto_LUKS'
                continue
            try:
                disk = disk_source(spec, budget, stack, network)
            except overlay.EncryptedImage:
                result.encrypted_devices.append(spec.target)
                result.encrypted_types[spec.target] = 'crypto_LUKS'
                continue
            volumes.extend(_partitions(index, disk))
        pvs = []
        roots = []
        seen = 0
        while volumes:
            seen += len(volumes)
            if seen > MAX_VOLUMES:
                raise errors.LimitReached(
                    'more than %d partitions and logical volumes'
                    % MAX_VOLUMES)
            for volume in volumes:
                root = _read_volume(volume, budget, result, pvs)
                if root is not None:
                    roots.append(root)
            volumes, pvs = (_logical_volumes(pvs) if pvs else []), []
        if len(roots) > 1 and any(windows_root.inspection_fails(r)
                                  for r in roots):
            # libguestfs fails inspect_os for the whole handle then, and
            # the appliance path scans every filesystem by hand: let it.
            raise errors.Unsupported(
                'a Windows root libguestfs cannot inspect beside other '
                'roots')
        if len(roots) > MAX_ROOTS:
            result.limits.append('%d roots, more than %d read'
                                 % (len(roots), MAX_ROOTS))
        result.roots = roots[:MAX_ROOTS]
    return result
