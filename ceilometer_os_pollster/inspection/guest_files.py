"""Reading inside a launched appliance: bounded readers of the guest.

Each function takes the guestfs handle of an appliance that
``appliance.Appliance`` launched, reads one thing inside the guest
(os-release, SUSE's base product, the SOFTWARE hive and its SQL Server
instances, encrypted devices, which drive holds a device) and returns
plain values for ``raw_facts``.  Which files and registry values are
read, and what makes a root of a family, are the family modules'
(``linux``, ``windows``, ``sqlserver``): the direct method reads the
same lists.  Every read is bounded: a hostile guest cannot make us
read, mount or visit more than the limits below (SQL Server's
instances: sqlserver.MAX_SQL_INSTANCE_NAMES).  The bytes read are
turned into values by ``guest_formats`` (pure).
"""

from ceilometer_os_pollster.families import guest_formats
from ceilometer_os_pollster.families import linux
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster.families import sqlserver
from ceilometer_os_pollster.families import windows

# Bounds on what one (possibly hostile) guest can make us read or visit.
MAX_MOUNTS = 32
MAX_PROBED_DEVICES = 64

# vfs_type in lower case -> the kind (raw_facts.ENCRYPTION_KINDS).
ENCRYPTED_TYPES = {kind.lower(): kind
                   for kind, _ in raw_facts.ENCRYPTION_KINDS}


def safe(call, root, default):
    """``call(root)``, or default when libguestfs cannot answer."""
    try:
        value = call(root)
    except (RuntimeError, UnicodeError):
        # UnicodeError: the binding decodes guest bytes (os-release,
        # fstab) as strict UTF-8.
        return default
    return default if value is None else value


def umount_all(g):
    try:
        g.umount_all()
    except RuntimeError:
        pass


def mount_root(g, root):
    """Mount an inspected root's filesystems read-only at their places."""
    mountpoints = safe(g.inspect_get_mountpoints, root, {}) or {'/': root}
    # Parents before children: '/' then '/usr' ...
    for mountpoint, device in sorted(mountpoints.items(),
                                     key=lambda item: len(item[0])
                                     )[:MAX_MOUNTS]:
        try:
            g.mount_ro(device, mountpoint)
        except RuntimeError:
            if mountpoint == '/':
                raise
            # /usr may matter (os-release); others never do.


def encrypted_devices(g, devices, filesystems):
    """[(device, 'crypto_LUKS'|'BitLocker')] of every encrypted block
    device.  list_filesystems leaves them out (1.48), so whole disks,
    partitions and LVs it did not list are probed with vfs_type."""
    found = {}
    for device, vfs_type in filesystems.items():
        kind = ENCRYPTED_TYPES.get(str(vfs_type).lower())
        if kind:
            found[device] = kind
    candidates = list(devices)
    for lister in (g.list_partitions, g.lvs):
        try:
            candidates.extend(lister())
        except RuntimeError:
            pass
    probe = [d for d in candidates if d not in filesystems]
    for device in probe[:MAX_PROBED_DEVICES]:
        try:
            kind = ENCRYPTED_TYPES.get(str(g.vfs_type(device)).lower())
        except RuntimeError:
            continue
        if kind:
            found[device] = kind
    return sorted(found.items())


def disk_index(g, device, devices):
    """Index of the drive holding ``device`` (partition, whole disk or
    LVM logical volume) in the order drives were added; 0 if unknown."""
    try:
        parent = g.part_to_dev(device)
    except RuntimeError:
        parent = device
    if parent in devices:
        return devices.index(parent)
    # /dev/VG/LV: the lowest drive holding one of the VG's PVs.
    parts = device.split('/')
    if len(parts) != 4 or parts[1] != 'dev':
        return 0
    try:
        wanted = set(g.vgpvuuids(parts[2]))
        indexes = []
        for pv in list(g.pvs())[:MAX_MOUNTS]:
            if g.pvuuid(pv) in wanted:
                try:
                    pv = g.part_to_dev(pv)
                except RuntimeError:
                    pass
                if pv in devices:
                    indexes.append(devices.index(pv))
        return min(indexes) if indexes else 0
    except RuntimeError:
        return 0


def read_bounded(g, path, limit=guest_formats.MAX_FILE_BYTES):
    """At most ``limit`` bytes of a regular file, or None."""
    if not g.is_file(path, followsymlinks=True):
        return None
    if g.filesize(path) <= limit:
        return bytes(g.read_file(path))[:limit]
    return bytes(g.pread(path, limit, 0))


def read_os_release(g):
    """Parsed os-release of the mounted root ({} when absent)."""
    for path in linux.OS_RELEASE_PATHS:
        try:
            data = read_bounded(g, path)
        except RuntimeError:
            continue
        if data is not None:
            return guest_formats.parse_os_release(data)
    return {}


def read_suse_baseproduct(g):
    """The SUSE base product file of the mounted root (bounded), or b''."""
    try:
        data = read_bounded(g, linux.SUSE_BASEPRODUCT)
    except RuntimeError:
        return b''
    return data or b''


def find_software_hive(g):
    """Path of the SOFTWARE hive on the mounted filesystem, or ''."""
    for systemroot in windows.SYSTEM_ROOTS:
        try:
            path = g.case_sensitive_path(systemroot + windows.SOFTWARE_HIVE)
            if g.is_file(path):
                return path
        except RuntimeError:
            continue
    return ''


def _child(g, node, names):
    for name in names:
        if not node:
            return 0
        node = g.hivex_node_get_child(node, name)
    return node


def _value(g, node, name):
    valueh = g.hivex_node_get_value(node, name)
    if not valueh:
        return None
    return guest_formats.registry_value(g.hivex_value_type(valueh),
                                        g.hivex_value_value(valueh))


def read_software_hive(g, hive):
    """(CurrentVersion values, SQL Server editions, whether the SQL
    Server instance list was read to its end) of a SOFTWARE hive."""
    g.hivex_open(hive, write=False)
    try:
        top = g.hivex_root()
        values = {}
        current = _child(g, top, windows.CURRENT_VERSION)
        if current:
            for name in windows.WINDOWS_VALUES:
                value = _value(g, current, name)
                if value is not None:
                    values[name] = value
        editions, complete = _sql_editions(g, top)
        return values, editions, complete
    finally:
        try:
            g.hivex_close()
        except RuntimeError:
            pass


def _sql_editions(g, top):
    """sqlserver.sql_editions over the appliance's hivex calls; a failed
    call is an unreadable list, unless the appliance itself is gone."""
    return sqlserver.sql_editions(
        _instance_names(g, top),
        lambda server, instance: _instance_edition(g, server, instance),
        unreadable=(RuntimeError,),
        on_unreadable=lambda exc: _check_alive(g))


def _instance_names(g, top):
    for path in sqlserver.SQL_SERVER_KEYS:
        server = _child(g, top, path)
        names = _child(g, server, sqlserver.INSTANCE_NAMES)
        for item in g.hivex_node_values(names) if names else ():
            valueh = item['hivex_value_h']
            yield server, guest_formats.registry_value(
                g.hivex_value_type(valueh), g.hivex_value_value(valueh))


def _instance_edition(g, server, instance):
    setup = _child(g, server, (instance, sqlserver.SETUP))
    return _value(g, setup, sqlserver.EDITION_VALUE) if setup else None


def _check_alive(g):
    """Raise RuntimeError when the appliance itself is gone: a failed
    read then says nothing about the guest's registry, and must not bill
    it as the highest edition."""
    g.ping_daemon()


def scanned_root(g, device, devices):
    """The RootFacts of the filesystem mounted at /, found by hand (no
    libguestfs inspection), each family recognising its own roots
    (windows.scanned_root: a SOFTWARE hive; linux.scanned_root: an
    os-release); None for anything else."""
    hive = find_software_hive(g)
    if hive:
        root = windows.scanned_root(device, disk_index(g, device, devices))
        try:
            (root.windows, root.sql_editions,
             root.sql_complete) = read_software_hive(g, hive)
        except RuntimeError:
            pass        # still a Windows root, with fewer details
        return root
    release = read_os_release(g)
    if not linux.recognised(release):
        return None
    baseproduct = read_suse_baseproduct(g)
    return linux.scanned_root(device, disk_index(g, device, devices),
                              release, baseproduct)
