"""The direct method on the whole test catalog: same answers as the
appliance path, or a fall back that says why.

Every catalog guest is built (mkfs tools, no appliance) and read by
``direct.inspect`` through the worker's own flow (``worker.inspect``
with ``inspection_method = direct``); the record must equal the
catalog's Expected record, which the appliance path is tested against
(test_engine_appliance), field for field.  Guests the direct method
leaves to the appliance must say so in a clear reason; the list of them
is printed and checked against the layouts the operations guide
(doc/source/operations.rst, "Two ways of reading a disk") says direct
does not read.  Seconds for the whole catalog: no appliance is started.
"""

import pytest

from ceilometer_os_pollster.instances import drives
from ceilometer_os_pollster.inspection import worker
from ceilometer_os_pollster.direct import inspect as direct_inspect
from ceilometer_os_pollster.direct.block import source
from tests import helpers
from tests.guests import builder
from tests.guests import catalog

# Guests the direct method leaves to the appliance, and why: the only
# one is not a layout but a filesystem the direct readers cannot make
# sense of.  An ext4 magic over a garbage superblock: the appliance has
# the last word on what it is (it says 'unknown').  btrfs guests
# (snapper snapshots, subvol= roots, a subvolume flood past
# max_filesystems) are all read directly.
NOT_DIRECT = {}
NOT_DIRECT['corrupt-fs'] = 'ext4: block size'


class NoAppliance:
    def __init__(self, *args, **kwargs):
        raise AssertionError('the direct method started an appliance')


@pytest.fixture(scope='module')
def images():
    builder.build_all()
    return {name: builder.disk_images(name) for name in catalog.GUESTS}


@pytest.fixture(scope='module')
def records(images):
    out = {}
    for name, paths in images.items():
        opts = worker.options_namespace(dict(
            catalog.GUESTS[name].options, inspection_method='direct'))
        out[name] = worker.inspect(
            opts, job(name, paths), '/nonexistent', lambda stage: None,
            appliance_factory=NoAppliance)
    return out


def job(name, paths):
    return {'instance_id': 'inst-' + name, 'fingerprint': 'fp',
            'domain_xml': helpers.files_domain_xml(paths, name)}


@pytest.mark.parametrize('name', sorted(catalog.GUESTS))
def test_direct_gives_the_catalog_record_or_says_why_not(name, records):
    rec = records[name]
    if name in NOT_DIRECT:
        assert rec.status == 'failed', rec
        assert NOT_DIRECT[name] in rec.reason, rec.reason
        return
    assert rec.inspection_method == 'direct', rec.reason
    assert catalog.mismatches(catalog.GUESTS[name].expected, rec) == []


def test_the_list_of_fallbacks(records):
    fell_back = {name: rec.reason for name, rec in records.items()
                 if rec.inspection_method != 'direct'}
    print('\n'.join('%s: %s' % item for item in sorted(fell_back.items())))
    assert set(fell_back) == set(NOT_DIRECT)


def test_a_linux_guest_costs_little_of_the_disk(images):
    budget = source.Budget()
    specs = drives.drive_specs(job('rhel', images['rhel-9.4'])[
        'domain_xml'])
    assert len(specs) == 1
    facts = direct_inspect.inspect(specs, budget=budget)
    assert facts.roots and facts.roots[0].distro == 'rhel'
    # A few MiB at most, of a disk of hundreds.
    assert budget.used < 8 << 20
