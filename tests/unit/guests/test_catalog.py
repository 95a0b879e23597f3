"""tests/guests/catalog.py: the expectations follow the billing policy,
and mismatches() compares records and documents alike."""

import dataclasses

import pytest

from tests.guests import catalog


SERVER_BUILDS = {'9600': 'win2k12r2', '14393': 'win2k16', '17763': 'win2k19',
                 '20348': 'win2k22', '26100': 'win2k25'}
EDITIONS = {'ServerStandard': 'Standard', 'ServerDatacenter': 'Datacenter',
            'ServerStandardEval': 'Standard Evaluation',
            'Professional': 'Professional', 'Enterprise': 'Enterprise'}


@pytest.mark.parametrize('name', [n for n in catalog.WINDOWS
                                  if catalog.GUESTS[n].expected.status
                                  == 'ok' and catalog.GUESTS[n].windows
                                  .software_hive
                                  and n not in catalog.ODD_REGISTRY])
def test_catalog_windows_expectations(name):
    guest = catalog.GUESTS[name]
    spec, exp = guest.windows, guest.expected
    if spec.installation_type.startswith('Server'):
        assert exp.os_info == SERVER_BUILDS[spec.build]
    else:
        assert exp.os_info == ('win11' if int(spec.build) >= 22000
                               else 'win10')
    assert exp.os_build == spec.build
    assert (exp.os_version_major, exp.os_version_minor) == spec.nt_version
    assert exp.os_product_variant == spec.installation_type
    if not guest.hostile:
        assert exp.os_edition == EDITIONS[spec.edition_id]


def test_catalog_sql_expectation():
    guest = catalog.GUESTS['win2019-sql']
    assert {i.edition.split()[0] for i in guest.windows.sql} == {
        'Enterprise', 'Express'}
    assert guest.expected.sql_server_edition == 'Enterprise'


@pytest.mark.parametrize('result,expected', [
    ({'os_inspection_status': 'ok', 'os_family': 'linux'}, []),
    ({'os_inspection_status': 'failed', 'os_family': 'linux'},
     [('status', 'ok', 'failed')]),
    ({'status': 'ok', 'os_family': 'windows'},
     [('os_family', 'linux', 'windows')]),
])
def test_mismatches(result, expected):
    unscored = {f.name: catalog.ANY
                for f in dataclasses.fields(catalog.Expected)
                if f.name not in ('status', 'os_family')}
    want = catalog.Expected(status='ok', os_family='linux', **unscored)
    assert catalog.mismatches(want, result) == expected


def test_mismatches_of_an_object():
    class Record:
        status = 'unknown'
        os_family = 'unknown'

    assert catalog.mismatches(catalog.GUESTS['blank'].expected,
                              Record()) == [
        (field, value, None)
        for field, value in catalog.GUESTS['blank'].expected.scored().items()
        if field not in ('status', 'os_family')]


# --------------------------------------------------------------------------
