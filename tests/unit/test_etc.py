"""The operator files under etc/, each exercised by the code that reads it.

- etc/pollsters.d: loaded by Ceilometer's dynamic pollster code; the
  command it runs is one our CLI accepts and the sudoers rule allows.
- etc/sudoers.d: checked by visudo.
- etc/systemd: checked by systemd-analyze; the timer's command is one
  our CLI accepts, with the sudoers rule's config file.
- etc/gnocchi: the resources snippet merged into Ceilometer's shipped
  gnocchi_resources.yaml and driven through the Gnocchi publisher (fake
  Gnocchi client); the resource-type script run against a fake
  ``openstack`` command, its attribute specs parsed by gnocchiclient.
- etc/cloudkitty: metrics.yml against the Gnocchi side; the hashmap
  example run against a fake ``openstack`` command, its values checked
  against what the billing policy (windows_editions.py, sqlserver.py,
  linux.py) actually
  produces.
"""

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
from unittest import mock

import pytest
import yaml

import ceilometer
from ceilometer.compute import discovery
from ceilometer.compute.pollsters import util
from ceilometer import declarative
from ceilometer.polling import dynamic_pollster
from ceilometer.publisher import gnocchi as gnocchi_publisher
from ceilometer import service as ceilo_service
from gnocchiclient.v1 import resource_type_cli

from ceilometer_os_pollster.commands import cli
from ceilometer_os_pollster.commands import render
from ceilometer_os_pollster.instances import domain_xml
from ceilometer_os_pollster.families import linux
from ceilometer_os_pollster import record
from ceilometer_os_pollster.families import sqlserver
from ceilometer_os_pollster.families import windows_editions
from tests.helpers import ok_record

ETC = pathlib.Path(__file__).resolve().parents[2] / 'etc'
METER = 'compute.instance.os.metadata'
DYNAMIC_YAML = ETC / 'pollsters.d' / 'ceilometer_os_pollster.yaml'
SUDOERS = ETC / 'sudoers.d' / 'ceilometer-os-pollster'
SYSTEMD_UNITS = [ETC / 'systemd' / ('ceilometer-os-inspection.%s' % kind)
                 for kind in ('service', 'timer')]
GNOCCHI_SNIPPET = ETC / 'gnocchi' / 'gnocchi_resources.yaml'
GNOCCHI_SCRIPT = ETC / 'gnocchi' / 'resource-type-update.sh'
METRICS_YML = ETC / 'cloudkitty' / 'metrics.yml'
HASHMAP_SCRIPT = ETC / 'cloudkitty' / 'hashmap-example.sh'
SHIPPED_GNOCCHI = (pathlib.Path(ceilometer.__file__).parent / 'publisher' /
                   'data' / 'gnocchi_resources.yaml')
# Keys that never become Gnocchi attributes (see the snippet's comments).
NOT_IN_GNOCCHI = {'os_inspected_at'}
UUID = 'aaaaaaaa-0000-4000-8000-000000000001'


@pytest.fixture(scope='module')
def conf():
    return ceilo_service.prepare_service([], [])


def windows_record(**kw):
    fields = dict(os_product_variant='Server', sql_server_edition='Enterprise',
                  inspected_at='2025-01-02T03:04:05Z', duration=0.0)
    fields.update(kw)
    return ok_record(UUID, '', **fields)


def cli_json(records_by_info):
    return json.dumps([render.json_item(info, rec)
                       for info, rec in records_by_info])


# -- the dynamic pollster ------------------------------------------------

def load_dynamic(conf, path=DYNAMIC_YAML):
    definitions = declarative.load_definitions(conf, {}, str(path))
    assert len(definitions) == 1
    return definitions[0], dynamic_pollster.DynamicPollster(
        dict(definitions[0]), conf)


def host_command_argv(definition):
    return shlex.split(definition['host_command'])


def test_dynamic_definition_is_a_host_command_pollster(conf):
    definition, pollster = load_dynamic(conf)
    assert isinstance(pollster.definitions,
                      dynamic_pollster.HostCommandPollsterDefinition)
    assert pollster.name == METER
    assert 'compute' in definition['namespaces']
    assert pollster.default_discovery == 'local_node'
    config = pollster.pollster_definitions
    assert (config['sample_type'], config['unit']) == ('gauge', 'vcpu')
    assert config['value_attribute'] == 'vcpus'
    assert (config['resource_id_attribute'], config['project_id_attribute'],
            config['user_id_attribute']) == render.JSON_ID_KEYS[:3]
    # the same metadata keys, in the same order, as the native pollster
    assert config['metadata_fields'] == list(record.METADATA_KEYS)
    assert config['skip_sample_values'] == []


def test_host_command_is_the_fast_cached_only_cli_call(conf):
    definition, pollster = load_dynamic(conf)
    argv = host_command_argv(definition)
    assert argv[:3] == ['sudo', '-n', '/usr/local/bin/ceilometer-os-pollster']
    args = cli.build_parser().parse_args(argv[3:])
    assert (args.handler, args.all, args.json, args.cached_only) == \
        ('inspect', True, True, True)
    assert args.config_file == ['/etc/ceilometer/ceilometer.conf']
    # Ceilometer evals the string first; it must come out unchanged
    gatherer = pollster.definitions.sample_gatherer
    assert gatherer.get_command(pollster.pollster_definitions) == \
        definition['host_command']


def test_dynamic_samples_from_cli_json(conf):
    _, pollster = load_dynamic(conf)
    info = domain_xml.DomainInfo(uuid=UUID, name='instance-1', nova=True,
                                 project_id='p-1', user_id='u-1', vcpus=4)
    pending = domain_xml.DomainInfo(
        uuid=UUID[:-1] + '2', name='instance-2', nova=True,
        project_id='p-1', user_id='u-2', vcpus=1)
    rec = windows_record()
    output = cli_json([(info, rec),
                       (pending, record.OSRecord.pending(pending.uuid))])
    with mock.patch.object(dynamic_pollster.subprocess, 'getoutput',
                           return_value=output) as run:
        samples = list(pollster.get_samples(mock.Mock(_keystone=None), {},
                                            ['compute1']))
    run.assert_called_once()
    assert [s.resource_id for s in samples] == [UUID, pending.uuid]
    first = samples[0]
    assert (first.name, first.type, first.unit, first.volume) == \
        (METER, 'gauge', 'vcpu', 4)
    assert (first.project_id, first.user_id) == ('p-1', 'u-1')
    assert first.resource_metadata == rec.metadata()
    assert samples[1].resource_metadata['os_inspection_status'] == 'pending'


# -- sudoers -------------------------------------------------------------

def sudoers_rules():
    rules = []
    for line in SUDOERS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(('#', 'Defaults')):
            rules.append(line)
    return rules


def test_sudoers_sample_is_valid():
    result = subprocess.run(['visudo', '-c', '-f', str(SUDOERS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sudoers_allows_exactly_the_host_command(conf):
    definition, _ = load_dynamic(conf)
    rules = sudoers_rules()
    assert len(rules) == 1
    match = re.fullmatch(r'(\S+)\s+ALL\s*=\s*\(root\)\s+NOPASSWD:\s*(.+)',
                         rules[0])
    assert match, rules[0]
    assert match.group(1) == 'ceilometer'
    assert shlex.split(match.group(2)) == host_command_argv(definition)[2:]


# -- systemd -------------------------------------------------------------

def exec_start():
    text = SYSTEMD_UNITS[0].read_text().replace('\\\n', ' ')
    (line,) = [line for line in text.splitlines()
               if line.startswith('ExecStart=')]
    return shlex.split(line[len('ExecStart='):])


def test_systemd_units_are_valid(tmp_path):
    command = os.path.join(os.path.dirname(sys.executable),
                           'ceilometer-os-pollster')
    if not shutil.which('systemd-analyze') or not os.path.exists(command):
        pytest.skip('needs systemd-analyze and the installed command')
    # verify checks that ExecStart's command exists: this venv's.
    units = []
    for unit in SYSTEMD_UNITS:
        units.append(tmp_path / unit.name)
        units[-1].write_text(unit.read_text().replace(
            '/usr/local/bin/ceilometer-os-pollster', command))
    result = subprocess.run(['systemd-analyze', 'verify'] + units,
                            capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, ''), result.stdout


def test_systemd_timer_runs_the_stale_only_inspection_with_worker_user():
    argv = exec_start()
    # The sudoers rule's command and config file: one configuration.
    assert argv[0] == sudoers_rules()[0].split('NOPASSWD:')[1].split()[0]
    args = cli.build_parser().parse_args(argv[1:])
    assert (args.handler, args.all, args.stale_only, args.cached_only) == \
        ('inspect', True, True, False)
    assert args.config_file == ['/etc/ceilometer/ceilometer.conf']
    # Root's inspections need a worker_user there (or are refused).
    for path in (SYSTEMD_UNITS[0], SUDOERS):
        assert '#   worker_user = os-inspector\n' in path.read_text()


# -- Gnocchi -------------------------------------------------------------

def load_snippet():
    doc = yaml.safe_load(GNOCCHI_SNIPPET.read_text())
    (entry,) = doc['resources']
    assert entry['resource_type'] == 'instance'
    return entry


def merged_resources(tmp_path):
    """Ceilometer's shipped file with the snippet merged as the operator
    guide says: into the existing instance entry."""
    shipped = yaml.safe_load(SHIPPED_GNOCCHI.read_text())
    snippet = load_snippet()
    (instance,) = [r for r in shipped['resources']
                   if r['resource_type'] == 'instance']
    overlap = set(instance['attributes']) & set(snippet['attributes'])
    assert not overlap, overlap
    instance['metrics'].update(snippet['metrics'])
    instance['attributes'].update(snippet['attributes'])
    path = tmp_path / 'gnocchi_resources.yaml'
    path.write_text(yaml.safe_dump(shipped))
    return path, shipped


def test_snippet_maps_every_metadata_key_but_the_volatile_one():
    attributes = load_snippet()['attributes']
    assert list(attributes) == [k for k in record.METADATA_KEYS
                                if k not in NOT_IN_GNOCCHI]
    for name, path in attributes.items():
        assert path == 'resource_metadata.%s' % name
        assert len(name) <= 63
    assert 'os_type' not in attributes


@pytest.fixture
def publisher(conf, tmp_path):
    path, shipped = merged_resources(tmp_path)
    url = urllib.parse.urlparse(
        'gnocchi://?enable_filter_project=false&resources_definition_file='
        + str(path))
    client = mock.MagicMock()
    with mock.patch.object(gnocchi_publisher.keystone_client, 'get_client'), \
            mock.patch.object(gnocchi_publisher.GnocchiPublisher,
                              '_get_gnocchi_client', return_value=client):
        pub = gnocchi_publisher.GnocchiPublisher(conf, url)
    pub.fake_client = client
    pub.shipped = shipped
    return pub


def native_like_sample(conf, rec):
    """A sample built the way the native pollster builds it."""
    server = discovery.NovaLikeServer(
        id=UUID, name='web-1', tenant_id='p-1', user_id='u-1',
        flavor={'id': '4', 'name': 'm1.large', 'vcpus': 4, 'ram': 8192,
                'disk': 40, 'ephemeral': 0, 'swap': 0},
        image={'id': 'img-1'}, os_type='hvm', architecture='x86_64',
        status='active', hostId='h-1', metadata={},
        **{'OS-EXT-SRV-ATTR:instance_name': 'instance-00000001',
           'OS-EXT-SRV-ATTR:host': 'compute1',
           'OS-EXT-STS:vm_state': 'running'})
    return util.make_sample_from_instance(
        conf, server, name=METER, type='gauge', unit='vcpu', volume=4,
        additional_metadata=rec.metadata())


def dynamic_sample(conf, rec):
    _, pollster = load_dynamic(conf)
    info = domain_xml.DomainInfo(uuid=UUID, name='instance-1', nova=True,
                                 project_id='p-1', user_id='u-1', vcpus=4)
    with mock.patch.object(dynamic_pollster.subprocess, 'getoutput',
                           return_value=cli_json([(info, rec)])):
        (sample,) = pollster.get_samples(mock.Mock(_keystone=None), {},
                                         ['compute1'])
    return sample


def expected_attributes(rec):
    return {k: v for k, v in rec.metadata().items()
            if k not in NOT_IN_GNOCCHI}


@pytest.mark.parametrize('build', [native_like_sample, dynamic_sample])
def test_gnocchi_publisher_stores_the_os_attributes(conf, publisher, build):
    rec = windows_record()
    publisher.publish_samples([build(conf, rec)])
    client = publisher.fake_client
    (call,) = client.resource.update.call_args_list
    resource_type, resource_id, attributes = call.args
    assert (resource_type, resource_id) == ('instance', UUID)
    assert attributes['project_id'] == 'p-1'
    os_attributes = {k: v for k, v in attributes.items()
                     if k.startswith(('os_', 'sql_'))}
    assert os_attributes == expected_attributes(rec)
    assert 'os_type' not in attributes        # Ceilometer's "hvm" stays out
    (batch,) = client.metric.batch_resources_metrics_measures.call_args_list
    measures = batch.args[0][UUID][METER]
    assert measures['unit'] == 'vcpu'
    assert measures['archive_policy_name'] == 'ceilometer-low'
    assert [m['value'] for m in measures['measures']] == [4]


def test_merged_file_keeps_ceilometers_own_mappings(publisher):
    for metric in ('cpu', 'memory.usage', 'vcpus', METER):
        assert publisher.metric_map[metric].cfg['resource_type'] == \
            'instance'
    assert len(publisher.resources_definition) == \
        len(publisher.shipped['resources'])


FAKE_OPENSTACK = r'''#!%(python)s
"""Records its arguments; answers like the real client would."""
import json, os, sys
args = sys.argv[1:]
with open(os.environ['FAKE_LOG'], 'a') as log:
    log.write(json.dumps(args) + '\n')
with open(os.environ['FAKE_LOG']) as log:
    count = len(log.readlines())
if args[:3] == ['metric', 'resource-type', 'show']:
    print(os.environ.get('FAKE_SHOW', '{}'))
elif args[:4] == ['rating', 'hashmap', 'service', 'list']:
    print(os.environ.get('FAKE_SERVICES', ''))
elif 'create' in args and '-c' in args:
    print('id-%%d' %% count)
'''


def run_with_fake_openstack(tmp_path, script, **env):
    fake = tmp_path / 'openstack'
    fake.write_text(FAKE_OPENSTACK % {'python': sys.executable})
    fake.chmod(0o755)
    log = tmp_path / 'calls.log'
    if log.exists():
        log.unlink()
    environ = dict(os.environ, FAKE_LOG=str(log), OPENSTACK=str(fake),
                   **env)
    result = subprocess.run(['sh', str(script)], env=environ,
                            capture_output=True, text=True, timeout=60)
    calls = ([json.loads(line) for line in log.read_text().splitlines()]
             if log.exists() else [])
    return result, calls


def test_resource_type_script_adds_what_the_snippet_maps(tmp_path):
    existing = {'name': 'instance', 'attributes/display_name': 'x',
                'attributes/os_distro': 'max_length=255, type=string'}
    result, calls = run_with_fake_openstack(
        tmp_path, GNOCCHI_SCRIPT, FAKE_SHOW=json.dumps(existing))
    assert result.returncode == 0, result.stderr
    assert 'already has attribute os_distro' in result.stderr
    assert calls[0] == ['metric', 'resource-type', 'show', 'instance',
                        '-f', 'json']
    update = calls[1]
    assert update[:4] == ['metric', 'resource-type', 'update', 'instance']
    specs = update[5::2]
    assert update[4::2] == ['--attribute'] * len(specs)
    parsed = dict(resource_type_cli.CliResourceTypeCreate._resource_attribute(
        spec) for spec in specs)
    assert set(parsed) == set(load_snippet()['attributes']) - {'os_distro'}
    for name, attrs in parsed.items():
        assert attrs['required'] is False
        if name.startswith('os_version_'):
            assert attrs == {'type': 'number', 'required': False, 'min': 0}
        else:
            assert attrs == {'type': 'string', 'required': False,
                             'max_length': 255}
    assert len(calls) == 2


def test_resource_type_script_is_idempotent(tmp_path):
    existing = {'attributes/' + name: '' for name in
                load_snippet()['attributes']}
    result, calls = run_with_fake_openstack(
        tmp_path, GNOCCHI_SCRIPT, FAKE_SHOW=json.dumps(existing))
    assert result.returncode == 0, result.stderr
    assert [c[2] for c in calls] == ['show']


# -- CloudKitty ----------------------------------------------------------

def rating_types():
    doc = yaml.safe_load(METRICS_YML.read_text())
    assert list(doc['metrics']) == [METER]
    types = doc['metrics'][METER]
    assert isinstance(types, list)
    return {t['alt_name']: t for t in types}


def test_metrics_yml_reads_what_gnocchi_stores(tmp_path):
    types = rating_types()
    assert set(types) == {'os_license_vcpu', 'sql_license_vcpu',
                          'os_license_vm'}
    gnocchi_attributes = list(load_snippet()['attributes'])
    _, shipped = merged_resources(tmp_path)
    policies = {p['name']: p for p in shipped['archive_policies']}
    policy = policies[shipped['archive_policy_default']]
    granularities = {_seconds(d['granularity']) for d in
                     policy['definition']}
    for name, conf in types.items():
        assert conf['metadata'] == gnocchi_attributes, name
        assert {'id', 'project_id'} <= set(conf['groupby'])
        assert not set(conf['groupby']) & set(conf['metadata'])
        args = conf['extra_args']
        assert args['resource_type'] == 'instance'
        assert args['force_granularity'] in granularities
        assert args['aggregation_method'] in policy['aggregation_methods']
        assert set(conf) <= {'unit', 'alt_name', 'groupby', 'metadata',
                             'mutate', 'extra_args', 'factor', 'offset'}
    assert types['os_license_vcpu'].get('mutate', 'NONE') == 'NONE'
    assert types['sql_license_vcpu'].get('mutate', 'NONE') == 'NONE'
    assert types['os_license_vm']['mutate'] == 'NUMBOOL'


POLLING_SAMPLE = ETC / 'polling.yaml.sample'
INSTALL_DOC = ETC.parent / 'doc' / 'source' / 'install.rst'
CLOUDKITTY_PERIOD = 3600        # CloudKitty's [collect] period default


def test_every_rated_period_rests_on_many_samples(tmp_path):
    # Issue 26: a period without a sample is not rated, so no period may
    # rest on one poll; and the many samples must be rated once.
    (source,) = [s for s in
                 yaml.safe_load(POLLING_SAMPLE.read_text())['sources']
                 if METER in s['meters']]
    interval = source['interval']
    rating_types = yaml.safe_load(METRICS_YML.read_text())['metrics'][METER]
    (granularity,) = {t['extra_args']['force_granularity']
                      for t in rating_types}
    assert interval <= granularity
    assert CLOUDKITTY_PERIOD // interval >= 12
    for rating_type in rating_types:
        args = rating_type['extra_args']
        # the vCPUs whatever the number of samples in a point
        assert args['aggregation_method'] in ('mean', 'max')
        assert args['re_aggregation_method'] in ('mean', 'max')
    # the installation guide shows the interval shipped
    enabling = INSTALL_DOC.read_text().split('Enabling the meter\n')[1]
    assert 'interval: %d\n' % interval in enabling.split('\n\n\n')[0]


def _seconds(text):
    number, unit = text.split()
    return int(number) * {'second': 1, 'seconds': 1, 'minute': 60,
                          'minutes': 60, 'hour': 3600,
                          'hours': 3600}[unit]


def vocabulary():
    """Field values the pollster really emits, from the policy itself."""
    server_ids = ('ServerStandard', 'ServerDatacenter', 'ServerStandardEval',
                  'ServerDatacenterEval', 'ServerTurbine',
                  'ServerDatacenterCor')
    sql_raw = ('Enterprise Edition: Core-based Licensing',
               'Standard Edition (64-bit)', 'Web Edition',
               'Data Center Edition', 'Developer Edition',
               'Express Edition', 'Enterprise Evaluation Edition')
    return {
        'os_edition': ({windows_editions.windows_edition(i, server=True)
                        for i in server_ids} |
                       {linux.linux_edition('sles', {'ID': 'sles_sap'}),
                        linux.linux_edition('sles', {'ID': 'sle_hpc'})}),
        'sql_server_edition': {sqlserver.sql_edition(r)[1] for r in sql_raw},
        'os_distro': {linux.linux_distro('rhel', {})[0],
                      linux.linux_distro('unknown', {'ID': 'sles'})[0],
                      linux.linux_distro('suse-based',
                                         {'ID': 'sle-micro'})[0]},
        'os_inspection_status': set(record.STATUSES),
    }


FREE = {'Standard Evaluation', 'Datacenter Evaluation', 'Developer',
        'Express', 'Evaluation'}


def test_hashmap_example_uses_existing_fields_and_real_values(tmp_path):
    result, calls = run_with_fake_openstack(tmp_path, HASHMAP_SCRIPT)
    assert result.returncode == 0, result.stderr
    types = rating_types()
    services, fields, groups, mappings = {}, {}, set(), []

    def created_id(call):
        return 'id-%d' % (calls.index(call) + 1)

    for call in calls:
        if call[:2] != ['rating', 'hashmap']:
            assert call == ['rating', 'module', 'enable', 'hashmap']
            continue
        kind, action, rest = call[2], call[3], call[4:]
        if action == 'create' and kind == 'service':
            services[created_id(call)] = rest[0]
        elif action == 'create' and kind == 'field':
            service_id, name = rest[0], rest[1]
            service = services[service_id]
            allowed = set(types[service]['groupby']) | \
                set(types[service]['metadata'])
            assert name in allowed, (service, name)
            fields[created_id(call)] = name
        elif action == 'create' and kind == 'group':
            groups.add(created_id(call))
        elif action == 'create' and kind == 'mapping':
            opts = dict(zip(rest[:-1:2], rest[1:-1:2]))
            mappings.append((fields[opts['--field-id']], opts['--value'],
                             float(rest[-1]), opts))
            assert opts['--group-id'] in groups
            assert opts['--type'] == 'flat'
        else:
            assert (kind, action) == ('service', 'list')
    assert sorted(services.values()) == sorted(types)
    vocab = vocabulary()
    assert mappings
    for field, value, cost, _ in mappings:
        assert value in vocab[field], (field, value)
        if value in FREE:
            assert cost == 0, value
        elif field != 'os_inspection_status':
            assert cost > 0, value
    priced = {(f, v) for f, v, _, _ in mappings}
    for must in [('os_edition', 'Standard'), ('os_edition', 'Datacenter'),
                 ('sql_server_edition', 'Enterprise'),
                 ('sql_server_edition', 'Standard'),
                 ('os_distro', 'rhel'), ('os_distro', 'sles')]:
        assert must in priced


def test_hashmap_example_refuses_to_run_twice(tmp_path):
    result, calls = run_with_fake_openstack(
        tmp_path, HASHMAP_SCRIPT, FAKE_SERVICES='os_license_vcpu')
    assert result.returncode == 1
    assert 'exist already' in result.stderr
    assert [c[3] for c in calls] == ['list']
