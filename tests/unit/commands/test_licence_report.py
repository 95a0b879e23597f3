"""licence-report's reader (on a fake Gnocchi adapter), renderings and
CLI glue; the counting itself is in test_licence_periods.py."""

import csv
import datetime
import io
import json
import math

import pytest

from ceilometer_os_pollster.commands import cli
from ceilometer_os_pollster.commands import gnocchi_history as gh
from ceilometer_os_pollster.commands import licence_cli
from ceilometer_os_pollster.commands import licence_periods as lp
from ceilometer_os_pollster.commands import licence_render


def ts(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).isoformat()


class Response:
    def __init__(self, body, status=200, link=None):
        self.status_code = status
        self.reason = 'OK' if status < 400 else 'Bad'
        self._body = body
        self.text = json.dumps(body)
        self.headers = {'Link': link} if link else {}

    def json(self):
        return self._body


class FakeGnocchi:
    """Serves ``items`` (current resources) paged by id, each one's
    ``history`` for a history search, and measures, with Gnocchi 4.7's
    quirk: a page with details comes in no particular order.  Records
    every request."""

    def __init__(self, items, measures=None, history=None,
                 timespan='90 days, 0:00:00'):
        self.timespan = timespan
        self.items = sorted(items, key=lambda i: i['id'])
        self.measures = measures or {}
        self.history = history or {}
        self.requests = []

    def request(self, path, method, raise_exc=True, params=None, json=None):
        self.requests.append((method, path, params, json))
        if path.startswith('/v1/search/'):
            params = dict(params)
            limit = int(params['limit'])
            if params.get('history') == 'true':
                rid = json['and'][0]['=']['id']
                return Response(self.history[rid][::-1][:limit])
            ids = [i['id'] for i in self.items]
            start = (ids.index(params['marker']) + 1
                     if 'marker' in params else 0)
            return Response(self.items[start:start + limit][::-1])
        metric = path.split('/')[3]
        if not path.endswith('/measures'):
            return Response({'archive_policy': {'definition': [
                {'granularity': '1:00:00', 'timespan': '365 days, 0:00:00'},
                {'granularity': '0:05:00', 'timespan': self.timespan}]}})
        if metric not in self.measures:
            return Response({'description': 'no such metric'}, 404)
        return Response(self.measures[metric])


def item(rid, start, end=None, metric='m-', **attributes):
    base = {'id': rid, 'revision_start': ts(start),
            'revision_end': None if end is None else ts(end),
            'project_id': 'p', 'display_name': 'vm-' + rid,
            'ended_at': None, 'metrics': {gh.METER: metric + rid}}
    base.update(attributes)
    return base


def test_resources_are_paged_and_only_changed_ones_read_history():
    # 'a' changed during the period [100, 200): its history is read
    history_a = [item('a', 50, 150), item('a', 150)]
    items = [item('c', 10), history_a[-1], item('d', 0), item('b', 0)]
    fake = FakeGnocchi(items, history={'a': history_a})
    got = [(rid, metric, [r.start for r in revs]) for rid, metric, revs in
           gh.Reader(fake, page_size=3).revisions(100, 200)]
    assert got == [('a', 'm-a', [50, 150]), ('b', 'm-b', [0]),
                   ('c', 'm-c', [10]), ('d', 'm-d', [0])]
    searches = [r for r in fake.requests if ('history', 'true')
                not in r[2]]
    histories = [r for r in fake.requests if ('history', 'true') in r[2]]
    assert len(searches) == 2 and len(histories) == 1
    method, path, params, query = searches[1]
    assert (method, path) == ('POST', '/v1/search/resource/instance')
    # the marker is the greatest id of the page, whatever its order
    assert ('marker', 'c') in params and ('sort', 'id:asc') in params
    assert query == gh.resources_query(100, 200)
    assert histories[0][3] == gh.history_query('a', 100, 200)


def test_ended_at_is_the_current_resources():
    # deleted at 190, the deletion reached Gnocchi after the period
    history = [item('a', 0, 150), item('a', 150, 250)]
    current = item('a', 250, ended_at=gh.iso(190))
    fake = FakeGnocchi([current], history={'a': history})
    ((_, _, revisions),) = gh.Reader(fake).revisions(100, 200)
    assert [(r.start, r.ended_at) for r in revisions] == [(0, 190),
                                                          (150, 190)]


def test_a_history_larger_than_a_page_is_refused():
    history = [item('a', 150 + i) for i in range(3)]
    fake = FakeGnocchi([history[-1]], history={'a': history})
    with pytest.raises(gh.GnocchiError, match='--page-size'):
        list(gh.Reader(fake, page_size=3).revisions(100, 200))


def test_revision_of_reads_times_and_cleans_tenant_text():
    revision = gh.revision_of(item(
        'a', 0, 3600, display_name='evil\x1b[31m\nname',
        ended_at='2026-12-01T00:00:00', os_edition='Standard',
        os_inspection_status='ok', flavor_name='big'))
    assert (revision.start, revision.end) == (0, 3600)
    assert revision.name == 'evil name'
    assert revision.ended_at == datetime.datetime(
        2026, 12, 1, tzinfo=datetime.timezone.utc).timestamp()
    assert revision.attributes == {'os_edition': 'Standard',
                                   'os_inspection_status': 'ok'}
    assert gh.revision_of(item('a', 0)).end == math.inf


def test_measures_take_the_finest_granularity_unless_told():
    rows = [[ts(0), 3600.0, 4.0], [ts(0), 300.0, 2.0],
            [ts(300), 300.0, 2.0], [ts(600), 300.0, None]]
    assert gh.measures_of(rows) == [lp.Measure(0, 300.0, 2.0),
                                    lp.Measure(300, 300.0, 2.0)]
    assert gh.measures_of(rows, 3600.0) == [lp.Measure(0, 3600.0, 4.0)]
    assert gh.measures_of([]) == []


def test_measures_are_asked_from_max_gap_before_the_period():
    fake = FakeGnocchi([], {'m': [[ts(0), 300.0, 2.0]]})
    assert gh.Reader(fake).measures('m', 7200, 10800, 3600) == [
        lp.Measure(0, 300.0, 2.0)]
    _, path, params, _ = fake.requests[0]
    assert path == '/v1/metric/m/measures'
    assert params == {'start': gh.iso(3600), 'stop': gh.iso(10800),
                      'aggregation': 'mean'}


def test_a_refusal_names_the_request():
    fake = FakeGnocchi([])
    with pytest.raises(gh.GnocchiError, match='404 .* /v1/metric/zz'):
        gh.Reader(fake).measures('zz', 0, 1, 0)


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


@pytest.mark.parametrize('text, seconds', [
    ('0:05:00', 300.0), ('30 days, 0:00:00', 30 * 86400.0),
    ('1 day, 1:00:01.5', 90001.5), ('0:00:01', 1.0)])
def test_gnocchi_time_spans(text, seconds):
    assert gh.seconds(text) == seconds


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
