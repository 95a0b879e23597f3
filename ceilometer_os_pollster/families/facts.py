"""From raw facts to the one OSRecord of an instance.

Owns the decisions that are not about one OS family: which root is
billed when several are found, what the status is (ok, unknown,
encrypted) and the reason that explains it.  Each root is described by
its family's module (``known.family``: ``windows``, ``linux``).
Pure code: plain data in, an OSRecord out; normalise() is where guest
values are cleaned and bounded.
"""

from ceilometer_os_pollster.families import known
from ceilometer_os_pollster.families import linux
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster import record
from ceilometer_os_pollster import sanitize
from ceilometer_os_pollster.families import sqlserver
from ceilometer_os_pollster.families import windows
from ceilometer_os_pollster.families import windows_editions

UNKNOWN = raw_facts.UNKNOWN


def _roots(roots):
    return [r for r in roots or () if isinstance(r, raw_facts.RootFacts)]


def _plural(count, word):
    return '%d %s%s' % (count, word, '' if count == 1 else 's')


# --------------------------------------------------------------------------
# Root choice
#
# A tenant writes every byte of its disks, so the choice between roots
# must never let an extra root make a VM cheaper: on the boot disk the
# dearest root is billed (a dual-boot VM can run either), and roots on
# other disks count only when the boot disk has none.


def os_family(root):
    """Cleaned libguestfs type ('windows', 'linux', ...) or 'unknown'."""
    return raw_facts.token(root.type) or UNKNOWN


def _on_boot_disk(root):
    return sanitize.clean_int(root.disk_index, default=1) == 0


def dearness(root):
    """How much a root's OS costs, as a comparable tuple (higher is
    dearer): Windows Server, then Windows clients, then RHEL/SLES, then
    other Linux, then other known systems; between Windows roots the
    edition, then the SQL Server edition; between licensed Linux roots
    the product, in price order (linux.LICENCE_ORDER).  The tiers are
    the families' (windows.dearness: 5 and 4, linux.dearness: 3 and 2);
    a family this version does not know is 1, an untyped root 0."""
    name = os_family(root)
    module = known.family(name)
    if module is not None:
        return module.dearness(root)
    return (0 if name == UNKNOWN else 1, 0, 0)


# The dearest a Linux root can be, whatever its files say.
DEAREST_LINUX = linux.DEAREST


def kept_roots(roots, max_roots):
    """(the roots kept for the policy, whether a bound may hide the
    billed one), every root having been read.

    The roots of filesystems (/dev/sda2, /dev/VG/LV): the first
    ``max_roots``, more being a limit; btrfs subvolume roots (snapshots
    a tenant may boot) fill the rest, the boot disk's dearest first, and
    the dearest of them is always kept: the ones left out can change
    neither the billed root (ties go to the first device name, and a
    subvolume's sorts after its volume's) nor its price."""
    volumes = [r for r in roots if not str(r.device).startswith('btrfsvol:')]
    subvolumes = [r for r in roots if str(r.device).startswith('btrfsvol:')]
    limited = len(volumes) > max_roots
    volumes = volumes[:max_roots]
    subvolumes.sort(key=lambda root: (
        not _on_boot_disk(root),
        tuple(-x for x in dearness(root)), sanitize.clean_text(root.device)))
    room = max(max_roots - len(volumes), 1)
    return volumes + subvolumes[:room], limited


def billing_candidates(roots):
    """(roots that may be billed, whether they are on the boot disk).

    The usable roots of the boot disk; when it has none (a disk holding
    only a bootloader that chain-loads another disk), the usable roots
    of every disk: a VM runs what its disks hold.
    """
    usable = [root for root in _roots(roots)
              if os_family(root) != UNKNOWN]
    boot = [root for root in usable if _on_boot_disk(root)]
    return (boot, True) if boot else (usable, False)


def _dearest(roots):
    return min(roots, key=lambda root: (
        tuple(-x for x in dearness(root)), sanitize.clean_text(root.device)))


def choose_root(roots):
    """The root that is billed, or None when no root is usable.

    Policy, in order:
    1. a root libguestfs could not even type ('unknown') is not usable;
    2. roots on the boot disk (disk_index 0) are the candidates, so a
       Windows data volume attached to a Linux VM does not make it a
       Windows VM; a boot disk without any usable root makes every
       disk's roots candidates (chain-loading);
    3. among the candidates, the dearest (see dearness);
    4. ties go to the first device name, so the result is deterministic.
    """
    candidates, _ = billing_candidates(roots)
    return _dearest(candidates) if candidates else None


# --------------------------------------------------------------------------
# The dearest product possible, when a bound hid part of the disks

# Billed when a bound stopped the inspection before it saw every root
# that could be billed: what was not seen may be the dearest product
# sold, and a tenant must not be able to hide its OS behind a flood of
# partitions, roots or subvolumes.
DEAREST_WINDOWS_EDITION = windows_editions.TOP_SERVER_EDITION
DEAREST_SQL_EDITION = sqlserver.SQL_ASSUMED_EDITION


def dearest_possible(fields):
    """The fields billed when a bound was reached: Windows Server
    Datacenter with SQL Server Enterprise; the descriptive fields of the
    billed root are kept when it is a Windows Server itself."""
    keep = (fields is not None and fields.get('os_family') == windows.NAME
            and windows.billed_as_server(fields.get('os_product_variant')))
    result = dict(fields) if keep else dict(
        os_family=windows.NAME, os_distro=windows.DISTRO, os_info=UNKNOWN,
        os_product_variant='Server', os_arch=(fields or {}).get(
            'os_arch', ''))
    if not result.get('os_product_variant'):
        result['os_product_variant'] = 'Server'
    result.update(os_edition=DEAREST_WINDOWS_EDITION,
                  sql_server_edition=DEAREST_SQL_EDITION)
    return result


# --------------------------------------------------------------------------
# Status reasons

# (kind as raw_facts.token reads it, label), in the reason's order.
_ENCRYPTION_KINDS = tuple((kind.lower(), label)
                          for kind, label in raw_facts.ENCRYPTION_KINDS)


def encryption_summary(devices, types=None):
    """'1 LUKS volume', '2 LUKS volumes, 1 BitLocker volume', or
    '1 encrypted volume' when the kind is not known."""
    types = types if isinstance(types, dict) else {}
    counts = {}
    for device in devices or ():
        kind = raw_facts.token(types.get(device))
        label = dict(_ENCRYPTION_KINDS).get(kind, 'encrypted')
        counts[label] = counts.get(label, 0) + 1
    order = [label for _, label in _ENCRYPTION_KINDS] + ['encrypted']
    return ', '.join(_plural(counts[label], label + ' volume')
                     for label in order if label in counts)


def unknown_reason(facts):
    """Why no OS was reported, from the counts the appliance gathered."""
    roots = _roots(facts.roots)
    if roots:
        if len(roots) == 1:
            return ('operating system on %s not recognised'
                    % sanitize.clean_text(roots[0].device, 64))
        return 'no recognisable operating system among %d roots' % len(
            roots)
    drives = sanitize.clean_int(facts.drives)
    filesystems = sanitize.clean_int(facts.filesystems)
    if not drives:
        return 'no disk to inspect'
    if not filesystems:
        return 'no filesystem found on %s' % _plural(drives, 'disk')
    return 'no operating system found on %s (%s)' % (
        _plural(drives, 'disk'), _plural(filesystems, 'filesystem'))


def _reason(*parts):
    return sanitize.clean_text('; '.join(p for p in parts if p))


def _warnings(facts):
    if not isinstance(facts.warnings, (list, tuple)):
        return ''
    return '; '.join(filter(None, (sanitize.clean_text(w, 120)
                                   for w in facts.warnings)))


# --------------------------------------------------------------------------
# Fields of the billed root


def _other_fields(root):
    return dict(
        os_info=raw_facts.token(root.osinfo) or UNKNOWN,
        os_version_major=sanitize.clean_int(root.major),
        os_version_minor=sanitize.clean_int(root.minor),
        os_product_name=raw_facts.text(root.product_name),
        os_product_variant=raw_facts.text(root.product_variant, 64),
    )


def root_fields(root):
    """The OSRecord fields describing one root (all values clean)."""
    family = os_family(root)
    fields = dict(os_family=family,
                  os_distro=raw_facts.token(root.distro) or UNKNOWN,
                  os_arch=raw_facts.token(root.arch))
    module = known.family(family)
    fields.update(module.fields(root) if module is not None
                  else _other_fields(root))
    return fields


# --------------------------------------------------------------------------


def _limits(facts):
    limits = getattr(facts, 'limits', None)
    if not isinstance(limits, (list, tuple)):
        return []
    return [sanitize.clean_text(limit, 160) for limit in limits if limit]


def _sql_fields(candidates, root, fields):
    """(sql_server_edition over every candidate, the reason part naming
    another root when the edition came from there)."""
    editions, complete = [], True
    for candidate in candidates:
        if os_family(candidate) != windows.NAME:
            continue
        editions.extend(candidate.sql_editions
                        if isinstance(candidate.sql_editions, (list, tuple))
                        else ())
        complete = complete and candidate.sql_complete is True
    edition = sqlserver.sql_billed_edition(editions, complete)
    if not edition or edition == fields.get('sql_server_edition'):
        return edition, ''
    source = next((c for c in candidates if os_family(c) == windows.NAME
                   and windows.fields(c)['sql_server_edition'] == edition),
                  None)
    if source is None or source is root:
        return edition, ''
    return edition, 'SQL Server %s from %s' % (
        edition, sanitize.clean_text(source.device, 64))


def _roots_note(roots, candidates, on_boot_disk, root):
    """What the reason says about the choice between roots."""
    device = sanitize.clean_text(root.device, 64)
    notes = []
    if not on_boot_disk:
        notes.append('no operating system on the boot disk: billed the '
                     'dearest on another disk (%s)' % device)
    elif len(candidates) > 1:
        # btrfs snapshots of the root are roots a tenant can boot: say
        # so, or a SUSE guest reads like a multi-boot one.
        subvolumes = sum(1 for r in candidates
                         if str(r.device).startswith('btrfsvol:'))
        notes.append('%d operating systems on the boot disk%s, billed the '
                     'dearest: %s' % (
                         len(candidates),
                         ' (%d of them btrfs snapshots or other '
                         'subvolumes)' % subvolumes
                         if subvolumes else '', device))
    elif len(_roots(roots)) > 1:
        notes.append('%d operating systems found, reporting %s'
                     % (len(_roots(roots)), device))
    if on_boot_disk:
        billed = dearness(root)
        dearer = [r for r in _roots(roots) if r not in candidates
                  and os_family(r) != UNKNOWN and dearness(r) > billed]
        if dearer:
            other = _dearest(dearer)
            notes.append('dearer operating system on another disk not '
                         'billed: %s (%s)' % (
                             sanitize.clean_text(other.device, 64),
                             os_family(other)))
    return '; '.join(notes)


def normalise(facts, instance_id, fingerprint='', duration=0.0, now=None):
    """The one OSRecord for an instance, from what the appliance saw.

    - a usable root (see choose_root) -> 'ok', described by that root,
      with the highest SQL Server edition of every candidate root; the
      reason notes other roots, encrypted volumes and warnings;
    - a bound reached (facts.limits) -> 'ok', billed as the dearest
      product possible (dearest_possible), the reason says which bound;
    - no usable root but encrypted volumes -> 'encrypted', the reason
      counts them ('1 LUKS volume');
    - otherwise -> 'unknown', the reason says what was seen.
    Failures of the appliance itself are the engine's (OSRecord.failed).
    """
    base = dict(instance_id=instance_id, fingerprint=fingerprint,
                duration=duration, inspected_at=record.utc_timestamp(now))
    roots = _roots(facts.roots)
    encrypted = encryption_summary(facts.encrypted_devices,
                                   facts.encrypted_types)
    warnings = _warnings(facts)
    limits = _limits(facts)
    candidates, on_boot_disk = billing_candidates(roots)
    root = _dearest(candidates) if candidates else None
    if encrypted and (root is not None or limits):
        encrypted += ' not inspected'
    if limits:
        fields = dearest_possible(root_fields(root) if root else None)
        bound = ('bound reached (%s): billed as Windows Server %s with '
                 'SQL Server %s' % ('; '.join(limits),
                                    DEAREST_WINDOWS_EDITION,
                                    DEAREST_SQL_EDITION))
        seen = ('dearest root seen: %s' % sanitize.clean_text(
            root.device, 64)) if root is not None else ''
        return record.OSRecord(status=record.STATUS_OK,
                               reason=_reason(bound, seen, encrypted,
                                              warnings),
                               **base, **fields)
    if root is None:
        if encrypted:
            return record.OSRecord(status=record.STATUS_ENCRYPTED,
                                   reason=_reason(encrypted, warnings),
                                   **base)
        return record.OSRecord(status=record.STATUS_UNKNOWN,
                               reason=_reason(unknown_reason(facts),
                                              warnings),
                               **base)
    fields = root_fields(root)
    sql_from = ''
    if os_family(root) == windows.NAME:
        fields['sql_server_edition'], sql_from = _sql_fields(
            candidates, root, fields)
    incomplete = [c for c in candidates if os_family(c) == windows.NAME
                  and c.sql_complete is not True]
    sql = sqlserver.sql_note(incomplete[0]) if incomplete else ''
    module = known.family(os_family(root))
    notes = module.billing_notes(root) if module is not None else []
    return record.OSRecord(status=record.STATUS_OK,
                           reason=_reason(_roots_note(roots, candidates,
                                                      on_boot_disk, root),
                                          *notes, sql_from, sql, encrypted,
                                          warnings),
                           **base, **fields)
