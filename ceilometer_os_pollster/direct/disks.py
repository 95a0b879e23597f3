"""The direct method's disks: each drive opened as a Source, and the
volumes on it.

A drive is a host file or block device (raw, or qcow2 along the chain
``overlay.local_tree`` pins) or an nbd or rbd export (``network``),
its format never probed; its volumes are its partitions (or the whole
disk), and the logical volumes of the LVM physical volumes among them.
Device names follow the appliance's (/dev/sda2, /dev/VG/LV).
"""

from ceilometer_os_pollster.instances import drives
from ceilometer_os_pollster.storage import overlay
from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.volumes import lvm
from ceilometer_os_pollster.direct.block import network as network_mod
from ceilometer_os_pollster.direct.volumes import partitions
from ceilometer_os_pollster.direct.block import qcow2
from ceilometer_os_pollster.direct.block import source as source_mod


class Volume:
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


def partition_volumes(index, disk):
    """The volumes of one disk: its partitions, or the whole disk."""
    name = disk_name(index)
    table = partitions.read_table(disk)
    if table is None:
        return [Volume(name, index, disk)]
    volumes = []
    for part in table.partitions:
        if part.container:
            continue
        device = '%s%d' % (name, part.number)
        volumes.append(Volume(device, index, source_mod.Window(
            disk, part.start, part.size, name=device), part.type.lower()))
    return volumes


def logical_volumes(pvs):
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
            volumes.append(Volume(device, min(disks) if disks else 0,
                                  lvm.open_lv(vg, lv)))
    return volumes
