"""The billing policy through a real Ceilometer AgentManager.

Real discovery (libvirt metadata), real inspector connection, real
pollster, service, scheduler and cache; the domains live in libvirt's
``test:///`` driver and change the way nova changes them (a data volume
attached, a rebuild onto another image).  Only the engine is a fake that
counts its calls, so "no appliance launched" is the number of
``inspect`` calls.
"""

import threading
import time

import pytest
from oslo_messaging.notify import _impl_test

from ceilometer.compute import pollsters as compute_pollsters

from ceilometer_os_pollster import record
from tests.fixtures import libvirt_test_driver as tdrv
from tests.functional.agent import Agent, agent_conf
WINDOWS = 'aaaaaaaa-0000-4000-8000-0000000000a1'
BLANK = 'aaaaaaaa-0000-4000-8000-0000000000b2'
WAIT = 20.0

DATA_VOLUME = """      <disk type='block' device='disk'>
        <driver name='qemu' type='raw'/>
        <source dev='/dev/disk/by-id/volume-{uuid}'/>
        <target dev='vdb' bus='virtio'/>
      </disk>
    </devices>"""


class CountingEngine:
    """Answers by nova image: 'img-blank' has no OS, the others Windows."""

    def __init__(self):
        self.jobs = []
        self.cond = threading.Condition()

    def inspect(self, job):
        with self.cond:
            self.jobs.append(job)
            self.cond.notify_all()
        if job.image_id == 'img-blank':
            return record.OSRecord.failed(
                job.instance_id, 'no operating system found on 1 disk',
                fingerprint=job.fingerprint, status=record.STATUS_UNKNOWN)
        return record.OSRecord(
            instance_id=job.instance_id, status='ok', os_family='windows',
            os_distro='windows', os_info='win2k22', os_version_major=10,
            os_build='20348', os_product_name='Windows Server 2022',
            os_edition='Datacenter', os_arch='x86_64',
            fingerprint=job.fingerprint,
            inspected_at=record.utc_timestamp())

    def calls_for(self, instance_id):
        with self.cond:
            return [j for j in self.jobs if j.instance_id == instance_id]

    def wait_calls(self, count):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.jobs) >= count,
                                      WAIT), self.jobs


class Host:
    """A test-driver node file nova would have written, and one agent."""

    def __init__(self, tmp_path, monkeypatch):
        self.tmp = tmp_path
        self.node = tmp_path / 'node.xml'
        self.images = {WINDOWS: 'img-win', BLANK: 'img-blank'}
        self.volumes = set()
        uri = self.write()
        self.engine = CountingEngine()
        self.agent = Agent(agent_conf(tmp_path, uri, host='compute1'),
                           monkeypatch, engine=self.engine)
        self.service, self.mgr = self.agent.svc, self.agent.mgr
        # What the pollster asked for, job by job (the real lookup runs).
        self.looked_up = []
        real_lookup = self.service.lookup

        def lookup(job):
            self.looked_up.append(job)
            return real_lookup(job)
        monkeypatch.setattr(self.service, 'lookup', lookup)

    def write(self):
        domains = [tdrv.domain(u, 'instance-%08d' % n, image=self.images[u])
                   for n, u in enumerate((WINDOWS, BLANK), 1)]
        xml = tdrv.node_xml(domains)
        for uuid in self.volumes:
            # The volume goes into that domain's <devices>.
            head, tail = xml.split('<uuid>%s</uuid>' % uuid)
            tail = tail.replace('    </devices>',
                                DATA_VOLUME.format(uuid=uuid), 1)
            xml = head + '<uuid>%s</uuid>' % uuid + tail
        self.node.write_text(xml)
        return 'test://%s' % self.node

    def nova_changed(self):
        """Rewrite the node and make the agent's connections re-read it,
        as if libvirtd served the new domain XML."""
        self.write()
        holders = [compute_pollsters.GenericComputePollster._inspector]
        holders += [d.obj for d in self.mgr.discoveries]
        for holder in holders:
            connection = getattr(holder, '_libvirt_connection', None)
            if connection is not None:
                # Ceilometer reconnects when it finds none.
                holder._libvirt_connection = None
                connection.close()

    def poll(self):
        return self.agent.cycle_metadata()

    def settle(self):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            stats = self.service.scheduler.stats()
            if not stats['queued'] and not stats['running']:
                return
            time.sleep(0.01)
        raise AssertionError('inspections did not finish')


@pytest.fixture
def host(tmp_path, monkeypatch):
    h = Host(tmp_path, monkeypatch)
    yield h
    h.service.stop()
    _impl_test.reset()


def test_volume_attach_costs_nothing_rebuild_of_unknown_is_inspected_at_once(
        host):
    first = host.poll()
    assert {u: md['os_inspection_status'] for u, md in first.items()} == {
        WINDOWS: 'pending', BLANK: 'pending'}
    host.engine.wait_calls(2)
    host.settle()
    inspected = host.poll()
    assert inspected[WINDOWS]['os_edition'] == 'Datacenter'
    assert inspected[BLANK]['os_inspection_status'] == 'unknown'
    blank = host.service.cache.get(BLANK)
    assert blank.failures == 1 and blank.retry_at > time.time() + 60

    # A data volume attached to both: no appliance, same records.
    host.volumes = {WINDOWS, BLANK}
    host.nova_changed()
    attached = host.poll()
    host.settle()
    assert len(host.engine.jobs) == 2
    assert attached[WINDOWS]['os_inspection_status'] == 'ok'
    assert attached[WINDOWS]['os_edition'] == 'Datacenter'
    assert attached[BLANK]['os_inspection_status'] == 'unknown'
    # The pollster's job had the volume in its XML, same fingerprint.
    jobs = {j.instance_id: j for j in host.looked_up[-2:]}
    assert 'volume-%s' % WINDOWS in jobs[WINDOWS].domain_xml
    assert jobs[WINDOWS].fingerprint == host.engine.calls_for(
        WINDOWS)[0].fingerprint

    # Detached again: still nothing.
    host.volumes = set()
    host.nova_changed()
    host.poll()
    host.settle()
    assert len(host.engine.jobs) == 2

    # The blank instance is rebuilt from a Windows image while its
    # 'unknown' record is in retry backoff: inspected at once.
    host.images[BLANK] = 'img-win'
    host.nova_changed()
    meanwhile = host.poll()
    assert meanwhile[BLANK]['os_inspection_status'] == 'unknown'
    host.engine.wait_calls(3)
    host.settle()
    rebuilt = host.engine.calls_for(BLANK)
    assert [j.image_id for j in rebuilt] == ['img-blank', 'img-win']
    after = host.poll()
    assert after[BLANK]['os_inspection_status'] == 'ok'
    assert after[BLANK]['os_edition'] == 'Datacenter'
    assert len(host.engine.calls_for(WINDOWS)) == 1
