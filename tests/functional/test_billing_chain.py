"""The billing chain, for real: Gnocchi stores and CloudKitty rates.

Session-scoped services (tests/rig/billing.py): PostgreSQL, Gnocchi and
CloudKitty on 127.0.0.1, processes of the billing virtualenv.  One
module-scoped chain runs what an operator runs, in order (steps 1 and 2
once per session, shared with test_billing_continuity.py: the
billing_rules fixture):

1. ``ceilometer-upgrade`` creates Ceilometer's resource types, then our
   etc/gnocchi/resource-type-update.sh runs unchanged with the real
   ``openstack metric`` client;
2. etc/cloudkitty/hashmap-example.sh and licence-minimums.sh run
   unchanged with the real ``openstack rating`` client;
3. a real Ceilometer AgentManager polls running domains of every billed
   kind (real appliances, one launch per guest), one of them with its
   boot disk removed under the running qemu, so that its inspection
   fails; once they are inspected a last instance is started, so the
   published cycle also carries a still-pending record;
4. Ceilometer's own Gnocchi publisher, configured from our
   etc/gnocchi/gnocchi_resources.yaml merged into Ceilometer's file as
   that file says, stores the samples of that cycle;
5. CloudKitty's own orchestrator worker rates the period for both
   projects with our etc/cloudkitty/metrics.yml.

The tests then check the rated amounts per instance and per project
against prices read from hashmap-example.sh and minimums read from
licence-minimums.py, and that doc/source/billing.rst shows this run's
output.
"""

import dataclasses
import decimal
import io
import json
import logging
import os
import re
import time
import urllib.parse

from ceilometer.publisher import gnocchi as gnocchi_publisher
from ceilometer import sample as sample_mod
from ceilometer import service as ceilo_service
import pytest

from ceilometer_os_pollster.agent import engine as engine_mod
from ceilometer_os_pollster.agent import service as service_mod
from tests.functional import agent as agent_mod
from tests.functional import test_end_to_end as e2e
from tests.guests import builder
from tests.guests import catalog
from tests.rig import billing
from tests.rig import libvirtd
from tests.rig import rig as rig_mod
from tests.unit import test_etc as configs

pytestmark = [pytest.mark.libvirt, pytest.mark.appliance]

METER = 'compute.instance.os.metadata'
BILLING_DOC = billing.ROOT / 'doc' / 'source' / 'billing.rst'
HASHMAP_SCRIPT = billing.HASHMAP_SCRIPT
MINIMUMS_PYSCRIPT = billing.ETC / 'cloudkitty' / 'licence-minimums.py'
RATED_OUTPUT = 'billing-rated-output'
REPORT_OUTPUT = 'billing-report-output'

PROJECT_NAMES = billing.PROJECT_NAMES
PROJECTS = dict(zip(billing.PROJECTS, PROJECT_NAMES))
A, B = PROJECTS


@dataclasses.dataclass(frozen=True)
class Instance:
    name: str
    guest: str
    vcpus: int
    project: str


# Every kind the issue names, in two projects; 'unreadable-1' loses its
# boot disk file once running (a real inspection that fails), 'pending-4'
# is started only after the others are inspected.
INSTANCES = (
    Instance('datacenter-12', 'win2019-datacenter', 12, A),
    Instance('standard-2', 'win2022-standard', 2, A),
    Instance('evaluation-4', 'win2022-standard-eval', 4, B),
    Instance('sql-enterprise-2', 'win2019-sql', 2, B),
    Instance('rhel-2', 'rhel-9.4', 2, A),
    Instance('sles-1', 'sles-15-sp5', 1, B),
    Instance('ubuntu-2', 'ubuntu-22.04', 2, A),
    Instance('luks-2', 'luks', 2, B),
    Instance('blank-1', 'blank', 1, A),
    Instance('unreadable-1', 'blank', 1, B),
)
FAILED = 'unreadable-1'
PENDING = Instance('pending-4', 'ubuntu-22.04', 4, B)


def script_prices(path=HASHMAP_SCRIPT):
    """{NAME: Decimal} of the script's ``NAME=${NAME:-value}`` defaults."""
    return {name: decimal.Decimal(value) for name, value in re.findall(
        r'^(\w+)=\$\{\1:-([0-9.]+)\}$', path.read_text(), re.M)}


def pyscript_minimums(path=MINIMUMS_PYSCRIPT):
    return {name: int(value) for name, value in re.findall(
        r'^(\w+_MIN_CORES_PER_VM) = (\d+)$', path.read_text(), re.M)}


def expected_prices():
    """{instance name: {rating type: price}}, by hand from the policy
    (doc/source/billing.rst): per vCPU with Microsoft's minimums, per VM for
    RHEL/SLES, free editions and pending at 0, encrypted at the script's
    per-VM policy, failed and unknown at its "unverified OS" rate."""
    p = script_prices()
    m = pyscript_minimums()
    win_min = m['WINDOWS_SERVER_MIN_CORES_PER_VM']
    sql_min = m['SQL_SERVER_MIN_CORES_PER_VM']
    return {
        'datacenter-12': {'os_license_vcpu':
                          max(12, win_min) * p['WINDOWS_DATACENTER_PER_VCPU']},
        'standard-2': {'os_license_vcpu':
                       max(2, win_min) * p['WINDOWS_STANDARD_PER_VCPU']},
        'evaluation-4': {},
        'sql-enterprise-2': {
            'os_license_vcpu':
            max(2, win_min) * p['WINDOWS_STANDARD_PER_VCPU'],
            'sql_license_vcpu':
            max(2, sql_min) * p['SQL_ENTERPRISE_PER_VCPU']},
        'rhel-2': {'os_license_vm': p['RHEL_PER_VM']},
        'sles-1': {'os_license_vm': p['SLES_PER_VM']},
        'ubuntu-2': {},
        'luks-2': {'os_license_vm': p['ENCRYPTED_PER_VM']},
        'blank-1': {'os_license_vm': p['UNVERIFIED_PER_VM']},
        FAILED: {'os_license_vm': p['UNVERIFIED_PER_VM']},
        'pending-4': {},
    }


RATING_TYPES = ('os_license_vcpu', 'sql_license_vcpu', 'os_license_vm')
CENT = decimal.Decimal('0.0001')


def money(value):
    return decimal.Decimal(value).quantize(CENT)


# -- the chain ------------------------------------------------------------

@dataclasses.dataclass
class Chain:
    services: billing.Services
    outputs: dict           # step -> what the operator's command printed
    samples: dict           # instance name -> published sample dict
    statuses: dict          # instance name -> os_inspection_status
    rows: list              # CloudKitty's rated rows for the period
    names: dict             # instance uuid -> instance name
    period: float
    vcpus: dict             # instance name -> vCPUs
    world: object           # the agent and its inspection service
    cache_dir: str


def _publisher(services, tmp, archive_policy=None):
    """Ceilometer's Gnocchi publisher with the merged resources file;
    ``archive_policy`` overrides the metrics' policy (publisher URL)."""
    resources, _ = configs.merged_resources(tmp)
    conf_file = tmp / 'publisher.conf'
    conf_file.write_text(billing._ini(
        {'service_credentials': services.ceilometer_credentials()}))
    conf = ceilo_service.prepare_service([], [str(conf_file)])
    query = {'enable_filter_project': 'false',
             'resources_definition_file': str(resources)}
    if archive_policy:
        query['archive_policy'] = archive_policy
    url = urllib.parse.urlparse(
        'gnocchi://?' + urllib.parse.urlencode(query))
    return gnocchi_publisher.GnocchiPublisher(conf, url)


def _as_sample(payload):
    return sample_mod.Sample(
        name=payload['counter_name'], type=payload['counter_type'],
        unit=payload['counter_unit'], volume=payload['counter_volume'],
        user_id=payload['user_id'], project_id=payload['project_id'],
        resource_id=payload['resource_id'], timestamp=payload['timestamp'],
        resource_metadata=payload['resource_metadata'],
        source=payload['source'], id=payload['message_id'])


@pytest.fixture(scope='module')
def chain(billing_services, billing_rules, libvirt_daemons,
          tmp_path_factory):
    services = billing_services
    tmp = tmp_path_factory.mktemp('billing-chain')
    outputs = billing_rules.outputs
    rules_at = billing_rules.created_at
    conf = agent_mod.agent_conf(tmp, libvirtd.URI, host=e2e.HOST,
                                **agent_mod.RIG_INSPECTIONS)
    with rig_mod.Rig(tmp / 'rig') as the_rig, \
            agent_mod.agent_on_rig(the_rig) as held:
        names, vcpus = {}, {}

        def add(inst):
            dom = the_rig.add(inst.name, builder.build(inst.guest),
                              layout=rig_mod.QCOW2, vcpus=inst.vcpus,
                              project_id=inst.project)
            names[dom.uuid] = inst.name
            vcpus[inst.name] = inst.vcpus
            return dom
        for inst in INSTANCES:
            add(inst)
        the_rig.start_all()
        held.svc = svc = service_mod.InspectionService(
            conf, engine=engine_mod.Engine(conf))
        # names grows with the pending instance: discovery sees it
        mgr = agent_mod.agent_manager(conf, svc, names, held.mp)
        world = e2e.World(the_rig, mgr, svc, svc, dict(names))
        # qemu keeps its open file; the inspector finds none to open
        failed_dom = next(d for d in the_rig.domains
                          if d.display_name == FAILED)
        os.unlink(failed_dom.boot_disk.chain[0])
        world.cycle()                     # queues every inspection
        world.wait_idle(list(names))
        add(PENDING)
        the_rig.start_all()
        wait, period = billing.rating_window(rules_at)
        time.sleep(wait)
        cycle = world.cycle()
        samples = {names[u]: s for u, s in cycle.items()}
        _publisher(services, tmp).publish_samples(
            [_as_sample(s) for s in cycle.values()])
        services.process_measures(list(cycle), METER)
        services.rate(period)
        rows = services.dataframes(period)
        yield Chain(
            services=services, outputs=outputs, samples=samples,
            statuses={n: s['resource_metadata']['os_inspection_status']
                      for n, s in samples.items()},
            rows=rows, names=names, period=period, vcpus=vcpus,
            world=world, cache_dir=str(tmp / 'cache'))
        # the pending instance's inspection finishes before teardown
        world.wait_idle(list(names))


# -- renderings of the rated period --------------------------------------

def rated(chain):
    """{instance name: {rating type: (qty, price)}} from CloudKitty."""
    out = {}
    for row in chain.rows:
        name = chain.names[row['desc']['id']]
        assert row['service'] not in out.get(name, {}), (name, row)
        out.setdefault(name, {})[row['service']] = (row['qty'],
                                                    row['price'])
    return out


def os_label(metadata):
    status = metadata['os_inspection_status']
    if status != 'ok':
        return '(%s)' % status
    if metadata['os_family'] == 'windows':
        text = metadata['os_product_name']
        if metadata['sql_server_edition']:
            text += ' + SQL Server ' + metadata['sql_server_edition']
        return text
    return metadata['os_product_name'] or metadata['os_distro']


def rated_table(chain):
    """What the billing page shows: one line per instance and rating type that
    costs something, then the totals per instance and per project."""
    from ceilometer_os_pollster.commands import render
    by_instance = rated(chain)
    order = [i.name for i in INSTANCES + (PENDING,)]
    project_of = {i.name: PROJECTS[i.project] for i in INSTANCES +
                  (PENDING,)}
    lines = []
    for name in order:
        for rating_type in RATING_TYPES:
            qty, price = by_instance[name][rating_type]
            if price:
                lines.append((project_of[name], name, rating_type,
                              '%g' % qty, money(price)))
    totals = []
    for name in order:
        md = chain.samples[name]['resource_metadata']
        total = sum(p for _, p in by_instance[name].values())
        totals.append((project_of[name], name, chain.vcpus[name],
                       os_label(md), money(total)))
    projects = []
    for project in PROJECT_NAMES:
        total = sum(t[-1] for t in totals if t[0] == project)
        projects.append((project, money(total)))
    return '\n\n'.join([
        render.format_table(('PROJECT', 'INSTANCE', 'RATING TYPE', 'QTY',
                             'PRICE'), lines),
        render.format_table(('PROJECT', 'INSTANCE', 'VCPUS', 'OS',
                             'TOTAL'), totals),
        render.format_table(('PROJECT', 'TOTAL'), projects)]) + '\n'


def readme_block(name=RATED_OUTPUT, text=None):
    """The literal block after ``.. <name>`` in the billing page."""
    text = BILLING_DOC.read_text() if text is None else text
    match = re.search(r'^\.\. %s\n\n::\n\n((?:    .*\n|\n)+)' % name, text,
                      re.M)
    assert match, '%s has no ".. %s" block' % (BILLING_DOC, name)
    block = match.group(1).rstrip('\n') + '\n'
    return '\n'.join(line[4:] for line in block.split('\n'))


# -- the tests ------------------------------------------------------------

def test_operator_scripts_ran_unchanged_against_the_services(chain):
    gnocchi = chain.services
    instance = gnocchi.gnocchi('/v1/resource_type/instance')
    for name in configs.load_snippet()['attributes']:
        assert name in instance['attributes'], name
        assert instance['attributes'][name]['required'] is False
    # the first run added the attributes, the second one nothing
    assert 'attributes/os_edition' in chain.outputs['resource-type']
    assert chain.outputs['resource-type-again'] == ''
    assert 'every guest OS attribute already' in \
        (gnocchi.workdir / 'commands.log').read_text()
    services = gnocchi.openstack('cloudkitty', 'rating', 'hashmap',
                                 'service', 'list', '-f', 'value', '-c',
                                 'Name').split()
    assert sorted(services) == sorted(RATING_TYPES)
    modules = gnocchi.openstack('cloudkitty', 'rating', 'module', 'list',
                                '-f', 'value')
    enabled = {line.split()[0]: (line.split()[1], int(line.split()[2]))
               for line in modules.splitlines()}
    assert enabled['hashmap'] == ('True', 1)
    assert enabled['pyscripts'] == ('True', 2)


def test_the_published_cycle_has_every_kind_and_one_pending(chain):
    want = {i.name: catalog.GUESTS[i.guest].expected.status
            for i in INSTANCES}
    want[PENDING.name] = 'pending'
    want[FAILED] = 'failed'
    assert chain.statuses == want
    assert 'No such file or directory' in \
        chain.samples[FAILED]['resource_metadata']['os_inspection_reason']
    for inst in INSTANCES:
        if inst.name == FAILED:
            continue
        md = chain.samples[inst.name]['resource_metadata']
        assert catalog.mismatches(catalog.GUESTS[inst.guest].expected,
                                  md) == [], inst.name
        assert chain.samples[inst.name]['counter_volume'] == inst.vcpus


def test_gnocchi_stored_the_os_attributes(chain):
    for uuid, name in chain.names.items():
        resource = chain.services.gnocchi('/v1/resource/instance/%s' % uuid)
        md = chain.samples[name]['resource_metadata']
        for attribute in configs.load_snippet()['attributes']:
            assert resource[attribute] == md[attribute], (name, attribute)
        assert resource['project_id'] == chain.samples[name]['project_id']
        assert METER in resource['metrics']


def test_every_instance_is_rated_once_per_rating_type(chain):
    by_instance = rated(chain)
    assert set(by_instance) == set(chain.names.values())
    for name, types in by_instance.items():
        assert set(types) == set(RATING_TYPES), name
        assert types['os_license_vm'][0] == 1, name


def test_rated_amount_per_instance(chain):
    by_instance = rated(chain)
    want = expected_prices()
    got = {name: {t: money(p) for t, (_, p) in types.items() if p}
           for name, types in by_instance.items()}
    assert got == {name: {t: money(p) for t, p in prices.items()}
                   for name, prices in want.items()}


def test_rated_amount_per_project(chain):
    want = {}
    for inst in INSTANCES + (PENDING,):
        want[inst.project] = want.get(inst.project, 0) + sum(
            expected_prices()[inst.name].values())
    got = {}
    for row in chain.rows:
        got[row['project_id']] = got.get(row['project_id'], 0) + \
            row['price']
    assert {p: money(v) for p, v in got.items()} == \
        {p: money(v) for p, v in want.items()}


def test_failed_and_unknown_are_rated_at_the_unverified_price(chain):
    # a record without a verified OS is never free: per VM, whatever
    # the vCPUs, at the operator's "unverified OS" rate
    by_instance = rated(chain)
    unverified = script_prices()['UNVERIFIED_PER_VM']
    assert unverified > 0
    for name, status in ((FAILED, 'failed'), ('blank-1', 'unknown')):
        assert chain.statuses[name] == status
        qty, price = by_instance[name]['os_license_vm']
        assert (qty, money(price)) == (1, money(unverified)), name
        assert by_instance[name]['os_license_vcpu'][1] == 0, name
        assert by_instance[name]['sql_license_vcpu'][1] == 0, name


def test_minimums_raise_the_licensed_cores_of_small_vms(chain):
    by_instance = rated(chain)
    minimums = pyscript_minimums()
    win = minimums['WINDOWS_SERVER_MIN_CORES_PER_VM']
    sql = minimums['SQL_SERVER_MIN_CORES_PER_VM']
    # a 2-vCPU Windows VM pays the Windows minimum, its SQL Server its own
    assert by_instance['standard-2']['os_license_vcpu'][0] == win
    assert by_instance['sql-enterprise-2']['os_license_vcpu'][0] == win
    assert by_instance['sql-enterprise-2']['sql_license_vcpu'][0] == sql
    # above the minimum, and for free editions, vCPUs as they are
    assert win < 12
    assert by_instance['datacenter-12']['os_license_vcpu'][0] == 12
    assert by_instance['evaluation-4']['os_license_vcpu'][0] == 4
    assert by_instance['rhel-2']['os_license_vcpu'][0] == 2


class OnlyThese:
    """A libvirt connection listing only the chain's domains (other
    test sessions may share the libvirtd)."""

    def __init__(self, conn, uuids):
        self.conn = conn
        self.uuids = set(uuids)

    def listAllDomains(self, flags=0):
        return [d for d in self.conn.listAllDomains(flags)
                if d.UUIDString() in self.uuids]


def run_report(chain, tmp_path, *args):
    from ceilometer_os_pollster.commands import cli
    from ceilometer_os_pollster.commands import domains
    conf = tmp_path / 'report.conf'
    conf.write_text('[DEFAULT]\nlibvirt_uri = %s\n[os_inspection]\n'
                    'cache_dir = %s\n' % (libvirtd.URI, chain.cache_dir))
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        rc = cli.main(['--config-file', str(conf), 'report'] + list(args),
                      stdout=out, stderr=err,
                      connect=lambda c: OnlyThese(domains.open_libvirt(c),
                                                  chain.names))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)
    assert (rc, err.getvalue()) == (0, '')
    return out.getvalue()


def test_readme_shows_this_runs_rated_output(chain, tmp_path):
    table = rated_table(chain)
    (tmp_path / 'rated.txt').write_text(table)
    assert readme_block() == table, (
        'doc/source/billing.rst block ".. %s" differs from this run; '
        'the run gave:\n%s'
        % (RATED_OUTPUT, table))


def test_report_counts_the_hosts_licences(chain, tmp_path):
    # every instance inspected, the late one included
    chain.world.wait_idle(list(chain.names))
    items = json.loads(run_report(chain, tmp_path, '--json'))
    got = {(i['project_id'], i['product'], i['edition']):
           (i['instances'], i['vcpus'], i['vcpus_with_minimums'])
           for i in items}
    minimums = pyscript_minimums()
    win = minimums['WINDOWS_SERVER_MIN_CORES_PER_VM']
    sql = minimums['SQL_SERVER_MIN_CORES_PER_VM']
    assert got == {
        (A, 'RHEL', ''): (1, 2, 2),
        (A, 'Windows Server', 'Datacenter'): (1, 12, max(12, win)),
        (A, 'Windows Server', 'Standard'): (1, 2, win),
        (A, 'ubuntu', ''): (1, 2, 2),
        (A, '(unknown)', ''): (1, 1, 1),
        (B, 'SLES', ''): (1, 1, 1),
        (B, 'SQL Server', 'Enterprise'): (1, 2, sql),
        (B, 'Windows Server', 'Standard'): (1, 2, win),
        (B, 'Windows Server', 'Standard Evaluation'): (1, 4, 4),
        (B, '(encrypted)', ''): (1, 2, 2),
        (B, '(failed)', ''): (1, 1, 1),
        (B, 'ubuntu', ''): (1, 4, 4),
    }
    table = run_report(chain, tmp_path)
    (tmp_path / 'report.txt').write_text(table)
    assert readme_block(REPORT_OUTPUT) == table, (
        'doc/source/billing.rst block ".. %s" differs from this run; '
        'the run gave:\n%s'
        % (REPORT_OUTPUT, table))
