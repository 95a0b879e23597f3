"""The roots on a launched appliance: which roots there are (libguestfs'
inspection, or each filesystem looked at by hand when it cannot be
used), which of them are read in detail (os-release and SUSE's base
product, or the SOFTWARE hive, through ``guest_files``), and the bounds
on what one (possibly hostile) guest can make us visit.

Runs in the inspection worker on the handle ``appliance.Appliance``
owns; fills a ``raw_facts.ApplianceFacts``.
"""

from oslo_log import log

from ceilometer_os_pollster.inspection.appliance_errors import short_error
from ceilometer_os_pollster.families import facts as facts_mod
from ceilometer_os_pollster.inspection import guest_files
from ceilometer_os_pollster.families import linux
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster.families import windows
from ceilometer_os_pollster import sanitize

LOG = log.getLogger(__name__)

# Bounds on what one (possibly hostile) guest can make us visit.  None
# cuts silently: a bound that may hide a billed root is recorded in
# ApplianceFacts.limits, and facts.normalise bills the dearest product.
# Roots whose type, distro and product are read (a few calls each).
MAX_LISTED_ROOTS = 256
# Roots read in detail (mounted; os-release or the SOFTWARE hive), the
# likely billed ones first (boot disk, Windows).
MAX_ROOTS = 16
# Besides them, Linux roots that are btrfs subvolumes read in detail:
# snapper keeps 10-30 snapshots of a SUSE root, each one bootable, and
# reading one costs a mount and two small files.
MAX_SUBVOLUME_ROOTS = 64
# Filesystems mounted one by one when inspect_os cannot be used.
MAX_SCANNED_FILESYSTEMS = 32


def gather(g, result, max_filesystems, private_dir):
    """Fill ``result`` (ApplianceFacts) from the launched handle ``g``:
    filesystems, encrypted devices and the roots read; returns it.  With
    more than ``max_filesystems`` libguestfs' inspect_os is not used;
    ``private_dir`` is hidden from the warnings."""
    devices = list(g.list_devices())
    try:
        filesystems = dict(g.list_filesystems())
    except RuntimeError as exc:
        result.warnings.append('cannot list filesystems: %s'
                               % short_error(exc))
        filesystems = {}
    for device, kind in guest_files.encrypted_devices(g, devices,
                                                      filesystems):
        result.encrypted_devices.append(device)
        result.encrypted_types[device] = kind
    result.filesystems = sum(1 for t in filesystems.values()
                             if t and t != 'unknown')
    # inspect_os walks every filesystem, subvolume and LV with no
    # bound of its own: a disk full of them would make it run into
    # the deadline (a failed record) instead of a bill.
    if len(filesystems) > max_filesystems:
        flood = ('%d filesystems and subvolumes, more than '
                 'max_filesystems %d' % (len(filesystems),
                                         max_filesystems))
        LOG.warning('%s: not inspected by libguestfs; scanned by '
                    'hand, Windows first', flood)
        result.roots = _scan(g, filesystems, devices, result, flood)
        return result
    try:
        listed = list(g.inspect_os())
    except RuntimeError as exc:
        result.warnings.append(
            'inspection failed (%s); filesystems scanned one by one'
            % short_error(exc, private_dir))
        LOG.warning('inspect_os failed (%s): scanning filesystems one '
                    'by one', short_error(exc, private_dir))
        result.roots = _scan(g, filesystems, devices, result)
        return result
    if len(listed) > MAX_LISTED_ROOTS:
        result.limits.append('%d roots, more than %d'
                             % (len(listed), MAX_LISTED_ROOTS))
    roots = []
    for root in listed[:MAX_LISTED_ROOTS]:
        try:
            roots.append(_listed_root(g, root, devices))
        except RuntimeError as exc:
            result.warnings.append('root %s unreadable: %s'
                                   % (root, short_error(exc)))
    roots.sort(key=_likely_billed_first)
    read, unread = _to_read(roots)
    for facts in read:
        _read_details(g, facts, result)
    if _may_be_billed(unread, read):
        result.limits.append('%d roots, more than %d read'
                             % (len(roots), len(read)))
    result.roots, _ = facts_mod.kept_roots(read, MAX_ROOTS)
    if len(result.roots) < len(read):
        result.warnings.append('%d roots read, the %d dearest kept'
                               % (len(read), len(result.roots)))
    return result


def _listed_root(g, root, devices):
    """A root's cheap facts: libguestfs' inspection answers."""
    facts = raw_facts.RootFacts(
        device=root,
        disk_index=guest_files.disk_index(g, root, devices))
    for field, call, default in (
            ('type', g.inspect_get_type, 'unknown'),
            ('distro', g.inspect_get_distro, 'unknown'),
            ('osinfo', g.inspect_get_osinfo, 'unknown'),
            ('product_name', g.inspect_get_product_name, ''),
            ('product_variant', g.inspect_get_product_variant, ''),
            ('arch', g.inspect_get_arch, ''),
            ('major', g.inspect_get_major_version, 0),
            ('minor', g.inspect_get_minor_version, 0)):
        setattr(facts, field, guest_files.safe(call, root, default))
    return facts


def _read_details(g, facts, result):
    """What the billing needs from inside a root: os-release and
    SUSE's base product, or the SOFTWARE hive."""
    root = facts.device
    try:
        if facts.type == linux.NAME:
            guest_files.mount_root(g, root)
            facts.os_release = guest_files.read_os_release(g)
            facts.suse_baseproduct = guest_files.read_suse_baseproduct(g)
        elif facts.type == windows.NAME:
            g.mount_ro(root, '/')
            hive = g.inspect_get_windows_software_hive(root)
            (facts.windows, facts.sql_editions,
             facts.sql_complete) = guest_files.read_software_hive(g, hive)
    except RuntimeError as exc:
        result.warnings.append('%s %s details unreadable: %s' % (
            root, facts.type, short_error(exc)))
    finally:
        guest_files.umount_all(g)


def _scan(g, filesystems, devices, result, flood=''):
    """Roots found by looking at each filesystem by hand, the boot
    disk's first and Windows-capable ones (NTFS) first; a bound that
    leaves a filesystem unvisited where a billed root could be is a
    limit."""
    disks = {}
    candidates = sorted(
        ((_scan_disk(g, device, devices, disks), device, vfs)
         for device, vfs in filesystems.items()
         if vfs not in ('', 'unknown', 'swap')
         and str(vfs).lower() not in guest_files.ENCRYPTED_TYPES),
        key=lambda item: (item[0] != 0, str(item[2]) != 'ntfs',
                          str(item[1]).startswith('btrfsvol:'),
                          str(item[1])))
    roots = []
    for _, device, _ in candidates[:MAX_SCANNED_FILESYSTEMS]:
        try:
            g.mount_ro(device, '/')
            root = guest_files.scanned_root(g, device, devices)
        except RuntimeError as exc:
            LOG.debug('scan of %s failed: %s', device, short_error(exc))
            root = None
        finally:
            guest_files.umount_all(g)
        if root is not None:
            roots.append(root)
    unvisited = candidates[MAX_SCANNED_FILESYSTEMS:]
    boot_root = any(root.disk_index == 0 for root in roots)
    if any(disk == 0 or not boot_root for disk, _, _ in unvisited):
        result.limits.append('%s; %d scanned by hand, Windows first' % (
            flood or '%d filesystems' % len(candidates),
            MAX_SCANNED_FILESYSTEMS))
    elif flood:
        result.warnings.append(flood + ': scanned by hand')
    return roots


def _likely_billed_first(root):
    """Sort key: boot disk first, then Windows, then Linux, then the
    device name (cheap facts only: nothing read inside the root yet)."""
    family = raw_facts.token(root.type)
    return (root.disk_index != 0,
            {windows.NAME: 0, linux.NAME: 1}.get(family, 2),
            sanitize.clean_text(root.device))


def _to_read(roots):
    """(roots read in detail, the others), ``roots`` sorted by
    _likely_billed_first: the first MAX_ROOTS, and besides them up to
    MAX_SUBVOLUME_ROOTS Linux roots that are btrfs subvolumes (a SUSE
    root's snapper snapshots: each one a root the tenant may boot, whose
    files may name any product)."""
    read, unread = list(roots[:MAX_ROOTS]), []
    extra = 0
    for root in roots[MAX_ROOTS:]:
        if (extra < MAX_SUBVOLUME_ROOTS
                and str(root.device).startswith('btrfsvol:')
                and raw_facts.token(root.type) == linux.NAME):
            read.append(root)
            extra += 1
        else:
            unread.append(root)
    return read, unread


def _may_be_billed(unread, read):
    """Whether a root not read in detail could be the billed one: a
    usable root on the boot disk, or any usable root when the boot disk
    has none among those read.  An unread Linux root (a btrfs snapshot
    of the root, say) cannot be when a boot disk root read is already
    as dear as any Linux: read, it would at best tie, and it sorts after
    every Linux root read (_likely_billed_first), so it loses the tie."""
    usable = [r for r in unread if raw_facts.token(r.type)]
    if not usable:
        return False
    boot_read = [r for r in read
                 if r.disk_index == 0 and raw_facts.token(r.type)]
    if not boot_read:
        return True
    dearest_read = max(facts_mod.dearness(r) for r in boot_read)
    return any(r.disk_index == 0 and not (
        raw_facts.token(r.type) == linux.NAME
        and dearest_read >= facts_mod.DEAREST_LINUX) for r in usable)


def _scan_disk(g, device, devices, known):
    """Disk index of a filesystem to scan; a btrfs subvolume
    ('btrfsvol:/dev/sda2/sub') is on its filesystem's disk.  ``known``
    remembers the answers: a flood of subvolumes costs one lookup."""
    if str(device).startswith('btrfsvol:'):
        path = str(device)[len('btrfsvol:'):]
        device = '/'.join(path.split('/')[:3])
    if device not in known:
        known[device] = guest_files.disk_index(g, device, devices)
    return known[device]
