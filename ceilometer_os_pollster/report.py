"""The licence summary of one host (``ceilometer-os-pollster report``).

Owns the pure half: which licensable products an OS record stands for,
the per-VM core minimums Microsoft applies to them, the aggregation per
project, product and edition, and its two renderings (a table and JSON).
The CLI supplies the instances (libvirt: project, vCPUs) and their
records (the cache); nothing here does I/O.

Keep the minimums and free editions in step with the CloudKitty rating
script etc/cloudkitty/licence-minimums.py (a unit test compares them):
the report counts the cores the invoice charges.
"""

import dataclasses

from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster import windows

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

HEADERS = ('PROJECT', 'PRODUCT', 'EDITION', 'INSTANCES', 'VCPUS',
           'WITH MINIMUMS')
JSON_KEYS = ('project_id', 'product', 'edition', 'instances', 'vcpus',
             'vcpus_with_minimums')


@dataclasses.dataclass(frozen=True)
class Instance:
    """One instance of the host as the report sees it."""

    instance_id: str
    project_id: str
    vcpus: int
    record: record_mod.OSRecord


@dataclasses.dataclass(frozen=True)
class Line:
    """One row: instances of a project running one product edition."""

    project_id: str
    product: str
    edition: str
    instances: int
    vcpus: int
    vcpus_with_minimums: int


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


def summarise(instances, minimums=Minimums()):
    """Lines per (project, product, edition), sorted by those keys."""
    totals = {}
    for inst in instances:
        for product, edition, minimum in products(inst.record, minimums):
            key = (inst.project_id, product, edition)
            count, vcpus, licensed = totals.get(key, (0, 0, 0))
            totals[key] = (count + 1, vcpus + inst.vcpus,
                           licensed + max(inst.vcpus, minimum))
    return [Line(*key, *values) for key, values in sorted(totals.items())]


def rows(lines):
    """Table rows for HEADERS; '-' for an empty edition."""
    return [(line.project_id, line.product, line.edition or '-',
             line.instances, line.vcpus, line.vcpus_with_minimums)
            for line in lines]


def json_document(lines):
    """The --json rendering: one object per line, JSON_KEYS in order."""
    return [{key: getattr(line, key) for key in JSON_KEYS}
            for line in lines]
