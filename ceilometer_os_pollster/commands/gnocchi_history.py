"""Reading instances' history from Gnocchi's API (I/O).

Owns the requests ``licence-report`` makes, through a keystoneauth
adapter (service type ``metric``): a search of the ``instance``
resources that may have run in the period, paged by id; the history of
those whose attributes changed since the period start; and each
resource's ``compute.instance.os.metadata`` measures for the period at
the finest granularity stored.  Yields one resource at a time as
licence_periods records: memory holds one page of resources and one
resource's revisions and measures, whatever the size of the cloud.
"""

import dataclasses
import datetime
import math
import re

from ceilometer_os_pollster.commands import licence_periods
from ceilometer_os_pollster import sanitize

METER = 'compute.instance.os.metadata'
RESOURCE_TYPE = 'instance'
PAGE_SIZE = 1000


_TIMESPAN_RE = re.compile(r'^(?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)$')


class GnocchiError(Exception):
    """Gnocchi refused or failed a request; the message says which."""


def iso(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S+00:00')


def epoch(text):
    """Gnocchi's ISO 8601 timestamps (naive ones are UTC)."""
    if text is None:
        return math.inf
    moment = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def seconds(text):
    """Seconds of Gnocchi's "30 days, 0:00:00" / "0:05:00" spans."""
    match = _TIMESPAN_RE.match(str(text).strip())
    if not match:
        raise GnocchiError('unexpected time span from Gnocchi: %r' % text)
    days, hours, minutes, secs = match.groups()
    return (int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60
            + float(secs))


def retention(metric):
    """(granularity, timespan) in seconds of the finest archive of a
    metric's policy, as GET /v1/metric/ID shows it."""
    finest = min(metric['archive_policy']['definition'],
                 key=lambda d: seconds(d['granularity']))
    return seconds(finest['granularity']), seconds(finest['timespan'])


def resources_query(start, end):
    """The search filter: resources started before the period's end and
    not ended before its start."""
    return {'and': [
        {'<': {'started_at': iso(end)}},
        {'or': [{'=': {'ended_at': None}},
                {'>': {'ended_at': iso(start)}}]},
    ]}


def history_query(resource_id, start, end):
    """The search filter of one resource's revisions in effect during
    [start, end)."""
    return {'and': [
        {'=': {'id': resource_id}},
        {'<': {'revision_start': iso(end)}},
        {'or': [{'=': {'revision_end': None}},
                {'>': {'revision_end': iso(start)}}]},
    ]}


def revision_of(item):
    """A licence_periods.Revision of one history item.  The name is the
    tenant's and the attributes the guest's: cleaned before printing."""
    return licence_periods.Revision(
        start=epoch(item['revision_start']),
        end=epoch(item.get('revision_end')),
        project_id=sanitize.clean_text(item.get('project_id'), 64),
        name=sanitize.clean_text(item.get('display_name')),
        attributes={k: (None if v is None else sanitize.clean_text(v))
                    for k, v in item.items()
                    if k.startswith('os_') or k == 'sql_server_edition'},
        ended_at=epoch(item.get('ended_at')))


def measures_of(rows, granularity=None):
    """licence_periods.Measure list from Gnocchi's [[time, gran, value]]
    rows: the given granularity, else the finest one present."""
    if not rows:
        return []
    if granularity is None:
        granularity = min(row[1] for row in rows)
    return [licence_periods.Measure(epoch(row[0]), float(row[1]),
                                    float(row[2]))
            for row in rows if row[1] == granularity and row[2] is not None]


class Reader:
    """The requests, over a keystoneauth adapter for Gnocchi."""

    def __init__(self, adapter, page_size=PAGE_SIZE, granularity=None,
                 progress=None):
        self.adapter = adapter
        self.page_size = page_size
        self.granularity = granularity
        self.progress = progress or (lambda resources, revisions: None)

    def _request(self, method, path, **kwargs):
        response = self.adapter.request(path, method,
                                        raise_exc=False, **kwargs)
        if response.status_code >= 400:
            raise GnocchiError('Gnocchi answered %s %s to %s %s: %s' % (
                response.status_code, response.reason, method, path,
                response.text[:500]))
        return response

    def _current(self, start, end):
        """The instance resources that may have run in [start, end), as
        they are now, paged by id.  Gnocchi 4.7 returns the right page
        but, with details, not in the order asked: the marker is the
        page's greatest id."""
        marker = None
        while True:
            params = [('details', 'true'), ('limit', str(self.page_size)),
                      ('sort', 'id:asc')]
            if marker:
                params.append(('marker', marker))
            page = self._request(
                'POST', '/v1/search/resource/%s' % RESOURCE_TYPE,
                params=params, json=resources_query(start, end)).json()
            page.sort(key=lambda item: item['id'])
            yield from page
            if len(page) < self.page_size:
                return
            marker = page[-1]['id']

    def _history(self, resource_id, start, end):
        """The resource's revisions in effect during [start, end), in
        one request (the history marker suffers from the same order
        problem); GnocchiError if a page cannot hold them."""
        page = self._request(
            'POST', '/v1/search/resource/%s' % RESOURCE_TYPE,
            params=[('history', 'true'), ('details', 'true'),
                    ('limit', str(self.page_size))],
            json=history_query(resource_id, start, end)).json()
        if len(page) >= self.page_size:
            raise GnocchiError(
                'instance %s has %d or more attribute revisions in the '
                'period: give a larger --page-size'
                % (resource_id, self.page_size))
        return sorted(map(revision_of, page), key=lambda r: r.start)

    def revisions(self, start, end):
        """(resource id, metric id of METER or None, [Revision in effect
        during the period]) per instance resource.

        A resource's history is asked for only when its current
        revision started after the period start: most instances keep
        their attributes for months.
        """
        resources = revisions = 0
        for item in self._current(start, end):
            current = revision_of(item)
            if current.start <= start:
                found = [current]
            else:
                # ended_at is the resource's, whichever revision set it
                found = [dataclasses.replace(r, ended_at=current.ended_at)
                         for r in self._history(item['id'], start, end)]
            resources += 1
            revisions += len(found)
            self.progress(resources, revisions)
            yield (item['id'], (item.get('metrics') or {}).get(METER),
                   found)

    def retention(self, metric_id):
        """retention() of one metric."""
        return retention(self._request(
            'GET', '/v1/metric/%s' % metric_id).json())

    def measures(self, metric_id, start, end, max_gap):
        """The meter's measures that can count in [start, end): from
        max_gap before start, so a stretch entering the period counts."""
        params = {'start': iso(start - max_gap), 'stop': iso(end),
                  'aggregation': 'mean'}
        if self.granularity:
            params['granularity'] = str(self.granularity)
        rows = self._request('GET', '/v1/metric/%s/measures' % metric_id,
                             params=params).json()
        return measures_of(rows, self.granularity)
