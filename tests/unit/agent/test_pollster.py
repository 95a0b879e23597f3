"""The Ceilometer-facing pollster, with a fake inspector and fake service."""

import logging
import sys
import threading
import time
from unittest import mock

import pytest

from ceilometer.compute import discovery
from ceilometer.compute import pollsters as compute_pollsters
from ceilometer.compute.virt import inspector as virt_inspector
from ceilometer.compute.virt.libvirt import inspector as libvirt_inspector
from ceilometer.polling import plugin_base
from ceilometer import service as ceilo_service

from ceilometer_os_pollster.agent import pollster as pollster_mod
from ceilometer_os_pollster.agent import prometheus
from ceilometer_os_pollster import record
from ceilometer_os_pollster.agent import service as service_mod
from tests import helpers
from tests.helpers import status_record
from ceilometer_os_pollster.instances import identity

RUNNING, PAUSED, SHUTOFF = 1, 3, 5


class FakeLibvirtError(Exception):
    def __init__(self, code):
        super().__init__('libvirt error %d' % code)
        self.code = code

    def get_error_code(self):
        return self.code


class FakeDomain:
    def __init__(self, uuid, state=RUNNING, vcpus=4, dom_id=7, broken=None):
        self.uuid = uuid
        self._state = state
        self.vcpus = vcpus
        self.dom_id = dom_id
        self.broken = broken

    def name(self):
        return 'instance-%s' % self.uuid[:8]

    def state(self):
        if self.broken:
            raise self.broken
        return [self._state, 1]

    def info(self):
        return [self._state, 131072, 131072, self.vcpus, 0]

    def ID(self):
        return self.dom_id if self._state != SHUTOFF else -1

    def XMLDesc(self, flags=0):
        return helpers.domain_xml(
            helpers.disk('/var/lib/nova/instances/%s/disk' % self.uuid,
                         format='qcow2'),
            name=self.name(), uuid=self.uuid)


class FakeConnection:
    def __init__(self, domains):
        self.domains = {d.uuid: d for d in domains}
        self.lookups = 0

    def lookupByUUIDString(self, uuid):
        self.lookups += 1
        try:
            return self.domains[uuid]
        except KeyError:
            raise FakeLibvirtError(42)


class FakeService:
    """Records what the pollster asks; serves fixed records."""

    def __init__(self, records=None):
        self.records = records or {}
        self.jobs = []
        self.cycles = []

    def job_for_domain(self, instance_id, domain, image_id=''):
        job = identity.make_job(instance_id, domain.name(),
                                domain.XMLDesc(0), domain.ID(), image_id,
                                'boot')
        self.jobs.append(job)
        return job

    def lookup(self, job):
        return self.records.get(job.instance_id,
                                record.OSRecord.pending(job.instance_id))

    def end_cycle(self, alive_ids):
        self.cycles.append(list(alive_ids))


def make_instance(uuid, vcpus=2, image='img-1'):
    flavor = {'name': 'm1.small', 'id': '2', 'ram': 512, 'disk': 1,
              'ephemeral': 0, 'swap': 0}
    if vcpus is not None:
        flavor['vcpus'] = vcpus
    return discovery.NovaLikeServer(**{
        'id': uuid, 'name': 'vm-' + uuid[:4], 'flavor': flavor,
        'image': {'id': image} if image else None,
        'os_type': 'hvm', 'architecture': 'x86_64',
        'OS-EXT-SRV-ATTR:instance_name': 'instance-' + uuid[:8],
        'OS-EXT-SRV-ATTR:host': 'compute1', 'OS-EXT-STS:vm_state': 'active',
        'tenant_id': 'project-' + uuid[:4], 'user_id': 'user-' + uuid[:4],
        'hostId': 'h', 'status': 'active', 'metadata': {}})


UUIDS = ['%08d-0000-4000-8000-000000000000' % i for i in range(1, 6)]


@pytest.fixture
def conf():
    return ceilo_service.prepare_service([], [])


@pytest.fixture
def make_pollster(conf, monkeypatch):
    def factory(domains, service=None, report_stopped=False):
        conf.set_override('report_stopped_instance_metrics', report_stopped,
                          group='compute')
        inspector = mock.Mock(spec=libvirt_inspector.LibvirtInspector)
        inspector.connection = FakeConnection(domains)
        monkeypatch.setattr(compute_pollsters.GenericComputePollster,
                            '_get_inspector',
                            staticmethod(lambda c: inspector))
        svc = service or FakeService()
        monkeypatch.setattr(service_mod, 'get_service', lambda c: svc)
        p = pollster_mod.OSMetadataPollster(conf)
        return p, svc, inspector
    return factory


def poll(p, instances):
    return list(p.get_samples(None, {}, instances))


def test_pending_sample_for_every_uncached_instance(make_pollster):
    p, svc, _ = make_pollster([FakeDomain(u) for u in UUIDS[:3]])
    samples = poll(p, [make_instance(u) for u in UUIDS[:3]])
    assert [s.resource_id for s in samples] == UUIDS[:3]
    for s in samples:
        assert s.name == 'compute.instance.os.metadata'
        assert s.type == 'gauge' and s.unit == 'vcpu'
        assert s.volume == 2
        assert s.resource_metadata['os_inspection_status'] == 'pending'
        assert s.resource_metadata['os_family'] == 'unknown'
        assert s.resource_metadata['os_inspected_at'] == ''
    assert svc.cycles == [UUIDS[:3]]
    # every lookup carried a job snapshot with a fingerprint
    assert all(j.fingerprint for j in svc.jobs)


def test_ids_and_standard_metadata_come_from_ceilometers_helper(
        make_pollster):
    p, _, _ = make_pollster([FakeDomain(UUIDS[0])])
    inst = make_instance(UUIDS[0])
    s = poll(p, [inst])[0]
    assert s.project_id == inst.tenant_id
    assert s.user_id == inst.user_id
    md = s.resource_metadata
    # Ceilometer's standard instance metadata is untouched...
    assert md['os_type'] == 'hvm'
    assert md['instance_type'] == 'm1.small'
    assert md['image_ref'] == 'img-1'
    assert md['display_name'] == inst.name


STATUS_RECORDS = {
    'ok': dict(status='ok', os_family='windows', os_distro='windows',
               os_info='win2k22', os_version_major=10, os_version_minor=0,
               os_build='20348', os_product_name='Windows Server 2022',
               os_product_variant='Server', os_edition='Datacenter',
               os_arch='x86_64', sql_server_edition='Enterprise',
               inspected_at='2026-11-22T10:00:00Z'),
    'unknown': dict(status='unknown', reason='no operating system found',
                    inspected_at='2026-11-22T10:00:00Z'),
    'encrypted': dict(status='encrypted', reason='1 LUKS volume',
                      inspected_at='2026-11-22T10:00:00Z'),
    'failed': dict(status='failed', reason='deadline: appliance killed',
                   inspected_at='2026-11-22T10:00:00Z'),
}


@pytest.mark.parametrize('status', sorted(STATUS_RECORDS))
def test_every_status_renders_the_record(make_pollster, status):
    rec = record.OSRecord(instance_id=UUIDS[0], **STATUS_RECORDS[status])
    p, _, _ = make_pollster([FakeDomain(UUIDS[0])],
                            FakeService({UUIDS[0]: rec}))
    md = poll(p, [make_instance(UUIDS[0])])[0].resource_metadata
    for key, value in rec.metadata().items():
        assert md[key] == value
    assert md['os_inspection_status'] == status


def test_same_metadata_keys_on_every_sample(make_pollster):
    records = {UUIDS[0]: record.OSRecord(instance_id=UUIDS[0],
                                         **STATUS_RECORDS['ok']),
               UUIDS[1]: record.OSRecord(instance_id=UUIDS[1],
                                         **STATUS_RECORDS['failed'])}
    p, _, _ = make_pollster([FakeDomain(u) for u in UUIDS[:3]],
                            FakeService(records))
    samples = poll(p, [make_instance(u) for u in UUIDS[:3]])
    key_sets = {frozenset(s.resource_metadata) for s in samples}
    assert len(key_sets) == 1
    assert set(record.METADATA_KEYS) <= next(iter(key_sets))


@pytest.mark.parametrize('flavor_vcpus,domain_vcpus,expected', [
    (4, 8, 4),        # the flavor wins
    (None, 8, 8),     # flavor without vcpus: the domain's
    (0, 3, 3),        # discovery says 0 when <nova:vcpus> is missing
])
def test_vcpu_volume_and_fallback(make_pollster, flavor_vcpus, domain_vcpus,
                                  expected):
    p, _, _ = make_pollster([FakeDomain(UUIDS[0], vcpus=domain_vcpus)])
    s = poll(p, [make_instance(UUIDS[0], vcpus=flavor_vcpus)])[0]
    assert s.volume == expected


FLAVORS = [
    ('none', None, 0),
    ('empty', {}, 0),
    ('vcpus only', {'vcpus': 2}, 0),
    ('no disk sizes', {'name': 'm1', 'vcpus': 2, 'ram': 512}, 512),
    ('garbage values', {'name': None, 'vcpus': 2, 'ram': 'lots',
                        'disk': None, 'ephemeral': True}, 0),
    ('complete', {'name': 'm1', 'id': '2', 'vcpus': 2, 'ram': 512,
                  'disk': 1, 'ephemeral': 0, 'swap': 0}, 512),
]


@pytest.mark.parametrize('name, flavor, ram', FLAVORS,
                         ids=[f[0] for f in FLAVORS])
def test_a_missing_or_partial_flavor_never_costs_the_sample(
        make_pollster, name, flavor, ram):
    p, _, _ = make_pollster([FakeDomain(UUIDS[0], vcpus=3)])
    inst = make_instance(UUIDS[0])
    inst.flavor = flavor
    samples = poll(p, [inst])
    assert len(samples) == 1
    expected_vcpus = (flavor or {}).get('vcpus') or 3
    assert samples[0].volume == expected_vcpus
    md = samples[0].resource_metadata
    assert md['vcpus'] == expected_vcpus and md['memory_mb'] == ram
    assert md['os_inspection_status'] == 'pending'


@pytest.mark.parametrize('flavor, vcpus, expected', [
    (None, 2, {'name': '', 'ram': 0, 'disk': 0, 'ephemeral': 0,
               'vcpus': 2}),
    ({'name': 'x', 'ram': '512', 'disk': 1, 'ephemeral': 0, 'id': '9'}, 4,
     {'name': 'x', 'ram': '512', 'disk': 1, 'ephemeral': 0, 'id': '9',
      'vcpus': 4}),
    ('m1.small', 1, {'name': '', 'ram': 0, 'disk': 0, 'ephemeral': 0,
                     'vcpus': 1}),
])
def test_complete_flavor(flavor, vcpus, expected):
    assert pollster_mod.complete_flavor(flavor, vcpus) == expected


def test_shut_off_instances_follow_ceilometer_convention(make_pollster):
    domains = [FakeDomain(UUIDS[0]), FakeDomain(UUIDS[1], state=SHUTOFF),
               FakeDomain(UUIDS[2], state=PAUSED)]
    p, _, _ = make_pollster(domains)
    ids = [s.resource_id for s in
           poll(p, [make_instance(u) for u in UUIDS[:3]])]
    assert ids == [UUIDS[0], UUIDS[2]]   # paused is sampled, shut-off not

    p, _, _ = make_pollster(domains, report_stopped=True)
    ids = [s.resource_id for s in
           poll(p, [make_instance(u) for u in UUIDS[:3]])]
    assert ids == UUIDS[:3]


def test_vanished_instance_is_skipped_quietly(make_pollster, caplog):
    # UUIDS[1] was discovered but deleted before the lookup; UUIDS[2]
    # disappears between lookup and state().
    domains = [FakeDomain(UUIDS[0]),
               FakeDomain(UUIDS[2], broken=FakeLibvirtError(42))]
    p, _, _ = make_pollster(domains)
    with caplog.at_level(logging.WARNING):
        samples = poll(p, [make_instance(u) for u in UUIDS[:3]])
    assert [s.resource_id for s in samples] == [UUIDS[0]]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_one_failing_instance_costs_only_its_own_sample(make_pollster,
                                                        caplog):
    domains = [FakeDomain(UUIDS[0]),
               FakeDomain(UUIDS[1], broken=RuntimeError('libvirt hiccup')),
               FakeDomain(UUIDS[2])]
    p, _, _ = make_pollster(domains)
    with caplog.at_level(logging.ERROR):
        samples = poll(p, [make_instance(u) for u in UUIDS[:3]])
    assert [s.resource_id for s in samples] == [UUIDS[0], UUIDS[2]]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert UUIDS[1] in errors[0].getMessage()


def test_service_failure_costs_only_that_instance(make_pollster):
    class Flaky(FakeService):
        def lookup(self, job):
            if job.instance_id == UUIDS[1]:
                raise OSError('cache exploded')
            return super().lookup(job)

    p, _, _ = make_pollster([FakeDomain(u) for u in UUIDS[:3]], Flaky())
    samples = poll(p, [make_instance(u) for u in UUIDS[:3]])
    assert [s.resource_id for s in samples] == [UUIDS[0], UUIDS[2]]


def refused_load(conf, monkeypatch, caplog, inspector=None):
    """Load the pollster, expecting a refusal: (ERROR messages, the
    inspector factory)."""
    inspector_factory = mock.Mock(return_value=inspector)
    monkeypatch.setattr(compute_pollsters.GenericComputePollster,
                        '_get_inspector', staticmethod(inspector_factory))
    with caplog.at_level(logging.ERROR):
        with pytest.raises(plugin_base.ExtensionLoadError):
            pollster_mod.OSMetadataPollster(conf)
    errors = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.ERROR]
    return errors, inspector_factory


def test_pollster_refuses_to_load_without_guestfs(conf, monkeypatch,
                                                  caplog):
    # A None entry in sys.modules makes "import guestfs" raise ImportError.
    monkeypatch.setitem(sys.modules, 'guestfs', None)
    errors, inspector_factory = refused_load(conf, monkeypatch, caplog)
    assert len(errors) == 1
    assert 'python3-guestfs' in errors[0]
    assert 'compute.instance.os.metadata' in errors[0]
    inspector_factory.assert_not_called()


def test_pollster_refuses_a_non_libvirt_inspector_once_at_load(
        conf, monkeypatch, caplog):
    # What Ceilometer hands out when the libvirt inspector cannot load
    # (python3-libvirt missing): an inspector without a connection.
    monkeypatch.setitem(sys.modules, 'guestfs', mock.Mock())
    errors, inspector_factory = refused_load(
        conf, monkeypatch, caplog, inspector=virt_inspector.Inspector(conf))
    assert len(errors) == 1
    assert 'compute.instance.os.metadata disabled' in errors[0]
    assert 'libvirt hypervisor inspector' in errors[0]
    assert 'Inspector' in errors[0] and 'python3-libvirt' in errors[0]
    inspector_factory.assert_called_once_with(conf)


def test_samples_carry_their_poll_time_like_ceilometers_own(make_pollster):
    p, _, _ = make_pollster([FakeDomain(UUIDS[0])])
    before = time.monotonic()
    s, = poll(p, [make_instance(UUIDS[0])])
    assert before <= s.monotonic_time <= time.monotonic()


def test_get_samples_never_waits_for_an_inspection(make_pollster, conf):
    """With the real service pieces and an engine that blocks forever,
    a poll still returns at once with pending samples."""
    release = threading.Event()
    started = threading.Event()
    calls = []

    class BlockingEngine:
        def inspect(self, job):
            calls.append(job.instance_id)
            started.set()
            release.wait(30)
            return record.OSRecord(instance_id=job.instance_id,
                                   status='unknown', reason='test',
                                   fingerprint=job.fingerprint)

    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        svc = service_mod.InspectionService(conf, engine=BlockingEngine())
        conf.set_override('cache_dir', tmp, group='os_inspection')
        p, _, _ = make_pollster([FakeDomain(u) for u in UUIDS], svc)
        done = threading.Event()
        result = []

        def run():
            result.extend(poll(p, [make_instance(u) for u in UUIDS]))
            done.set()

        t = threading.Thread(target=run)
        t.start()
        try:
            assert done.wait(10), 'get_samples blocked on the engine'
            assert len(result) == len(UUIDS)
            assert {s.resource_metadata['os_inspection_status']
                    for s in result} == {'pending'}
            # the work was handed to the background, not done inline
            assert started.wait(10)
            assert calls and set(calls) <= set(UUIDS)
        finally:
            release.set()
            svc.stop()
            t.join(10)


def test_lost_libvirt_connection_costs_no_sample(make_pollster, monkeypatch):
    """libvirtd restarted: the first call on the old connection fails with
    a disconnection error; the pollster retries once on a fresh one."""
    from ceilometer.compute.virt.libvirt import utils as libvirt_utils
    disconnect = FakeLibvirtError(1)      # stands in for "Broken pipe"
    monkeypatch.setattr(libvirt_utils, 'is_disconnection_exception',
                        lambda err: err is disconnect)
    p, _, inspector = make_pollster([FakeDomain(u) for u in UUIDS[:2]])
    real_lookup = inspector.connection.lookupByUUIDString
    failures = [disconnect]

    def lookup(uuid):
        if failures:
            raise failures.pop()
        return real_lookup(uuid)

    inspector.connection.lookupByUUIDString = lookup
    samples = poll(p, [make_instance(u) for u in UUIDS[:2]])
    assert [s.resource_id for s in samples] == UUIDS[:2]
    assert failures == []


def test_persistent_disconnection_is_logged_not_raised(make_pollster,
                                                       monkeypatch):
    from ceilometer.compute.virt.libvirt import utils as libvirt_utils
    monkeypatch.setattr(libvirt_utils, 'is_disconnection_exception',
                        lambda err: isinstance(err, FakeLibvirtError))
    p, _, inspector = make_pollster([FakeDomain(UUIDS[0])])

    def lookup(uuid):
        raise FakeLibvirtError(1)

    inspector.connection.lookupByUUIDString = lookup
    assert poll(p, [make_instance(UUIDS[0])]) == []


# -- double metering --------------------------------------------------------

METER = 'compute.instance.os.metadata'

DEFINITION_FILES = [
    # name, files {name: text}, expected duplicates
    ('ours in compute', {'os.yaml': '- name: %s\n  namespaces: compute\n'
                         % METER}, ['os.yaml']),
    ('ours in a list of namespaces',
     {'a.yaml': '- name: other\n  namespaces: [compute]\n'
                '- name: %s\n  namespaces: [central, compute]\n' % METER},
     ['a.yaml']),
    ('ours in central only (another agent)',
     {'os.yaml': '- name: %s\n  namespaces: central\n' % METER}, []),
    ('ours without namespaces (central by default)',
     {'os.yaml': '- name: %s\n' % METER}, []),
    ('another meter', {'x.yaml': '- name: cpu\n  namespaces: compute\n'},
     []),
    ('not *.yaml', {'os.yml': '- name: %s\n  namespaces: compute\n'
                    % METER}, []),
    ('broken YAML', {'bad.yaml': '- name: [\n'}, []),
    ('not a list', {'odd.yaml': 'name: %s\n' % METER}, []),
    ('two files', {'b.yaml': '- {name: %s, namespaces: compute}\n' % METER,
                   'a.yaml': '- {name: %s, namespaces: compute}\n' % METER},
     ['a.yaml', 'b.yaml']),
]


@pytest.mark.parametrize('name, files, expected', DEFINITION_FILES,
                         ids=[d[0] for d in DEFINITION_FILES])
def test_dynamic_duplicates(tmp_path, name, files, expected):
    for filename, text in files.items():
        (tmp_path / filename).write_text(text)
    found = pollster_mod.dynamic_duplicates(
        METER, [str(tmp_path), str(tmp_path / 'missing')])
    assert found == [str(tmp_path / f) for f in expected]


def test_pollster_refuses_to_load_next_to_a_dynamic_twin(conf, tmp_path,
                                                         monkeypatch,
                                                         caplog):
    twin = tmp_path / 'ceilometer_os_pollster.yaml'
    twin.write_text('- name: %s\n  namespaces: compute\n' % METER)
    conf.set_override('pollsters_definitions_dirs', [str(tmp_path)])
    errors, inspector_factory = refused_load(conf, monkeypatch, caplog)
    assert len(errors) == 1
    assert str(twin) in errors[0] and 'metered twice' in errors[0]
    inspector_factory.assert_not_called()


# -- Prometheus: how long an instance stays unverified -----------------------

T0 = 1_800_000_000.0


def exported(metric, labels):
    from ceilometer.polling import prom_exporter
    return prom_exporter.CEILOMETER_REGISTRY.get_sample_value(metric, labels)


def test_poll_exports_how_long_each_instance_stays_unverified(
        make_pollster, conf, monkeypatch):
    conf.set_override('enable_prometheus_exporter', True, group='polling')
    clock = [T0]
    monkeypatch.setattr(prometheus.time, 'time', lambda: clock[0])
    monkeypatch.setattr(prometheus, '_SINCE', {})
    ok_id, failed_id, new_id = UUIDS[:3]
    records = {ok_id: status_record('ok'),
               failed_id: status_record('failed', T0 - 300)}
    svc = FakeService(records)
    p, _, _ = make_pollster([FakeDomain(u) for u in UUIDS[:3]], svc)
    instances = [make_instance(u) for u in UUIDS[:3]]

    def seconds(uuid, status):
        return exported(prometheus.UNVERIFIED_METRIC, {
            'resource': uuid, 'project': 'project-' + uuid[:4],
            'user': 'user-' + uuid[:4], 'os_inspection_status': status})

    poll(p, instances)
    assert seconds(failed_id, 'failed') == 300
    assert seconds(new_id, 'pending') == 0
    assert seconds(ok_id, 'ok') is None
    # An hour later the new instance's inspection failed too; the failed
    # one was retried (a newer inspection time) and still fails.
    clock[0] += 3600
    records[new_id] = status_record('failed', clock[0] - 5)
    records[failed_id] = status_record('failed', clock[0] - 1)
    poll(p, instances)
    assert seconds(failed_id, 'failed') == 3900
    assert seconds(new_id, 'failed') == 3600
    assert seconds(new_id, 'pending') is None
    # Verified: its series goes, and a later failure counts afresh.
    records[failed_id] = status_record('ok')
    poll(p, instances[:2])
    assert seconds(failed_id, 'failed') is None
    assert seconds(new_id, 'failed') is None        # gone from the host
    records[failed_id] = status_record('unknown', clock[0])
    clock[0] += 60
    poll(p, instances[:2])
    assert seconds(failed_id, 'unknown') == 60
