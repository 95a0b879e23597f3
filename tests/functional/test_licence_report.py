"""licence-report against the real PostgreSQL + Gnocchi of the billing rig.

Gnocchi stamps every attribute revision with its own clock
(``revision_start = now`` on each PATCH; the API cannot back-date it),
so the month is compressed: one day is DAY seconds of wall time, a
30-day month MONTH seconds, and Ceilometer's 5-minute measures become
1-second measures of a test archive policy.  The test PATCHes each
attribute change when its compressed time comes and keeps the
``revision_start`` Gnocchi answers: the report and the independent
computation below both use those times.  Measures are written
afterwards, back-dated, in one batch, as the publisher would have.

The cloud: an instance upgraded from Windows Server Standard to
Datacenter mid-month, a RHEL one deleted at noon on day 9 (ended_at
inside its last measure's slot; a measure after ended_at would make
Gnocchi 4.7 clear ended_at: it "restores" the resource), one "failed"
for its first 5 days, one with
measures but no OS attributes, and a project of 200 instances starting
on staggered days, some with a short gap (counted) or a long one (not
counted) in their measures.  Expected figures are computed here
second by second from the plan, with the products and minimums
written out by hand.
"""

import dataclasses
import datetime
import io
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from ceilometer_os_pollster.commands import cli
from tests.rig import billing

DAY = 1                 # wall-clock second per compressed day
DAYS = 30
MONTH = DAY * DAYS
MAX_GAP = 3             # seconds: a gap of 2 s counts, one of 4 s does not
POLICY = 'licence-report-test'
METER = 'compute.instance.os.metadata'
RESOURCE_TYPE_SCRIPT = billing.ETC / 'gnocchi' / 'resource-type-update.sh'
WIN_MIN, SQL_MIN = 8, 4   # etc/cloudkitty/licence-minimums.py

WIN_STD = {'os_inspection_status': 'ok', 'os_family': 'windows',
           'os_distro': 'windows', 'os_edition': 'Standard',
           'os_product_variant': 'Server'}
WIN_DC = dict(WIN_STD, os_edition='Datacenter')
WIN_SQL = dict(WIN_STD, sql_server_edition='Enterprise')
RHEL = {'os_inspection_status': 'ok', 'os_family': 'linux',
        'os_distro': 'rhel', 'os_edition': ''}
FAILED = {'os_inspection_status': 'failed',
          'os_inspection_reason': 'inspection deadline'}


def licensed(attributes, vcpus):
    """[(product, edition, licensed cores)], by hand from the billing
    guide (doc/source/billing.rst: per-VM minimums; RHEL per VM; failed
    as a pseudo product); None for no attributes."""
    if not attributes:
        return [('(no OS attributes)', '', vcpus)]
    if attributes['os_inspection_status'] == 'failed':
        return [('(failed)', '', vcpus)]
    if attributes['os_family'] == 'linux':
        return [('RHEL', '', vcpus)]
    found = [('Windows Server', attributes['os_edition'],
              max(vcpus, WIN_MIN))]
    if attributes.get('sql_server_edition'):
        found.append(('SQL Server', attributes['sql_server_edition'],
                      max(vcpus, SQL_MIN)))
    return found


@dataclasses.dataclass
class Plan:
    name: str
    project: str
    vcpus: int
    attributes: dict
    first_second: int = 0            # relative to the period start
    last_second: int = MONTH         # excluded
    missing: tuple = ()              # seconds without a measure
    changes: tuple = ()              # ((day, attributes), ...)
    deleted_day: float = None
    rid: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    revisions: list = dataclasses.field(default_factory=list)


def make_plans():
    run = uuid.uuid4().hex[:8]
    small, big = 'small-' + run, 'big-' + run
    plans = [
        Plan('upgraded', small, 2, WIN_STD, changes=((15, WIN_DC),)),
        Plan('deleted', small, 4, RHEL, last_second=10 * DAY,
             deleted_day=9.5),
        Plan('failed', small, 2, FAILED, changes=((5, WIN_STD),)),
        Plan('bare', small, 1, {}, first_second=3 * DAY,
             last_second=8 * DAY),
    ]
    for k in range(200):
        attributes = WIN_SQL if k % 4 == 1 else WIN_STD
        vcpus = 12 if k % 4 == 0 else 2
        missing = ()
        if k % 10 == 3:
            missing = (20, 21)             # 2 s: still running
        elif k % 10 == 7:
            missing = (24, 25, 26, 27)     # 4 s: not running
        plans.append(Plan('vm-%03d' % k, big, vcpus, attributes,
                          first_second=(k % 30) * DAY, missing=missing))
    return plans


# -- Gnocchi through its API ------------------------------------------------

def api(services, method, path, body=None,
        content_type='application/json'):
    headers = dict(services.gnocchi_headers())
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers['Content-Type'] = content_type
    request = urllib.request.Request(services.gnocchi_url + path, data=data,
                                     headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
    except urllib.error.HTTPError as exc:
        raise AssertionError('%s %s: %s %s' % (method, path, exc.code,
                                               exc.read()[:500]))
    return json.loads(text) if text else None


def epoch(text):
    from ceilometer_os_pollster.commands import gnocchi_history
    return gnocchi_history.epoch(text)


def iso(seconds):
    from ceilometer_os_pollster.commands import gnocchi_history
    return gnocchi_history.iso(seconds)


def prepare_gnocchi(services):
    services.ceilometer_upgrade(billing.agent_bin())
    services.run_script(RESOURCE_TYPE_SCRIPT, 'gnocchi')
    policies = {p['name'] for p in api(services, 'GET',
                                       '/v1/archive_policy')}
    if POLICY not in policies:
        # Ceilometer's 300 s granularity, compressed to 1 s
        api(services, 'POST', '/v1/archive_policy', {
            'name': POLICY, 'aggregation_methods': ['mean'],
            'definition': [{'granularity': '1s', 'timespan': '1 day'}]})


def create(services, plan):
    body = {'id': plan.rid, 'project_id': plan.project, 'user_id': 'u',
            'display_name': plan.name, 'flavor_id': 'f%d' % plan.vcpus,
            'flavor_name': 'f%d' % plan.vcpus,
            'metrics': {METER: {'archive_policy_name': POLICY}}}
    body.update(plan.attributes)
    made = api(services, 'POST', '/v1/resource/instance', body)
    plan.revisions.append((epoch(made['revision_start']), plan.attributes))
    return made['metrics'][METER]


def measured_seconds(plan):
    return [s for s in range(plan.first_second, plan.last_second)
            if s not in plan.missing]


@dataclasses.dataclass
class World:
    plans: list
    start: float
    end: float
    services: object


@pytest.fixture(scope='module')
def world(billing_services):
    services = billing_services
    prepare_gnocchi(services)
    plans = make_plans()
    metrics = {plan.rid: create(services, plan) for plan in plans}
    start = float(math.ceil(time.time()) + 1)
    end = start + MONTH
    events = sorted(
        [(day, 'change', plan, attrs) for plan in plans
         for day, attrs in plan.changes] +
        [(plan.deleted_day, 'delete', plan, None) for plan in plans
         if plan.deleted_day is not None], key=lambda e: e[0])
    for day, kind, plan, attributes in events:
        time.sleep(max(0.0, start + day * DAY - time.time()))
        if kind == 'change':
            made = api(services, 'PATCH', '/v1/resource/instance/%s'
                       % plan.rid, attributes)
            plan.revisions.append((epoch(made['revision_start']),
                                   attributes))
        else:
            api(services, 'PATCH', '/v1/resource/instance/%s' % plan.rid,
                {'ended_at': datetime.datetime.fromtimestamp(
                    start + day * DAY, datetime.timezone.utc).isoformat()})
    time.sleep(max(0.0, end - time.time()))
    # back-dated measures, as the publisher would have written them
    batch = {metrics[plan.rid]: [
        {'timestamp': iso(start + s), 'value': plan.vcpus}
        for s in measured_seconds(plan)] for plan in plans}
    api(services, 'POST', '/v1/batch/metrics/measures', batch)
    for metric in batch:
        api(services, 'GET', '/v1/metric/%s/measures?refresh=true'
            % metric)
    yield World(plans, start, end, services)


# -- the independent computation: second by second --------------------------

def running_slots(plan, world):
    """[(slot start, slot end)] of running time: a measured second, or
    a second inside a gap of at most MAX_GAP between measured ones;
    cut at ended_at and the period."""
    measured = measured_seconds(plan)
    running = set(measured)
    for before, after in zip(measured, measured[1:]):
        if after - before - 1 <= MAX_GAP:
            running.update(range(before + 1, after))
    stop = plan.deleted_day * DAY if plan.deleted_day is not None \
        else MONTH
    return [(world.start + s, world.start + min(s + 1, stop))
            for s in sorted(running) if 0 <= s < stop]


def pieces(plan, world):
    """[(start, end, attributes)]: running slots cut at the revision
    times Gnocchi gave."""
    revisions = sorted(plan.revisions)
    found = []
    for lo, hi in running_slots(plan, world):
        for index, (since, attributes) in enumerate(revisions):
            until = (revisions[index + 1][0] if index + 1 < len(revisions)
                     else math.inf)
            since = -math.inf if index == 0 else since
            a, b = max(lo, since), min(hi, until)
            if b > a:
                found.append((a, b, attributes))
    return found


def expected(world, projects):
    """{(project, product, edition): figures} for ``projects`` and the
    same figures over all of them under project '*'."""
    sums, cores_at = {}, []
    for plan in world.plans:
        if plan.project not in projects:
            continue
        seen = set()
        for a, b, attributes in pieces(plan, world):
            for product, edition, cores in licensed(attributes,
                                                    plan.vcpus):
                for project in (plan.project, '*'):
                    key = (project, product, edition)
                    s = sums.setdefault(key, [set(), 0.0, 0.0, 0.0])
                    s[0].add(plan.rid)
                    s[1] += b - a
                    s[2] += (b - a) * plan.vcpus
                    s[3] += (b - a) * cores
                    cores_at.append((key, a, b, cores))
                    seen.add(key)
    moments = sorted({t for _, a, b, _ in cores_at for t in (a, b)})
    middles = [(x + y) / 2 for x, y in zip(moments, moments[1:])]
    by_key = {}
    for key, a, b, cores in cores_at:
        by_key.setdefault(key, []).append((a, b, cores))
    hours = MONTH / 3600.0
    figures = {}
    for key, (rids, vm, vcpu, lic) in sums.items():
        peak = max(sum(c for a, b, c in by_key[key] if a <= t < b)
                   for t in middles)
        figures[key] = {'instances': len(rids), 'vm_hours': vm / 3600,
                        'vcpu_hours': vcpu / 3600,
                        'licensed_core_hours': lic / 3600,
                        'peak_licensed_cores': peak,
                        'average_licensed_cores': lic / 3600 / hours}
    return figures


# -- running the command ----------------------------------------------------

def gnocchi_env(world):
    return {'OS_AUTH_TYPE': 'gnocchi-basic',
            'GNOCCHI_ENDPOINT': world.services.gnocchi_url,
            'GNOCCHI_USER': billing.GNOCCHI_USER}


def report_args(world, *extra):
    return ['licence-report', '--start', iso(world.start), '--end',
            iso(world.end), '--max-gap', str(MAX_GAP),
            '--page-size', '37'] + list(extra)


@pytest.fixture(scope='module')
def report(world):
    patch = pytest.MonkeyPatch()
    for name in list(os.environ):
        if name.startswith('OS_'):
            patch.delenv(name)
    for name, value in gnocchi_env(world).items():
        patch.setenv(name, value)
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        code = cli.main(report_args(world, '--format', 'json'),
                        stdout=out, stderr=err)
    finally:
        patch.undo()
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue()), err.getvalue()


def projects_of(world):
    return {plan.project for plan in world.plans}


def test_figures_per_project_product_and_edition(world, report):
    doc, _ = report
    mine = projects_of(world)
    want = expected(world, mine)
    got = {(line['project_id'], line['product'], line['edition']): line
           for line in doc['lines'] if line['project_id'] in mine}
    assert set(got) == {k for k in want if k[0] != '*'}
    for key, figures in want.items():
        if key[0] == '*':
            continue
        line = got[key]
        assert line['instances'] == figures['instances'], key
        assert line['peak_licensed_cores'] == \
            figures['peak_licensed_cores'], key
        for name in ('vm_hours', 'vcpu_hours', 'licensed_core_hours',
                     'average_licensed_cores'):
            assert line[name] == pytest.approx(figures[name], abs=2e-6), \
                (key, name)


def test_the_200_instance_project_and_the_cloud_lines(world, report):
    doc, _ = report
    mine = projects_of(world)
    want = expected(world, mine)
    big = next(p.project for p in world.plans if p.name == 'vm-000')
    std = want[(big, 'Windows Server', 'Standard')]
    assert std['instances'] == 200
    # every instance runs at the end of the month: 50 x 12 + 150 x 8
    assert std['peak_licensed_cores'] == 50 * 12 + 150 * WIN_MIN
    assert want[(big, 'SQL Server', 'Enterprise')][
        'peak_licensed_cores'] == 50 * SQL_MIN
    # the cloud lines: mine plus whatever other tests left in Gnocchi
    others = [line for line in doc['lines']
              if line['project_id'] not in mine | {'*'}]
    cloud = {(line['product'], line['edition']): line
             for line in doc['lines'] if line['project_id'] == '*'}
    for (project, product, edition), figures in want.items():
        if project != '*':
            continue
        line = cloud[(product, edition)]
        extra = [o for o in others
                 if (o['product'], o['edition']) == (product, edition)]
        for name in ('vm_hours', 'licensed_core_hours'):
            assert line[name] == pytest.approx(
                figures[name] + sum(o[name] for o in extra), abs=1e-5)
        assert line['instances'] == figures['instances'] + sum(
            o['instances'] for o in extra)
        # a peak of a sum is at least the peak of a part
        assert line['peak_licensed_cores'] >= figures['peak_licensed_cores']
        if not extra:
            assert line['peak_licensed_cores'] == \
                figures['peak_licensed_cores']


def test_revenue_risks(world, report):
    doc, err = report
    by_name = {plan.name: plan for plan in world.plans}
    mine = {plan.rid for plan in world.plans}
    risks = {(r['kind'], r['name']): r for r in doc['risks']
             if r['resource_id'] in mine}
    assert set(risks) == {('os-changed', 'upgraded'),
                          ('status', 'failed'),
                          ('no-os-attributes', 'bare')}
    upgraded = by_name['upgraded']
    # printed to the second
    assert epoch(risks[('os-changed', 'upgraded')]['at']) == \
        math.floor(upgraded.revisions[1][0])
    assert risks[('os-changed', 'upgraded')]['resource_id'] == upgraded.rid
    failed = by_name['failed']
    failed_time = sum(b - a for a, b, attrs in pieces(failed, world)
                      if attrs is FAILED)
    share = failed_time / sum(b - a for a, b, _ in pieces(failed, world))
    assert share > 0.1
    assert risks[('status', 'failed')]['share'] == pytest.approx(
        share, abs=1e-6)
    assert risks[('no-os-attributes', 'bare')]['hours'] == pytest.approx(
        5 * DAY / 3600, abs=1e-6)
    assert 'instances' in err
    # the test policy keeps a day: the whole period is there
    assert doc['warnings'] == []


def test_the_installed_command_prints_the_table(world):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('OS_')}
    env.update(gnocchi_env(world))
    proc = subprocess.run(
        [sys.executable, '-m', 'ceilometer_os_pollster.commands.cli'] +
        report_args(world, '--quiet'), env=env, capture_output=True,
        text=True, timeout=300)
    assert (proc.returncode, proc.stderr) == (0, '')
    big = next(p.project for p in world.plans if p.name == 'vm-000')
    rows = [re.split(r'  +', line) for line in proc.stdout.splitlines()]
    row = next(r for r in rows if r[:3] == [big, 'Windows Server',
                                            'Standard'])
    assert row[3] == '200'
    assert 'Revenue risks' in proc.stdout
    assert 'upgraded' in proc.stdout
