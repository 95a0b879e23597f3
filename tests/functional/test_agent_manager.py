"""Our entry point inside a real Ceilometer AgentManager.

Uses libvirt's daemon-less ``test:///`` driver for the domains, Ceilometer's
real libvirt-metadata discovery and inspector, and oslo.messaging's
in-memory ``test`` notifier; only the inspection engine is a fake (the real
one is exercised by the appliance suites).
"""

import threading

import pytest
from oslo_messaging.notify import _impl_test
from stevedore import extension

from ceilometer_os_pollster.agent import prometheus
from ceilometer_os_pollster import record
from tests.fixtures import libvirt_test_driver as tdrv
from tests.functional.agent import Agent, METER, agent_conf

UUIDS = ['aaaaaaaa-0000-4000-8000-00000000000%d' % i for i in range(1, 4)]


def test_entry_point_is_listed_in_the_compute_namespace():
    mgr = extension.ExtensionManager('ceilometer.poll.compute',
                                     invoke_on_load=False)
    assert METER in mgr.names()
    ep = [e for e in mgr.extensions if e.name == METER][0]
    assert ep.entry_point.value == \
        'ceilometer_os_pollster.agent.pollster:OSMetadataPollster'


class RecordingEngine:
    """Stands in for the appliance: answers instantly, counts calls."""

    def __init__(self):
        self.calls = []
        self.done = threading.Event()

    def inspect(self, job):
        self.calls.append(job.instance_id)
        if len(self.calls) >= len(UUIDS):
            self.done.set()
        return record.OSRecord(
            instance_id=job.instance_id, status='ok', os_family='linux',
            os_distro='rhel', os_info='rhel9.4', os_version_major=9,
            os_version_minor=4, os_product_name='Red Hat Enterprise Linux',
            os_arch='x86_64', fingerprint=job.fingerprint,
            inspected_at=record.utc_timestamp())


@pytest.fixture
def agent(tmp_path, monkeypatch):
    uri = tdrv.write_node(tmp_path / 'node.xml', [
        tdrv.domain(u, 'instance-%08d' % i, vcpus=i + 1)
        for i, u in enumerate(UUIDS)])

    def build(meters, polling_overrides=None):
        conf = agent_conf(tmp_path, uri, host='compute1', meters=meters,
                          polling=polling_overrides)
        engine = RecordingEngine()
        a = Agent(conf, monkeypatch, engine=engine,
                  selected=METER in meters)
        return a.mgr, a.svc, engine

    built = []

    def factory(meters, **kw):
        b = build(meters, **kw)
        built.append(b)
        return b
    yield factory
    for _, svc, _ in built:
        svc.stop()
    _impl_test.reset()


def _selected(mgr):
    tasks = mgr.setup_polling_tasks()
    return {p.name for t in tasks.values() for ps in
            t.pollster_matches.values() for p in ps}


def test_agent_loads_the_pollster_when_polling_yaml_selects_it(agent):
    mgr, _, _ = agent([METER])
    assert METER in [e.name for e in mgr.extensions]
    assert _selected(mgr) == {METER}


def test_agent_skips_the_pollster_when_not_selected(agent):
    mgr, svc, engine = agent(['vcpus'])
    assert METER not in _selected(mgr)
    for task in mgr.setup_polling_tasks().values():
        mgr.interval_task(task)
    # nothing of ours ran: no background machinery was even built
    assert svc._scheduler is None
    assert engine.calls == []


def _published():
    samples = []
    for _ctx, message, _prio, _retry in _impl_test.NOTIFICATIONS:
        samples.extend(s for s in message['payload']['samples']
                       if s['counter_name'] == METER)
    _impl_test.reset()
    return samples


def test_real_cycle_publishes_pending_then_inspected_samples(agent):
    mgr, svc, engine = agent([METER])
    _impl_test.reset()
    tasks = mgr.setup_polling_tasks()
    for task in tasks.values():
        mgr.interval_task(task)
    first = _published()
    assert sorted(s['resource_id'] for s in first) == UUIDS
    for s in first:
        md = s['resource_metadata']
        assert md['os_inspection_status'] == 'pending'
        assert set(record.METADATA_KEYS) <= set(md)
        assert s['counter_type'] == 'gauge'
        assert s['counter_unit'] == 'vcpu'
        assert s['project_id'] == 'p-1' and s['user_id'] == 'u-1'
    by_id = {s['resource_id']: s['counter_volume'] for s in first}
    assert by_id == {u: i + 1 for i, u in enumerate(UUIDS)}

    # the background inspections finish; the next cycle carries them
    assert engine.done.wait(20)
    deadline = threading.Event()
    for _ in range(100):
        if all(svc.cache.get(u) for u in UUIDS):
            break
        deadline.wait(0.1)
    for task in tasks.values():
        mgr.interval_task(task)
    second = _published()
    assert sorted(s['resource_id'] for s in second) == UUIDS
    for s in second:
        md = s['resource_metadata']
        assert md['os_inspection_status'] == 'ok'
        assert md['os_distro'] == 'rhel' and md['os_info'] == 'rhel9.4'
        assert md['os_type'] == 'hvm'      # Ceilometer's own key untouched
    assert sorted(engine.calls) == UUIDS   # one inspection per instance


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_prometheus_exporter_label_sets_stay_consistent(agent):
    import urllib.request

    from prometheus_client import parser

    port = _free_port()
    conf_overrides = {'enable_prometheus_exporter': True,
                      'enable_notifications': False,
                      'prometheus_listen_addresses': ['127.0.0.1:%d' % port]}
    mgr, svc, engine = agent([METER], polling_overrides=conf_overrides)
    tasks = mgr.setup_polling_tasks()

    def scrape():
        for task in tasks.values():
            mgr.interval_task(task)
        body = urllib.request.urlopen(
            'http://127.0.0.1:%d/metrics' % port, timeout=10).read()
        return {f.name: f for f in
                parser.text_string_to_metric_families(body.decode())}

    first = scrape()                      # every record pending
    assert engine.done.wait(20)
    for _ in range(100):
        if all(svc.cache.get(u) for u in UUIDS):
            break
        threading.Event().wait(0.1)
    second = scrape()                     # every record inspected

    for families in (first, second):
        meter = families['ceilometer_compute_instance_os_metadata']
        label_sets = {frozenset(s.labels) for s in meter.samples}
        assert len(label_sets) == 1
        assert len(meter.samples) == len(UUIDS)
        info = families['ceilometer_compute_instance_os_info']
        assert {frozenset(s.labels) for s in info.samples} == {
            frozenset(('resource', 'project', 'user') +
                      prometheus.INFO_KEYS)}
        assert not {'os_inspected_at', 'os_inspection_reason'} & set(
            info.samples[0].labels)
        assert sorted(s.labels['resource'] for s in info.samples) == UUIDS
    statuses = {s.labels['os_inspection_status'] for s in
                second['ceilometer_compute_instance_os_info'].samples}
    assert statuses == {'ok'}
    # pending at first: each instance in the unverified series, by id;
    # once verified, none
    unverified = first[prometheus.UNVERIFIED_METRIC].samples
    assert sorted(s.labels['resource'] for s in unverified) == UUIDS
    assert {s.labels['os_inspection_status'] for s in unverified} == {
        'pending'}
    assert all(s.value >= 0 for s in unverified)
    assert second[prometheus.UNVERIFIED_METRIC].samples == []
    assert {s.value for s in
            second['ceilometer_compute_instance_os_info'].samples} == {
                1.0, 2.0, 3.0}
