"""The jobs and records the command works with (commands/records.py).

Reading records from the cache and refusing a cache_dir are exercised
through whole commands in test_cli.py and
tests/functional/test_cache_privileges.py.
"""

from lxml import etree as ET
import pytest

from ceilometer_os_pollster.agent import service as service_mod
from ceilometer_os_pollster.instances import identity
from ceilometer_os_pollster.commands import domains
from ceilometer_os_pollster.commands import records
from ceilometer_os_pollster.instances import domain_xml as domain_xml_mod
from tests.fixtures import libvirt_test_driver as tdrv


@pytest.mark.parametrize('all_disks', [False, True])
def test_cli_jobs_fingerprint_like_the_agent(all_disks):
    uuid = 'cccccccc-0000-4000-8000-000000000001'
    node = ET.fromstring(tdrv.node_xml([tdrv.domain(uuid, 'instance-1')]))
    domain = node.find('domain')
    disks = domain.find('devices')
    extra = ET.fromstring(
        "<disk type='block' device='disk'><driver type='raw'/>"
        "<source dev='/dev/vol'/><target dev='vdb' bus='virtio'/></disk>")
    disks.append(extra)
    xml = ET.tostring(domain, encoding='unicode')
    info = domain_xml_mod.instance_info(xml)
    job, = records.jobs_for([domains.Scanned(info, xml, 7, 1)], all_disks)
    agent = identity.make_job(uuid, info.name, xml, 7, info.image_id,
                              service_mod.host_boot_id(), all_disks)
    assert job.fingerprint == agent.fingerprint
    without = identity.make_job(uuid, info.name, xml, 7, info.image_id,
                                service_mod.host_boot_id(),
                                not all_disks)
    assert job.fingerprint != without.fingerprint
