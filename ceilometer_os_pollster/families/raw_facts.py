"""Raw facts: what one inspection saw, exactly as read.

``RootFacts`` (one operating-system root) and ``ApplianceFacts`` (one
instance's drives) are filled in by either inspection method (the
appliance, or the direct readers) and read by the policy modules (the
family modules, ``facts``).  Their values are
untrusted guest data; the small readers below are how the policy looks
at them: cleaned, bounded, and libguestfs' 'unknown' placeholder read
as nothing.  Pure code.
"""

import dataclasses

from ceilometer_os_pollster import sanitize


@dataclasses.dataclass
class RootFacts:
    """One operating-system root found by inspection (untrusted values)."""

    device: str                      # e.g. /dev/sda2, /dev/VG/LV
    disk_index: int = 0              # index into the drives added, 0 = boot
    type: str = 'unknown'            # libguestfs inspect_get_type
    distro: str = 'unknown'          # inspect_get_distro
    osinfo: str = 'unknown'          # inspect_get_osinfo
    product_name: str = ''           # inspect_get_product_name
    product_variant: str = ''        # inspect_get_product_variant
    arch: str = ''                   # inspect_get_arch
    major: int = 0                   # inspect_get_major_version
    minor: int = 0                   # inspect_get_minor_version
    # Linux: /etc/os-release key -> value (quotes already removed).
    os_release: dict = dataclasses.field(default_factory=dict)
    # Windows: values read from SOFTWARE\Microsoft\Windows NT\CurrentVersion
    # (EditionID, CurrentBuildNumber, DisplayVersion, InstallationType,
    # ProductName, CurrentMajorVersionNumber, CurrentMinorVersionNumber),
    # as str or bytes exactly as read.
    windows: dict = dataclasses.field(default_factory=dict)
    # SQL Server: edition strings of each instance found under
    # SOFTWARE\Microsoft\Microsoft SQL Server\<InstanceID>\Setup\Edition.
    sql_editions: list = dataclasses.field(default_factory=list)
    # False when the list of SQL Server instances was not read to its
    # end (more names than sqlserver.MAX_SQL_INSTANCE_NAMES, or an
    # unreadable list): an edition not read may outrank every one in
    # sql_editions.
    sql_complete: bool = True
    # SUSE: /etc/products.d/baseproduct as read (bytes, bounded): the
    # installed base product's .prod XML, which zypper and SUSEConnect
    # go by.  b'' when absent.
    suse_baseproduct: bytes = b''


@dataclasses.dataclass
class ApplianceFacts:
    """Everything one appliance session learned about one instance."""

    roots: list = dataclasses.field(default_factory=list)   # [RootFacts]
    # Devices whose vfs_type says crypto_LUKS / BitLocker.
    encrypted_devices: list = dataclasses.field(default_factory=list)
    # Number of drives added and filesystems seen (for 'unknown' reasons).
    drives: int = 0
    filesystems: int = 0
    # Non-fatal problems met while gathering (short, for the reason field).
    warnings: list = dataclasses.field(default_factory=list)
    # Optional: device -> vfs_type ('crypto_LUKS', 'BitLocker') of the
    # encrypted devices, so the reason can say which kind they are.
    encrypted_types: dict = dataclasses.field(default_factory=dict)
    # Bounds reached that may have hidden a root that would be billed
    # (short, e.g. 'more than 16 roots'): the record is then billed as
    # the dearest product possible (facts.dearest_possible).
    limits: list = dataclasses.field(default_factory=list)


# The kinds of encrypted volume as encrypted_types names them (libguestfs'
# vfs_type spelling, which both methods use), each with the word the
# reason uses, in the order the reason lists them.
LUKS = 'crypto_LUKS'
BITLOCKER = 'BitLocker'
ENCRYPTION_KINDS = ((LUKS, 'LUKS'), (BITLOCKER, 'BitLocker'))

UNKNOWN = 'unknown'


def token(value):
    """A lowercase identifier ('' for nothing usable or 'unknown')."""
    cleaned = sanitize.clean_token(value).lower()
    return '' if cleaned == UNKNOWN else cleaned


def text(value, limit=255):
    """Display text; libguestfs' 'unknown' placeholder becomes ''."""
    cleaned = sanitize.clean_text(value, limit)
    return '' if cleaned.lower() == UNKNOWN else cleaned


def mapping(value):
    """A dict with lowercase str keys; anything else is an empty dict."""
    if not isinstance(value, dict):
        return {}
    return {k.lower(): v for k, v in value.items() if isinstance(k, str)}
