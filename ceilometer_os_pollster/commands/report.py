"""The licence summary of one host (``ceilometer-os-pollster report``).

Owns the aggregation per project, product and edition of the host's
instances now, and its two renderings (a table and JSON).  Which
products a record stands for and their per-VM minimums are the shared
table in licences.py, gathered from the family modules (also read by
``licence-report``).  The CLI
supplies the instances (libvirt: project, vCPUs) and their records (the
cache); nothing here does I/O.
"""

import dataclasses

from ceilometer_os_pollster.families import licences
from ceilometer_os_pollster import record as record_mod

# The shared product table, under the names report users know.
WINDOWS_SERVER_MIN_CORES_PER_VM = licences.WINDOWS_SERVER_MIN_CORES_PER_VM
SQL_SERVER_MIN_CORES_PER_VM = licences.SQL_SERVER_MIN_CORES_PER_VM
WINDOWS_CLIENT_VARIANTS = licences.WINDOWS_CLIENT_VARIANTS
FREE_WINDOWS_EDITIONS = licences.FREE_WINDOWS_EDITIONS
FREE_SQL_EDITIONS = licences.FREE_SQL_EDITIONS
WINDOWS_SERVER = licences.WINDOWS_SERVER
WINDOWS_CLIENT = licences.WINDOWS_CLIENT
SQL_SERVER = licences.SQL_SERVER
LINUX_PRODUCTS = licences.LINUX_PRODUCTS
Minimums = licences.Minimums
products = licences.products

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
