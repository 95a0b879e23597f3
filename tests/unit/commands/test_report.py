"""report.py on tables, and the CloudKitty minimums script it mirrors."""

import decimal
import pathlib
import re

import pytest

from ceilometer_os_pollster import record
from ceilometer_os_pollster.commands import report

PYSCRIPT = (pathlib.Path(__file__).resolve().parents[3] / 'etc' /
            'cloudkitty' / 'licence-minimums.py')


def rec(status='ok', family='windows', distro='windows', variant='Server',
        edition='Datacenter', sql=''):
    return record.OSRecord(
        instance_id='i', status=status, os_family=family, os_distro=distro,
        os_product_variant=variant, os_edition=edition,
        sql_server_edition=sql)


@pytest.mark.parametrize('r, want', [
    (rec(), [('Windows Server', 'Datacenter', 8)]),
    (rec(variant='Server Core', edition='Standard'),
     [('Windows Server', 'Standard', 8)]),
    (rec(edition='Standard Evaluation'),
     [('Windows Server', 'Standard Evaluation', 0)]),
    (rec(edition='Standard', sql='Enterprise'),
     [('Windows Server', 'Standard', 8), ('SQL Server', 'Enterprise', 4)]),
    (rec(edition='Standard', sql='Express'),
     [('Windows Server', 'Standard', 8), ('SQL Server', 'Express', 0)]),
    (rec(variant='Client', edition='Professional'),
     [('Windows', 'Professional', 0)]),
    (rec(variant='', edition=''), [('Windows Server', '', 8)]),
    (rec(family='linux', distro='rhel', variant='', edition=''),
     [('RHEL', '', 0)]),
    (rec(family='linux', distro='sles', variant='', edition='SAP'),
     [('SLES', 'SAP', 0)]),
    (rec(family='linux', distro='ubuntu', variant='', edition=''),
     [('ubuntu', '', 0)]),
    (rec(status='pending'), [('(pending)', '', 0)]),
    (rec(status='encrypted'), [('(encrypted)', '', 0)]),
    (rec(status='unknown'), [('(unknown)', '', 0)]),
    (rec(status='failed'), [('(failed)', '', 0)]),
])
def test_products(r, want):
    assert report.products(r) == want


def test_products_take_other_minimums():
    r = rec(edition='Standard', sql='Standard')
    assert report.products(r, report.Minimums(16, 2)) == [
        ('Windows Server', 'Standard', 16), ('SQL Server', 'Standard', 2)]


def inst(project, vcpus, r):
    return report.Instance('i', project, vcpus, r)


def test_summarise_per_project_product_and_edition():
    lines = report.summarise([
        inst('p-b', 2, rec(edition='Standard', sql='Enterprise')),
        inst('p-a', 12, rec()),
        inst('p-a', 2, rec()),
        inst('p-a', 4, rec(edition='Datacenter Evaluation')),
        inst('p-a', 2, rec(family='linux', distro='rhel', variant='',
                           edition='')),
        inst('p-a', 1, rec(family='linux', distro='rhel', variant='',
                           edition='')),
        inst('p-b', 4, rec(status='pending')),
    ])
    assert lines == [
        report.Line('p-a', 'RHEL', '', 2, 3, 3),
        report.Line('p-a', 'Windows Server', 'Datacenter', 2, 14, 20),
        report.Line('p-a', 'Windows Server', 'Datacenter Evaluation', 1, 4,
                    4),
        report.Line('p-b', '(pending)', '', 1, 4, 4),
        report.Line('p-b', 'SQL Server', 'Enterprise', 1, 2, 4),
        report.Line('p-b', 'Windows Server', 'Standard', 1, 2, 8),
    ]


def test_summarise_nothing():
    assert report.summarise([]) == []


def test_renderings():
    lines = [report.Line('p-a', 'RHEL', '', 2, 3, 3),
             report.Line('p-a', 'Windows Server', 'Standard', 1, 2, 8)]
    assert report.rows(lines) == [('p-a', 'RHEL', '-', 2, 3, 3),
                                  ('p-a', 'Windows Server', 'Standard', 1,
                                   2, 8)]
    doc = report.json_document(lines)
    assert [tuple(item) for item in doc] == [report.JSON_KEYS] * 2
    assert doc[1] == {'project_id': 'p-a', 'product': 'Windows Server',
                      'edition': 'Standard', 'instances': 1, 'vcpus': 2,
                      'vcpus_with_minimums': 8}
    assert len(report.HEADERS) == len(report.JSON_KEYS)


# -- etc/cloudkitty/licence-minimums.py ------------------------------------

def pyscript_globals():
    scope = {'data': {'usage': {}}}
    exec(compile(PYSCRIPT.read_text(), str(PYSCRIPT), 'exec'), scope)
    return scope


def test_report_and_rating_script_agree_on_minimums_and_free_editions():
    scope = pyscript_globals()
    for name in ('WINDOWS_SERVER_MIN_CORES_PER_VM',
                 'SQL_SERVER_MIN_CORES_PER_VM', 'WINDOWS_CLIENT_VARIANTS',
                 'FREE_WINDOWS_EDITIONS', 'FREE_SQL_EDITIONS'):
        assert scope[name] == getattr(report, name), name
    # the parameters are plain assignments an operator edits
    text = PYSCRIPT.read_text()
    assert re.search(r'^WINDOWS_SERVER_MIN_CORES_PER_VM = \d+$', text, re.M)
    assert re.search(r'^SQL_SERVER_MIN_CORES_PER_VM = \d+$', text, re.M)


def point(qty, **metadata):
    md = dict(rec().metadata())
    md.update(metadata)
    return {'vol': {'unit': 'vcpu', 'qty': decimal.Decimal(qty)},
            'rating': {'price': decimal.Decimal(0)}, 'groupby': {'id': 'x'},
            'metadata': md}


@pytest.mark.parametrize('rating_type, qty, metadata, want', [
    ('os_license_vcpu', 2, {}, 8),
    ('os_license_vcpu', 12, {}, 12),
    ('os_license_vcpu', 2, {'os_product_variant': 'Server Core'}, 8),
    ('os_license_vcpu', 2, {'os_edition': 'Standard Evaluation'}, 2),
    ('os_license_vcpu', 2, {'os_product_variant': 'Client'}, 2),
    ('os_license_vcpu', 2, {'os_family': 'linux'}, 2),
    ('os_license_vcpu', 2, {'os_inspection_status': 'pending'}, 2),
    ('sql_license_vcpu', 2, {'sql_server_edition': 'Enterprise'}, 4),
    ('sql_license_vcpu', 6, {'sql_server_edition': 'Standard'}, 6),
    ('sql_license_vcpu', 2, {'sql_server_edition': 'Express'}, 2),
    ('sql_license_vcpu', 2, {'sql_server_edition': ''}, 2),
    ('os_license_vm', 1, {}, 1),
])
def test_rating_script_raises_qty_to_the_minimum(rating_type, qty, metadata,
                                                 want):
    data = {'period': {}, 'usage': {rating_type: [point(qty, **metadata)]}}
    scope = {'data': data}
    exec(compile(PYSCRIPT.read_text(), str(PYSCRIPT), 'exec'), scope)
    (out,) = scope['data']['usage'][rating_type]
    assert out['vol']['qty'] == want
    assert out['rating']['price'] == 0
