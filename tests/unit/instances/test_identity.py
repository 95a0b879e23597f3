"""Tests of identity.py: what makes two inspections the same instance,
the same disks and the same boot.

The domain XML is what nova writes (tests.unit.instances.nova_xml); the
fingerprint tests moved here from test_drives with the fingerprint.
"""

import dataclasses

import pytest

from ceilometer_os_pollster.instances import drives
from ceilometer_os_pollster.instances import identity
from tests.unit.instances.nova_xml import BASE_BACKING
from tests.unit.instances.nova_xml import INSTANCES
from tests.unit.instances.nova_xml import RBD
from tests.unit.instances.nova_xml import ROOT_OVERLAY
from tests.unit.instances.nova_xml import VDB
from tests.unit.instances.nova_xml import domain
from tests.unit.instances.nova_xml import file_disk

# -- the fingerprint, from drive specs ------------------------------------

BASE_SPECS = drives.drive_specs(domain(ROOT_OVERLAY, VDB))
BASE_PRINT = identity.fingerprint(BASE_SPECS, 'image-1', 'boot-1')


def test_fingerprint_is_stable_short_hex():
    again = identity.fingerprint(drives.drive_specs(domain(ROOT_OVERLAY, VDB)),
                                 'image-1', 'boot-1')
    assert again == BASE_PRINT
    disks, run = BASE_PRINT.split('-')
    assert len(disks) == len(run) == 16
    int(disks, 16), int(run, 16)


def test_fingerprint_ignores_document_order_and_auth():
    reordered = drives.drive_specs(domain(VDB, ROOT_OVERLAY))
    assert identity.fingerprint(reordered, 'image-1', 'boot-1') == BASE_PRINT
    rbd = drives.drive_specs(domain(RBD))
    other_user = drives.drive_specs(domain(
        RBD.replace("username='nova'", "username='cinder'")))
    assert (identity.fingerprint(rbd, 'i', 'b')
            == identity.fingerprint(other_user, 'i', 'b'))


def _changed(field, value):
    first = dataclasses.replace(BASE_SPECS[0], **{field: value})
    return [first] + BASE_SPECS[1:]


# What changes the OS the boot-disk policy sees changes the disks half.
@pytest.mark.parametrize('specs, image_id', [
    (_changed('path', INSTANCES + '/disk.rescue'), 'image-1'),
    (_changed('kind', 'block'), 'image-1'),
    (_changed('format', 'raw'), 'image-1'),
    (_changed('protocol', 'rbd'), 'image-1'),
    (_changed('hosts', (('192.0.2.1', '6789'),)), 'image-1'),
    (_changed('socket', '/run/nbd'), 'image-1'),
    # Rescue: another disk takes over the boot (nova's stable rescue).
    (BASE_SPECS + [dataclasses.replace(BASE_SPECS[1], boot_order=1,
                                       path='/rescue')], 'image-1'),
    # The boot disk is renamed after the data disk (volume swap).
    ([dataclasses.replace(BASE_SPECS[0], target='vdc'), BASE_SPECS[1]],
     'image-1'),
    ([], 'image-1'),
    # The nova image changed (rebuild).
    (BASE_SPECS, 'image-2'),
    (BASE_SPECS, ''),
])
def test_fingerprint_disks_half_changes_with_the_boot_disk(specs, image_id):
    new = identity.fingerprint(specs, image_id, 'boot-1')
    assert new != BASE_PRINT
    assert not identity.same_disks(BASE_PRINT, new)


@pytest.mark.parametrize('specs', [
    BASE_SPECS[:1],                                   # data volume detached
    BASE_SPECS + [dataclasses.replace(BASE_SPECS[1], target='vdc',
                                      path='/vol2')],  # another attached
    list(reversed(BASE_SPECS)),                       # listed in another order
])
def test_fingerprint_ignores_data_volumes(specs):
    assert identity.fingerprint(specs, 'image-1', 'boot-1') == BASE_PRINT


def test_fingerprint_covers_every_disk_when_all_disks_are_inspected():
    every = identity.fingerprint(BASE_SPECS, 'image-1', 'boot-1', True)
    assert identity.fingerprint(BASE_SPECS[:1], 'image-1', 'boot-1',
                                True) != every


@pytest.mark.parametrize('boot_identity', ['boot-2', '', 'image-1boot-1'])
def test_fingerprint_run_half_changes_with_qemu_restart(boot_identity):
    new = identity.fingerprint(BASE_SPECS, 'image-1', boot_identity)
    assert new != BASE_PRINT
    assert identity.same_disks(BASE_PRINT, new)


def test_fingerprint_fields_never_leak_into_each_other():
    assert (identity.fingerprint(BASE_SPECS, 'image-1boot-1', '')
            != BASE_PRINT)


@pytest.mark.parametrize('old, new, expected', [
    ('a' * 16 + '-' + 'b' * 16, 'a' * 16 + '-' + 'c' * 16, True),
    ('a' * 16 + '-' + 'b' * 16, 'd' * 16 + '-' + 'b' * 16, False),
    ('0123456789abcdef' * 2, 'a' * 16 + '-' + 'b' * 16, True),  # legacy
    ('', 'a' * 16 + '-' + 'b' * 16, False),
    (None, 'a', False),
])
def test_same_disks(old, new, expected):
    assert identity.same_disks(old, new) is expected


def test_fingerprint_none_is_empty():
    assert (identity.fingerprint(BASE_SPECS, None, None)
            == identity.fingerprint(BASE_SPECS, '', ''))


def test_fingerprint_survives_odd_text():
    spec = dataclasses.replace(BASE_SPECS[0], path='/x/\udcff\u202e\n')
    assert len(identity.fingerprint([spec], '\u00e9', '\x00')) == 33


# -- jobs, as the agent and the CLI make them ----------------------------

IMAGE = 'a1b2c3d4-0000-4000-8000-000000000001'
XML = domain(ROOT_OVERLAY, VDB)


def job(xml=XML, domain_id=7, image_id=IMAGE, host_boot_id='boot-1',
        all_disks=False):
    return identity.make_job('inst-1', 'instance-0000002a', xml, domain_id,
                             image_id, host_boot_id, all_disks)


def test_a_job_snapshots_the_instance():
    made = job()
    assert (made.instance_id, made.domain_name, made.domain_xml,
            made.image_id) == ('inst-1', 'instance-0000002a', XML, IMAGE)
    assert made.fingerprint == identity.fingerprint(
        drives.drive_specs(XML), IMAGE, made.boot_identity)


def test_same_disks_in_another_order_are_the_same_job():
    assert job(domain(VDB, ROOT_OVERLAY)).fingerprint == job().fingerprint


# What the guest's OS cannot have changed: the same boot disk seen
# through other XML details keeps the whole fingerprint.
@pytest.mark.parametrize('xml', [
    # Another backing file under the same overlay (a blockpull or a
    # rebase by the operator): the overlay is what the guest boots and
    # the image id says which image it came from.
    domain(file_disk('disk', 'vda', backing=BASE_BACKING.replace(
        '9e1b2f3a4c', 'ffffffffff'))),
    domain(ROOT_OVERLAY),                           # data disk detached
    domain(ROOT_OVERLAY, VDB, file_disk('disk.eph1', 'vdc')),  # attached
    domain(ROOT_OVERLAY, VDB, os_boot=('hd', 'cdrom')),
])
def test_what_leaves_the_boot_disk_alone_keeps_the_fingerprint(xml):
    assert job(xml).fingerprint == job().fingerprint


# What may bring another OS: the disks half changes, so the good record
# is no longer carried over a failed inspection.
@pytest.mark.parametrize('changes', [
    dict(xml=domain(file_disk('disk.rescue', 'vda', backing=BASE_BACKING),
                    VDB)),                          # another overlay file
    dict(xml=domain(ROOT_OVERLAY.replace("type='qcow2'", "type='raw'"),
                    VDB)),                          # another format
    dict(xml=domain(VDB.replace("'vdb'", "'vda'"),
                    ROOT_OVERLAY.replace("'vda'", "'vdb'"))),  # swapped
    dict(image_id='a1b2c3d4-0000-4000-8000-000000000002'),     # rebuild
    dict(image_id=''),                              # now boots a volume
    dict(all_disks=True),                           # every disk counts
])
def test_another_boot_disk_or_image_changes_the_disks_half(changes):
    new = job(**changes).fingerprint
    assert new != job().fingerprint
    assert not identity.same_disks(job().fingerprint, new)


@pytest.mark.parametrize('changes', [
    dict(domain_id=8),                  # qemu restarted (stop/start)
    dict(host_boot_id='boot-2'),        # host rebooted, same domain id
])
def test_a_new_boot_changes_only_the_run_half(changes):
    new = job(**changes)
    assert new.boot_identity != job().boot_identity
    assert new.fingerprint != job().fingerprint
    assert identity.same_disks(job().fingerprint, new.fingerprint)


def test_boot_identity_halves_never_run_into_each_other():
    assert (identity.boot_identity('boot-1', 12)
            != identity.boot_identity('boot-11', 2))


def test_no_image_is_the_empty_image():
    assert job(image_id=None).image_id == ''
    assert job(image_id=None).fingerprint == job(image_id='').fingerprint


@pytest.mark.parametrize('xml', [None, '', '<domain', '<notadomain/>'])
def test_unusable_xml_is_a_job_without_disks(xml):
    made = job(xml)
    assert made.fingerprint == identity.fingerprint(
        [], IMAGE, made.boot_identity)


def test_with_fingerprint_computes_what_make_job_would():
    made = job()
    bare = dataclasses.replace(made, fingerprint='')
    assert identity.with_fingerprint(bare) == made
    every = job(all_disks=True)
    assert identity.with_fingerprint(bare, all_disks=True) == every


def test_with_fingerprint_keeps_the_job_s_own():
    made = dataclasses.replace(job(), fingerprint='given')
    assert identity.with_fingerprint(made, all_disks=True) is made


@pytest.mark.parametrize('xml', [None, '<domain', '<notadomain/>'])
def test_with_fingerprint_refuses_unusable_xml(xml):
    bare = dataclasses.replace(job(), domain_xml=xml, fingerprint='')
    with pytest.raises(drives.DomainXMLError):
        identity.with_fingerprint(bare)
