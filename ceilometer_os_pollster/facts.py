"""Raw facts gathered inside the appliance, and the policy that turns
them into one normalised OSRecord.

Everything here is pure: plain data in, an OSRecord out, no guestfs, no
libvirt, no files.  Values in RootFacts/ApplianceFacts are untrusted guest
data exactly as read; normalise() is where they are cleaned and bounded.
"""

import dataclasses


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
