"""The ceilometer-os-pollster command.

Whole commands (inspect_cli, report_cli, cache_cli, and the fd-2
plumbing of stderr_fd) run through ``cli.main`` against libvirt's
daemon-less ``test:///`` driver, a real record cache in a temporary
directory and a fake engine (no appliance).  Choosing domains is tested
in test_domains.py, the jobs made for them in test_records.py, the
renderings in test_render.py, nova metadata in
instances/test_domain_xml.py.
"""

import io
import json
import logging
import os
import subprocess
import sys

import pytest

from ceilometer_os_pollster.agent import cache as cache_mod
from ceilometer_os_pollster.commands import cli
from ceilometer_os_pollster.commands import errors
from ceilometer_os_pollster.commands import render
from ceilometer_os_pollster import record
from ceilometer_os_pollster.agent import service as service_mod
from tests.fixtures import libvirt_test_driver as tdrv
from tests.helpers import FakeEngine


# -- whole commands ------------------------------------------------------

UUIDS = ['aaaaaaaa-0000-4000-8000-00000000000%d' % i for i in (1, 2, 3)]
PLAIN_UUID = 'cccccccc-0000-4000-8000-000000000009'
TEST_NS = 'http://libvirt.org/schemas/domain/test/1.0'


def node_with_extras(domains, stopped_name):
    """The shared node file plus a shut-off instance and a domain that
    is not a Nova instance."""
    xml = tdrv.node_xml(domains)
    head = "<domain type='test'>\n    <name>%s</name>" % stopped_name
    assert head in xml
    xml = xml.replace(head, "<domain type='test' xmlns:test='%s'>\n"
                      "    <name>%s</name><test:runstate>5</test:runstate>"
                      % (TEST_NS, stopped_name))
    plain = ("<domain type='test'><name>plain</name><uuid>%s</uuid>"
             "<memory>131072</memory><vcpu>3</vcpu>"
             "<os><type arch='x86_64'>hvm</type></os></domain>\n"
             % PLAIN_UUID)
    return xml.replace('</node>', plain + '</node>')


@pytest.fixture
def host(tmp_path):
    domains = [tdrv.domain(u, 'instance-%08d' % i, vcpus=i)
               for i, u in enumerate(UUIDS, 1)]
    node = tmp_path / 'node.xml'
    node.write_text(node_with_extras(domains, 'instance-00000003'))
    cache_dir = tmp_path / 'cache'
    conf = tmp_path / 'ceilometer.conf'
    # The tests run as root: without this the command would refuse to
    # inspect (no worker_user) after its engine, a fake here, ran.
    conf.write_text('[DEFAULT]\nlibvirt_uri = test://%s\n'
                    '[os_inspection]\ncache_dir = %s\n'
                    'allow_root_inspection = true\n' % (node, cache_dir))

    class Host:
        engine = FakeEngine()

        def run(self, *argv, engine=None):
            out, err = io.StringIO(), io.StringIO()
            eng = engine or self.engine

            def factory(c):
                return service_mod.InspectionService(c, engine=eng)
            rc = cli.main(['--config-file', str(conf)] + list(argv),
                          stdout=out, stderr=err, service_factory=factory)
            return rc, out.getvalue(), err.getvalue()

    h = Host()
    h.conf, h.cache_dir, h.tmp = conf, cache_dir, tmp_path
    return h


@pytest.fixture(autouse=True)
def restore_logging():
    # cli.main configures the root logger as a command should.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_cached_only_json_reports_pending_and_creates_nothing(host):
    rc, out, err = host.run('inspect', '--all', '--json', '--cached-only')
    assert (rc, err) == (0, '')
    items = json.loads(out)
    # the shut-off instance and the non-Nova domain are left out, as the
    # agent's discovery + pollster do by default
    assert [i['resource_id'] for i in items] == UUIDS[:2]
    assert [i['vcpus'] for i in items] == [1, 2]
    for item in items:
        assert tuple(item) == render.JSON_ID_KEYS + record.METADATA_KEYS
        assert item['os_inspection_status'] == 'pending'
        assert (item['project_id'], item['user_id']) == ('p-1', 'u-1')
    assert not host.cache_dir.exists()
    assert host.engine.ids() == []


def test_report_stopped_instance_metrics_includes_shut_off_instances(host):
    with open(host.conf, 'a') as f:
        f.write('[compute]\nreport_stopped_instance_metrics = true\n')
    rc, out, _ = host.run('inspect', '--all', '--json', '--cached-only')
    assert rc == 0
    assert [i['resource_id'] for i in json.loads(out)] == UUIDS


def test_inspect_all_then_cached_only_serves_the_records(host):
    rc, out, err = host.run('inspect', '--all')
    assert rc == 0
    assert sorted(host.engine.ids()) == UUIDS[:2]
    assert '[1/2] instance-00000001 ... ok (3 s)' in err
    assert '[2/2] instance-00000002 ... ok (3 s)' in err
    lines = out.splitlines()
    assert lines[0].split() == list(render.INSPECT_HEADERS)
    assert lines[1].split()[:4] == ['instance-00000001', UUIDS[0], '1', 'ok']
    assert 'win2k22 Datacenter' in lines[1]

    rc, out, err = host.run('inspect', '--all', '--json', '--cached-only')
    assert (rc, err) == (0, '')
    items = {i['resource_id']: i for i in json.loads(out)}
    cached = cache_mod.RecordCache(str(host.cache_dir))
    for uuid in UUIDS[:2]:
        expected = cached.get(uuid).record.metadata()
        assert {k: items[uuid][k] for k in record.METADATA_KEYS} == expected
    assert len(host.engine.ids()) == 2      # --cached-only launched nothing


def test_stale_only_inspects_only_what_needs_it(host):
    host.run('inspect', 'instance-00000001')
    assert host.engine.ids() == [UUIDS[0]]
    rc, out, err = host.run('inspect', '--all', '--stale-only')
    assert rc == 0
    assert host.engine.ids() == [UUIDS[0], UUIDS[1]]
    assert 'instance-00000001 ... ok (cached)' in err
    # without --stale-only everything named is inspected again
    host.run('inspect', 'instance-00000001', UUIDS[1])
    assert sorted(host.engine.ids()[2:]) == UUIDS[:2]


def test_failed_inspection_exits_1_and_says_why(host):
    engine = FakeEngine(fail={UUIDS[1]})
    rc, out, err = host.run('inspect', '--all', '--json', engine=engine)
    assert rc == errors.EXIT_FAILED
    assert err == ''                          # --json: no progress lines
    by_id = {i['resource_id']: i for i in json.loads(out)}
    assert by_id[UUIDS[1]]['os_inspection_status'] == 'failed'
    assert by_id[UUIDS[1]]['os_inspection_reason'] == 'deadline'
    assert by_id[UUIDS[0]]['os_inspection_status'] == 'ok'
    rc, _, err = host.run('inspect', UUIDS[1], engine=engine)
    assert rc == errors.EXIT_FAILED
    assert '... failed (7 s): deadline' in err


def test_named_domains_may_be_any_domain(host):
    rc, out, _ = host.run('inspect', 'plain', 'instance-00000003', '--json')
    assert rc == 0
    items = json.loads(out)
    assert [i['resource_id'] for i in items] == [PLAIN_UUID, UUIDS[2]]
    assert (items[0]['project_id'], items[0]['vcpus']) == ('', 3)


def test_json_mode_keeps_stderr_clean_even_when_the_cache_complains(host):
    host.run('inspect', 'instance-00000001')
    host.cache_dir.joinpath(UUIDS[1] + '.json').write_text('{garbage')
    rc, out, err = host.run('inspect', '--all', '--json', '--cached-only')
    assert (rc, err) == (0, '')
    statuses = [i['os_inspection_status'] for i in json.loads(out)]
    assert statuses == ['ok', 'pending']
    # the same warning reaches stderr without --json ...
    rc, out, err = host.run('inspect', '--all', '--cached-only')
    assert 'Ignoring OS inspection record' in err
    # ... and the log file with --json --log-file
    log_file = host.tmp / 'cli.log'
    rc, out, err = host.run('inspect', '--all', '--json', '--cached-only',
                            '--log-file', str(log_file))
    assert (rc, err) == (0, '')
    assert 'Ignoring OS inspection record' in log_file.read_text()
    json.loads(out)


@pytest.mark.parametrize('argv, message', [
    (['inspect', 'no-such-domain'], 'no such libvirt domain: no-such-domain'),
    (['inspect', '--all', 'instance-00000001'], 'not both'),
    (['inspect'], 'at least one DOMAIN'),
    (['inspect', '--all', '--cached-only', '--stale-only'], 'not allowed'),
    (['cache', 'forget'], 'one instance ID or --all'),
    (['cache', 'forget', UUIDS[0], '--all'], 'one instance ID or --all'),
    (['frobnicate'], 'invalid choice'),
])
def test_usage_errors_exit_2_before_any_inspection(host, argv, message):
    rc, out, err = host.run(*argv)
    assert rc == errors.EXIT_USAGE
    assert message in err
    assert out == ''
    assert host.engine.ids() == []


@pytest.mark.parametrize('content, message', [
    (None, 'configuration error'),
    ('[os_inspection]\nconcurrency = lots\n', 'configuration error'),
    ('[DEFAULT]\nlibvirt_type = vmware\n', 'configuration error'),
    ('[os_inspection\n', 'configuration error'),
])
def test_configuration_errors_exit_2(tmp_path, content, message):
    path = tmp_path / 'bad.conf'
    if content is not None:
        path.write_text(content)
    err = io.StringIO()
    rc = cli.main(['--config-file', str(path), 'cache', 'list'],
                  stdout=io.StringIO(), stderr=err)
    assert rc == errors.EXIT_USAGE
    assert message in err.getvalue()


@pytest.mark.skipif(os.geteuid() != 0, reason='the refusal is for root')
@pytest.mark.parametrize('argv', [
    ('inspect', '--all', '--stale-only'),
    ('inspect', 'instance-00000001', '--json'),
])
def test_root_inspection_without_worker_user_exits_2(host, argv):
    # The shipped default (no worker_user, no opt-out): the command fails
    # with the option to set and the page to read.  (The real engine
    # records each due instance "failed" without starting a worker:
    # tests/functional/test_confinement.py.)
    strict = host.tmp / 'strict.conf'
    strict.write_text(host.conf.read_text().replace(
        'allow_root_inspection = true\n', ''))
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(['--config-file', str(strict)] + list(argv), stdout=out,
                  stderr=err, service_factory=lambda c: (
                      service_mod.InspectionService(c, engine=host.engine)))
    assert (rc, out.getvalue()) == (errors.EXIT_USAGE, '')
    assert err.getvalue().endswith(
        'ceilometer-os-pollster: error: refusing to inspect: started by '
        'root with no [os_inspection] worker_user (set it, or '
        'allow_root_inspection = true to run qemu as root); worker_user '
        'must be a dedicated user that can read the instance disks, such '
        'as os-inspector (installation guide, "Privilege-separated '
        'mode", step 3)\n')


def test_unreachable_libvirt_exits_3_with_one_line_and_no_json(tmp_path):
    conf = tmp_path / 'c.conf'
    conf.write_text('[DEFAULT]\nlibvirt_uri = test://%s/missing.xml\n'
                    % tmp_path)
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(['--config-file', str(conf), 'inspect', '--all',
                   '--json', '--cached-only'], stdout=out, stderr=err)
    assert rc == errors.EXIT_LIBVIRT
    assert out.getvalue() == ''
    lines = err.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith('ceilometer-os-pollster: error: cannot '
                               'connect to libvirt at test://')


def test_cache_list_show_forget(host):
    rc, out, _ = host.run('cache', 'list')
    assert rc == 0 and out.split() == list(render.CACHE_HEADERS)
    assert not host.cache_dir.exists()        # reading creates nothing

    host.run('inspect', 'instance-00000001', 'instance-00000002')
    rc, out, _ = host.run('cache', 'list')
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[:6] for r in rows] == [
        [u, 'ok', 'windows', 'windows', 'win2k22', 'Datacenter']
        for u in UUIDS[:2]]

    rc, out, _ = host.run('cache', 'show', UUIDS[0])
    doc = json.loads(out)
    assert rc == 0 and doc['instance_id'] == UUIDS[0]
    assert doc['record']['os_build'] == '20348'
    assert doc['expires_at'].endswith('Z') and doc['failures'] == 0

    rc, out, err = host.run('cache', 'show', UUIDS[2])
    assert rc == errors.EXIT_FAILED and 'no record' in err

    rc, out, _ = host.run('cache', 'forget', UUIDS[0])
    assert (rc, out) == (0, 'forgot 1 record\n')
    assert not host.cache_dir.joinpath(UUIDS[0] + '.json').exists()
    rc, out, err = host.run('cache', 'forget', UUIDS[0])
    assert rc == errors.EXIT_FAILED and 'no record' in err
    rc, out, _ = host.run('cache', 'forget', '--all')
    assert (rc, out) == (0, 'forgot 1 record\n')
    assert [p for p in os.listdir(host.cache_dir)
            if p.endswith('.json')] == []


def test_help_documents_exit_codes(capsys):
    for argv in (['--help'], ['inspect', '--help'], ['cache', 'list',
                                                     '--help']):
        assert cli.main(argv) == 0
        text = capsys.readouterr().out
        for line in ('0  success', '2  usage or configuration error',
                     '3  libvirt unreachable', '1  inspect: at least one'):
            assert line in text


def test_options_are_accepted_after_the_command(host):
    rc, out, err = host.run('inspect', '--all', '--cached-only',
                            '--config-file', str(host.conf))
    assert rc == 0 and 'instance-00000001' in out


def test_json_mode_keeps_c_library_noise_off_the_output(tmp_path):
    # libvirt's test driver has libxml2 print a warning on fd 2 for a
    # missing file; with --json only our one error line may remain.
    conf = tmp_path / 'c.conf'
    # Run as root: allowed to inspect, so that it reaches libvirt.
    conf.write_text('[DEFAULT]\nlibvirt_uri = test://%s/missing.xml\n'
                    '[os_inspection]\nallow_root_inspection = true\n'
                    % tmp_path)
    argv = [sys.executable, '-m', 'ceilometer_os_pollster.commands.cli',
            '--config-file', str(conf), 'inspect', '--all']
    noisy = subprocess.run(argv, capture_output=True, text=True,
                           timeout=120)
    assert noisy.returncode == errors.EXIT_LIBVIRT
    assert 'I/O warning' in noisy.stderr
    quiet = subprocess.run(argv + ['--json'], capture_output=True,
                           text=True, timeout=120)
    assert quiet.returncode == errors.EXIT_LIBVIRT
    assert quiet.stdout == ''
    assert quiet.stderr.splitlines() == [
        noisy.stderr.splitlines()[-1]]
    assert quiet.stderr.startswith('ceilometer-os-pollster: error: ')


def test_report_summarises_the_cache_per_project_and_product(host):
    rc, out, err = host.run('report')
    assert (rc, err) == (0, '')
    lines = out.splitlines()
    assert lines[0].split() == ['PROJECT', 'PRODUCT', 'EDITION', 'INSTANCES',
                                'VCPUS', 'WITH', 'MINIMUMS']
    # nothing inspected yet: the two running instances are pending
    assert lines[1].split() == ['p-1', '(pending)', '-', '2', '3', '3']
    assert host.engine.ids() == []
    host.run('inspect', '--all')
    rc, out, err = host.run('report', '--json')
    assert (rc, err) == (0, '')
    # ok_record: Windows Server Datacenter with SQL Server Standard
    assert json.loads(out) == [
        {'project_id': 'p-1', 'product': 'SQL Server', 'edition': 'Standard',
         'instances': 2, 'vcpus': 3, 'vcpus_with_minimums': 8},
        {'project_id': 'p-1', 'product': 'Windows Server',
         'edition': 'Datacenter', 'instances': 2, 'vcpus': 3,
         'vcpus_with_minimums': 16}]
    rc, out, _ = host.run('report', '--json', '--windows-server-min-cores',
                          '2', '--sql-server-min-cores', '1')
    assert [i['vcpus_with_minimums'] for i in json.loads(out)] == [3, 4]
    assert len(host.engine.ids()) == 2          # report never inspects
