"""From raw facts to the one OSRecord of an instance.

Owns the decisions that are not about one OS family: which root is
billed when several are found, what the status is (ok, unknown,
encrypted) and the reason that explains it.  Windows and Linux roots
are described by their own policy modules (``windows``, ``linux``).
Pure code: plain data in, an OSRecord out; normalise() is where guest
values are cleaned and bounded.
"""

from ceilometer_os_pollster import linux
from ceilometer_os_pollster import raw_facts
from ceilometer_os_pollster import record
from ceilometer_os_pollster import sanitize
from ceilometer_os_pollster import windows

UNKNOWN = raw_facts.UNKNOWN


def _roots(roots):
    return [r for r in roots or () if isinstance(r, raw_facts.RootFacts)]


def _plural(count, word):
    return '%d %s%s' % (count, word, '' if count == 1 else 's')


# --------------------------------------------------------------------------
# Root choice


def os_family(root):
    """Cleaned libguestfs type ('windows', 'linux', ...) or 'unknown'."""
    return raw_facts.token(root.type) or UNKNOWN


def licence_weight(root):
    """How much a root's OS tends to cost: the higher, the more likely it
    is the one that needs a licence."""
    family = os_family(root)
    if family == 'windows':
        return 4
    if family == 'linux':
        distro = linux.linux_identity(root)[0]
        return 3 if distro in linux.LICENSED_DISTROS else 2
    return 0 if family == UNKNOWN else 1


def choose_root(roots):
    """The root that is billed, or None when no root is usable.

    Policy, in order:
    1. a root libguestfs could not even type ('unknown') is not usable;
    2. a root on the boot disk (disk_index 0) beats roots on other disks,
       so a Windows data volume attached to a Linux VM does not make it a
       Windows VM;
    3. among those, the OS that costs more: Windows, then RHEL/SLES, then
       other Linux, then other known systems (BSD, DOS, ...);
    4. ties (e.g. two Linux roots) go to the first device name, so the
       result is deterministic.
    """
    usable = [root for root in _roots(roots)
              if os_family(root) != UNKNOWN]
    if not usable:
        return None
    return min(usable, key=lambda root: (
        sanitize.clean_int(root.disk_index, default=1) != 0,
        -licence_weight(root),
        sanitize.clean_text(root.device)))


# --------------------------------------------------------------------------
# Status reasons

_ENCRYPTION_KINDS = (('crypto_luks', 'LUKS'), ('bitlocker', 'BitLocker'))


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
    if family == 'windows':
        fields.update(windows.fields(root))
    elif family == 'linux':
        fields.update(linux.fields(root))
    else:
        fields.update(_other_fields(root))
    return fields


# --------------------------------------------------------------------------


def normalise(facts, instance_id, fingerprint='', duration=0.0, now=None):
    """The one OSRecord for an instance, from what the appliance saw.

    - a usable root (see choose_root) -> 'ok', described by that root; the
      reason notes other roots, encrypted volumes and warnings;
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
    root = choose_root(roots)
    if root is None:
        if encrypted:
            return record.OSRecord(status=record.STATUS_ENCRYPTED,
                                   reason=_reason(encrypted, warnings),
                                   **base)
        return record.OSRecord(status=record.STATUS_UNKNOWN,
                               reason=_reason(unknown_reason(facts),
                                              warnings),
                               **base)
    others = ''
    if len(roots) > 1:
        others = '%d operating systems found, reporting %s' % (
            len(roots), sanitize.clean_text(root.device, 64))
    if encrypted:
        encrypted += ' not inspected'
    sql = (windows.billing_notes(root) + [windows.sql_note(root)]
           if os_family(root) == 'windows' else [])
    return record.OSRecord(status=record.STATUS_OK,
                           reason=_reason(others, *sql, encrypted, warnings),
                           **base, **root_fields(root))
