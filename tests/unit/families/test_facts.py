"""Tables of raw appliance facts and the OSRecord the billing policy makes
of them (ceilometer_os_pollster.families.facts, .windows, .linux)."""

import unicodedata

import pytest

from ceilometer_os_pollster.families import facts as F
from ceilometer_os_pollster.families import guest_formats as GF
from ceilometer_os_pollster.families import linux as LX
from ceilometer_os_pollster.families import raw_facts as R
from ceilometer_os_pollster import record
from ceilometer_os_pollster.families import sqlserver
from ceilometer_os_pollster.families import windows as W
from ceilometer_os_pollster.families import windows_editions as WE
from tests.unit.families.roots import NOW
from tests.unit.families.roots import linux_root
from tests.unit.families.roots import normalise
from tests.unit.families.roots import windows_root


def assert_clean(rec):
    """Every string in the sample is bounded, printable UTF-8."""
    for key, value in rec.metadata().items():
        if isinstance(value, int):
            continue
        assert isinstance(value, str), key
        assert len(value) <= 255, key
        value.encode('utf-8')
        assert value == value.strip(), key
        for char in value:
            assert unicodedata.category(char) not in ('Cc', 'Cf', 'Cs'), (
                key, value)


# --------------------------------------------------------------------------
# Windows Server

SERVER_RELEASES = [
    # build, os_info, year; libguestfs 1.48's osinfo guess (wrong for 2025)
    (14393, 'win2k16', '2016', 'win2k16'),
    (17763, 'win2k19', '2019', 'win2k19'),
    (20348, 'win2k22', '2022', 'win2k22'),
    (26100, 'win2k25', '2025', 'win2k16'),
]
SERVER_EDITIONS = [
    # EditionID, os_edition, words in ProductName
    ('ServerStandard', 'Standard', 'Standard'),
    ('ServerDatacenter', 'Datacenter', 'Datacenter'),
    ('ServerStandardEval', 'Standard Evaluation', 'Standard Evaluation'),
    ('ServerDatacenterEval', 'Datacenter Evaluation',
     'Datacenter Evaluation'),
]


@pytest.mark.parametrize('build,os_info,year,lg_osinfo', SERVER_RELEASES)
@pytest.mark.parametrize('edition_id,edition,words', SERVER_EDITIONS)
def test_windows_server_releases(build, os_info, year, lg_osinfo,
                                 edition_id, edition, words):
    product = 'Windows Server %s %s' % (year, words)
    rec = normalise(windows_root(str(build), edition_id, 'Server', product,
                                 lg_osinfo=lg_osinfo,
                                 sql=['Standard Edition']))
    assert rec.status == record.STATUS_OK
    assert rec.reason == ''
    assert (rec.os_family, rec.os_distro) == ('windows', 'windows')
    assert rec.os_info == os_info
    assert (rec.os_version_major, rec.os_version_minor) == (10, 0)
    assert rec.os_build == str(build)
    assert rec.os_edition == edition
    assert rec.os_product_name == product
    assert rec.os_product_variant == 'Server'
    assert rec.os_arch == 'x86_64'
    assert rec.sql_server_edition == 'Standard'


@pytest.mark.parametrize('installation,edition_id,edition,os_info', [
    ('Server Core', 'ServerStandard', 'Standard', 'win2k19'),
    ('Server Core', 'ServerDatacenterACor', 'Datacenter', 'win2k19'),
    ('Nano Server', 'ServerStandardNano', 'Standard', 'win2k19'),
])
def test_windows_server_core(installation, edition_id, edition, os_info):
    rec = normalise(windows_root('17763', edition_id, installation,
                                 'Windows Server 2019 Standard'))
    assert rec.os_product_variant == installation
    assert rec.os_edition == edition
    assert rec.os_info == os_info


@pytest.mark.parametrize('build,product,os_info', [
    ('30000', 'Windows Server 2028 Datacenter', 'unknown'),   # future
    ('25398', 'Windows Server Datacenter', 'unknown'),        # 23H2 SAC
    ('26200', 'Windows Server 2025 Datacenter', 'unknown'),   # not LTSC
])
def test_windows_server_unknown_build_degrades(build, product, os_info):
    rec = normalise(windows_root(build, 'ServerDatacenter', 'Server',
                                 product, lg_osinfo='win2k16'))
    assert rec.status == record.STATUS_OK
    assert rec.os_info == os_info
    # the truth is still there for whoever reviews 'unknown'
    assert rec.os_build == build
    assert rec.os_product_name == product
    assert (rec.os_version_major, rec.os_version_minor) == (10, 0)
    assert rec.os_edition == 'Datacenter'


# --------------------------------------------------------------------------
# Windows clients

@pytest.mark.parametrize(
    'build,edition_id,product,os_info,edition,shown', [
        ('10240', 'Professional', 'Windows 10 Pro', 'win10',
         'Professional', 'Windows 10 Pro'),
        ('19045', 'Enterprise', 'Windows 10 Enterprise', 'win10',
         'Enterprise', 'Windows 10 Enterprise'),
        ('19044', 'EnterpriseS', 'Windows 10 Enterprise LTSC 2021', 'win10',
         'Enterprise LTSC', 'Windows 10 Enterprise LTSC 2021'),
        ('22000', 'Professional', 'Windows 10 Pro', 'win11',
         'Professional', 'Windows 11 Pro'),
        ('22631', 'ProfessionalN', 'Windows 10 Pro N', 'win11',
         'Professional N', 'Windows 11 Pro N'),
        ('26100', 'Core', 'Windows 10 Home', 'win11', 'Home',
         'Windows 11 Home'),
        ('22621', 'Education', 'Windows 11 Education', 'win11',
         'Education', 'Windows 11 Education'),
        ('22621', 'ServerRdsh', 'Windows 10 Enterprise multi-session',
         'win11', 'Enterprise multi-session',
         'Windows 11 Enterprise multi-session'),
    ])
def test_windows_clients(build, edition_id, product, os_info, edition,
                         shown):
    rec = normalise(windows_root(build, edition_id, 'Client', product,
                                 lg_osinfo='win10'))
    assert rec.os_info == os_info
    assert rec.os_edition == edition
    assert rec.os_product_name == shown
    assert rec.os_product_variant == 'Client'
    assert rec.os_build == build


@pytest.mark.parametrize('major,minor,variant,product,os_info', [
    (6, 3, 'Server', 'Windows Server 2012 R2 Datacenter', 'win2k12r2'),
    (6, 3, 'Client', 'Windows 8.1 Pro', 'win8.1'),
    (6, 2, 'Server', 'Windows Server 2012 Standard', 'win2k12'),
    (6, 2, 'Client', 'Windows 8 Pro', 'win8'),
    (6, 1, 'Server', 'Windows Server 2008 R2 Enterprise', 'win2k8r2'),
    (6, 1, 'Client', 'Windows 7 Professional', 'win7'),
    (6, 0, 'Server', 'Windows Server (R) 2008 Standard', 'win2k8'),
    (6, 0, 'Client', 'Windows Vista (TM) Business', 'winvista'),
    (5, 2, 'Server', 'Microsoft Windows Server 2003 R2', 'win2k3r2'),
    (5, 2, 'Server', 'Microsoft Windows Server 2003', 'win2k3'),
    (5, 2, 'Client', 'Microsoft Windows XP', 'winxp'),
    (5, 1, 'Client', 'Microsoft Windows XP', 'winxp'),
    (4, 0, 'Server', 'Windows NT 4.0', 'unknown'),
])
def test_windows_older_nt(major, minor, variant, product, os_info):
    # Before NT 10 there is no CurrentMajorVersionNumber: libguestfs'
    # version (from CurrentVersion) is used.
    root = windows_root('9600', None, variant, product, major=None,
                        minor=None, lg_major=major, lg_minor=minor)
    rec = normalise(root)
    assert rec.os_info == os_info
    assert (rec.os_version_major, rec.os_version_minor) == (major, minor)


def test_windows_registry_unreadable_falls_back_to_libguestfs():
    # Only what libguestfs 1.48 read itself: no build, no EditionID.
    root = R.RootFacts(device='/dev/sda2', type='windows', distro='windows',
                       osinfo='win2k16', arch='x86_64', major=10, minor=0,
                       product_name='Windows Server 2025 Datacenter',
                       product_variant='Server')
    rec = normalise(root)
    assert rec.os_info == 'win2k25'          # not libguestfs' win2k16
    assert rec.os_edition == 'Datacenter'
    assert rec.os_build == ''
    assert rec.os_product_variant == 'Server'


@pytest.mark.parametrize('server,major,minor,build,product,expected', [
    (True, 10, 0, 0, 'Windows Server 2022 Standard', 'win2k22'),
    (True, 10, 0, 0, 'Windows Server Datacenter', 'unknown'),
    (False, 10, 0, 0, 'Windows 11 Pro', 'win11'),
    (False, 10, 0, 0, 'Windows 10 Pro', 'unknown'),   # may well be 11
    (False, 10, 0, 9999, 'Windows 10 Pro', 'unknown'),  # pre-release
    (True, 10, 0, 22000, 'Windows Server', 'unknown'),
    (False, 10, 0, 14393, 'Windows 10 Enterprise LTSB 2016', 'win10'),
    (True, 11, 0, 30000, 'Windows Server 2030', 'unknown'),
    (True, 0, 0, 0, '', 'unknown'),
])
def test_windows_osinfo(server, major, minor, build, product, expected):
    assert W.windows_osinfo(server, major, minor, build, product) == expected


@pytest.mark.parametrize('installation,edition_id,variant,product,server', [
    ('Server', '', '', '', True),
    ('Server Core', 'ServerStandard', '', '', True),
    ('Nano Server', '', '', '', True),
    ('Client', 'ServerRdsh', 'Client', '', False),
    ('', 'ServerRdsh', '', 'Windows 10 Enterprise multi-session', False),
    ('', 'ServerDatacenter', '', '', True),
    # Server wherever a value says so: a tenant's 'Client' does not skip
    # the Server core minimum (more in test_windows.py).
    ('', 'Professional', '', 'Windows Server?', True),
    ('', '', 'Server', '', True),
    ('', '', 'Client', 'Windows Server 2019', True),
    ('Client', 'ServerDatacenter', 'Client', 'Windows 10 Pro', True),
    ('', '', 'Client', 'Windows 10 Pro', False),
    ('', '', '', 'Windows Server 2019 Standard', True),
    ('', '', '', '', False),
])
def test_windows_is_server(installation, edition_id, variant, product,
                           server):
    assert W.windows_is_server(installation, edition_id, variant,
                               product) is server


@pytest.mark.parametrize('edition_id,expected', [
    ('ServerStandard', 'Standard'),
    ('ServerDatacenter', 'Datacenter'),
    ('serverdatacenter', 'Datacenter'),
    ('ServerStandardEval', 'Standard Evaluation'),
    ('ServerDatacenterEval', 'Datacenter Evaluation'),
    ('ServerStandardACor', 'Standard'),
    ('ServerDatacenterACor', 'Datacenter'),
    ('ServerDatacenterCor', 'Datacenter'),
    ('ServerEnterpriseCore', 'Enterprise'),
    ('ServerAzureStackHCICor', 'Azure Stack HCI'),
    ('ServerTurbine', 'Datacenter: Azure Edition'),
    ('ServerSolution', 'Essentials'),
    ('ServerEssentials', 'Essentials'),
    ('ServerWeb', 'Web'),
    ('ServerWebCore', 'Web'),
    ('ServerFoundation', 'Foundation'),
    ('ServerStorageStandard', 'Storage'),
    ('ServerStorageWorkgroupEval', 'Storage Evaluation'),
    ('ServerHyperCore', 'Hyper-V'),
    ('ServerRdsh', 'Enterprise multi-session'),
    ('Professional', 'Professional'),
    ('ProfessionalN', 'Professional N'),
    ('ProfessionalWorkstation', 'Professional Workstation'),
    ('ProfessionalWorkstationN', 'Professional Workstation N'),
    ('Enterprise', 'Enterprise'),
    ('EnterpriseN', 'Enterprise N'),
    ('EnterpriseS', 'Enterprise LTSC'),
    ('EnterpriseSN', 'Enterprise LTSC N'),
    ('Education', 'Education'),
    ('Core', 'Home'),
    ('CoreN', 'Home N'),
    ('CoreSingleLanguage', 'Home Single Language'),
    ('IoTEnterprise', 'IoT Enterprise'),
    ('IoTEnterpriseS', 'IoT Enterprise LTSC'),
    ('Ultimate', 'Ultimate'),
    # client evaluation media, named like the server ones
    ('EnterpriseEval', 'Enterprise Evaluation'),
    ('EnterpriseNEval', 'Enterprise N Evaluation'),
    ('EnterpriseSEval', 'Enterprise LTSC Evaluation'),
    ('IoTEnterpriseSEval', 'IoT Enterprise LTSC Evaluation'),
    ('ServerStandardEval', 'Standard Evaluation'),
    ('Cloud', 'S'),
    ('CloudEdition', 'SE'),
    # unknown IDs are the top edition of their line, never a raw string
    # that no price matches
    ('SomethingEval', 'Enterprise'),
    ('ServerQuantum', 'Datacenter'),
    ('SomethingNew', 'Enterprise'),
    ('Bad\x1b[31mID\x00', 'Enterprise'),
    ('', ''),
])
def test_windows_edition(edition_id, expected):
    assert WE.windows_edition(edition_id) == expected


def test_windows_edition_unknown_is_the_top_edition():
    assert WE.windows_edition('X' * 10000) == 'Enterprise'
    assert WE.windows_edition('X' * 10000, server=True) == 'Datacenter'


@pytest.mark.parametrize('server,product,expected', [
    (True, 'Windows Server 2022 Datacenter', 'Datacenter'),
    (True, 'Windows Server 2019 Standard Evaluation', 'Standard Evaluation'),
    (True, 'Windows Server 2016 Essentials', 'Essentials'),
    (True, 'Windows Server 2022', ''),
    (False, 'Windows 10 Pro', 'Professional'),
    (False, 'Windows 11 Enterprise', 'Enterprise'),
    (False, 'Windows 10 Enterprise Evaluation', 'Enterprise Evaluation'),
    (False, 'Windows 10 Home', 'Home'),
    (False, 'Windows 10 Product', ''),
])
def test_windows_edition_from_product_name(server, product, expected):
    assert WE.windows_edition('', server, product) == expected


@pytest.mark.parametrize('product,server,build,expected', [
    ('Windows 10 Pro', False, 22631, 'Windows 11 Pro'),
    ('Windows 10 Pro', False, 19045, 'Windows 10 Pro'),
    ('Windows 10 Pro', False, 0, 'Windows 10 Pro'),
    ('Windows 11 Pro', False, 22631, 'Windows 11 Pro'),
    ('Windows 10 Pro', True, 26100, 'Windows 10 Pro'),   # servers untouched
    ('Windows 100 Pro', False, 22631, 'Windows 100 Pro'),
])
def test_windows_product_name(product, server, build, expected):
    assert W.windows_product_name(product, server, build) == expected


# --------------------------------------------------------------------------
# Build numbers

@pytest.mark.parametrize('value,expected', [
    ('17763', '17763'),
    ('22631 ', '22631'),
    ('22631.3447', '22631'),
    ('017763', '17763'),
    ('26100'.encode('utf-16-le') + b'\x00\x00', '26100'),
    (20348, '20348'),
    ('0', ''),
    ('build', ''),
    ('', ''),
    (None, ''),
    ('9' * 40, '999999999'),
])
def test_windows_build(value, expected):
    assert W.windows_build(value) == expected


def test_windows_dword_bytes_and_legacy_version():
    # libguestfs may carry CurrentVersion 6.3; the DWORDs (as raw bytes)
    # say 10.0 and win.
    root = windows_root(b'2\x000\x003\x004\x008\x00\x00\x00',
                        b'S\x00e\x00r\x00v\x00e\x00r\x00S\x00t\x00a\x00n\x00'
                        b'd\x00a\x00r\x00d\x00\x00\x00',
                        'Server', 'Windows Server 2022 Standard',
                        major=b'\x0a\x00\x00\x00', minor=b'\x00\x00\x00\x00',
                        lg_major=6, lg_minor=3)
    rec = normalise(root)
    assert (rec.os_version_major, rec.os_version_minor) == (10, 0)
    assert rec.os_build == '20348'
    assert rec.os_info == 'win2k22'
    assert rec.os_edition == 'Standard'


def test_windows_registry_keys_are_case_insensitive():
    root = R.RootFacts(device='/dev/sda2', type='windows', distro='windows',
                       windows={'currentbuildnumber': '20348',
                                'EDITIONID': 'ServerDatacenter',
                                'installationType': 'Server',
                                'CurrentMajorVersionNumber': 10,
                                'CurrentMinorVersionNumber': 0})
    rec = normalise(root)
    assert (rec.os_info, rec.os_edition) == ('win2k22', 'Datacenter')


def test_windows_absurd_dword_version_is_not_trusted():
    root = windows_root('20348', 'ServerStandard', 'Server', 'x',
                        major=b'\xff\xff\xff\xff')
    rec = normalise(root)
    assert rec.os_version_major == 0
    assert rec.os_info == 'unknown'


# --------------------------------------------------------------------------
# SQL Server

@pytest.mark.parametrize('raw,expected', [
    ('Enterprise Edition', 'Enterprise'),
    ('Enterprise Edition: Core-based Licensing', 'Enterprise'),
    ('Enterprise Edition (64-bit)', 'Enterprise'),
    ('Standard Edition', 'Standard'),
    ('Standard Edition (64-bit)', 'Standard'),
    ('Web Edition', 'Web'),
    ('Developer Edition', 'Developer'),
    ('Express Edition', 'Express'),
    ('Express Edition with Advanced Services', 'Express'),
    ('Evaluation Edition', 'Evaluation'),
    ('Enterprise Evaluation Edition', 'Evaluation'),
    ('Business Intelligence Edition', 'Business Intelligence'),
    ('Workgroup Edition', 'Workgroup'),
    ('Datacenter Edition', 'Datacenter'),
    ('STANDARD EDITION', 'Standard'),
    ('Standard Edition'.encode('utf-16-le') + b'\x00\x00', 'Standard'),
    ('Webster Edition', 'Webster Edition'),    # unknown, kept
    ('Quantum\nEdition\x07', 'Quantum Edition'),
    ('', ''),
    (None, ''),
])
def test_sql_edition_names(raw, expected):
    assert sqlserver.sql_edition(raw)[1] == expected


@pytest.mark.parametrize('editions,expected', [
    ([], ''),
    (['Standard Edition'], 'Standard'),
    (['Express Edition', 'Standard Edition'], 'Standard'),
    (['Standard Edition', 'Enterprise Edition: Core-based Licensing'],
     'Enterprise'),
    (['Business Intelligence Edition', 'Standard Edition'],
     'Business Intelligence'),
    (['Enterprise Edition', 'Business Intelligence Edition'], 'Enterprise'),
    (['Web Edition', 'Standard Edition'], 'Standard'),
    (['Developer Edition', 'Web Edition'], 'Web'),
    (['Developer Edition', 'Express Edition'], 'Developer'),
    (['Enterprise Evaluation Edition', 'Web Edition'], 'Web'),
    (['Express Edition', 'Evaluation Edition', 'Developer Edition'],
     'Evaluation'),
    # unknown: above the free ones, below every known paid one
    (['Developer Edition', 'Mystery Edition'], 'Mystery Edition'),
    (['Mystery Edition', 'Web Edition'], 'Web'),
    (['Zeta Edition', 'Alpha Edition'], 'Alpha Edition'),
    (['', None, 'Express Edition'], 'Express'),
    ('Standard Edition', ''),          # not a list: ignored
    (None, ''),
])
def test_sql_server_edition_ranking(editions, expected):
    assert sqlserver.sql_server_edition(editions) == expected
    if isinstance(editions, list):
        assert sqlserver.sql_server_edition(editions[::-1]) == expected


@pytest.mark.parametrize('editions, complete, expected', [
    (['Express Edition'], True, 'Express'),
    ([], True, ''),
    # Not read to its end: the unread rest may hold the highest edition.
    (['Express Edition'], False, 'Enterprise'),
    ([], False, 'Enterprise'),
    (['Data Center Edition'], False, 'Datacenter'),
    ('not a list', False, 'Enterprise'),
    # Anything but True counts as incomplete (fail safe).
    (['Standard Edition'], None, 'Enterprise'),
])
def test_sql_billed_edition_fails_safe(editions, complete, expected):
    assert sqlserver.sql_billed_edition(editions, complete) == expected


def test_incomplete_sql_list_is_said_in_the_reason():
    root = windows_root('20348', 'ServerStandard', 'Server',
                        'Windows Server 2022 Standard',
                        sql=['Standard Edition'])
    root.sql_complete = False
    rec = normalise(root)
    assert (rec.status, rec.sql_server_edition) == ('ok', 'Enterprise')
    assert rec.reason == sqlserver.sql_note(root) != ''
    assert 'billed as Enterprise' in rec.reason
    # A Linux root never carries a SQL Server note.
    linux = linux_root('rhel', 9, ID='rhel')
    linux.sql_complete = False
    assert normalise(linux).reason == ''


def test_sql_server_edition_in_record():
    rec = normalise(windows_root(
        '20348', 'ServerStandard', 'Server', 'Windows Server 2022 Standard',
        sql=['Express Edition', 'Enterprise Edition: Core-based Licensing']))
    assert rec.sql_server_edition == 'Enterprise'
    assert normalise(windows_root('20348')).sql_server_edition == ''


# --------------------------------------------------------------------------
# Linux

LINUX_CASES = [
    # (libguestfs distro, major, minor, osinfo, product, os-release) ->
    # (os_distro, major, minor, os_info, product name, edition)
    (('rhel', 9, 4, 'rhel9.4', 'Red Hat Enterprise Linux 9.4 (Plow)',
      {'ID': 'rhel', 'VERSION_ID': '9.4'}),
     ('rhel', 9, 4, 'rhel9.4', 'Red Hat Enterprise Linux 9.4 (Plow)', '')),
    (('rhel', 7, 9, 'rhel7.9', 'Red Hat Enterprise Linux Server 7.9',
      {'ID': 'rhel', 'VERSION_ID': '7.9', 'VARIANT_ID': 'server'}),
     ('rhel', 7, 9, 'rhel7.9', 'Red Hat Enterprise Linux Server 7.9',
      'Server')),
    (('rocky', 9, 3, 'rocky9', 'Rocky Linux 9.3 (Blue Onyx)',
      {'ID': 'rocky', 'VERSION_ID': '9.3'}),
     ('rocky', 9, 3, 'rocky9', 'Rocky Linux 9.3 (Blue Onyx)', '')),
    # AlmaLinux: libguestfs says redhat-based; os-release is trusted.
    (('redhat-based', 9, 4, 'redhat-based9.4',
      'AlmaLinux release 9.4 (Seafoam Ocelot)',
      {'ID': 'almalinux', 'VERSION_ID': '9.4',
       'PRETTY_NAME': 'AlmaLinux 9.4 (Seafoam Ocelot)'}),
     ('almalinux', 9, 4, 'almalinux9',
      'AlmaLinux release 9.4 (Seafoam Ocelot)', '')),
    (('unknown', 0, 0, 'unknown', '',
      {'ID': 'AlmaLinux', 'VERSION_ID': '8.10',
       'PRETTY_NAME': 'AlmaLinux 8.10 (Cerulean Leopard)'}),
     ('almalinux', 8, 10, 'almalinux8',
      'AlmaLinux 8.10 (Cerulean Leopard)', '')),
    (('oraclelinux', 8, 9, 'oraclelinux8.9', 'Oracle Linux Server 8.9',
      {'ID': 'ol', 'VERSION_ID': '8.9'}),
     ('oraclelinux', 8, 9, 'ol8.9', 'Oracle Linux Server 8.9', '')),
    (('redhat-based', 9, 3, 'redhat-based9.3', 'Oracle Linux Server 9.3',
      {'ID': 'ol', 'VERSION_ID': '9.3'}),
     ('oraclelinux', 9, 3, 'ol9.3', 'Oracle Linux Server 9.3', '')),
    (('sles', 15, 5, 'sles15sp5', 'SUSE Linux Enterprise Server 15 SP5',
      {'ID': 'sles', 'VERSION_ID': '15.5'}),
     ('sles', 15, 5, 'sle15sp5', 'SUSE Linux Enterprise Server 15 SP5',
      '')),
    (('sles', 12, 5, 'sles12sp5', 'SUSE Linux Enterprise Server 12 SP5',
      {'ID': 'sles', 'VERSION_ID': '12.5'}),
     ('sles', 12, 5, 'sles12sp5', 'SUSE Linux Enterprise Server 12 SP5',
      '')),
    (('sles', 15, 0, 'sles15', 'SUSE Linux Enterprise Server 15',
      {'ID': 'sles', 'VERSION_ID': '15'}),
     ('sles', 15, 0, 'sle15', 'SUSE Linux Enterprise Server 15', '')),
    # SLES for SAP: libguestfs does not know the ID.
    (('unknown', 0, 0, 'unknown', '',
      {'ID': 'sles_sap', 'VERSION_ID': '15.5',
       'PRETTY_NAME': 'SUSE Linux Enterprise Server for SAP Applications '
                      '15 SP5'}),
     ('sles', 15, 5, 'sle15sp5',
      'SUSE Linux Enterprise Server for SAP Applications 15 SP5', 'SAP')),
    (('sles', 15, 5, 'sles15sp5',
      'SUSE Linux Enterprise Server for SAP Applications 15 SP5',
      {'ID': 'sles_sap', 'VERSION_ID': '15.5'}),
     ('sles', 15, 5, 'sle15sp5',
      'SUSE Linux Enterprise Server for SAP Applications 15 SP5', 'SAP')),
    (('ubuntu', 22, 4, 'ubuntu22.04', 'Ubuntu 22.04.4 LTS',
      {'ID': 'ubuntu', 'VERSION_ID': '22.04'}),
     ('ubuntu', 22, 4, 'ubuntu22.04', 'Ubuntu 22.04.4 LTS', '')),
    # Debian: libguestfs' product name is /etc/debian_version.
    (('debian', 12, 5, 'debian12', '12.5',
      {'ID': 'debian', 'VERSION_ID': '12',
       'PRETTY_NAME': 'Debian GNU/Linux 12 (bookworm)'}),
     ('debian', 12, 5, 'debian12', 'Debian GNU/Linux 12 (bookworm)', '')),
    (('centos', 9, 0, 'centos9', 'CentOS Stream release 9',
      {'ID': 'centos', 'VERSION_ID': '9'}),
     ('centos', 9, 0, 'centos-stream9', 'CentOS Stream release 9', '')),
    (('centos', 7, 9, 'centos7.0', 'CentOS Linux release 7.9.2009 (Core)',
      {}),
     ('centos', 7, 9, 'centos7.0', 'CentOS Linux release 7.9.2009 (Core)',
      '')),
    (('fedora', 40, 0, 'fedora40', 'Fedora Linux 40 (Server Edition)', {}),
     ('fedora', 40, 0, 'fedora40', 'Fedora Linux 40 (Server Edition)',
      '')),
    # Distros outside the table keep libguestfs' id...
    (('altlinux', 10, 1, 'alt10.1', 'ALT 10.1', {}),
     ('altlinux', 10, 1, 'alt10.1', 'ALT 10.1', '')),
    # ...or get the generic '<distro><M>.<m>' when it came from os-release
    (('redhat-based', 9, 4, 'redhat-based9.4', 'EuroLinux release 9.4',
      {'ID': 'eurolinux', 'VERSION_ID': '9.4'}),
     ('eurolinux', 9, 4, 'eurolinux9.4', 'EuroLinux release 9.4', '')),
    # redhat-based with no os-release: nothing honest to say
    (('redhat-based', 7, 0, 'redhat-based7.0', 'Mystery release 7', {}),
     ('redhat-based', 7, 0, 'unknown', 'Mystery release 7', '')),
    # VERSION_ID garbage: libguestfs' version survives
    (('redhat-based', 9, 2, 'redhat-based9.2', 'Navy release 9.2',
      {'ID': 'navy', 'VERSION_ID': 'nine'}),
     ('navy', 9, 2, 'navy9.2', 'Navy release 9.2', '')),
]


@pytest.mark.parametrize('given,expected', LINUX_CASES)
def test_linux(given, expected):
    distro, major, minor, osinfo, product, os_release = given
    rec = normalise(linux_root(distro, major, minor, osinfo, product,
                               **os_release))
    assert rec.status == record.STATUS_OK
    assert rec.os_family == 'linux'
    assert (rec.os_distro, rec.os_version_major, rec.os_version_minor,
            rec.os_info, rec.os_product_name, rec.os_edition) == expected
    assert rec.os_product_variant == ''       # libguestfs said 'unknown'
    assert rec.os_build == ''
    assert rec.sql_server_edition == ''
    assert rec.os_arch == 'x86_64'


@pytest.mark.parametrize('value,expected', [
    ('9.4', (9, 4)),
    ('12', (12, 0)),
    ('22.04', (22, 4)),
    ('8.10', (8, 10)),
    ('15.5.1', (15, 5)),
    ('1.2-beta', (1, 2)),
    (' 9.4 ', (9, 4)),
    (b'9.4', (9, 4)),
    ('9abc', (0, 0)),
    ('nine', (0, 0)),
    ('-9', (0, 0)),
    ('', (0, 0)),
    (None, (0, 0)),
    ('9' * 30, (0, 0)),
    ('20240101', (0, 0)),            # a date, not a version
])
def test_parse_version(value, expected):
    assert LX.parse_version(value) == expected


@pytest.mark.parametrize('distro,os_release,expected', [
    ('rhel', {'ID': 'centos'}, ('rhel', False)),      # libguestfs wins
    ('redhat-based', {'ID': 'almalinux'}, ('almalinux', True)),
    ('redhat-based', {'ID': 'ol'}, ('oraclelinux', True)),
    ('unknown', {'ID': 'sles_sap'}, ('sles', True)),
    ('unknown', {'ID': 'opensuse-leap'}, ('opensuse', True)),
    ('unknown', {'ID': 'Rocky'}, ('rocky', True)),
    ('unknown', {'id': 'ubuntu'}, ('ubuntu', True)),
    ('unknown', {'ID': 'my distro!'}, ('mydistro', True)),
    ('unknown', {}, ('unknown', False)),
    ('redhat-based', {'ID': ''}, ('redhat-based', False)),
    ('', None, ('unknown', False)),
    ('unknown', 'ID=rhel', ('unknown', False)),       # not a mapping
])
def test_linux_distro(distro, os_release, expected):
    assert LX.linux_distro(distro, os_release) == expected


@pytest.mark.parametrize('args,expected', [
    (('rhel', 8, 0), 'rhel8.0'),
    (('almalinux', 9, 4), 'almalinux9'),
    (('rocky', 8, 9), 'rocky8'),
    (('oraclelinux', 7, 9), 'ol7.9'),
    (('sles', 15, 5), 'sle15sp5'),
    (('sles', 12, 0), 'sles12'),
    (('opensuse', 15, 5), 'opensuse15.5'),
    (('opensuse', 0, 0, 'openSUSE Tumbleweed'), 'opensusetumbleweed'),
    (('ubuntu', 24, 4), 'ubuntu24.04'),
    (('debian', 11, 9), 'debian11'),
    (('centos', 8, 5, 'centos linux 8'), 'centos8'),
    (('centos', 8, 0, 'centos stream release 8'), 'centos-stream8'),
    (('centos', 6, 10), 'centos6.10'),
    (('archlinux', 0, 0), 'archlinux'),
    (('rhel', 0, 0), 'unknown'),
    (('mageia', 9, 0, '', 'mageia9'), 'mageia9'),
    (('mystery', 3, 1), 'mystery3.1'),
    (('unknown', 3, 1), 'unknown'),
])
def test_linux_osinfo(args, expected):
    assert LX.linux_osinfo(*args) == expected


# --------------------------------------------------------------------------
# Other families

def test_other_family_keeps_libguestfs_values():
    root = R.RootFacts(device='/dev/sda1', type='freebsd', distro='freebsd',
                       osinfo='freebsd14.0', product_name='FreeBSD 14.0',
                       arch='amd64', major=14, minor=0)
    rec = normalise(root)
    assert (rec.os_family, rec.os_distro, rec.os_info, rec.os_arch) == (
        'freebsd', 'freebsd', 'freebsd14.0', 'amd64')
    assert (rec.os_version_major, rec.os_product_name) == (
        14, 'FreeBSD 14.0')


# --------------------------------------------------------------------------
# Root choice

WIN = windows_root('20348', 'ServerDatacenter', 'Server',
                   'Windows Server 2022 Datacenter', device='/dev/sda2')
WIN_DATA = windows_root('20348', 'ServerDatacenter', 'Server',
                        'Windows Server 2022 Datacenter', device='/dev/sdb2',
                        disk_index=1)
RHEL = linux_root('rhel', 9, 4, device='/dev/sda3')
UBUNTU = linux_root('ubuntu', 22, 4, device='/dev/sda1')
UBUNTU_B = linux_root('ubuntu', 24, 4, device='/dev/sda5')
ALMA = linux_root('redhat-based', 9, 4, device='/dev/sda4', ID='almalinux')
SLES_SAP = linux_root('unknown', device='/dev/sda6', ID='sles_sap')
RHEL_DATA = linux_root('rhel', 9, 4, device='/dev/sdb1', disk_index=1)
BSD = R.RootFacts(device='/dev/sda7', type='freebsd', distro='freebsd')
ODD = R.RootFacts(device='/dev/sda0', type='unknown')


@pytest.mark.parametrize('roots,chosen', [
    ([UBUNTU, WIN_DATA], UBUNTU),         # boot disk beats a data volume
    ([WIN, UBUNTU], WIN),                 # dual boot: the licensed one
    ([UBUNTU, RHEL], RHEL),
    ([ALMA, UBUNTU], UBUNTU),             # both free linux: device name
    ([UBUNTU_B, UBUNTU], UBUNTU),
    ([UBUNTU, SLES_SAP], SLES_SAP),       # sles via os-release counts
    ([RHEL_DATA, UBUNTU], UBUNTU),
    ([RHEL_DATA, WIN_DATA], WIN_DATA),
    ([BSD, UBUNTU], UBUNTU),
    ([ODD, BSD], BSD),                    # an untyped root is not usable
    ([ODD, WIN_DATA], WIN_DATA),
    ([ODD], None),
    ([], None),
    (None, None),
])
def test_choose_root(roots, chosen):
    assert F.choose_root(roots) is chosen
    if roots:
        assert F.choose_root(roots[::-1]) is chosen


def test_several_roots_reason_names_the_chosen_one():
    rec = normalise(UBUNTU, WIN_DATA)
    assert rec.os_family == 'linux'
    assert rec.status == record.STATUS_OK
    assert rec.reason == (
        '2 operating systems found, reporting /dev/sda1; dearer operating '
        'system on another disk not billed: /dev/sdb2 (windows)')


def test_a_cheaper_data_disk_root_is_not_mentioned():
    rec = normalise(WIN, RHEL_DATA)
    assert rec.reason == '2 operating systems found, reporting /dev/sda2'


# A tenant can add roots to its own boot disk: none may make it cheaper.

def win(edition, device, sql=(), installation='Server', build='20348',
        disk_index=0, product=None):
    words = {'ServerStandard': 'Standard', 'ServerDatacenter': 'Datacenter',
             'ServerDatacenterEval': 'Datacenter Evaluation'}
    return windows_root(build, edition, installation,
                        product or 'Windows Server 2022 %s' % words.get(
                            edition, ''), device=device,
                        disk_index=disk_index, sql=sql)


def decoys(count, first=1):
    return [linux_root('ubuntu', 22, 4, device='/dev/sda%d' % n,
                       ID='ubuntu') for n in range(first, first + count)]


def test_decoy_roots_before_the_windows_root_do_not_hide_it():
    roots = decoys(8) + [win('ServerDatacenter', '/dev/sda9',
                             sql=('Enterprise Edition',))]
    rec = normalise(*roots)
    assert (rec.os_family, rec.os_edition, rec.sql_server_edition) == (
        'windows', 'Datacenter', 'Enterprise')
    assert rec.reason == ('9 operating systems on the boot disk, billed '
                          'the dearest: /dev/sda9')


def test_decoys_after_the_windows_root_and_many_of_them():
    roots = [win('ServerStandard', '/dev/sda1')] + decoys(40, first=2)
    rec = normalise(*roots)
    assert (rec.os_family, rec.os_edition) == ('windows', 'Standard')
    assert rec.reason.startswith('41 operating systems on the boot disk')


def test_btrfs_snapshots_bill_the_running_root_and_say_so():
    running = linux_root('sles', 15, 5, device='/dev/sda2', ID='sles',
                         VERSION_ID='15.5')
    snapshots = [linux_root('sles', 15, 4, ID='sles', VERSION_ID='15.4',
                            device='btrfsvol:/dev/sda2/@/.snapshots/%d/'
                                   'snapshot' % n) for n in (2, 3)]
    rec = normalise(*(snapshots + [running]))
    assert (rec.os_distro, rec.os_version_minor) == ('sles', 5)
    assert rec.reason == ('3 operating systems on the boot disk (2 of them '
                          'btrfs snapshots or other subvolumes), billed '
                          'the dearest: /dev/sda2')


def test_two_windows_roots_bill_the_highest_edition_and_sql():
    cheap = win('ServerStandard', '/dev/sda1')
    dear = win('ServerDatacenter', '/dev/sda2',
               sql=('Enterprise Edition: Core-based Licensing',))
    for roots in ([cheap, dear], [dear, cheap]):
        rec = normalise(*roots)
        assert (rec.os_edition, rec.sql_server_edition, rec.os_info) == (
            'Datacenter', 'Enterprise', 'win2k22')
        assert rec.reason == ('2 operating systems on the boot disk, '
                              'billed the dearest: /dev/sda2')


def test_sql_server_of_another_root_is_billed_too():
    standard_sql = win('ServerStandard', '/dev/sda1',
                       sql=('Enterprise Edition',))
    datacenter = win('ServerDatacenter', '/dev/sda2')
    rec = normalise(standard_sql, datacenter)
    assert (rec.os_edition, rec.sql_server_edition) == (
        'Datacenter', 'Enterprise')
    assert 'SQL Server Enterprise from /dev/sda1' in rec.reason


def test_an_incomplete_sql_list_on_any_root_bills_enterprise():
    flooded = win('ServerStandard', '/dev/sda1', sql=('Express Edition',))
    flooded.sql_complete = False
    rec = normalise(flooded, win('ServerDatacenter', '/dev/sda2'))
    assert (rec.os_edition, rec.sql_server_edition) == (
        'Datacenter', 'Enterprise')
    assert 'not read to its end' in rec.reason


@pytest.mark.parametrize('cheap,dear', [
    ('ServerDatacenterEval', 'ServerStandard'),   # free < paid
    ('ServerStandard', 'ServerDatacenter'),
])
def test_the_paid_and_dearer_edition_wins(cheap, dear):
    rec = normalise(win(cheap, '/dev/sda1'), win(dear, '/dev/sda2'))
    assert rec.os_edition == normalise(win(dear, '/dev/sda2')).os_edition


def test_a_server_beats_a_client_on_the_same_disk():
    client = windows_root('22631', 'Enterprise', 'Client',
                          'Windows 10 Enterprise', device='/dev/sda1')
    rec = normalise(client, win('ServerStandard', '/dev/sda2'))
    assert (rec.os_product_variant, rec.os_edition) == ('Server',
                                                        'Standard')


def test_chain_loading_boot_disk_bills_the_other_disk():
    rec = normalise(win('ServerDatacenter', '/dev/sdb2', disk_index=1))
    assert (rec.status, rec.os_family, rec.os_edition) == (
        'ok', 'windows', 'Datacenter')
    assert rec.reason == ('no operating system on the boot disk: billed '
                          'the dearest on another disk (/dev/sdb2)')


@pytest.mark.parametrize('roots', [
    [],
    [UBUNTU],
    [win('ServerStandard', '/dev/sda2')],
    [windows_root('22631', 'Professional', 'Client', 'Windows 10 Pro')],
])
def test_a_bound_reached_bills_the_dearest_product(roots):
    rec = normalise(*roots, limits=['more than 16 roots'])
    assert (rec.status, rec.os_family, rec.os_distro) == (
        'ok', 'windows', 'windows')
    assert (rec.os_edition, rec.sql_server_edition) == (
        'Datacenter', 'Enterprise')
    assert rec.os_product_variant != 'Client'
    assert rec.reason.startswith(
        'bound reached (more than 16 roots): billed as Windows Server '
        'Datacenter with SQL Server Enterprise')
    assert_clean(rec)


def test_a_bound_keeps_what_a_windows_server_root_says():
    rec = normalise(win('ServerStandard', '/dev/sda2'),
                    limits=['more than 512 filesystems'])
    assert (rec.os_info, rec.os_build, rec.os_edition) == (
        'win2k22', '20348', 'Datacenter')
    assert 'dearest root seen: /dev/sda2' in rec.reason


# --------------------------------------------------------------------------
# Statuses and reasons

@pytest.mark.parametrize('devices,types,reason', [
    (['/dev/sda2'], {'/dev/sda2': 'crypto_LUKS'}, '1 LUKS volume'),
    (['/dev/sda2', '/dev/sdb1', '/dev/sdc1'],
     {'/dev/sda2': 'crypto_LUKS', '/dev/sdb1': 'crypto_LUKS',
      '/dev/sdc1': 'BitLocker'}, '2 LUKS volumes, 1 BitLocker volume'),
    (['/dev/sda2'], {'/dev/sda2': 'BitLocker'}, '1 BitLocker volume'),
    (['/dev/sda2', '/dev/sda3'], {}, '2 encrypted volumes'),
    (['/dev/sda2'], None, '1 encrypted volume'),
])
def test_encrypted(devices, types, reason):
    facts = R.ApplianceFacts(encrypted_devices=devices,
                             encrypted_types=types or {}, drives=1,
                             filesystems=1)
    if types is None:
        facts = R.ApplianceFacts(encrypted_devices=devices, drives=1)
    rec = F.normalise(facts, 'inst-1', 'fp', 2.0, now=NOW)
    assert rec.status == record.STATUS_ENCRYPTED
    assert rec.reason == reason
    assert (rec.os_family, rec.os_info, rec.os_edition) == (
        'unknown', 'unknown', '')


@pytest.mark.parametrize('kwargs,reason', [
    (dict(drives=1, filesystems=2),
     'no operating system found on 1 disk (2 filesystems)'),
    (dict(drives=2, filesystems=1),
     'no operating system found on 2 disks (1 filesystem)'),
    (dict(drives=1, filesystems=0), 'no filesystem found on 1 disk'),
    (dict(drives=0), 'no disk to inspect'),
    (dict(drives=1, filesystems=1, roots=[ODD]),
     'operating system on /dev/sda0 not recognised'),
    (dict(drives=1, filesystems=2, roots=[ODD, ODD]),
     'no recognisable operating system among 2 roots'),
    (dict(drives=1, filesystems=0, warnings=['partition table unreadable']),
     'no filesystem found on 1 disk; partition table unreadable'),
])
def test_unknown(kwargs, reason):
    rec = F.normalise(R.ApplianceFacts(**kwargs), 'inst-1', now=NOW)
    assert rec.status == record.STATUS_UNKNOWN
    assert rec.reason == reason
    assert (rec.os_family, rec.os_distro, rec.os_info) == (
        'unknown', 'unknown', 'unknown')


def test_unrecognised_root_with_encryption_is_encrypted():
    rec = F.normalise(R.ApplianceFacts(roots=[ODD], drives=1,
                                       encrypted_devices=['/dev/sda3']),
                      'inst-1', now=NOW)
    assert rec.status == record.STATUS_ENCRYPTED


def test_ok_reason_mentions_encrypted_volumes_and_warnings():
    rec = F.normalise(R.ApplianceFacts(
        roots=[UBUNTU], drives=2, filesystems=3,
        encrypted_devices=['/dev/sdb1'],
        encrypted_types={'/dev/sdb1': 'crypto_LUKS'},
        warnings=['hive unreadable']), 'inst-1', now=NOW)
    assert rec.status == record.STATUS_OK
    assert rec.reason == '1 LUKS volume not inspected; hive unreadable'


def test_record_bookkeeping():
    rec = normalise(UBUNTU)
    assert rec.instance_id == 'inst-1'
    assert rec.fingerprint == 'fp'
    assert rec.duration == 1.5
    assert rec.inspected_at == '2024-05-06T07:08:09Z'
    assert record.OSRecord.from_dict(rec.to_dict()) == rec


def test_inspected_at_defaults_to_now():
    before = record.utc_timestamp()
    rec = F.normalise(R.ApplianceFacts(), 'inst-1')
    assert before <= rec.inspected_at <= record.utc_timestamp()


# --------------------------------------------------------------------------
# Hostile guests

HUGE = 'A' * 10240


def hostile_cases():
    yield windows_root(
        '20348\x00\x1b[2J', 'Server\u202eDatacenter' + HUGE,
        'Server\r\nCore', HUGE + '\x07\x1b]0;pwned\x07',
        sql=[HUGE, b'\xff\xfe\xfa', '\x00\x00', 'Enterprise\x1b[31m'],
        DisplayVersion=HUGE.encode())
    yield windows_root(b'\xff' * 10000, b'\x00' * 10001, b'\xc3\x28' * 5000,
                       'Windows 10 Pro\x00' + HUGE, major='\x00',
                       minor=b'\x01\x02\x03', lg_major=-5, lg_minor='x')
    yield R.RootFacts(device='/dev/sda1\n' + HUGE, type='linux' + HUGE,
                      distro='unknown', arch='x86_64\x00' + HUGE)
    yield R.RootFacts(device=HUGE, type='linux', distro='redhat-based',
                      osinfo=HUGE, product_name=b'\xfe\xff' + b'\xd8\x00',
                      product_variant='\t\t', arch='../../etc',
                      major=True, minor=None,
                      os_release={'ID': 'evil\x1b[31m' + HUGE,
                                  'VERSION_ID': '9.' + '9' * 5000,
                                  'PRETTY_NAME': '\u200b' * 100 + HUGE,
                                  'VARIANT_ID': HUGE, None: 'x', 3: 4})
    yield R.RootFacts(device='/dev/sda1', type='windows', distro=b'win\x00',
                      windows=['not', 'a', 'dict'], sql_editions='Standard',
                      product_name=None, arch=None)


@pytest.mark.parametrize('root', list(hostile_cases()))
def test_hostile_strings_come_out_clean(root):
    rec = F.normalise(R.ApplianceFacts(roots=[root], drives=1,
                                       warnings=[HUGE, '\x1b[31m']),
                      'inst-1', now=NOW)
    assert rec.status == record.STATUS_OK
    assert_clean(rec)
    assert len(rec.os_edition) <= 64
    assert len(rec.sql_server_edition) <= 64
    for token in (rec.os_family, rec.os_distro, rec.os_info, rec.os_arch):
        assert len(token) <= 64
        assert all(c.isalnum() or c in '._+-' for c in token), token
    assert 0 <= rec.os_version_major <= 1_000_000
    assert 0 <= rec.os_version_minor <= 1_000_000


def test_hostile_windows_values_are_trimmed_not_dropped():
    rec = F.normalise(R.ApplianceFacts(roots=[next(hostile_cases())]),
                      'inst-1', now=NOW)
    assert rec.os_build == '20348'
    assert rec.os_product_variant == 'Server Core'
    assert rec.os_info == 'win2k22'
    assert rec.os_product_name == 'A' * 255
    # not a known edition: the top one, said in the reason
    assert rec.os_edition == 'Datacenter'
    assert ('EditionID %s not a known edition: billed as Datacenter'
            % ('ServerDatacenter' + HUGE)[:32]) in rec.reason
    assert rec.sql_server_edition == 'Enterprise'


def test_hostile_linux_values_are_bounded():
    rec = F.normalise(R.ApplianceFacts(roots=[list(hostile_cases())[3]]),
                      'inst-1', now=NOW)
    assert rec.os_distro == ('evil' + HUGE)[:64].lower()
    assert rec.os_version_major == 0       # 9.999... is not a version
    assert rec.os_product_name == 'A' * 255
    assert rec.os_arch == '....etc'
    assert rec.reason == ''


def test_all_table_records_are_clean():
    recs = [normalise(linux_root(*given[:5], **given[5]))
            for given, _ in LINUX_CASES]
    recs += [normalise(WIN), normalise(UBUNTU, WIN_DATA)]
    for rec in recs:
        assert_clean(rec)
        assert set(rec.metadata()) == set(record.METADATA_KEYS)


# --------------------------------------------------------------------------
# SUSE: the installed base product (/etc/products.d/baseproduct)

def prod(name, version='15.5', summary=None, extra=''):
    summary = summary or 'SUSE product %s' % name
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<product schemeversion="0"><vendor>SUSE</vendor>'
            '<name>%s</name><version>%s</version><release>0</release>'
            '<summary>%s</summary>%s</product>\n'
            % (name, version, summary, extra)).encode()


def suse_root(distro, baseproduct, major=15, minor=5, **os_release):
    root = linux_root(distro, major, minor, **os_release)
    root.suse_baseproduct = baseproduct
    return root


SUSE_CASES = [
    # name, root, (os_distro, os_info, os_edition, major, minor)
    ('SLES', suse_root('sles', prod('SLES'), ID='sles'),
     ('sles', 'sle15sp5', '', 15, 5)),
    ('SLES for SAP by its base product, os-release says sles',
     suse_root('sles', prod('SLES_SAP'), ID='sles', VERSION_ID='15.5'),
     ('sles', 'sle15sp5', 'SAP', 15, 5)),
    ('os-release says SAP, the base product says SLES',
     suse_root('sles', prod('SLES'), ID='sles_sap', VERSION_ID='15.5'),
     ('sles', 'sle15sp5', '', 15, 5)),
    ('SLE HPC', suse_root('unknown', prod('SLE_HPC', '15.4'), 0, 0,
                          ID='sle_hpc', VERSION_ID='15.4'),
     ('sles', 'sle15sp4', 'HPC', 15, 4)),
    ('SLE HPC 12', suse_root('sles', prod('SLE-HPC', '12.5'), 12, 5,
                             ID='sles', VERSION_ID='12.5'),
     ('sles', 'sles12sp5', 'HPC', 12, 5)),
    ('SLE Micro 5.4', suse_root('unknown', prod('SLE-Micro', '5.4'), 0, 0,
                                ID='sle-micro', VERSION_ID='5.4'),
     ('slem', 'slem5.4', '', 5, 4)),
    ('SLE Micro 5.2', suse_root('suse-based', prod('SUSE-MicroOS', '5.2'),
                                0, 0),
     ('slem', 'slem5.2', '', 5, 2)),
    ('SUSE Linux Micro 6', suse_root('unknown', prod('SL-Micro', '6.0'),
                                     0, 0, ID='sl-micro'),
     ('slem', 'slem6.0', '', 6, 0)),
    ('suse-based without a base product: os-release decides',
     suse_root('suse-based', b'', 0, 0, ID='sles', VERSION_ID='15.3'),
     ('sles', 'sle15sp3', '', 15, 3)),
    ('suse-based SLES 11 (SuSE-release, no os-release)',
     suse_root('suse-based', prod('SUSE_SLES', '11'), 11, 4),
     ('sles', 'sles11sp4', '', 11, 4)),
    ('suse-based, nothing else known', suse_root('suse-based', b'', 0, 0),
     ('suse-based', 'unknown', '', 0, 0)),
    ('os-release only: HPC', suse_root('unknown', b'', 0, 0,
                                       ID='sle_hpc', VERSION_ID='15.6'),
     ('sles', 'sle15sp6', 'HPC', 15, 6)),
    ('os-release only: SLE Micro', suse_root('unknown', b'', 0, 0,
                                             ID='sle-micro',
                                             VERSION_ID='5.5'),
     ('slem', 'slem5.5', '', 5, 5)),
    ('a base product planted on Ubuntu changes nothing',
     suse_root('ubuntu', prod('SLES_SAP'), 22, 4, ID='ubuntu'),
     ('ubuntu', 'ubuntu22.04', '', 22, 4)),
    ('unknown base product name', suse_root('sles', prod('SUSE-Manager'),
                                            ID='sles'),
     ('sles', 'sle15sp5', '', 15, 5)),
    ('openSUSE Leap', suse_root('opensuse', prod('Leap', '15.5'),
                                ID='opensuse-leap'),
     ('opensuse', 'opensuse15.5', '', 15, 5)),
]


@pytest.mark.parametrize('name, root, expected', SUSE_CASES,
                         ids=[c[0] for c in SUSE_CASES])
def test_suse_products(name, root, expected):
    rec = normalise(root)
    assert rec.status == 'ok'
    assert (rec.os_distro, rec.os_info, rec.os_edition,
            rec.os_version_major, rec.os_version_minor) == expected
    assert_clean(rec)


def test_suse_summary_names_a_product_without_os_release():
    rec = normalise(suse_root('suse-based', prod(
        'SLES_SAP', summary='SUSE Linux Enterprise Server for SAP '
        'Applications 15 SP5'), 0, 0))
    assert rec.os_product_name == ('SUSE Linux Enterprise Server for SAP '
                                   'Applications 15 SP5')
    assert (rec.os_distro, rec.os_edition) == ('sles', 'SAP')


@pytest.mark.parametrize('data', [
    b'',
    b'not xml',
    b'<product><name>SLES',                                  # truncated
    b'<other><name>SLES</name></other>',
    b'<!DOCTYPE p [<!ENTITY x "SLES_SAP">]><product><name>&x;</name>'
    b'</product>',
    b'<!DOCTYPE p SYSTEM "file:///etc/passwd"><product/>',
    b'<product><name/></product>',
    None,
    'SLES',
])
def test_unusable_base_product_is_ignored(data):
    product = GF.parse_suse_product(data)
    assert product.get('name') in (None, '')
    rec = normalise(suse_root('sles', data, ID='sles'))
    assert (rec.os_distro, rec.os_edition) == ('sles', '')


def test_base_product_fields_are_cleaned():
    rec = normalise(suse_root('suse-based', prod(
        'SLES_SAP', summary='SLES\u202e for\u200b SAP\t' + 'x' * 1000), 0, 0))
    assert rec.os_edition == 'SAP'
    assert len(rec.os_product_name) == 255
    assert_clean(rec)


@pytest.mark.parametrize('roots, chosen', [
    # A SLE Micro or HPC root is a licensed one.
    ([linux_root('ubuntu', 22, 4, device='/dev/sda1'),
      suse_root('unknown', prod('SLE-Micro', '5.4'), 0, 0)], 1),
])
def test_suse_root_weighs_as_licensed(roots, chosen):
    assert F.choose_root(roots) is roots[chosen]


@pytest.mark.parametrize('decoy, real', [
    ({'ID': 'sle-micro'}, {'ID': 'rhel', 'VERSION_ID': '9.4'}),
    ({'ID': 'sles', 'VERSION_ID': '15.5'},
     {'ID': 'sles_sap', 'VERSION_ID': '15.5'}),
    ({'ID': 'rhel', 'VERSION_ID': '9.4'},
     {'ID': 'sles_sap', 'VERSION_ID': '15.5'}),
])
def test_a_cheaper_licensed_decoy_root_first_does_not_win(decoy, real):
    # The decoy sorts first by device name; the dearer product is billed.
    roots = [R.RootFacts(device='/dev/sda1', type='linux', distro='unknown',
                         os_release=decoy),
             R.RootFacts(device='/dev/sda2', type='linux', distro='unknown',
                         os_release=real)]
    assert F.choose_root(roots) is roots[1]
    assert F.choose_root(list(reversed(roots))) is roots[1]
