"""The licence product table: one source for every licence figure.

Owns which licensable products an OS record stands for, which editions
are free and the per-VM core minimums Microsoft applies.  Read by the
per-host ``report`` (report.py) and the monthly ``licence-report``
(licence_periods.py); the CloudKitty rating side
(etc/cloudkitty/licence-minimums.py, hashmap-example.sh) runs inside
CloudKitty and cannot import this, so a unit test
(tests/unit/test_licences.py) checks that its values equal these.
Pure: no I/O.
"""

import dataclasses

from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster.families import windows

# Microsoft Product Terms, licensing an individual virtual machine by
# core (SPLA likewise): Windows Server counts at least 8 cores per VM,
# SQL Server at least 4.
WINDOWS_SERVER_MIN_CORES_PER_VM = 8
SQL_SERVER_MIN_CORES_PER_VM = 4

# InstallationType of Windows desktops; any other (Server, Server Core,
# or unknown) counts as Windows Server: better over- than under-report.
# The pollster says 'Client' only when no registry value says Server,
# and an Evaluation edition only when EditionID and ProductName agree.
WINDOWS_CLIENT_VARIANTS = windows.CLIENT_VARIANTS
FREE_WINDOWS_EDITIONS = ('Standard Evaluation', 'Datacenter Evaluation')
FREE_SQL_EDITIONS = ('Developer', 'Express', 'Evaluation')

WINDOWS_SERVER = 'Windows Server'
WINDOWS_CLIENT = 'Windows'
SQL_SERVER = 'SQL Server'
# Linux distributions sold per VM, by os_distro; other distributions
# are listed under their os_distro.
LINUX_PRODUCTS = {'rhel': 'RHEL', 'sles': 'SLES', 'slem': 'SLE Micro'}


@dataclasses.dataclass(frozen=True)
class Minimums:
    windows_server: int = WINDOWS_SERVER_MIN_CORES_PER_VM
    sql_server: int = SQL_SERVER_MIN_CORES_PER_VM


def products(record, minimums=Minimums()):
    """[(product, edition, per-VM minimum)] a record stands for.

    A Windows Server guest with SQL Server is two products.  Records
    without an OS (pending, unknown, failed, encrypted) are one pseudo
    product "(status)", so that the operator sees what is not licensed
    yet.  Free editions have no minimum.
    """
    if record.status != record_mod.STATUS_OK:
        return [('(%s)' % record.status, '', 0)]
    found = []
    if record.os_family == 'windows':
        edition = record.os_edition
        if record.os_product_variant not in WINDOWS_CLIENT_VARIANTS:
            minimum = (0 if edition in FREE_WINDOWS_EDITIONS
                       else minimums.windows_server)
            found.append((WINDOWS_SERVER, edition, minimum))
        else:
            found.append((WINDOWS_CLIENT, edition, 0))
    elif record.os_family == 'linux':
        found.append((LINUX_PRODUCTS.get(record.os_distro,
                                         record.os_distro),
                      record.os_edition, 0))
    else:
        found.append((record.os_distro, record.os_edition, 0))
    sql = record.sql_server_edition
    if sql:
        minimum = 0 if sql in FREE_SQL_EDITIONS else minimums.sql_server
        found.append((SQL_SERVER, sql, minimum))
    return found


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
