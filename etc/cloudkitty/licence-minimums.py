# CloudKitty pyscripts rating script: Microsoft's per-VM core minimums.
#
# Microsoft licenses Windows Server and SQL Server per core, and a
# virtual machine licensed on its own counts at least a minimum number of
# cores whatever its vCPUs (Product Terms, "Licensing by individual
# virtual OSE"; SPLA has the same rule).  Hashmap multiplies a price per
# vCPU by qty and cannot express "at least N", so this script runs BEFORE
# hashmap (a higher module priority: etc/cloudkitty/licence-minimums.sh)
# and raises qty, the billed vCPUs, to the minimum.  Hashmap then prices
# max(vCPUs, minimum) cores, and the stored qty shows the licensed count.
#
# Parameters: the two minimums below, and the editions that are free
# (no licence, so no minimum).  Values follow etc/cloudkitty/metrics.yml
# (rating types) and the pollster's os_family / os_edition /
# sql_server_edition; the pollster's family modules (windows.py,
# sqlserver.py) hold the same table, and a unit test keeps the two equal.
#
# CloudKitty runs this with "data" bound to the rated period as a dict:
# {"period": {...}, "usage": {rating type: [point, ...]}}, each point
# {"vol": {"unit", "qty"}, "rating": {"price"}, "groupby": {...},
#  "metadata": {...}}, and reads "data" back.

import decimal

# os_family of Windows guests.
WINDOWS_FAMILY = 'windows'
# Windows Server Standard/Datacenter: at least 8 cores per VM.
WINDOWS_SERVER_MIN_CORES_PER_VM = 8
# SQL Server Standard/Enterprise (per core): at least 4 cores per VM.
SQL_SERVER_MIN_CORES_PER_VM = 4

# Windows desktops (InstallationType); any other variant, unknown
# included, is treated as Windows Server.
# The pollster says 'Client' only when no registry value says Server,
# and an Evaluation edition only when EditionID and ProductName agree.
WINDOWS_CLIENT_VARIANTS = ('Client',)
FREE_WINDOWS_EDITIONS = ('Standard Evaluation', 'Datacenter Evaluation')
FREE_SQL_EDITIONS = ('Evaluation', 'Developer', 'Express')


def _windows_server_minimum(metadata):
    if metadata.get('os_inspection_status') != 'ok':
        return 0
    if metadata.get('os_family') != WINDOWS_FAMILY:
        return 0
    if metadata.get('os_product_variant') in WINDOWS_CLIENT_VARIANTS:
        return 0
    if metadata.get('os_edition') in FREE_WINDOWS_EDITIONS:
        return 0
    return WINDOWS_SERVER_MIN_CORES_PER_VM


def _sql_server_minimum(metadata):
    if metadata.get('os_inspection_status') != 'ok':
        return 0
    edition = metadata.get('sql_server_edition')
    if not edition or edition in FREE_SQL_EDITIONS:
        return 0
    return SQL_SERVER_MIN_CORES_PER_VM


MINIMUMS = {
    'os_license_vcpu': _windows_server_minimum,
    'sql_license_vcpu': _sql_server_minimum,
}


def apply_minimums(frame):
    for rating_type, points in frame['usage'].items():
        minimum_of = MINIMUMS.get(rating_type)
        if minimum_of is None:
            continue
        for point in points:
            minimum = decimal.Decimal(minimum_of(point['metadata']))
            qty = decimal.Decimal(str(point['vol']['qty']))
            if qty < minimum:
                point['vol']['qty'] = minimum
    return frame


data = apply_minimums(data)  # noqa: F821 (bound by CloudKitty)
