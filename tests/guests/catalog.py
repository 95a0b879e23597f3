"""The phony guests tests inspect, and what the pollster must say of each.

One table (``GUESTS``): every guest's disk contents in a few declarative
fields (registry values, os-release text, faults) and its ``Expected``
normalised record, field by field.  Expected values are written by hand
from the billing policy (facts.py): they are the contract, not a copy of
whatever the code says.  builder.py turns an entry into a disk image;
nothing here does I/O.

Expected field values follow OSRecord's names; ``ANY`` (None) marks a
field that is not scored exactly (hostile guests: the test checks only
that the value is clean and bounded).

A guest is usually one disk holding one system.  ``systems`` puts
several side by side on one GPT boot disk (what a tenant does to steer
its bill), and ``second_disk`` names the catalog guest attached as the
second drive: that guest's Expected is for both disks inspected together
(``inspect_all_disks``).
"""

import dataclasses

from ceilometer_os_pollster import record
from tests.guests import hive

ANY = None

STATUS_OK = 'ok'
STATUS_UNKNOWN = 'unknown'
STATUS_ENCRYPTED = 'encrypted'
STATUS_FAILED = 'failed'

# The passphrase of the LUKS guest: tests may prove the volume is real.
LUKS_PASSPHRASE = 'pollster-test-passphrase'


# Record fields that are bookkeeping of one inspection, not facts about
# the guest: never part of an expectation.  Every other OSRecord field
# is, so a new record field is expected here without another edit.
UNSCORED = frozenset({'instance_id', 'reason', 'inspected_at',
                      'fingerprint', 'duration', 'inspection_method'})


def _scored(self):
    """{field: value} of every field compared exactly."""
    return {f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not ANY}


def _expected_fields():
    yield 'status', str                 # every guest states its own
    for f in dataclasses.fields(record.OSRecord):
        if f.name not in UNSCORED and f.name != 'status':
            yield f.name, f.type, dataclasses.field(default=f.default)


Expected = dataclasses.make_dataclass(
    'Expected', list(_expected_fields()), frozen=True,
    namespace={'scored': _scored, '__doc__':
               'The normalised record an inspection of the guest must '
               'produce: OSRecord\'s guest fields, with its defaults.'})
Expected.__module__ = __name__


def actual_fields(result):
    """Expected's field names -> values of an OSRecord, its metadata()
    dict or its to_dict()."""
    if isinstance(result, dict):
        data = dict(result)
        if 'os_inspection_status' in data:
            data['status'] = data['os_inspection_status']
    else:
        data = {f.name: getattr(result, f.name, None)
                for f in dataclasses.fields(Expected)}
    return {f.name: data.get(f.name) for f in dataclasses.fields(Expected)}


def mismatches(expected, result):
    """[(field, expected, actual)] for every scored field that differs."""
    actual = actual_fields(result)
    return [(name, want, actual[name])
            for name, want in expected.scored().items()
            if actual[name] != want]


@dataclasses.dataclass(frozen=True)
class SqlInstance:
    name: str           # e.g. MSSQLSERVER, SQLEXPRESS
    instance_id: str    # e.g. MSSQL16.MSSQLSERVER
    edition: str        # Setup\Edition as the installer writes it
    edition_type: str = ''
    version: str = '16.0.1000.6'


@dataclasses.dataclass(frozen=True)
class Windows:
    """What a Windows guest's disk holds (SOFTWARE/SYSTEM hive values)."""

    product_name: str
    edition_id: str
    installation_type: str
    build: str
    display_version: str = ''
    release_id: str = ''
    ubr: int = 0
    hostname: str = 'WIN'
    # Before (10, 0) the registry has CurrentVersion 'major.minor' and no
    # Current{Major,Minor}VersionNumber DWORDs.
    nt_version: tuple = (10, 0)
    firmware: str = 'bios'         # bios: MBR + System Reserved; uefi: GPT
    sql: tuple = ()                # SqlInstance...
    # 'Instance Names' values naming instances that do not exist, listed
    # before the real ones: a registry a tenant filled to push its real
    # edition out of the inspector's reach.
    sql_fake_names: int = 0
    # Faults: cmd.exe that file(1) calls "MS-DOS executable" (libguestfs
    # 1.48 then fails inspect_os for the whole handle); no SOFTWARE hive.
    cmd_exe_is_pe: bool = True
    software_hive: bool = True
    # (value name, (type, bytes)) replacing CurrentVersion values, for
    # hostile data the str fields cannot express (bad UTF-16, ...).
    current_version_overrides: tuple = ()


@dataclasses.dataclass(frozen=True)
class Linux:
    """What a Linux guest's root filesystem holds."""

    os_release: bytes
    # (path, content) of distro files; content b'->target' is a symlink.
    release_files: tuple = ()
    hostname: str = 'localhost'
    merged_usr: bool = True        # /bin -> usr/bin, as in every recent distro
    boot_partition: bool = False   # separate /boot (grub2) partition
    swap: bool = False
    # The root on btrfs, as an installer lays it out: 'suse' (subvolume
    # @ with @/var, @/home..., the root in snapper's default subvolume
    # @/.snapshots/1/snapshot) or 'fedora' (top level left the default,
    # subvolumes root and home, fstab subvol=root).  '': ext4.
    btrfs: str = ''
    # suse: (os-release, release_files) of snapper's read-only snapshots
    # 2, 3... of the root (one taken before an upgrade says the older
    # release).
    snapshots: tuple = ()
    # /usr on a partition of its own (ext4), mounted by /etc/fstab.
    separate_usr: bool = False
    # The RHEL family's installer default: an XFS /boot partition, then
    # an LVM PV holding VG rhel with LVs root (XFS) and swap, mounted by
    # /dev/mapper names.
    xfs_lvm: bool = False


@dataclasses.dataclass(frozen=True)
class Subvolumes:
    """A btrfs filesystem holding nothing but ``count`` empty subvolumes
    (libguestfs lists each one as a filesystem of its own)."""

    count: int


@dataclasses.dataclass(frozen=True)
class Guest:
    name: str
    description: str
    expected: Expected
    # Exactly one of windows/linux/systems, or a non-OS kind below.
    windows: Windows = None
    linux: Linux = None
    # Windows (firmware 'uefi': the disk is GPT), Linux or Subvolumes,
    # one partition each on one GPT disk, in this order.
    systems: tuple = ()
    kind: str = ''                 # blank, data, corrupt, luks,
    #                                bootloader ('' = OS)
    # Another catalog guest attached as the second disk (vdb).
    second_disk: str = ''
    # ((name, value), ...): [os_inspection] options ``expected`` assumes.
    options: tuple = ()
    # Strings are hostile: score only that they come out clean.
    hostile: bool = False

    @property
    def family(self):
        if self.windows:
            return 'windows'
        if self.linux:
            return 'linux'
        if self.systems:
            return 'several'
        return self.kind


# ---------------------------------------------------------------------------
# Helpers that keep the table below to one line of facts per guest.

def _os_release(**fields):
    """os-release text in the distros' own key order and quoting."""
    lines = []
    for key, value in fields.items():
        if isinstance(value, bytes):
            lines.append(key.encode() + b'="' + value + b'"')
        else:
            lines.append(('%s="%s"' % (key, value)).encode())
    return b'\n'.join(lines) + b'\n'


def _server(product, edition_id, build, edition, os_info, *,
            variant='Server', sql_edition='', **windows):
    return dict(
        windows=Windows(product_name=product, edition_id=edition_id,
                        installation_type=variant, build=build, **windows),
        expected=Expected(
            status=STATUS_OK, os_family='windows', os_distro='windows',
            os_info=os_info,
            os_version_major=windows.get('nt_version', (10, 0))[0],
            os_version_minor=windows.get('nt_version', (10, 0))[1],
            os_build=build, os_product_name=product,
            os_product_variant=variant, os_edition=edition,
            os_arch='x86_64', sql_server_edition=sql_edition))


def _client(product, edition_id, build, edition, os_info, shown, **windows):
    spec = _server(product, edition_id, build, edition, os_info,
                   variant='Client', **windows)
    spec['expected'] = dataclasses.replace(spec['expected'],
                                           os_product_name=shown)
    return spec


def _linux(distro, major, minor, os_info, product, os_release,
           release_files=(), **linux):
    return dict(
        linux=Linux(os_release=os_release, release_files=release_files,
                    **linux),
        expected=Expected(
            status=STATUS_OK, os_family='linux', os_distro=distro,
            os_info=os_info, os_version_major=major,
            os_version_minor=minor, os_product_name=product,
            os_arch='x86_64'))


def _edition(edition, spec):
    spec['expected'] = dataclasses.replace(spec['expected'],
                                           os_edition=edition)
    return spec


def _nothing(status, kind, **extra):
    return dict(kind=kind, expected=Expected(status=status), **extra)


_RHEL_RELEASE = _os_release(
    NAME='Red Hat Enterprise Linux', VERSION='9.4 (Plow)', ID='rhel',
    ID_LIKE='fedora', VERSION_ID='9.4', PLATFORM_ID='platform:el9',
    PRETTY_NAME='Red Hat Enterprise Linux 9.4 (Plow)', ANSI_COLOR='0;31',
    LOGO='fedora-logo-icon',
    CPE_NAME='cpe:/o:redhat:enterprise_linux:9::baseos',
    HOME_URL='https://www.redhat.com/',
    REDHAT_SUPPORT_PRODUCT='Red Hat Enterprise Linux',
    REDHAT_SUPPORT_PRODUCT_VERSION='9.4')

# Hostile os-release: claims RHEL 9.4 (which is billed) with a 64 KiB
# PRETTY_NAME full of terminal escapes, bidi overrides and bytes that
# are not UTF-8.  No '"', '\\', '$' or '`': libguestfs must still parse
# the line (its shell unquoting fails on those), so only the value is
# hostile.
_HOSTILE_PRETTY = (b'Red Hat Enterprise Linux 9.4 (Plow)'
                   b'\x1b[2J\x1b]0;owned\x07\xe2\x80\xae'
                   b'\xff\xfe\xc3\x28\xed\xa0\x80\x7f'
                   + b'A\x01\x0b' * 21845)

_SQL_2019 = (
    SqlInstance('MSSQLSERVER', 'MSSQL16.MSSQLSERVER',
                'Enterprise Edition: Core-based Licensing (64-bit)',
                'Enterprise Edition'),
    SqlInstance('SQLEXPRESS', 'MSSQL16.SQLEXPRESS',
                'Express Edition (64-bit)', 'Express Edition'),
)

# ProductName of 10 000 characters: a lying product name (says 2019,
# the build says 2022) followed by C0/C1 controls, ANSI colour and
# screen-clearing escapes, a right-to-left override, zero-width and
# private-use characters.
_HOSTILE_PRODUCT = ('Windows Server 2019 Datacenter\r\n\x1b[31mRED\x1b[0m'
                    '\x1b[2J\u202egnilleb\u202c\u200b\ue000\x85\x9b'
                    + '\x07X\t' * 3300)[:10000]


_W2022_CORE = _server(
    'Windows Server 2022 Datacenter', 'ServerDatacenter', '20348',
    'Datacenter', 'win2k22', variant='Server Core', display_version='21H2',
    release_id='2009', ubr=2461, hostname='W2022CORE', firmware='uefi')


def _sles_release(sp):
    return _os_release(
        NAME='SLES', VERSION='15-SP%d' % sp, VERSION_ID='15.%d' % sp,
        PRETTY_NAME='SUSE Linux Enterprise Server 15 SP%d' % sp, ID='sles',
        ID_LIKE='suse', ANSI_COLOR='0;32',
        CPE_NAME='cpe:/o:suse:sles:15:sp%d' % sp,
        DOCUMENTATION_URL='https://documentation.suse.com/')


_SLES_155_RELEASE = _sles_release(5)
_SLES_154_RELEASE = _sles_release(4)


def _sles_product(sp):
    """release_files of a SLES 15 root: its base product, as shipped."""
    return (
        (b'/etc/products.d/SLES.prod',
         b'<?xml version="1.0" encoding="UTF-8"?>\n'
         b'<product schemeversion="0">\n  <vendor>SUSE</vendor>\n'
         b'  <name>SLES</name>\n  <version>15.%d</version>\n'
         b'  <baseversion>15</baseversion>\n  <patchlevel>%d</patchlevel>\n'
         b'  <arch>x86_64</arch>\n  <summary>SUSE Linux Enterprise Server '
         b'15 SP%d</summary>\n</product>\n' % (sp, sp, sp)),
        (b'/etc/products.d/baseproduct', b'->SLES.prod'))


_UBUNTU_2204 = _linux(
    'ubuntu', 22, 4, 'ubuntu22.04', 'Ubuntu 22.04.4 LTS',
    _os_release(PRETTY_NAME='Ubuntu 22.04.4 LTS', NAME='Ubuntu',
                VERSION_ID='22.04', VERSION='22.04.4 LTS (Jammy Jellyfish)',
                VERSION_CODENAME='jammy', ID='ubuntu', ID_LIKE='debian',
                HOME_URL='https://www.ubuntu.com/', UBUNTU_CODENAME='jammy'),
    ((b'/etc/lsb-release',
      b'DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\n'
      b'DISTRIB_CODENAME=jammy\n'
      b'DISTRIB_DESCRIPTION="Ubuntu 22.04.4 LTS"\n'),
     (b'/etc/debian_version', b'bookworm/sid\n')),
    hostname='ubuntu2204')

# --- Several systems on one boot disk, or a boot disk that chain-loads
# another: what a tenant can do to its own disks to pay less.  Each is
# billed at least as its dearest system (issue 21), and the reason says
# how many roots there were and which one was billed.

_SQL_ENTERPRISE = (
    SqlInstance('MSSQLSERVER', 'MSSQL16.MSSQLSERVER',
                'Enterprise Edition: Core-based Licensing (64-bit)',
                'Enterprise Edition'),)

_W2022_DC_SQL = _server(
    'Windows Server 2022 Datacenter', 'ServerDatacenter', '20348',
    'Datacenter', 'win2k22', display_version='21H2', release_id='2009',
    ubr=2461, hostname='W2022DCSQL', firmware='uefi', sql=_SQL_ENTERPRISE,
    sql_edition='Enterprise')

_W2022_STD_UEFI = _server(
    'Windows Server 2022 Standard', 'ServerStandard', '20348', 'Standard',
    'win2k22', display_version='21H2', release_id='2009', ubr=2461,
    hostname='W2022STDGPT', firmware='uefi')

_DECOYS = (_UBUNTU_2204['linux'],) * 8

# Past a bound the inspection cannot vouch for what it did not visit:
# billed as the dearest product, Windows Server Datacenter with SQL
# Server Enterprise, described by the Windows root the bounded scan
# found (no inspect_os: libguestfs names no architecture).
_FLOOD_BOUND = 16
_FLOOD = dataclasses.replace(
    _W2022_STD_UEFI['expected'], os_edition='Datacenter',
    sql_server_edition='Enterprise', os_arch=ANY)


_TABLE = [
    # --- Windows Server ----------------------------------------------------
    ('win2016-standard', 'Windows Server 2016 Standard (BIOS/MBR)',
     _server('Windows Server 2016 Standard', 'ServerStandard', '14393',
             'Standard', 'win2k16', release_id='1607', ubr=6897,
             hostname='W2016STD')),
    ('win2012r2-standard',
     'Windows Server 2012 R2 Standard (BIOS/MBR; NT 6.3 read from '
     'CurrentVersion: no Current*VersionNumber before Windows 10)',
     _server('Windows Server 2012 R2 Standard', 'ServerStandard', '9600',
             'Standard', 'win2k12r2', nt_version=(6, 3), ubr=21620,
             hostname='W2012R2STD')),
    ('win2019-datacenter', 'Windows Server 2019 Datacenter (BIOS/MBR)',
     _server('Windows Server 2019 Datacenter', 'ServerDatacenter', '17763',
             'Datacenter', 'win2k19', release_id='1809', ubr=5936,
             hostname='W2019DC')),
    ('win2022-standard', 'Windows Server 2022 Standard (BIOS/MBR)',
     _server('Windows Server 2022 Standard', 'ServerStandard', '20348',
             'Standard', 'win2k22', display_version='21H2',
             release_id='2009', ubr=2461, hostname='W2022STD')),
    ('win2022-datacenter-core',
     'Windows Server 2022 Datacenter, Server Core installation (UEFI/GPT)',
     _W2022_CORE),
    ('win2025-datacenter',
     'Windows Server 2025 Datacenter (UEFI/GPT; libguestfs 1.48 says '
     'win2k16)',
     _server('Windows Server 2025 Datacenter', 'ServerDatacenter', '26100',
             'Datacenter', 'win2k25', display_version='24H2',
             release_id='2009', ubr=2033, hostname='W2025DC',
             firmware='uefi')),
    ('win2022-standard-eval', 'Windows Server 2022 Standard Evaluation',
     _server('Windows Server 2022 Standard Evaluation', 'ServerStandardEval',
             '20348', 'Standard Evaluation', 'win2k22',
             display_version='21H2', release_id='2009', ubr=587,
             hostname='W2022EVAL')),
    ('win2019-sql',
     'Windows Server 2019 Standard with SQL Server 2022 Enterprise and '
     'Express instances',
     _server('Windows Server 2019 Standard', 'ServerStandard', '17763',
             'Standard', 'win2k19', release_id='1809', ubr=5936,
             hostname='W2019SQL', sql=_SQL_2019,
             sql_edition='Enterprise')),
    # --- Windows clients ---------------------------------------------------
    ('win10-pro', 'Windows 10 Pro 22H2 (build 19045)',
     _client('Windows 10 Pro', 'Professional', '19045', 'Professional',
             'win10', 'Windows 10 Pro', display_version='22H2',
             release_id='2009', ubr=4529, hostname='DESKTOP-W10')),
    ('win11-pro',
     'Windows 11 Pro 23H2 (build 22631; ProductName still says Windows 10)',
     _client('Windows 10 Pro', 'Professional', '22631', 'Professional',
             'win11', 'Windows 11 Pro', display_version='23H2',
             release_id='2009', ubr=3880, hostname='DESKTOP-W11',
             firmware='uefi')),
    # --- Linux -------------------------------------------------------------
    ('rhel-9.4', 'Red Hat Enterprise Linux 9.4 (separate /boot)',
     _linux('rhel', 9, 4, 'rhel9.4', 'Red Hat Enterprise Linux 9.4 (Plow)',
            _RHEL_RELEASE,
            ((b'/etc/redhat-release',
              b'Red Hat Enterprise Linux release 9.4 (Plow)\n'),
             (b'/etc/system-release', b'->redhat-release')),
            hostname='rhel94.example.com', boot_partition=True)),
    ('rhel-9.4-xfs-lvm',
     'Red Hat Enterprise Linux 9.4 as its installer lays it out: XFS '
     '/boot, XFS root and swap on LVM (VG rhel)',
     _linux('rhel', 9, 4, 'rhel9.4', 'Red Hat Enterprise Linux 9.4 (Plow)',
            _RHEL_RELEASE,
            ((b'/etc/redhat-release',
              b'Red Hat Enterprise Linux release 9.4 (Plow)\n'),
             (b'/etc/system-release', b'->redhat-release')),
            hostname='rhel94.example.com', xfs_lvm=True)),
    ('rocky-9.3', 'Rocky Linux 9.3',
     _linux('rocky', 9, 3, 'rocky9', 'Rocky Linux 9.3 (Blue Onyx)',
            _os_release(NAME='Rocky Linux', VERSION='9.3 (Blue Onyx)',
                        ID='rocky', ID_LIKE='rhel centos fedora',
                        VERSION_ID='9.3', PLATFORM_ID='platform:el9',
                        PRETTY_NAME='Rocky Linux 9.3 (Blue Onyx)',
                        CPE_NAME='cpe:/o:rocky:rocky:9::baseos'),
            ((b'/etc/rocky-release',
              b'Rocky Linux release 9.3 (Blue Onyx)\n'),
             (b'/etc/redhat-release', b'->rocky-release'),
             (b'/etc/system-release', b'->rocky-release')),
            hostname='rocky93')),
    ('almalinux-9.4',
     'AlmaLinux 9.4 (libguestfs 1.48 says redhat-based)',
     _linux('almalinux', 9, 4, 'almalinux9',
            'AlmaLinux release 9.4 (Seafoam Ocelot)',
            _os_release(NAME='AlmaLinux', VERSION='9.4 (Seafoam Ocelot)',
                        ID='almalinux', ID_LIKE='rhel centos fedora',
                        VERSION_ID='9.4', PLATFORM_ID='platform:el9',
                        PRETTY_NAME='AlmaLinux 9.4 (Seafoam Ocelot)',
                        CPE_NAME='cpe:/o:almalinux:almalinux:9::baseos'),
            ((b'/etc/almalinux-release',
              b'AlmaLinux release 9.4 (Seafoam Ocelot)\n'),
             (b'/etc/redhat-release', b'->almalinux-release'),
             (b'/etc/system-release', b'->almalinux-release')),
            hostname='alma94')),
    ('oracle-8.9',
     'Oracle Linux 8.9 (its redhat-release says RHEL: a trap)',
     _linux('oraclelinux', 8, 9, 'ol8.9', 'Oracle Linux Server release 8.9',
            _os_release(NAME='Oracle Linux Server', VERSION='8.9',
                        ID='ol', ID_LIKE='fedora', VARIANT='Server',
                        VARIANT_ID='server', VERSION_ID='8.9',
                        PLATFORM_ID='platform:el8',
                        PRETTY_NAME='Oracle Linux Server 8.9',
                        CPE_NAME='cpe:/o:oracle:linux:8:9:server'),
            ((b'/etc/oracle-release', b'Oracle Linux Server release 8.9\n'),
             (b'/etc/redhat-release',
              b'Red Hat Enterprise Linux release 8.9 (Ootpa)\n'),
             (b'/etc/system-release', b'->oracle-release')),
            hostname='ol89')),
    ('sles-15-sp5', 'SUSE Linux Enterprise Server 15 SP5 (no merged /usr)',
     _linux('sles', 15, 5, 'sle15sp5', 'SUSE Linux Enterprise Server 15 SP5',
            _os_release(NAME='SLES', VERSION='15-SP5', VERSION_ID='15.5',
                        PRETTY_NAME='SUSE Linux Enterprise Server 15 SP5',
                        ID='sles', ID_LIKE='suse', ANSI_COLOR='0;32',
                        CPE_NAME='cpe:/o:suse:sles:15:sp5',
                        DOCUMENTATION_URL='https://documentation.suse.com/'),
            hostname='sles15sp5', merged_usr=False)),
    # SLES for SAP 15's os-release says plain SLES; SUSE's tools (and
    # so the billing) go by the base product the symlink names.
    ('sles-sap-15-sp5', 'SUSE Linux Enterprise Server for SAP '
     'Applications 15 SP5 (base product symlink)',
     _edition('SAP', _linux(
         'sles', 15, 5, 'sle15sp5', 'SUSE Linux Enterprise Server 15 SP5',
         _os_release(NAME='SLES', VERSION='15-SP5', VERSION_ID='15.5',
                     PRETTY_NAME='SUSE Linux Enterprise Server 15 SP5',
                     ID='sles', ID_LIKE='suse', ANSI_COLOR='0;32',
                     CPE_NAME='cpe:/o:suse:sles_sap:15:sp5'),
         ((b'/etc/products.d/SLES_SAP.prod',
           b'<?xml version="1.0" encoding="UTF-8"?>\n'
           b'<product schemeversion="0">\n  <vendor>SUSE</vendor>\n'
           b'  <name>SLES_SAP</name>\n  <version>15.5</version>\n'
           b'  <baseversion>15</baseversion>\n'
           b'  <patchlevel>5</patchlevel>\n  <release>0</release>\n'
           b'  <arch>x86_64</arch>\n  <summary>SUSE Linux Enterprise '
           b'Server for SAP Applications 15 SP5</summary>\n</product>\n'),
          (b'/etc/products.d/baseproduct', b'->SLES_SAP.prod')),
         hostname='slessap155'))),
    # SUSE's installer default: btrfs, the root a snapper snapshot, a
    # few snapshots beside it (one from before the SP5 upgrade).  Every
    # root counts; the running one (the default subvolume, /dev/sda1)
    # is billed, the snapshots being the same product.
    ('sles-15-sp5-btrfs',
     'SUSE Linux Enterprise Server 15 SP5 on btrfs as its installer lays '
     'it out (root in snapshot 1, @/var, @/home..., snapper snapshots '
     '2-4, snapshot 2 still SP4)',
     _linux('sles', 15, 5, 'sle15sp5', 'SUSE Linux Enterprise Server 15 SP5',
            _SLES_155_RELEASE, _sles_product(5), hostname='sles15sp5',
            merged_usr=False, btrfs='suse',
            snapshots=((_SLES_154_RELEASE, _sles_product(4)),
                       (_SLES_155_RELEASE, _sles_product(5)),
                       (_SLES_155_RELEASE, _sles_product(5))))),
    ('fedora-39-btrfs',
     'Fedora 39 on btrfs as its installer lays it out (top level left the '
     'default, subvolumes root and home, /etc/fstab subvol=root)',
     _linux('fedora', 39, 0, 'fedora39', 'Fedora Linux 39 (Server Edition)',
            _os_release(NAME='Fedora Linux', VERSION='39 (Server Edition)',
                        ID='fedora', VERSION_ID='39',
                        VERSION_CODENAME='', PLATFORM_ID='platform:f39',
                        PRETTY_NAME='Fedora Linux 39 (Server Edition)',
                        CPE_NAME='cpe:/o:fedoraproject:fedora:39',
                        VARIANT='Server Edition', VARIANT_ID='server'),
            ((b'/etc/fedora-release',
              b'Fedora release 39 (Thirty Nine)\n'),
             (b'/etc/redhat-release', b'->fedora-release'),
             (b'/etc/system-release', b'->fedora-release')),
            hostname='fedora39', btrfs='fedora')),
    # Nothing in the root names the OS (no SuSE-release; os-release and
    # the binaries are in /usr): libguestfs takes both from the /usr
    # filesystem the root's fstab mounts.
    ('sles-15-sp5-separate-usr',
     'SUSE Linux Enterprise Server 15 SP5 with /usr on a partition of its '
     'own',
     _linux('sles', 15, 5, 'sle15sp5', 'SUSE Linux Enterprise Server 15 SP5',
            _SLES_155_RELEASE, hostname='sles15usr', separate_usr=True)),
    ('ubuntu-22.04', 'Ubuntu 22.04.4 LTS', _UBUNTU_2204),
    ('debian-12', 'Debian 12.5 with a swap partition',
     _linux('debian', 12, 5, 'debian12', 'Debian GNU/Linux 12 (bookworm)',
            _os_release(PRETTY_NAME='Debian GNU/Linux 12 (bookworm)',
                        NAME='Debian GNU/Linux', VERSION_ID='12',
                        VERSION='12 (bookworm)', VERSION_CODENAME='bookworm',
                        ID='debian', HOME_URL='https://www.debian.org/'),
            ((b'/etc/debian_version', b'12.5\n'),),
            hostname='debian12', swap=True)),
    # --- no operating system -----------------------------------------------
    ('blank', 'A zeroed disk with no partition table',
     _nothing(STATUS_UNKNOWN, 'blank')),
    ('data-only', 'An ext4 data disk with files and no OS',
     _nothing(STATUS_UNKNOWN, 'data')),
    ('corrupt-fs', 'A partition whose ext4 superblock is garbage',
     _nothing(STATUS_UNKNOWN, 'corrupt')),
    ('luks', 'Unencrypted /boot plus a LUKS2 volume (passphrase in '
     'catalog.LUKS_PASSPHRASE, no filesystem inside)',
     _nothing(STATUS_ENCRYPTED, 'luks')),
    # --- hostile and broken guests -----------------------------------------
    ('hostile-registry',
     'Windows Server 2022 whose ProductName is 10 000 characters of '
     'escapes and controls, EditionID holds a newline, DisplayVersion is '
     'ill-formed UTF-16',
     dict(hostile=True,
          windows=Windows(
              product_name=_HOSTILE_PRODUCT,
              edition_id='ServerDatacenter\nInjected: 1',
              installation_type='Server', build='20348',
              display_version='21H2', ubr=2461, hostname='HOSTILE',
              current_version_overrides=(
                  ('DisplayVersion',
                   hive.raw(hive.REG_SZ, b'2\x001\x00\x00\xd8H\x002\x00'
                            b'\x00\x00')),)),
          expected=Expected(
              status=STATUS_OK, os_family='windows', os_distro='windows',
              os_info='win2k22', os_version_major=10, os_version_minor=0,
              os_build='20348', os_product_name=ANY,
              os_product_variant='Server', os_edition=ANY,
              os_arch='x86_64'))),
    ('hostile-os-release',
     'Claims RHEL 9.4 with a 64 KiB PRETTY_NAME of escapes and invalid '
     'UTF-8',
     dict(hostile=True,
          linux=Linux(
              os_release=_os_release(
                  NAME='Red Hat Enterprise Linux', ID='rhel',
                  VERSION_ID='9.4', PRETTY_NAME=_HOSTILE_PRETTY,
                  VARIANT=b'\x1b[5m\xc0\xafx'),
              release_files=((b'/etc/redhat-release',
                              b'Red Hat Enterprise Linux release 9.4\n'),),
              hostname='hostile\x1b[31m'),
          expected=Expected(
              status=STATUS_OK, os_family='linux', os_distro='rhel',
              os_info='rhel9.4', os_version_major=9, os_version_minor=4,
              os_product_name=ANY, os_arch='x86_64'))),
    # More names than the inspector reads (4096): billed as Enterprise,
    # the documented fail-safe, never as what the names read so far say.
    ('sql-instance-flood',
     'Windows Server 2022 Standard with SQL Server Express and Standard '
     'instances listed after 5000 made-up instance names',
     _server('Windows Server 2022 Standard', 'ServerStandard', '20348',
             'Standard', 'win2k22', display_version='21H2',
             release_id='2009', ubr=2461, hostname='SQLFLOOD',
             sql=_SQL_2019[1:] + (
                 SqlInstance('MSSQLSERVER', 'MSSQL16.MSSQLSERVER',
                             'Standard Edition (64-bit)',
                             'Standard Edition'),),
             sql_fake_names=5000, sql_edition='Enterprise')),
    # libguestfs 1.48 fails inspect_os for every disk of the handle; the
    # engine's per-filesystem scan still finds Windows through its
    # SOFTWARE hive (a broken cmd.exe must not hide a licence), but knows
    # no architecture.
    ('windows-bad-cmd',
     'Windows Server 2022 whose cmd.exe is not PE: libguestfs 1.48 fails '
     'inspect_os for every disk of the handle',
     dict(_server('Windows Server 2022 Standard', 'ServerStandard',
                  '20348', 'Standard', 'win2k22', hostname='BADCMD',
                  cmd_exe_is_pe=False),
          expected=Expected(
              status=STATUS_OK, os_family='windows', os_distro='windows',
              os_info='win2k22', os_version_major=10, os_version_minor=0,
              os_build='20348',
              os_product_name='Windows Server 2022 Standard',
              os_product_variant='Server', os_edition='Standard',
              os_arch=''))),
    ('windows-no-software',
     'Windows whose SOFTWARE hive is missing: a Windows root with no '
     'version',
     dict(windows=Windows(
              product_name='Windows Server 2022 Standard',
              edition_id='ServerStandard', installation_type='Server',
              build='20348', hostname='NOSOFT', software_hive=False),
          expected=Expected(
              status=STATUS_OK, os_family='windows', os_distro='windows',
              os_arch='x86_64'))),
    # --- odd registry values: billed as the dearer reading ------------------
    # A look-alike EditionID matches no price as a raw string: billed as
    # the top edition of the line (billing guide, Odd registry values).
    ('windows-lookalike-edition',
     'Windows Server 2022 whose EditionID is ServerD\u0430tacenter (a '
     'Cyrillic a): not a known edition',
     _server('Windows Server 2022 Datacenter', 'ServerD\u0430tacenter',
             '20348', 'Datacenter', 'win2k22', display_version='21H2',
             release_id='2009', ubr=2461, hostname='LOOKALIKE')),
    # ProductName says Datacenter, EditionID Standard, InstallationType
    # Client: a Server (no 'Client' variant, so the core minimum applies)
    # of the dearer edition.
    ('windows-disagreeing-values',
     'Windows Server 2022 whose ProductName says Datacenter, EditionID '
     'ServerStandard and InstallationType Client',
     dict(_server('Windows Server 2022 Datacenter', 'ServerStandard',
                  '20348', 'Datacenter', 'win2k22'),
          windows=Windows(
              product_name='Windows Server 2022 Datacenter',
              edition_id='ServerStandard', installation_type='Client',
              build='20348', display_version='21H2', release_id='2009',
              ubr=2461, hostname='DISAGREE'))),
    # --- steering the bill (issue 21) --------------------------------------
    ('decoy-roots-before',
     'Eight small Ubuntu roots, then Windows Server 2022 Datacenter with '
     'SQL Server Enterprise, on one GPT disk',
     dict(systems=_DECOYS + (_W2022_DC_SQL['windows'],),
          expected=_W2022_DC_SQL['expected'])),
    ('decoy-roots-after',
     'Windows Server 2022 Datacenter with SQL Server Enterprise, then eight '
     'small Ubuntu roots, on one GPT disk',
     dict(systems=(_W2022_DC_SQL['windows'],) + _DECOYS,
          expected=_W2022_DC_SQL['expected'])),
    ('two-windows-roots',
     'Windows Server 2022 Standard without SQL Server, then Datacenter '
     'with SQL Server Enterprise, on one GPT disk',
     dict(systems=(_W2022_STD_UEFI['windows'], _W2022_DC_SQL['windows']),
          expected=_W2022_DC_SQL['expected'])),
    ('subvolume-flood',
     'A btrfs filesystem of 40 empty subvolumes, then Windows Server 2022 '
     'Standard, on one GPT disk; inspected with max_filesystems=%d'
     % _FLOOD_BOUND,
     dict(systems=(Subvolumes(40), _W2022_STD_UEFI['windows']),
          options=(('max_filesystems', _FLOOD_BOUND),), expected=_FLOOD)),
    ('chain-loader-boot',
     'A GPT disk with only an EFI system partition whose GRUB chain-loads '
     'Windows on the second disk (win2022-datacenter-core)',
     dict(kind='bootloader', second_disk='win2022-datacenter-core',
          expected=_W2022_CORE['expected'])),
]


def _make(name, description, fields):
    return Guest(name=name, description=description, **fields)


GUESTS = {name: _make(name, description, fields)
          for name, description, fields in _TABLE}

# Convenient groups for tests.
WINDOWS = tuple(n for n, g in GUESTS.items() if g.windows)
LINUX = tuple(n for n, g in GUESTS.items() if g.linux)
NON_OS = tuple(n for n, g in GUESTS.items() if g.kind)
# Windows guests whose registry values are odd or disagree: billed as the
# dearer reading, not as any one value says
# (tests/unit/families/test_windows.py).
ODD_REGISTRY = ('windows-lookalike-edition', 'windows-disagreeing-values')
# Guests that can share one appliance handle, in a safe drive order.
# windows-bad-cmd makes libguestfs 1.48 fail inspect_os for the whole
# handle.  A disk with no partition table must come after every Windows
# BIOS disk: to map MountedDevices to drive letters, libguestfs runs
# parted on each disk in turn until the MBR signature matches, and
# parted's "unrecognised disk label" on a blank disk fails inspect_os.
# Guests that need options or a second disk of their own are not.
SHAREABLE = tuple(sorted(
    (n for n, g in GUESTS.items()
     if not (g.windows and not g.windows.cmd_exe_is_pe)
     and not g.options and not g.second_disk),
    key=lambda n: GUESTS[n].kind == 'blank'))
