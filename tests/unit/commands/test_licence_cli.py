"""licence-report's command (licence_cli): the period, and the command
end to end on a fake Gnocchi adapter with its renderings (table, CSV,
JSON; licence_render) and keystoneauth options."""

import csv
import datetime
import io
import json

import pytest

from ceilometer_os_pollster.commands import cli
from ceilometer_os_pollster.commands import licence_cli
from ceilometer_os_pollster.commands import licence_periods as lp
from ceilometer_os_pollster.commands import licence_render
from tests.helpers import FakeGnocchi
from tests.helpers import gnocchi_item as item
from tests.helpers import gnocchi_time as ts


# -- the period -----------------------------------------------------------

def utc(*args):
    return datetime.datetime(*args, tzinfo=datetime.timezone.utc)\
        .timestamp()


@pytest.mark.parametrize('month, start, end', [
    ('2026-12', utc(2026, 12, 1), utc(2027, 1, 1)),
    ('2028-02', utc(2028, 2, 1), utc(2028, 3, 1)),
])
def test_month_is_the_calendar_month_in_utc(month, start, end):
    assert licence_cli.period(month) == (start, end)
    assert end - start in (29 * 86400, 31 * 86400)


def test_start_and_end_are_iso_utc_unless_an_offset_is_given():
    assert licence_cli.period(None, '2026-12-01T00:00:00',
                              '2026-12-01T02:00:00+01:00') == (
        utc(2026, 12, 1), utc(2026, 12, 1, 1))


@pytest.mark.parametrize('month, start, end, message', [
    ('2026-13', None, None, 'YYYY-MM'),
    ('2026-12', '2026-12-01', None, 'not both'),
    (None, '2026-12-01', None, 'both --start and --end'),
    (None, '2026-12-02', '2026-12-01', 'after'),
    (None, 'yesterday', '2026-12-01', 'ISO 8601'),
])
def test_bad_periods_say_why(month, start, end, message):
    with pytest.raises(licence_cli.PeriodError, match=message):
        licence_cli.period(month, start, end)


# -- the command, end to end on the fake ----------------------------------

H = 3600.0
START = utc(2026, 11, 1)


def cloud():
    up = [item('up', START - H, START + 10 * 24 * H,
               os_inspection_status='ok', os_family='windows',
               os_edition='Standard'),
          item('up', START + 10 * 24 * H, os_inspection_status='ok',
               os_family='windows', os_edition='Datacenter')]
    items = [item('bare', START), up[-1]]
    measures = {
        'm-up': [[ts(START + i * 300), 300.0, 2.0]
                 for i in range(30 * 24 * 12)],
        'm-bare': [[ts(START), 300.0, 1.0]],
    }
    return FakeGnocchi(items, measures, history={'up': up})


def run(*argv, timespan='90 days, 0:00:00'):
    fake = cloud()
    fake.timespan = timespan
    args = cli.build_parser(['licence-report']).parse_args(
        ['licence-report', '--month', '2026-11'] + list(argv))
    out, err = io.StringIO(), io.StringIO()
    code, message = licence_cli.run(args, out, err,
                                    make_adapter=lambda args: fake)
    return code, message, out.getvalue(), err.getvalue()


def test_json_rows_and_risks():
    code, message, out, err = run('--format', 'json')
    assert (code, message) == (0, None)
    doc = json.loads(out)
    assert doc['period'] == {'start': '2026-11-01T00:00:00+00:00',
                             'end': '2026-12-01T00:00:00+00:00',
                             'hours': 720.0}
    rows = {(r['project_id'], r['product'], r['edition']): r
            for r in doc['lines']}
    assert rows[('p', 'Windows Server', 'Datacenter')] == {
        'project_id': 'p', 'product': 'Windows Server',
        'edition': 'Datacenter', 'instances': 1, 'vm_hours': 480.0,
        'vcpu_hours': 960.0, 'licensed_core_hours': 3840.0,
        'peak_licensed_cores': 8,
        'average_licensed_cores': round(3840 / 720.0, 6)}
    assert rows[('p', '(no OS attributes)', '')]['vm_hours'] == \
        round(300 / H, 6)
    kinds = {(r['kind'], r['resource_id'], r['name']) for r in doc['risks']}
    assert kinds == {('os-changed', 'up', 'vm-up'),
                     ('no-os-attributes', 'bare', 'vm-bare')}
    changed = [r for r in doc['risks'] if r['kind'] == 'os-changed'][0]
    assert changed['at'] == '2026-11-11T00:00:00+00:00'
    assert 'instances, ' in err
    assert doc['warnings'] == []


def test_a_period_gnocchi_no_longer_keeps_is_flagged():
    # ceilometer-low keeps 30 days: November is gone in part by now
    code, _, out, err = run('--format', 'json', timespan='30 days, 0:00:00')
    assert code == 0
    (warning,) = json.loads(out)['warnings']
    assert 'UNDER-COUNTED' in warning and '300 s granularity' in warning
    assert 'WARNING: ' + warning in err


def test_retention_warning_only_when_the_start_is_gone():
    settings = lp.Settings(1000.0, 2000.0)
    assert licence_cli.retention_warning(300, 500, settings, now=1400) \
        is None
    assert 'UNDER-COUNTED' in licence_cli.retention_warning(
        300, 500, settings, now=1600)


def test_csv_has_the_json_keys_then_the_risks():
    code, _, out, _ = run('--format', 'csv', '--quiet')
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == list(licence_render.LINE_KEYS)
    blank = rows.index([])
    assert rows[blank + 1] == list(licence_render.RISK_KEYS)
    assert len(rows) - blank - 2 == 2
    assert {r[1] for r in rows[1:blank]} == {
        'Windows Server', '(no OS attributes)'}


def test_table_by_default_and_quiet_means_no_stderr():
    code, _, out, err = run('--quiet', '--risk-share', '0.5')
    assert (code, err) == (0, '')
    assert out.startswith('Licences from 2026-11-01T00:00:00+00:00 to '
                          '2026-12-01T00:00:00+00:00 (720.00 hours)')
    assert 'LICENSED CORE-HOURS' in out and 'Revenue risks' in out
    assert '3840.00' in out


def test_bad_arguments_are_usage_errors():
    assert run('--risk-share', '2')[:2] == (
        2, '--risk-share must be between 0 and 1')
    code, message, _, _ = run('--start', '2026-11-01')
    assert code == 2 and 'not both' in message


def test_the_command_is_declared_with_keystoneauth_options(monkeypatch):
    monkeypatch.setenv('OS_AUTH_TYPE', 'gnocchi-basic')
    monkeypatch.setenv('GNOCCHI_ENDPOINT', 'http://gnocchi:8041')
    monkeypatch.setenv('GNOCCHI_USER', 'billing')
    argv = ['licence-report', '--month', '2026-11']
    args = cli.build_parser(argv).parse_args(argv)
    assert (args.os_auth_type, args.os_endpoint, args.os_user) == (
        'gnocchi-basic', 'http://gnocchi:8041', 'billing')
    adapter = licence_cli.adapter(args)
    assert adapter.get_endpoint() == 'http://gnocchi:8041'
