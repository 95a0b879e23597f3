"""Billing continuity, for real: no rated period rests on one sample.

CloudKitty rates an instance for a collect period only if Gnocchi holds
a measure of it in that period.  Shipped: the agent polls every 300 s
(etc/polling.yaml.sample), Gnocchi keeps 300 s points (ceilometer-low,
metrics.yml ``force_granularity``), CloudKitty rates hours (its default
``[collect] period``): 12 samples per rated hour.  Before, the agent
polled hourly: one sample per hour, and an agent stopped across the hour
while its poll was due left that hour unrated.

Time runs SCALE = 60 times faster here, every ratio kept: a 60 s
period, 5 s Gnocchi points (an archive policy made from ceilometer-low
with its granularity divided by SCALE), a 5 s polling interval, and a
10 s stop for the issue's 10 minutes.  The control agent polls every
60 s, the old ratio (one sample per period).

Two real compute agents in this process (Ceilometer's AgentManager with
its own periodic scheduler; our pollster over a real InspectionService
and cache; libvirt metadata discovery), each metering one running
Windows Server Datacenter domain of 12 vCPUs, start 4 "minutes" before
an "hour" (B1), are stopped 8 "minutes" before the next one (B2) and
restarted 10 "minutes" later, like an agent restart; the old agent's
second poll was due inside that stop.  What they publish goes through
Ceilometer's Gnocchi publisher as it arrives (what the notification
agent does), Gnocchi aggregates it, CloudKitty's own worker rates the
three periods with the shipped metrics.yml (its granularity scaled) and
the session's shipped hashmap rules and minimums (billing_rules).

Asserted from CloudKitty's rated data frames: every period the new
agent ran in is rated once per rating type, 12 vCPUs at the Datacenter
price, although Gnocchi holds several points in it (they are not added
up) and the stop left a gap; the old agent's instance has no rated
frame for the period across whose end it was stopped.  About three
minutes beyond the session's billing services and rules.
"""

import threading
import time

import pytest
import yaml
from oslo_messaging.notify import _impl_test

from ceilometer.compute import discovery
from ceilometer.compute import pollsters as compute_pollsters
from ceilometer.polling import manager

from ceilometer_os_pollster.agent import engine as engine_mod
from ceilometer_os_pollster.agent import service as service_mod
from tests.functional import agent as agent_mod
from tests.functional import test_billing_chain as chain_mod
from tests.guests import builder
from tests.rig import billing
from tests.rig import domains
from tests.rig import libvirtd
from tests.rig import rig as rig_mod

pytestmark = [pytest.mark.libvirt, pytest.mark.appliance]

METER = agent_mod.METER
SCALE = 60
SHIPPED_PERIOD = 3600           # CloudKitty's [collect] period default
OLD_INTERVAL = 3600             # the polling interval shipped before
PERIOD = SHIPPED_PERIOD // SCALE
# In scaled seconds: the agents start LEAD before B1, stop STOP_BEFORE
# before B2 and stay stopped OUTAGE (the 10 minutes).  The old
# agent's second poll is due at B2 - LEAD: 4 s of slack for a late start
# (its first poll must fall before B1) and for a late stop.
LEAD = 4
STOP_BEFORE = 8
OUTAGE = 600 // SCALE
ARCHIVE_POLICY = 'ceilometer-low-x%d' % SCALE
PROJECT = domains.stable_uuid('project', 'tenant-c').replace('-', '')
GUEST, VCPUS = 'win2019-datacenter', 12
PRICED_LIKE = 'datacenter-12'   # test_billing_chain's instance, same OS


def shipped_interval():
    """The polling interval of etc/polling.yaml.sample, in seconds."""
    data = yaml.safe_load((billing.ETC / 'polling.yaml.sample').read_text())
    (source,) = [s for s in data['sources'] if METER in s['meters']]
    return source['interval']


def shipped_metrics():
    return yaml.safe_load(chain_mod.configs.METRICS_YML.read_text())


def shipped_granularity():
    """metrics.yml's force_granularity (one value for every type)."""
    (value,) = {t['extra_args']['force_granularity']
                for t in shipped_metrics()['metrics'][METER]}
    return value


def scaled(shipped):
    """Shipped seconds in this test's time (SCALE times faster)."""
    assert shipped % SCALE == 0, (shipped, SCALE)
    return int(shipped // SCALE)


class ScheduledAgent:
    """One compute agent as ceilometer-polling runs it: AgentManager's
    own periodic polling (a poll at start, then one per interval), our
    pollster over an InspectionService of its own on its cache.  A
    process start is load() then start(); stop() then load() and
    start() is an agent restart: a new service, reading the cache the
    old one left on disk."""

    def __init__(self, tmp, name, interval, instance_id):
        self.name, self.instance_id = name, instance_id
        tmp.mkdir()
        self.conf = agent_mod.agent_conf(tmp, libvirtd.URI, host=name,
                                         **agent_mod.RIG_INSPECTIONS)
        (tmp / 'polling.yaml').write_text(
            'sources:\n  - name: os_inspection\n    interval: %d\n'
            '    meters:\n      - %s\n' % (interval, METER))
        self.svc = self.mgr = None
        self.runs = []          # [started, stopped] epoch seconds

    def load(self):
        """What a starting agent does before its first poll (stevedore
        loads every compute pollster: not instant on a busy host)."""
        self.svc = service_mod.InspectionService(
            self.conf, engine=engine_mod.Engine(self.conf))
        self.mgr = manager.AgentManager(0, self.conf,
                                        namespaces=['compute'])
        self.mgr.polling_manager = manager.PollingManager(self.conf)

    def inspect(self, timeout=900):
        """One unscheduled, unpublished poll, then until its instance
        is cached: the timed run publishes the record, not 'pending'."""
        self.load()
        agent_mod.run_cycle(self.mgr, self.mgr.setup_polling_tasks())
        deadline = time.monotonic() + timeout
        while not self.svc.cache.get(self.instance_id):
            assert time.monotonic() < deadline, self.svc.scheduler.stats()
            time.sleep(1)
        self.release()

    def start(self):
        self.runs.append([time.time(), None])
        self.mgr.start_polling_tasks()

    def stop(self):
        """No poll from now on."""
        if self.mgr is not None and self.mgr.polling_periodics:
            self.mgr.stop_pollsters_tasks()
            self.runs[-1][1] = time.time()

    def release(self):
        self.stop()
        if self.svc is not None:
            self.svc.stop()
        self.svc = self.mgr = None


class Bridge(threading.Thread):
    """The notification agent's part: every notification the agents
    send (oslo.messaging's in-memory test driver) is published to
    Gnocchi by Ceilometer's publisher as it arrives."""

    def __init__(self, publisher):
        super().__init__(daemon=True)
        self.publisher = publisher
        self.published = []        # sample dicts, in order
        self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            while True:
                last = self.done.is_set()
                self.drain()
                if last:
                    return
                self.done.wait(0.2)
        except Exception as exc:    # reported by the fixture
            self.error = exc

    def drain(self):
        batch = []
        while _impl_test.NOTIFICATIONS:
            _ctx, message, _prio, _retry = _impl_test.NOTIFICATIONS.pop(0)
            batch.extend(s for s in message['payload']['samples']
                         if s['counter_name'] == METER)
        if batch:
            self.publisher.publish_samples(
                [chain_mod._as_sample(s) for s in batch])
            self.published.extend(batch)

    def finish(self):
        self.done.set()
        self.join(60)
        assert self.error is None, self.error


def sleep_until(when):
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)


def scaled_archive_policy(services, tmp):
    """Ceilometer's default archive policy (ceilometer-low, which the
    metric gets from Ceilometer's resources file) with its granularity
    divided by SCALE, created in Gnocchi; its granularities."""
    _, resources = chain_mod.configs.merged_resources(tmp)
    (low,) = [p for p in resources['archive_policies']
              if p['name'] == resources['archive_policy_default']]
    granularities = [scaled(chain_mod.configs._seconds(d['granularity']))
                     for d in low['definition']]
    services.gnocchi('/v1/archive_policy', {
        'name': ARCHIVE_POLICY, 'back_window': low['back_window'],
        'aggregation_methods': low['aggregation_methods'],
        # a day of points is plenty for a few minutes of test
        'definition': [{'granularity': g, 'timespan': 86400}
                       for g in granularities]})
    return granularities


def scaled_cloudkitty_conf(services, tmp):
    metrics = shipped_metrics()
    for rating_type in metrics['metrics'][METER]:
        extra = rating_type['extra_args']
        extra['force_granularity'] = scaled(extra['force_granularity'])
    path = tmp / 'metrics.yml'
    path.write_text(yaml.safe_dump(metrics))
    return services.cloudkitty_conf(period=PERIOD, metrics_conf=path,
                                    name='cloudkitty-x%d.conf' % SCALE)


@pytest.fixture(scope='module')
def continuity(billing_services, billing_rules, libvirt_daemons,
               tmp_path_factory):
    services = billing_services
    tmp = tmp_path_factory.mktemp('billing-continuity')
    interval = scaled(shipped_interval())
    granularity = scaled(shipped_granularity())
    assert granularity in scaled_archive_policy(services, tmp)
    ck_conf = scaled_cloudkitty_conf(services, tmp)
    mp = pytest.MonkeyPatch()
    by_conf = {}                # id(conf) -> agent
    with rig_mod.Rig(tmp / 'rig') as the_rig:
        try:
            for name, every in (('new', interval),
                                ('old', scaled(OLD_INTERVAL))):
                dom = the_rig.add('%s-ratio' % name, builder.build(GUEST),
                                  layout=rig_mod.QCOW2, vcpus=VCPUS,
                                  project_id=PROJECT)
                agent = ScheduledAgent(tmp / name, name, every, dom.uuid)
                by_conf[id(agent.conf)] = agent
            the_rig.start_all()
            mp.setattr(service_mod, 'get_service',
                       lambda conf: by_conf[id(conf)].svc)
            mp.delattr(compute_pollsters.GenericComputePollster,
                       '_inspector', raising=False)
            discover = discovery.InstanceDiscovery.discover
            mp.setattr(discovery.InstanceDiscovery, 'discover',
                       lambda self, *a, **kw: [
                           i for i in discover(self, *a, **kw)
                           if i.id == by_conf[id(self.conf)].instance_id])
            new, old = by_conf.values()
            for agent in (new, old):
                agent.inspect()
            bridge = Bridge(chain_mod._publisher(
                services, tmp, archive_policy=ARCHIVE_POLICY))
            _impl_test.reset()
            bridge.start()
            now = int(time.time())
            b1 = now - now % PERIOD + PERIOD
            if b1 - now < LEAD + 1:
                b1 += PERIOD
            b0, b2, b3 = b1 - PERIOD, b1 + PERIOD, b1 + 2 * PERIOD
            agents = (old, new)     # the control first: its timing
            try:
                for agent in agents:
                    agent.load()
                sleep_until(b1 - LEAD)
                for agent in agents:
                    agent.start()
                sleep_until(b2 - STOP_BEFORE)
                for agent in agents:
                    agent.stop()
                stopped = time.time()
                for agent in agents:        # the restart
                    agent.release()
                    agent.load()
                sleep_until(stopped + OUTAGE)
                for agent in agents:
                    agent.start()
                sleep_until(b3 - 1)
            finally:
                for agent in agents:
                    agent.stop()
                for agent in agents:
                    agent.release()
                bridge.finish()
            points = services.process_measures(
                [new.instance_id, old.instance_id], METER)
            sleep_until(b3 + 1)
            for begin in (b0, b1, b2):
                services.rate(begin, conf=ck_conf, projects=[PROJECT])
            rows = services.dataframes(b0, b3, projects=[PROJECT])
            yield dict(new=new, old=old, rows=rows, points=points,
                       published=bridge.published,
                       periods=(b0, b1, b2), stop=b2)
        finally:
            mp.undo()
            _impl_test.reset()
            problems = the_rig.teardown()
    assert problems == []


def published_per_period(run, agent):
    """{period start: samples the agent published in it}."""
    counts = dict.fromkeys(run['periods'], 0)
    for sample in run['published']:
        when = billing.epoch(sample['timestamp'])
        if sample['resource_id'] == agent.instance_id and \
                when - when % PERIOD in counts:
            counts[when - when % PERIOD] += 1
    return counts


def rated_per_period(run, agent):
    """{period start: {rating type: (qty, price)}} from CloudKitty."""
    out = {}
    for row in run['rows']:
        if row['desc']['id'] != agent.instance_id:
            continue
        types = out.setdefault(row['begin'], {})
        assert row['service'] not in types, ('rated twice', row)
        types[row['service']] = (row['qty'], chain_mod.money(row['price']))
    return out


def one_period_of_the_instance():
    """What a period of a 12-vCPU Datacenter instance is rated."""
    price = chain_mod.expected_prices()[PRICED_LIKE]['os_license_vcpu']
    return {'os_license_vcpu': (VCPUS, chain_mod.money(price)),
            'sql_license_vcpu': (VCPUS, chain_mod.money(0)),
            'os_license_vm': (1, chain_mod.money(0))}


def test_the_test_keeps_the_shipped_ratios():
    # several samples per rated period, one per Gnocchi point
    assert shipped_interval() == shipped_granularity()
    assert SHIPPED_PERIOD // shipped_interval() == 12
    assert scaled(shipped_interval()) == 5 and PERIOD == 60
    # the stop crosses B2 and holds the old agent's second poll, due
    # at B2 - LEAD: B2 - STOP_BEFORE < B2 - LEAD < B2 < B2 - STOP_BEFORE
    # + OUTAGE
    assert LEAD < STOP_BEFORE < OUTAGE
    assert OUTAGE == scaled(600)


def test_both_agents_published_the_inspected_record(continuity):
    for sample in continuity['published']:
        md = sample['resource_metadata']
        assert md['os_inspection_status'] == 'ok', md
        assert md['os_edition'] == 'Datacenter'
        assert sample['counter_volume'] == VCPUS


def test_nothing_was_polled_while_the_agents_were_stopped(continuity):
    for agent in (continuity['new'], continuity['old']):
        (_, stopped), (restarted, _) = agent.runs
        assert stopped < continuity['stop'] < restarted
        assert restarted - stopped >= OUTAGE
        for sample in continuity['published']:
            when = billing.epoch(sample['timestamp'])
            if sample['resource_id'] == agent.instance_id:
                assert not stopped < when < restarted, sample


def test_new_ratio_gives_every_period_samples(continuity):
    b0, b1, b2 = continuity['periods']
    counts = published_per_period(continuity, continuity['new'])
    assert counts[b0] >= 1
    # every period but the one it started in has many, the gap included
    assert counts[b1] >= 6 and counts[b2] >= 6, counts


def test_gnocchi_holds_several_points_in_a_rated_period(continuity):
    new = continuity['new']
    b0, b1, b2 = continuity['periods']
    points = [p for p in continuity['points'][new.instance_id]
              if b1 <= billing.epoch(p[0]) < b2]
    assert len(points) >= 6, points
    assert {p[2] for p in points} == {VCPUS}


def test_rated_periods_have_gaps(continuity):
    # What CloudKitty rates is not the period's first point slot: P0
    # holds points only from the agent's start (LEAD before B1), P1 none
    # after the stop (STOP_BEFORE before B2).
    b0, b1, b2 = continuity['periods']
    got = {billing.epoch(p[0]) for p in
           continuity['points'][continuity['new'].instance_id]}
    granularity = scaled(shipped_granularity())
    assert not {t for t in got if b0 <= t < b1 - LEAD - granularity}
    assert {t for t in got if b0 <= t < b1}
    assert not {t for t in got if b2 - STOP_BEFORE < t < b2}


def test_every_period_of_the_new_ratio_is_rated_once(continuity):
    rated = rated_per_period(continuity, continuity['new'])
    one = one_period_of_the_instance()
    # not 12 times the vCPUs: one period, however many samples
    assert rated == {b: one for b in continuity['periods']}, \
        continuity['rows']


def test_control_old_ratio_loses_the_period_of_the_stop(continuity):
    b0, b1, b2 = continuity['periods']
    old = continuity['old']
    # one sample per period, and the one due before B2 never taken
    assert published_per_period(continuity, old) == {b0: 1, b1: 0, b2: 1}
    rated = rated_per_period(continuity, old)
    one = one_period_of_the_instance()
    assert rated == {b0: one, b2: one}, continuity['rows']
