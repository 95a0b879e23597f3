"""Privilege-separated mode end to end, in a real Ceilometer AgentManager.

The shipped etc/pollsters.d definition is loaded from
``[DEFAULT] pollsters_definitions_dirs`` by Ceilometer's own code; its
host_command is the shipped one with only ``sudo -n /usr/local/bin/...``
replaced by this interpreter running the CLI module, and the config file
pointing at libvirt's daemon-less ``test:///`` driver and a prepared
record cache.  The samples Ceilometer publishes (oslo.messaging ``test``
notifier) are compared with those of the native pollster run over the
same domains and cache.
"""

import logging
import pathlib
import re
import shlex
import sys
import time

import pytest
import yaml
from oslo_messaging.notify import _impl_test

from ceilometer.polling import manager

from ceilometer_os_pollster.agent import cache as cache_mod
from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster.instances import domain_xml
from ceilometer_os_pollster.agent import pollster as pollster_mod
from ceilometer_os_pollster import record
from ceilometer_os_pollster.agent import service as service_mod
from ceilometer_os_pollster.instances import identity
from tests.fixtures import libvirt_test_driver as tdrv
from tests.functional import agent

METER = 'compute.instance.os.metadata'
UUIDS = ['dddddddd-0000-4000-8000-00000000000%d' % i for i in (1, 2, 3)]
SHIPPED_PREFIX = ['sudo', '-n', '/usr/local/bin/ceilometer-os-pollster']
DYNAMIC_YAML = (pathlib.Path(__file__).resolve().parents[2] / 'etc' /
                'pollsters.d' / 'ceilometer_os_pollster.yaml')


def records_for(jobs):
    """Inspected records for the first two instances; none for the third
    (it is pending)."""
    windows = record.OSRecord(
        instance_id=jobs[0].instance_id, status='ok', os_family='windows',
        os_distro='windows', os_info='win2k22', os_version_major=10,
        os_build='20348', os_product_name='Windows Server 2022 Datacenter',
        os_product_variant='Server', os_edition='Datacenter',
        os_arch='x86_64', sql_server_edition='Standard',
        inspected_at='2025-01-02T03:04:05Z', fingerprint=jobs[0].fingerprint)
    rhel = record.OSRecord(
        instance_id=jobs[1].instance_id, status='ok', os_family='linux',
        os_distro='rhel', os_info='rhel9.4', os_version_major=9,
        os_version_minor=4, os_product_name='Red Hat Enterprise Linux 9.4',
        os_arch='x86_64', inspected_at='2025-01-02T03:04:06Z',
        fingerprint=jobs[1].fingerprint)
    return [windows, rhel]


def jobs_as_the_cli_makes_them(uri):
    import libvirt
    connection = libvirt.openReadOnly(uri)
    boot_id = service_mod.host_boot_id()
    jobs = []
    for uuid in UUIDS:
        domain = connection.lookupByUUIDString(uuid)
        xml = domain.XMLDesc(0)
        info = domain_xml.instance_info(xml)
        jobs.append(identity.make_job(uuid, info.name, xml, domain.ID(),
                                      info.image_id, boot_id))
    return jobs


@pytest.fixture
def host(tmp_path):
    uri = tdrv.write_node(tmp_path / 'node.xml', [
        tdrv.domain(u, 'instance-%08d' % i, vcpus=i * 2, user='u-%d' % i)
        for i, u in enumerate(UUIDS, 1)])
    cache_dir = tmp_path / 'cache'
    jobs = jobs_as_the_cli_makes_them(uri)
    cache = cache_mod.RecordCache(str(cache_dir))
    now = time.time()
    recs = records_for(jobs)
    for rec in recs:
        cache.put(cache_format.Entry(record=rec, expires_at=now + 3600,
                                     last_seen=now))
    # A damaged record: the CLI's cache logs a warning about it, which
    # must not reach the output Ceilometer parses.
    cache_dir.joinpath(UUIDS[2] + '.json').write_text('{damaged')
    cli_conf = tmp_path / 'cli.conf'
    cli_conf.write_text('[DEFAULT]\nlibvirt_uri = %s\n[os_inspection]\n'
                        'cache_dir = %s\n' % (uri, cache_dir))

    class Host:
        pass
    h = Host()
    h.uri, h.cache_dir, h.cli_conf, h.tmp = uri, cache_dir, cli_conf, \
        tmp_path
    h.records = {r.instance_id: r for r in recs}
    yield h
    _impl_test.reset()


def local_host_command(shipped, cli_conf):
    """The shipped command, run by this interpreter without sudo."""
    argv = shlex.split(shipped)
    assert argv[:3] == SHIPPED_PREFIX
    rest = argv[3:]
    rest[rest.index('--config-file') + 1] = str(cli_conf)
    return ' '.join(shlex.quote(a) for a in
                    [sys.executable, '-m',
                     'ceilometer_os_pollster.commands.cli']
                    + rest)


def agent_conf(tmp_path, uri, definitions_dir=None):
    """The shared agent configuration, reading dynamic pollster
    definitions from ``definitions_dir`` if given."""
    conf = agent.agent_conf(tmp_path, uri, host='compute1')
    if definitions_dir is not None:
        conf.set_override('pollsters_definitions_dirs',
                          [str(definitions_dir)])
    return conf


def install_definitions(h, cli_conf=None):
    definitions = yaml.safe_load(DYNAMIC_YAML.read_text())
    for definition in definitions:
        definition['host_command'] = local_host_command(
            definition['host_command'], cli_conf or h.cli_conf)
    directory = h.tmp / 'pollsters.d'
    directory.mkdir(exist_ok=True)
    directory.joinpath('ceilometer_os_pollster.yaml').write_text(
        yaml.safe_dump(definitions))
    return directory


@pytest.fixture
def without_native(monkeypatch):
    """The package as installed outside the agent's environment: the
    stevedore entry point of the native pollster is not there."""
    original = manager.AgentManager._extensions

    def extensions(self, category, agent_ns=None, *args, **kwargs):
        mgr = original(self, category, agent_ns, *args, **kwargs)
        if category == 'poll':
            mgr.extensions = [e for e in mgr.extensions if e.name != METER]
        return mgr
    monkeypatch.setattr(manager.AgentManager, '_extensions', extensions)


def run_cycle(mgr):
    _impl_test.reset()
    for task in mgr.setup_polling_tasks().values():
        mgr.interval_task(task)
    samples = []
    for _ctx, message, _prio, _retry in _impl_test.NOTIFICATIONS:
        samples.extend(s for s in message['payload']['samples']
                       if s['counter_name'] == METER)
    _impl_test.reset()
    return {s['resource_id']: s for s in samples}


def dynamic_samples(h):
    conf = agent_conf(h.tmp, h.uri, install_definitions(h))
    mgr = manager.AgentManager(0, conf, namespaces=['compute'])
    mgr.polling_manager = manager.PollingManager(conf)
    names = [e.name for e in mgr.extensions]
    assert names.count(METER) == 1
    return run_cycle(mgr)


def test_installed_next_to_the_agent_the_native_one_refuses_to_load(
        host, monkeypatch):
    # Both would load under one name and meter every instance twice: the
    # native pollster steps aside with one ERROR naming the file.
    directory = install_definitions(host)
    conf = agent_conf(host.tmp, host.uri, directory)
    errors = []
    # The agent's logging setup stops propagation to pytest's handler.
    monkeypatch.setattr(pollster_mod.LOG, 'error',
                        lambda msg, args: errors.append(msg % args))
    mgr = manager.AgentManager(0, conf, namespaces=['compute'])
    mgr.polling_manager = manager.PollingManager(conf)
    assert [e.name for e in mgr.extensions].count(METER) == 1
    assert len(errors) == 1
    assert str(directory / 'ceilometer_os_pollster.yaml') in errors[0]
    assert 'metered twice' in errors[0]
    samples = run_cycle(mgr)
    assert sorted(samples) == UUIDS       # once each, by the dynamic one


def test_dynamic_pollster_publishes_the_cached_records(host, without_native):
    samples = dynamic_samples(host)
    assert sorted(samples) == UUIDS
    for i, uuid in enumerate(UUIDS, 1):
        s = samples[uuid]
        assert (s['counter_type'], s['counter_unit']) == ('gauge', 'vcpu')
        assert s['counter_volume'] == i * 2
        assert (s['project_id'], s['user_id']) == ('p-1', 'u-%d' % i)
        assert set(s['resource_metadata']) == set(record.METADATA_KEYS)
    for uuid, rec in host.records.items():
        assert samples[uuid]['resource_metadata'] == rec.metadata()
    pending = samples[UUIDS[2]]['resource_metadata']
    assert pending['os_inspection_status'] == 'pending'


class UnusedEngine:
    def __init__(self):
        self.calls = []

    def inspect(self, job):
        self.calls.append(job.instance_id)
        return record.OSRecord.failed(job.instance_id, 'not in this test',
                                      fingerprint=job.fingerprint)


def test_same_samples_as_the_native_pollster(host, without_native,
                                             monkeypatch):
    dynamic = dynamic_samples(host)
    monkeypatch.undo()           # the native entry point is back

    native_agent = agent.Agent(
        agent.agent_conf(host.tmp, host.uri, host='compute1',
                         cache_dir=str(host.cache_dir)),
        monkeypatch, engine=UnusedEngine())
    try:
        native = native_agent.cycle()
    finally:
        native_agent.stop()
    assert sorted(native) == sorted(dynamic) == UUIDS
    for uuid in UUIDS:
        n, d = native[uuid], dynamic[uuid]
        for key in ('counter_name', 'counter_type', 'counter_unit',
                    'counter_volume', 'project_id', 'user_id'):
            assert n[key] == d[key], key
        os_keys = {k: n['resource_metadata'][k]
                   for k in record.METADATA_KEYS}
        assert os_keys == d['resource_metadata']


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, rec):
        self.messages.append(rec.getMessage())


def test_cli_failure_reaches_the_agent_log(host, without_native):
    broken = host.tmp / 'broken.conf'
    broken.write_text('[DEFAULT]\nlibvirt_uri = test://%s/missing.xml\n'
                      % host.tmp)
    conf = agent_conf(host.tmp, host.uri,
                      install_definitions(host, cli_conf=broken))
    mgr = manager.AgentManager(0, conf, namespaces=['compute'])
    mgr.polling_manager = manager.PollingManager(conf)
    collect = Collect()
    logger = logging.getLogger('ceilometer.polling.manager')
    logger.addHandler(collect)
    try:
        samples = run_cycle(mgr)
    finally:
        logger.removeHandler(collect)
    assert samples == {}
    (message,) = [m for m in collect.messages if METER in m]
    # Ceilometer quotes the command's whole output: our one line, without
    # the warning libxml2 printed on fd 2 for the missing node file.
    response = re.search(r'handle the response \[(.*?)\], used handlers',
                         message, re.S).group(1)
    assert response.startswith('ceilometer-os-pollster: error: cannot '
                               'connect to libvirt at test://')
    assert '\n' not in response


@pytest.mark.appliance
def test_timer_then_dynamic_pollster_with_a_real_appliance(tmp_path,
                                                           without_native):
    """The whole privilege-separated flow on a phony Windows Server 2019
    + SQL Server guest: the timer's command inspects it (one appliance
    launch), then Ceilometer's dynamic pollster publishes the result."""
    import subprocess

    from tests.guests import builder
    from tests.guests import catalog

    name = 'win2019-sql'
    image = builder.build(name)
    uuid = 'eeeeeeee-0000-4000-8000-000000000001'
    xml = tdrv.node_xml([tdrv.domain(uuid, 'instance-00000001', vcpus=4,
                                     disk=str(image))])
    node = tmp_path / 'node.xml'
    node.write_text(xml.replace("type='qcow2'", "type='raw'"))
    cli_conf = tmp_path / 'cli.conf'
    # The timer's command runs as root on a root-owned image, which a
    # worker_user could not read: root inspections allowed explicitly.
    cli_conf.write_text(
        '[DEFAULT]\nlibvirt_uri = test://%s\n[os_inspection]\n'
        'cache_dir = %s\nlibguestfs_backend_settings = force_tcg\n'
        'allow_root_inspection = true\n'
        % (node, tmp_path / 'cache'))

    timer = subprocess.run(
        [sys.executable, '-m', 'ceilometer_os_pollster.commands.cli',
         '--config-file', str(cli_conf), 'inspect', '--all',
         '--stale-only'], capture_output=True, text=True, timeout=600)
    assert timer.returncode == 0, timer.stderr
    assert re.search(r'^\[1/1\] instance-00000001 \.\.\. ok \(\d+ s\)$',
                     timer.stderr, re.M), timer.stderr

    class Host:
        pass
    h = Host()
    h.tmp, h.uri, h.cli_conf = tmp_path, 'test://%s' % node, cli_conf
    samples = dynamic_samples(h)
    sample = samples[uuid]
    assert sample['counter_volume'] == 4
    metadata = sample['resource_metadata']
    assert catalog.mismatches(catalog.GUESTS[name].expected, metadata) == []
    assert (metadata['os_edition'], metadata['sql_server_edition']) == \
        ('Standard', 'Enterprise')
