"""licence-report's reader of Gnocchi (gnocchi_history), on a fake
Gnocchi adapter; the counting itself is in test_licence_periods.py."""

import datetime
import math

import pytest

from ceilometer_os_pollster.commands import gnocchi_history as gh
from ceilometer_os_pollster.commands import licence_periods as lp
from tests.helpers import FakeGnocchi
from tests.helpers import gnocchi_item as item
from tests.helpers import gnocchi_time as ts


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


@pytest.mark.parametrize('text, seconds', [
    ('0:05:00', 300.0), ('30 days, 0:00:00', 30 * 86400.0),
    ('1 day, 1:00:01.5', 90001.5), ('0:00:01', 1.0)])
def test_gnocchi_time_spans(text, seconds):
    assert gh.seconds(text) == seconds
