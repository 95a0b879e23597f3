"""prometheus: how long an instance stays unverified, from the records
the pollster serves (pure parts; the export is in test_pollster.py)."""

import pytest

from ceilometer_os_pollster.agent import prometheus
from tests.helpers import status_record

T0 = 1_800_000_000.0


@pytest.mark.parametrize('since, status, inspected_at, expected', [
    (None, 'ok', None, None),
    (T0 - 50, 'ok', None, None),                # verified: the time ends
    (None, 'pending', None, T0),                # counted from now
    (None, 'failed', T0 - 600, T0 - 600),       # from the inspection
    (None, 'unknown', T0 - 60, T0 - 60),
    (None, 'encrypted', T0 - 7, T0 - 7),
    (None, 'failed', T0 + 3600, T0),            # never in the future
    (T0 - 900, 'failed', T0 - 60, T0 - 900),    # runs on over retries
    (T0 - 900, 'unknown', T0 - 60, T0 - 900),   # and status changes
])
def test_unverified_since(since, status, inspected_at, expected):
    assert prometheus.unverified_since(
        since, status_record(status, inspected_at), T0) == expected


@pytest.mark.parametrize('status', ['ok', 'pending', 'failed', 'encrypted'])
def test_label_values_are_the_ids_then_the_info_metadata(status):
    rec = status_record(status, T0 - 60).replace(
        os_family='windows', os_version_major=10, os_edition='Datacenter',
        sql_server_edition='Enterprise')
    metadata = rec.metadata()
    values = prometheus.label_values('i-1', 'p-1', None, rec)
    assert len(values) == len(prometheus.LABELS)
    assert values == ('i-1', 'p-1', '') + tuple(
        str(metadata[k]) for k in prometheus.INFO_KEYS)
    # What changes by itself never becomes a label.
    assert not {rec.inspected_at, rec.reason} & set(values) - {''}


def test_unverified_rows_forget_verified_and_gone_instances():
    since = {'a': T0 - 100, 'b': T0 - 100, 'gone': T0 - 100}
    observed = [('a', 'p', 'u', status_record('failed', T0 - 10)),
                ('b', 'p', 'u', status_record('ok')),
                ('c', 'p', None, status_record('pending'))]
    since, rows = prometheus.unverified_rows(since, observed, T0)
    assert since == {'a': T0 - 100, 'c': T0}
    assert rows == [(('a', 'p', 'u', 'failed'), 100.0),
                    (('c', 'p', '', 'pending'), 0.0)]
