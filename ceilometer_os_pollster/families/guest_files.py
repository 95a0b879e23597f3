"""Reading inside a launched appliance: bounded readers of the guest.

Each function takes the guestfs handle of an appliance that
``appliance.Appliance`` launched, reads one thing inside the guest
(os-release, SUSE's base product, the SOFTWARE hive and its SQL Server
instances, encrypted devices, which drive holds a device) and returns
plain values for ``raw_facts``.  Every read is bounded: a hostile guest
cannot make us read, mount or visit more than the limits below.  The
bytes read are turned into values by ``guest_formats`` (pure).
"""

from oslo_log import log

from ceilometer_os_pollster.families import guest_formats
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster import sanitize
from ceilometer_os_pollster.families import windows

LOG = log.getLogger(__name__)

# Bounds on what one (possibly hostile) guest can make us read or visit.
# SQL Server instance names read per guest: eighty times the 50
# instances Microsoft supports on one computer (three to seven appliance
# calls each, ~0.15 ms per call measured under TCG: seconds at most).
# More is a hostile or broken registry, billed as the highest edition
# (windows.SQL_ASSUMED_EDITION) rather than left partly unread.
MAX_SQL_INSTANCE_NAMES = 4096
MAX_MOUNTS = 32
MAX_PROBED_DEVICES = 64

# vfs_type in lower case -> the kind (raw_facts.ENCRYPTION_KINDS).
ENCRYPTED_TYPES = {kind.lower(): kind
                   for kind, _ in raw_facts.ENCRYPTION_KINDS}

WINDOWS_VALUES = ('ProductName', 'EditionID', 'InstallationType',
                  'CurrentBuildNumber', 'CurrentBuild', 'DisplayVersion',
                  'CurrentMajorVersionNumber', 'CurrentMinorVersionNumber')
CURRENT_VERSION = ('Microsoft', 'Windows NT', 'CurrentVersion')
# 64-bit SQL Server, then 32-bit SQL Server on 64-bit Windows.
SQL_SERVER_KEYS = (('Microsoft', 'Microsoft SQL Server'),
                   ('WOW6432Node', 'Microsoft', 'Microsoft SQL Server'))
OS_RELEASE_PATHS = ('/etc/os-release', '/usr/lib/os-release')
# SUSE: a symlink to the installed base product's .prod (XML) file.
SUSE_BASEPRODUCT = '/etc/products.d/baseproduct'
SYSTEM_ROOTS = ('/Windows', '/WINNT')
SOFTWARE_HIVE = '/System32/config/SOFTWARE'


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
    for path in OS_RELEASE_PATHS:
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
        data = read_bounded(g, SUSE_BASEPRODUCT)
    except RuntimeError:
        return b''
    return data or b''


def find_software_hive(g):
    """Path of the SOFTWARE hive on the mounted filesystem, or ''."""
    for systemroot in SYSTEM_ROOTS:
        try:
            path = g.case_sensitive_path(systemroot + SOFTWARE_HIVE)
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
        current = _child(g, top, CURRENT_VERSION)
        if current:
            for name in WINDOWS_VALUES:
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
    """sql_editions over the appliance's hivex calls; a failed call is
    an unreadable list, unless the appliance itself is gone."""
    return sql_editions(_instance_names(g, top),
                        lambda server, instance: _instance_edition(
                            g, server, instance),
                        unreadable=(RuntimeError,),
                        on_unreadable=lambda exc: _check_alive(g))


def _instance_names(g, top):
    for path in SQL_SERVER_KEYS:
        server = _child(g, top, path)
        names = _child(g, server, ('Instance Names', 'SQL'))
        for item in g.hivex_node_values(names) if names else ():
            valueh = item['hivex_value_h']
            yield server, guest_formats.registry_value(
                g.hivex_value_type(valueh), g.hivex_value_value(valueh))


def _instance_edition(g, server, instance):
    setup = _child(g, server, (instance, 'Setup'))
    return _value(g, setup, 'Edition') if setup else None


def sql_editions(instance_names, edition_of, unreadable=(),
                 on_unreadable=None):
    """(Setup\\Edition of every SQL Server instance, deduplicated;
    whether every instance was read), whichever method reads the hive.

    ``instance_names`` yields (server key, 'Instance Names\\SQL' value as
    guest_formats.registry_value gives it) in registry order over
    SQL_SERVER_KEYS, lazily: it is not read past the bound.
    ``edition_of(server, instance)`` is that instance's Setup\\Edition
    value or None.  Exceptions of the ``unreadable`` types mean the
    registry could not be read (``on_unreadable(exc)`` may re-raise
    when the reader itself is gone).

    Every instance is read, in registry order, and ranked afterwards by
    windows.sql_server_edition.  The work stops early at an edition
    nothing can outrank (complete: no later one can change the result),
    or after MAX_SQL_INSTANCE_NAMES names or at an unreadable list
    (incomplete, logged): the caller then bills as if the unread rest
    held the highest edition, so no edition is hidden by listing it
    late.
    """
    editions = []
    seen = set()
    budget = MAX_SQL_INSTANCE_NAMES
    try:
        for server, name in instance_names:
            if budget <= 0:
                LOG.warning('more than %d SQL Server instance names in '
                            'the registry: billed as the highest '
                            'edition', MAX_SQL_INSTANCE_NAMES)
                return editions, False
            budget -= 1
            instance = guest_formats.registry_text(name)
            if not instance or instance in seen:
                continue
            seen.add(instance)
            edition = edition_of(server, instance)
            if edition and edition not in editions:
                editions.append(edition)
                if (windows.sql_edition(edition)[0]
                        >= windows.SQL_TOP_RANK):
                    return editions, True
    except unreadable as exc:
        if on_unreadable is not None:
            on_unreadable(exc)
        LOG.warning('SQL Server instances unreadable (%s): billed as the '
                    'highest edition', sanitize.clean_text(exc, 120))
        return editions, False
    return editions, True


def _check_alive(g):
    """Raise RuntimeError when the appliance itself is gone: a failed
    read then says nothing about the guest's registry, and must not bill
    it as the highest edition."""
    g.ping_daemon()


def scanned_root(g, device, devices):
    """The RootFacts of the filesystem mounted at /, found by hand (no
    libguestfs inspection): Windows by its SOFTWARE hive, Linux by its
    os-release; None for anything else."""
    hive = find_software_hive(g)
    if hive:
        root = raw_facts.RootFacts(device=device, type='windows',
                                   distro='windows',
                                   disk_index=disk_index(g, device,
                                                         devices))
        try:
            (root.windows, root.sql_editions,
             root.sql_complete) = read_software_hive(g, hive)
        except RuntimeError:
            pass        # still a Windows root, with fewer details
        return root
    release = read_os_release(g)
    if release:
        return raw_facts.RootFacts(device=device, type='linux',
                                   os_release=release,
                                   suse_baseproduct=(
                                       read_suse_baseproduct(g)),
                                   disk_index=disk_index(g, device,
                                                         devices))
    return None
