"""The licence product table: every licence figure, gathered from the
family modules.

Owns which licensable products an OS record stands for: each family
says its own (``windows.products``, ``linux.products``, found through
``known.family``), SQL Server ``sqlserver.products``; the products,
editions that are free and per-VM core minimums are theirs, named here
under the names the reports use.  Read by the per-host ``report``
(report.py) and the monthly ``licence-report`` (licence_periods.py); the
CloudKitty rating side (etc/cloudkitty/licence-minimums.py,
hashmap-example.sh) runs inside CloudKitty and cannot import this, so a
unit test (tests/unit/families/test_licences.py) checks that its values
equal the family modules'.  Pure: no I/O.
"""

import dataclasses

from ceilometer_os_pollster.families import known
from ceilometer_os_pollster.families import linux
from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster.families import sqlserver
from ceilometer_os_pollster.families import windows

WINDOWS_SERVER_MIN_CORES_PER_VM = windows.WINDOWS_SERVER_MIN_CORES_PER_VM
SQL_SERVER_MIN_CORES_PER_VM = sqlserver.SQL_SERVER_MIN_CORES_PER_VM
WINDOWS_CLIENT_VARIANTS = windows.CLIENT_VARIANTS
FREE_WINDOWS_EDITIONS = windows.FREE_WINDOWS_EDITIONS
FREE_SQL_EDITIONS = sqlserver.FREE_SQL_EDITIONS
WINDOWS_SERVER = windows.WINDOWS_SERVER
WINDOWS_CLIENT = windows.WINDOWS_CLIENT
SQL_SERVER = sqlserver.SQL_SERVER
LINUX_PRODUCTS = linux.LINUX_PRODUCTS


@dataclasses.dataclass(frozen=True)
class Minimums:
    windows_server: int = WINDOWS_SERVER_MIN_CORES_PER_VM
    sql_server: int = SQL_SERVER_MIN_CORES_PER_VM


def products(record, minimums=Minimums()):
    """[(product, edition, per-VM minimum)] a record stands for.

    A Windows Server guest with SQL Server is two products.  Records
    without an OS (pending, unknown, failed, encrypted) are one pseudo
    product "(status)", so that the operator sees what is not licensed
    yet.  A family this version does not know is listed under its
    os_distro.  Free editions have no minimum.
    """
    if record.status != record_mod.STATUS_OK:
        return [('(%s)' % record.status, '', 0)]
    family = known.family(record.os_family)
    if family is not None:
        found = family.products(record, minimums)
    else:
        found = [(record.os_distro, record.os_edition, 0)]
    return found + sqlserver.products(record, minimums.sql_server)


# The pseudo product of running time whose Gnocchi resource has no
# os_inspection_status: the agent lacks the plugin, the attributes are
# not mapped (etc/gnocchi), or the instance was never inspected.
NO_OS_ATTRIBUTES = '(no OS attributes)'


def record_of_attributes(instance_id, attributes):
    """The OSRecord an instance's Gnocchi attributes stand for, or None
    without an os_inspection_status.  A status this version does not
    know counts as "unknown": never as a free OS."""
    status = attributes.get('os_inspection_status')
    if not status:
        return None
    if status not in record_mod.STATUSES:
        status = record_mod.STATUS_UNKNOWN
    fields = {}
    for field in ('os_family', 'os_distro', 'os_info', 'os_product_name',
                  'os_product_variant', 'os_edition', 'os_build',
                  'os_arch', 'sql_server_edition'):
        value = attributes.get(field)
        if value is not None:
            fields[field] = str(value)
    return record_mod.OSRecord(instance_id=instance_id, status=status,
                               **fields)


def products_of_attributes(instance_id, attributes, minimums=Minimums()):
    """products() of a Gnocchi attribute set; NO_OS_ATTRIBUTES (no
    minimum) when it has no inspection status."""
    record = record_of_attributes(instance_id, attributes)
    if record is None:
        return [(NO_OS_ATTRIBUTES, '', 0)]
    return products(record, minimums)
