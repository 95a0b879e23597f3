"""One product table: the family modules' figures as licences.py
gathers them, and the CloudKitty files that must say the same (they run
inside CloudKitty and cannot import them)."""

import dataclasses
import pathlib
import re

from ceilometer_os_pollster.commands import report
from ceilometer_os_pollster.families import known
from ceilometer_os_pollster.families import licences
from ceilometer_os_pollster.families import linux
from ceilometer_os_pollster.families import sqlserver
from ceilometer_os_pollster.families import windows
from ceilometer_os_pollster import record as record_mod

ETC = pathlib.Path(__file__).resolve().parents[3] / 'etc' / 'cloudkitty'
PYSCRIPT = ETC / 'licence-minimums.py'
HASHMAP = ETC / 'hashmap-example.sh'
TABLE = ('WINDOWS_SERVER_MIN_CORES_PER_VM', 'SQL_SERVER_MIN_CORES_PER_VM',
         'WINDOWS_CLIENT_VARIANTS', 'FREE_WINDOWS_EDITIONS',
         'FREE_SQL_EDITIONS')
# Each name of the table, as the family module that owns it says it.
FAMILY_TABLE = {
    'WINDOWS_SERVER_MIN_CORES_PER_VM': windows.WINDOWS_SERVER_MIN_CORES_PER_VM,
    'SQL_SERVER_MIN_CORES_PER_VM': sqlserver.SQL_SERVER_MIN_CORES_PER_VM,
    'WINDOWS_CLIENT_VARIANTS': windows.CLIENT_VARIANTS,
    'FREE_WINDOWS_EDITIONS': windows.FREE_WINDOWS_EDITIONS,
    'FREE_SQL_EDITIONS': sqlserver.FREE_SQL_EDITIONS,
}


def test_the_rating_script_has_the_family_modules_values():
    scope = {'data': {'usage': {}}}
    exec(compile(PYSCRIPT.read_text(), str(PYSCRIPT), 'exec'), scope)
    for name in TABLE:
        assert scope[name] == FAMILY_TABLE[name], name
        assert getattr(licences, name) == FAMILY_TABLE[name], name
    assert scope['WINDOWS_FAMILY'] == windows.NAME


def test_the_rating_script_raises_windows_server_and_sql_to_the_minimums():
    scope = {'data': {'usage': {}}}
    exec(compile(PYSCRIPT.read_text(), str(PYSCRIPT), 'exec'), scope)
    server = {'os_inspection_status': 'ok', 'os_family': windows.NAME,
              'os_product_variant': 'Server', 'os_edition': 'Standard',
              'sql_server_edition': 'Enterprise'}
    client = dict(server, os_product_variant=windows.CLIENT_VARIANTS[0],
                  sql_server_edition=sqlserver.FREE_SQL_EDITIONS[0])

    def point(metadata):
        return {'vol': {'unit': 'vcpu', 'qty': 2}, 'metadata': metadata,
                'rating': {'price': 0}, 'groupby': {}}

    frame = scope['apply_minimums']({'usage': {
        'os_license_vcpu': [point(server), point(client)],
        'sql_license_vcpu': [point(server), point(client)]}})
    usage = frame['usage']
    assert [p['vol']['qty'] for p in usage['os_license_vcpu']] == [
        windows.WINDOWS_SERVER_MIN_CORES_PER_VM, 2]
    assert [p['vol']['qty'] for p in usage['sql_license_vcpu']] == [
        sqlserver.SQL_SERVER_MIN_CORES_PER_VM, 2]


def hashmap_flats():
    """[(field variable, group variable, value, price)] of the script's
    ``flat "$field" "$group" "value" price`` lines."""
    return re.findall(r'^flat "\$(\w+)" "\$(\w+)" "([^"]*)" "?\$?(\w[\w.]*)',
                      HASHMAP.read_text(), re.M)


def test_the_hashmap_rules_price_the_tables_free_editions_at_zero():
    flats = hashmap_flats()
    free_windows = {v for f, g, v, p in flats
                    if g == 'windows' and p == '0'}
    free_sql = {v for f, g, v, p in flats if g == 'sql' and p == '0'}
    assert free_windows == set(licences.FREE_WINDOWS_EDITIONS)
    assert free_sql == set(licences.FREE_SQL_EDITIONS)
    # every edition the table bills has a price
    priced_sql = {v for f, g, v, p in flats if g == 'sql' and p != '0'}
    assert priced_sql and not priced_sql & set(licences.FREE_SQL_EDITIONS)


def test_the_hashmap_rules_price_the_tables_linux_products_per_vm():
    distros = {v for f, g, v, p in hashmap_flats() if f == 'os_distro'}
    assert distros == set(licences.LINUX_PRODUCTS)


def test_linux_products_rank_in_the_shipped_price_order():
    # Between two licensed Linux roots the dearer product is billed
    # (facts.dearness): its order must be the shipped prices' order.
    text = HASHMAP.read_text()
    defaults = dict(re.findall(r'^(\w+_PER_VM)=\$\{\w+:-([0-9.]+)\}',
                               text, re.M))
    prices = {value: float(defaults[price])
              for f, g, value, price in hashmap_flats() if g == 'linux'}
    assert sorted(prices, key=prices.get) == list(linux.LICENCE_ORDER)


def test_the_licensed_distributions_are_one_list():
    # LICENCE_ORDER ranks the LINUX_PRODUCTS distros and their editions.
    distros = [name for name in linux.LICENCE_ORDER if name.islower()]
    assert sorted(distros) == sorted(linux.LINUX_PRODUCTS)


def test_every_family_plugs_in_the_same_way():
    for family in known.FAMILIES:
        assert known.family(family.NAME) is family
        for hook in ('fields', 'billing_notes', 'dearness', 'products',
                     'scanned_root'):
            assert callable(getattr(family, hook)), (family.NAME, hook)
    assert known.family('freebsd') is None


def test_a_family_this_version_does_not_know_is_its_distro():
    rec = record_mod.OSRecord(instance_id='i', status='ok',
                              os_family='freebsd', os_distro='freebsd',
                              sql_server_edition='Standard')
    assert licences.products(rec) == [
        ('freebsd', '', 0),
        (sqlserver.SQL_SERVER, 'Standard',
         sqlserver.SQL_SERVER_MIN_CORES_PER_VM)]


def test_linux_products_by_distro():
    rec = record_mod.OSRecord(instance_id='i', status='ok',
                              os_family=linux.NAME, os_distro='sles',
                              os_edition='SAP')
    assert licences.products(rec) == [('SLES', 'SAP', 0)]
    assert licences.products(dataclasses.replace(rec, os_distro='ubuntu',
                                                 os_edition='')) == [
        ('ubuntu', '', 0)]


def test_report_reads_the_same_table():
    for name in TABLE + ('LINUX_PRODUCTS', 'Minimums', 'products'):
        assert getattr(report, name) is getattr(licences, name), name


def test_gnocchi_attributes_map_to_the_records_products():
    attrs = {'os_inspection_status': 'ok', 'os_family': 'windows',
             'os_edition': 'Datacenter', 'os_product_variant': None,
             'sql_server_edition': 'Express', 'os_distro': None}
    assert licences.products_of_attributes('i', attrs) == [
        ('Windows Server', 'Datacenter', 8), ('SQL Server', 'Express', 0)]
    assert licences.products_of_attributes('i', {}) == [
        (licences.NO_OS_ATTRIBUTES, '', 0)]
    # a status this version does not know is never a free OS
    assert licences.products_of_attributes(
        'i', {'os_inspection_status': 'quantum'}) == [('(unknown)', '', 0)]
    assert licences.record_of_attributes(
        'i', {'os_inspection_status': 'failed'}).status == \
        record_mod.STATUS_FAILED
