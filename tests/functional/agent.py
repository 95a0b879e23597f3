"""A real Ceilometer polling agent in this process, for functional tests.

One place builds what the agent needs without RabbitMQ, Keystone or
Nova: the configuration (libvirt metadata discovery, the in-memory
``test`` notifier, a polling.yaml selecting our meter), the
AgentManager with our entry point loaded by stevedore, and a ``cycle()``
that runs one synchronous polling cycle and returns what was published.
"""

import contextlib
import types

from oslo_messaging.notify import _impl_test
from oslo_messaging import opts as messaging_opts
import pytest

from ceilometer.compute import discovery
from ceilometer.compute import pollsters as compute_pollsters
from ceilometer.polling import manager
from ceilometer import service as ceilo_service

from ceilometer_os_pollster.agent import service as service_mod

METER = 'compute.instance.os.metadata'
# [os_inspection] for tests that inspect a rig of catalog guests: two
# appliances at a time, and a deadline a loaded CI machine under TCG
# cannot reach.
RIG_INSPECTIONS = dict(concurrency=2, appliance_memory_mb=768,
                       inspection_deadline=900)


def agent_conf(tmp_path, libvirt_uri, host='compute-1', meters=(METER,),
               polling=None, **os_inspection):
    """Ceilometer's configuration for one in-process agent polling
    ``meters`` hourly; ``polling`` overrides [polling] options and
    ``os_inspection`` overrides [os_inspection] options."""
    polling_yaml = tmp_path / 'polling.yaml'
    polling_yaml.write_text(
        'sources:\n  - name: s\n    interval: 3600\n    meters:\n' +
        ''.join('      - %s\n' % m for m in meters))
    conf = ceilo_service.prepare_service([], [])
    conf.set_override('libvirt_uri', libvirt_uri)
    conf.set_override('host', host)
    conf.set_override('instance_discovery_method', 'libvirt_metadata',
                      group='compute')
    conf.set_override('cfg_file', str(polling_yaml), group='polling')
    for name, value in (polling or {}).items():
        conf.set_override(name, value, group='polling')
    conf.set_override('telemetry_driver', 'test',
                      group='publisher_notifier')
    for group, opts in messaging_opts.list_opts():
        if group is None:
            conf.register_opts(opts)
    conf.set_override('transport_url', 'fake://')
    service_mod.InspectionService(conf)         # registers our options
    os_inspection.setdefault('cache_dir', str(tmp_path / 'cache'))
    os_inspection.setdefault('libguestfs_backend_settings', ['force_tcg'])
    # The agent runs as root here and the rig's images are root's,
    # unreadable by a worker_user: root inspections allowed explicitly.
    os_inspection.setdefault('allow_root_inspection', True)
    for name, value in os_inspection.items():
        conf.set_override(name, value, group='os_inspection')
    return conf


def agent_manager(conf, svc, only, monkeypatch):
    """A real compute AgentManager whose pollster uses ``svc`` and whose
    discovery sees only the instance ids in ``only`` (a live container:
    ids added later are seen; None for every domain), since other tests'
    domains may share the libvirtd.  Patches undone by ``monkeypatch``."""
    monkeypatch.setattr(service_mod, 'get_service', lambda c: svc)
    # one shared inspector per process, as in the agent
    monkeypatch.delattr(compute_pollsters.GenericComputePollster,
                        '_inspector', raising=False)
    if only is not None:
        discover = discovery.InstanceDiscovery.discover
        monkeypatch.setattr(
            discovery.InstanceDiscovery, 'discover',
            lambda self, *a, **kw: [i for i in discover(self, *a, **kw)
                                    if i.id in only])
    mgr = manager.AgentManager(0, conf, namespaces=['compute'])
    mgr.polling_manager = manager.PollingManager(conf)
    return mgr


@contextlib.contextmanager
def agent_on_rig(rig):
    """Undo, whatever happens, what a fixture's in-process agent set up
    over ``rig``: stop the inspection service the fixture puts in
    ``.svc`` (and its workers), undo the patches made through ``.mp``,
    clear the test notifier, and remove the rig's domains, which must
    leave nothing behind."""
    held = types.SimpleNamespace(svc=None, mp=pytest.MonkeyPatch())
    try:
        yield held
    finally:
        if held.svc is not None:
            held.svc.stop()
        held.mp.undo()
        _impl_test.reset()
        problems = rig.teardown()
    assert problems == []


def run_cycle(mgr, tasks):
    """One synchronous polling cycle of ``tasks``; {resource id: sample
    dict} of our meter, each instance at most once."""
    _impl_test.reset()
    for task in tasks.values():
        mgr.interval_task(task)
    samples = {}
    for _ctx, message, _prio, _retry in _impl_test.NOTIFICATIONS:
        for s in message['payload']['samples']:
            if s['counter_name'] == METER:
                assert s['resource_id'] not in samples
                samples[s['resource_id']] = s
    _impl_test.reset()
    return samples


class Agent:
    """AgentManager + our service (``service_class``, default
    InspectionService, around ``engine``); ``only`` limits discovery to
    those instance ids (other tests' domains may share the libvirtd).
    ``selected=False`` is for a polling.yaml that does not select our
    meter."""

    def __init__(self, conf, monkeypatch, engine=None, only=None,
                 service_class=service_mod.InspectionService,
                 selected=True):
        self.svc = service_class(conf, engine=engine)
        self.mgr = agent_manager(conf, self.svc, only, monkeypatch)
        self.tasks = self.mgr.setup_polling_tasks()
        if selected:
            assert METER in self.selected(), 'the pollster was not selected'

    def selected(self):
        """Names of the pollsters the polling tasks run."""
        return {p.name for t in self.tasks.values()
                for ps in t.pollster_matches.values() for p in ps}

    def cycle(self):
        """One synchronous polling cycle; {resource id: sample dict}."""
        return run_cycle(self.mgr, self.tasks)

    def cycle_metadata(self):
        """One polling cycle; {resource id: resource metadata}."""
        return {rid: s['resource_metadata']
                for rid, s in self.cycle().items()}

    def stop(self):
        self.svc.stop()
