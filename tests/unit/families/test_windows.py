"""Odd and disagreeing registry values
(ceilometer_os_pollster.families.windows): billed as the dearer
reading, each decision said in the reason."""

import pytest

from ceilometer_os_pollster.families import raw_facts as R
from ceilometer_os_pollster import record
from ceilometer_os_pollster.commands import report
from ceilometer_os_pollster.families import sqlserver
from ceilometer_os_pollster.families import windows as W
from ceilometer_os_pollster.families import windows_editions as WE
from tests.guests import catalog
from tests.unit.families.roots import normalise
from tests.unit.families.roots import windows_root

CYRILLIC_A = '\u0430'
CYRILLIC_E = '\u0435'
# 'ServerStandard' / 'ServerDatacenterEval' in fullwidth letters (NFKC
# makes them ASCII).
FULLWIDTH_STANDARD = ''.join(chr(ord(c) + 0xFEE0) for c in 'ServerStandard')
FULLWIDTH_DC_EVAL = ''.join(chr(ord(c) + 0xFEE0)
                            for c in 'ServerDatacenterEval')

DC = 'Windows Server 2022 Datacenter'
STD = 'Windows Server 2022 Standard'
DC_EVAL = 'Windows Server 2022 Datacenter Evaluation'
STD_EVAL = 'Windows Server 2022 Standard Evaluation'
SERVER_MINIMUM = report.WINDOWS_SERVER_MIN_CORES_PER_VM

# EditionID, InstallationType, ProductName, build ->
# os_edition, os_product_variant, notes (the reason parts, in order).
CASES = [
    # -- look-alike and unknown EditionIDs: the top edition of the line
    ('lookalike-datacenter',
     'ServerD%stacenter' % CYRILLIC_A, 'Server', DC, '20348',
     'Datacenter', 'Server',
     ['EditionID ServerD<U+0430>tacenter not a known edition: billed as '
      'Datacenter']),
    ('lookalike-standard',
     'ServerSt%sndard' % CYRILLIC_A, 'Server', STD, '20348',
     'Datacenter', 'Server',
     ['EditionID ServerSt<U+0430>ndard not a known edition: billed as '
      'Datacenter']),
    ('lookalike-client',
     'Prof%sssional' % CYRILLIC_E, 'Client', 'Windows 10 Pro', '19045',
     'Enterprise', 'Client',
     ['EditionID Prof<U+0435>ssional not a known edition: billed as '
      'Enterprise']),
    # 'Sеrver' with a Cyrillic е still looks like a Server EditionID.
    ('lookalike-server-claims-client',
     'S%srverStandard' % CYRILLIC_E, 'Client', 'Windows 10 Pro', '19045',
     'Datacenter', 'Server',
     ['InstallationType Client, ProductName (client), but EditionID say '
      'Server: billed as Windows Server',
      'EditionID S<U+0435>rverStandard not a known edition: billed as '
      'Datacenter']),
    ('fullwidth-standard',
     FULLWIDTH_STANDARD, 'Server', STD, '20348', 'Standard', 'Server',
     ['EditionID written in compatibility characters, read as '
      'ServerStandard']),
    ('fullwidth-eval-agreed',
     FULLWIDTH_DC_EVAL, 'Server', DC_EVAL, '20348',
     'Datacenter Evaluation', 'Server',
     ['EditionID written in compatibility characters, read as '
      'ServerDatacenterEval']),
    ('upper-case', 'SERVERDATACENTER', 'Server', DC, '20348',
     'Datacenter', 'Server', []),
    ('unknown-server', 'ServerQuantum', 'Server', STD, '20348',
     'Datacenter', 'Server',
     ['EditionID ServerQuantum not a known edition: billed as '
      'Datacenter']),
    ('unknown-client', 'SomethingNew', 'Client', 'Windows 10 Pro', '22631',
     'Enterprise', 'Client',
     ['EditionID SomethingNew not a known edition: billed as '
      'Enterprise']),
    ('client-edition-on-server', 'Professional', 'Server', STD, '17763',
     'Datacenter', 'Server',
     ['EditionID Professional is not a Windows Server edition: billed as '
      'Datacenter']),
    ('no-edition-id', None, 'Server', 'Windows Server 2022', '20348',
     'Datacenter', 'Server', ['no EditionID: billed as Datacenter']),
    # -- Evaluation: free only when EditionID and ProductName agree
    ('eval-agreed', 'ServerDatacenterEval', 'Server', DC_EVAL, '20348',
     'Datacenter Evaluation', 'Server', []),
    ('eval-core-agreed', 'ServerStandardEvalCor', 'Server Core', STD_EVAL,
     '17763', 'Standard Evaluation', 'Server Core', []),
    ('eval-id-only', 'ServerDatacenterEval', 'Server', DC, '20348',
     'Datacenter', 'Server',
     ['Evaluation not confirmed by both EditionID (ServerDatacenterEval) '
      'and ProductName (Datacenter): billed as Datacenter']),
    ('eval-id-no-edition-in-name', 'ServerStandardEval', 'Server',
     'Windows Server 2022', '20348', 'Standard', 'Server',
     ['Evaluation not confirmed by both EditionID (ServerStandardEval) '
      'and ProductName (no edition): billed as Standard']),
    ('eval-name-only', 'ServerStandard', 'Server', STD_EVAL, '20348',
     'Standard', 'Server',
     ['Evaluation not confirmed by both EditionID (ServerStandard) and '
      'ProductName (Standard Evaluation): billed as Standard']),
    ('eval-editions-differ', 'ServerStandardEval', 'Server', DC_EVAL,
     '20348', 'Datacenter', 'Server',
     ['Evaluation not confirmed by both EditionID (ServerStandardEval) '
      'and ProductName (Datacenter Evaluation): billed as Datacenter']),
    ('eval-no-edition-id', None, 'Server', DC_EVAL, '20348', 'Datacenter',
     'Server',
     ['Evaluation not confirmed by EditionID (none): billed as '
      'Datacenter']),
    ('client-eval-agreed', 'EnterpriseEval', 'Client',
     'Windows 10 Enterprise Evaluation', '19045', 'Enterprise Evaluation',
     'Client', []),
    ('client-eval-id-only', 'EnterpriseEval', 'Client',
     'Windows 10 Enterprise', '19045', 'Enterprise', 'Client',
     ['Evaluation not confirmed by both EditionID (EnterpriseEval) and '
      'ProductName (Enterprise): billed as Enterprise']),
    # -- Server versus client: Server wins
    ('client-type-on-server', 'ServerDatacenter', 'Client', DC, '20348',
     'Datacenter', 'Server',
     ['InstallationType Client, but EditionID, ProductName, build 20348 '
      'say Server: billed as Windows Server']),
    ('client-type-on-server-2019', 'ServerDatacenter', 'Client', DC,
     '17763', 'Datacenter', 'Server',
     ['InstallationType Client, but EditionID, ProductName say Server: '
      'billed as Windows Server']),
    ('server-build-only', 'Professional', 'Client', 'Windows 10 Pro',
     '20348', 'Datacenter', 'Server',
     ['InstallationType Client, ProductName (client), but build 20348 '
      'say Server: billed as Windows Server',
      'EditionID Professional is not a Windows Server edition: billed as '
      'Datacenter']),
    ('server-build-alone', None, None, '', '20348', 'Datacenter', '',
     ['build 20348 is Windows Server 2022 only: billed as Windows Server',
      'no EditionID: billed as Datacenter']),
    # -- edition words: the dearer one
    ('name-dearer', 'ServerStandard', 'Server', DC, '20348', 'Datacenter',
     'Server',
     ['ProductName says Datacenter, EditionID ServerStandard: billed as '
      'Datacenter']),
    ('id-dearer', 'ServerDatacenter', 'Server', STD, '20348', 'Datacenter',
     'Server', []),
    ('client-name-dearer', 'Core', 'Client', 'Windows 10 Enterprise',
     '19045', 'Enterprise', 'Client',
     ['ProductName says Enterprise, EditionID Core: billed as '
      'Enterprise']),
    ('all-disagree', 'ServerStandard', 'Client', DC, '20348', 'Datacenter',
     'Server',
     ['InstallationType Client, but EditionID, ProductName, build 20348 '
      'say Server: billed as Windows Server',
      'ProductName says Datacenter, EditionID ServerStandard: billed as '
      'Datacenter']),
]

# Honest values: billed as today, no note.
HONEST = [
    ('ServerStandard', 'Server', STD, '20348', 'Standard', 'Server'),
    ('ServerDatacenterACor', 'Server Core', DC, '20348', 'Datacenter',
     'Server Core'),
    ('ServerTurbine', 'Server',
     'Windows Server 2022 Datacenter: Azure Edition', '20348',
     'Datacenter: Azure Edition', 'Server'),
    ('ServerSolution', 'Server', 'Windows Server 2016 Essentials', '14393',
     'Essentials', 'Server'),
    ('ServerStorageStandard', 'Server',
     'Windows Storage Server 2016 Standard', '14393', 'Storage', 'Server'),
    ('ServerHyperCore', 'Server Core', 'Hyper-V Server 2019', '17763',
     'Hyper-V', 'Server Core'),
    ('ServerAzureStackHCICor', 'Server Core', 'Azure Stack HCI', '20349',
     'Azure Stack HCI', 'Server Core'),
    ('Professional', 'Client', 'Windows 10 Pro', '19045', 'Professional',
     'Client'),
    ('ProfessionalWorkstation', 'Client', 'Windows 10 Pro for Workstations',
     '19045', 'Professional Workstation', 'Client'),
    ('ProfessionalEducation', 'Client', 'Windows 10 Pro Education',
     '19045', 'Professional Education', 'Client'),
    ('EnterpriseS', 'Client', 'Windows 10 Enterprise LTSC 2021', '19044',
     'Enterprise LTSC', 'Client'),
    ('EnterpriseSEval', 'Client', 'Windows 10 Enterprise LTSC Evaluation',
     '19044', 'Enterprise LTSC Evaluation', 'Client'),
    ('ServerRdsh', 'Client', 'Windows 10 Enterprise multi-session',
     '22621', 'Enterprise multi-session', 'Client'),
    ('IoTEnterprise', 'Client', 'Windows 10 IoT Enterprise', '19045',
     'IoT Enterprise', 'Client'),
    ('CoreSingleLanguage', 'Client', 'Windows 10 Home Single Language',
     '19045', 'Home Single Language', 'Client'),
    ('Education', 'Client', 'Windows 11 Education', '22621', 'Education',
     'Client'),
    ('Cloud', 'Client', 'Windows 10 S', '17763', 'S', 'Client'),
]


def record_of(edition_id, installation, product, build, **kwargs):
    return normalise(windows_root(build, edition_id, installation, product,
                                  **kwargs))


@pytest.mark.parametrize(
    'edition_id,installation,product,build,edition,variant,notes',
    [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_odd_values_are_billed_as_the_dearer_reading(
        edition_id, installation, product, build, edition, variant, notes):
    root = windows_root(build, edition_id, installation, product)
    rec = normalise(root)
    assert (rec.status, rec.os_family) == ('ok', 'windows')
    assert (rec.os_edition, rec.os_product_variant) == (edition, variant)
    assert W.billing_notes(root) == notes
    assert rec.reason == '; '.join(notes)
    assert rec.reason.isprintable() and rec.reason.isascii()


@pytest.mark.parametrize(
    'edition_id,installation,product,build,edition,variant', HONEST)
def test_honest_values_are_billed_as_they_say(edition_id, installation,
                                              product, build, edition,
                                              variant):
    root = windows_root(build, edition_id, installation, product)
    rec = normalise(root)
    assert (rec.os_edition, rec.os_product_variant) == (edition, variant)
    assert W.billing_notes(root) == []
    assert rec.reason == ''


def test_libguestfs_product_name_must_agree_on_evaluation_too():
    root = windows_root('20348', 'ServerDatacenterEval', 'Server', DC_EVAL,
                        lg_product=DC)
    assert W.fields(root)['os_edition'] == 'Datacenter'
    assert W.billing_notes(root) == [
        'Evaluation not confirmed by both EditionID (ServerDatacenterEval) '
        'and ProductName (Datacenter Evaluation, Datacenter): billed as '
        'Datacenter']


def test_libguestfs_server_variant_wins_over_client_installation_type():
    root = windows_root('17763', 'ServerStandard', 'Client', STD,
                        lg_variant='Server')
    assert W.fields(root)['os_product_variant'] == 'Server'
    assert W.billing_notes(root) == [
        'InstallationType Client, but EditionID, ProductName, product '
        'variant say Server: billed as Windows Server']


@pytest.mark.parametrize('product,edition,notes', [
    # Before Vista / Server 2008 there was no EditionID: not an odd value.
    ('Microsoft Windows Server 2003', '', []),
    ('Microsoft Windows XP', '', []),
])
def test_no_edition_id_before_nt6_is_not_odd(product, edition, notes):
    root = windows_root('3790', None, None, product, major=None, minor=None,
                        lg_major=5, lg_minor=2)
    assert W.fields(root)['os_edition'] == edition
    assert W.billing_notes(root) == notes


def test_unreadable_registry_is_not_billed_an_edition():
    # No value read (e.g. no SOFTWARE hive): nothing to bill an edition on.
    root = R.RootFacts(device='/dev/sda2', type='windows', distro='windows')
    assert W.fields(root)['os_edition'] == ''
    assert W.billing_notes(root) == []


def test_reason_keeps_the_sql_note_after_the_registry_notes():
    root = windows_root('20348', 'ServerStandard', 'Server', DC,
                        sql=['Standard Edition'])
    root.sql_complete = False
    rec = normalise(root)
    assert rec.reason == '; '.join(W.billing_notes(root)
                                   + [sqlserver.sql_note(root)])
    assert rec.sql_server_edition == 'Enterprise'


def test_a_long_odd_edition_id_is_shown_bounded():
    root = windows_root('20348', CYRILLIC_A * 5000, 'Server', DC)
    (note,) = W.billing_notes(root)
    assert note == ('EditionID %s not a known edition: billed as '
                    'Datacenter' % ('<U+0430>' * 32))


@pytest.mark.parametrize('edition,server,rank', [
    ('Datacenter', True, 6), ('Datacenter: Azure Edition', True, 6),
    ('Standard', True, 5), ('Essentials', True, 4), ('Hyper-V', True, 1),
    ('Datacenter Evaluation', True, 0), ('', True, -1),
    ('Something', True, 6),
    ('Enterprise LTSC', False, 4), ('Education', False, 3),
    ('Professional Education', False, 3), ('Professional N', False, 2),
    ('Home', False, 1), ('Enterprise Evaluation', False, 0),
    ('Something', False, 4),
])
def test_edition_rank(edition, server, rank):
    assert WE.edition_rank(edition, server) == rank


# --------------------------------------------------------------------------
# What report.py and the CloudKitty rating script do with these records

@pytest.mark.parametrize(
    'edition_id,installation,product,build,edition,variant,notes',
    [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_report_minimum_follows_the_billed_reading(
        edition_id, installation, product, build, edition, variant, notes):
    rec = normalise(windows_root(build, edition_id, installation, product))
    ((name, billed, minimum),) = report.products(rec)
    assert billed == edition
    server = variant != 'Client'
    assert name == (report.WINDOWS_SERVER if server
                    else report.WINDOWS_CLIENT)
    free = edition in report.FREE_WINDOWS_EDITIONS
    assert minimum == (SERVER_MINIMUM if server and not free else 0)


def test_free_editions_are_the_server_evaluation_editions():
    # report.py / licence-minimums.py exempt exactly what windows.py
    # bills as a Server Evaluation edition.
    assert set(report.FREE_WINDOWS_EDITIONS) == {
        WE.windows_edition(edition_id, server=True)
        for edition_id in ('ServerStandardEval', 'ServerDatacenterEval')}


def test_a_client_is_reported_as_client_without_a_server_minimum():
    rec = record_of('Professional', 'Client', 'Windows 10 Pro', '19045')
    assert report.products(rec)[0][::2] == (report.WINDOWS_CLIENT, 0)


@pytest.mark.parametrize('edition_id,installation,product', [
    ('ServerDatacenter', 'Client', DC),
    ('ServerStandard', 'Client', 'Windows 10 Pro'),
    ('Professional', 'Client', DC),
    ('Professional', 'Server', 'Windows 10 Pro'),
    ('S%srverDatacenter' % CYRILLIC_E, 'Client', 'Windows 10 Pro'),
])
def test_a_server_is_never_reported_as_client(edition_id, installation,
                                              product):
    rec = record_of(edition_id, installation, product, '17763')
    assert rec.os_product_variant not in report.WINDOWS_CLIENT_VARIANTS
    assert report.products(rec)[0][::2] == (report.WINDOWS_SERVER,
                                            SERVER_MINIMUM)


# --------------------------------------------------------------------------
# The catalog's expectations, from the pure code (the appliance tests
# read the same guests from disk images)

def catalog_root(spec):
    # Before NT 10 the version is libguestfs' (from CurrentVersion).
    nt10 = spec.nt_version >= (10, 0)
    root = windows_root(spec.build, spec.edition_id, spec.installation_type,
                        spec.product_name,
                        major=spec.nt_version[0] if nt10 else None,
                        minor=spec.nt_version[1] if nt10 else None,
                        lg_major=spec.nt_version[0],
                        lg_minor=spec.nt_version[1],
                        sql=[inst.edition for inst in spec.sql])
    root.sql_complete = not spec.sql_fake_names
    return root


@pytest.mark.parametrize('name', [
    n for n in catalog.WINDOWS
    if catalog.GUESTS[n].windows.software_hive
    and catalog.GUESTS[n].windows.cmd_exe_is_pe
    and not catalog.GUESTS[n].hostile])
def test_catalog_windows_guests(name):
    guest = catalog.GUESTS[name]
    root = catalog_root(guest.windows)
    rec = normalise(root)
    assert rec.status == record.STATUS_OK
    assert catalog.mismatches(guest.expected, rec) == []
    assert (W.billing_notes(root) != []) == (name in catalog.ODD_REGISTRY)
