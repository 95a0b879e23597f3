"""Reading instances' history from Gnocchi's API (I/O).

Owns the requests ``licence-report`` makes, through a keystoneauth
adapter (service type ``metric``): a paged search of the ``instance``
resources' revisions overlapping the period, sorted by resource id then
revision so that each resource's revisions arrive together, and each
resource's ``compute.instance.os.metadata`` measures for the period at
the finest granularity stored.  Yields one resource at a time as
licence_periods records: memory holds one page of revisions and one
resource's measures, whatever the size of the cloud.
"""

import datetime
import math
import re
import urllib.parse

from ceilometer_os_pollster import licence_periods
from ceilometer_os_pollster import sanitize

METER = 'compute.instance.os.metadata'
RESOURCE_TYPE = 'instance'
PAGE_SIZE = 1000

_MARKER_RE = re.compile(r'<([^>]*)>\s*;\s*rel="next"')


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


def history_query(start, end):
    """The search filter: revisions in effect during [start, end) of
    resources not ended before start."""
    return {'and': [
        {'<': {'revision_start': iso(end)}},
        {'or': [{'=': {'revision_end': None}},
                {'>': {'revision_end': iso(start)}}]},
        {'or': [{'=': {'ended_at': None}},
                {'>': {'ended_at': iso(start)}}]},
    ]}


def next_marker(link_header):
    """The marker of a "Link: <...>; rel=next" header, or None."""
    match = _MARKER_RE.search(link_header or '')
    if not match:
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(
        match.group(1)).query)
    markers = query.get('marker')
    return markers[0] if markers else None


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

    def revisions(self, start, end):
        """(resource id, metric id of METER or None, [Revision]) per
        instance resource, one page of revisions in memory at a time."""
        marker = None
        current, rows, metric = None, [], None
        resources = count = 0
        while True:
            params = [('history', 'true'), ('details', 'true'),
                      ('limit', str(self.page_size)),
                      ('sort', 'id:asc'), ('sort', 'revision_start:asc')]
            if marker:
                params.append(('marker', marker))
            response = self._request(
                'POST', '/v1/search/resource/%s' % RESOURCE_TYPE,
                params=params, json=history_query(start, end))
            page = response.json()
            for item in page:
                if item['id'] != current:
                    if current is not None:
                        yield current, metric, rows
                        resources += 1
                    current, rows, metric = item['id'], [], None
                rows.append(revision_of(item))
                metric = (item.get('metrics') or {}).get(METER) or metric
                count += 1
            self.progress(resources, count)
            marker = next_marker(response.headers.get('Link'))
            if not page or len(page) < self.page_size or not marker:
                break
        if current is not None:
            yield current, metric, rows

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
