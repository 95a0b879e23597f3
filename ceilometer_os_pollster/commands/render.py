"""What the ``ceilometer-os-pollster`` command prints (pure).

Owns the command's renderings of records and cache entries: the
``--json`` list items, progress lines, tables, ``cache list`` rows and
the ``cache show`` document.  Plain values in, text or JSON-ready data
out; the one-line summary of a record is the record's own
(``OSRecord.summary``), shared with the agent's log lines.
"""

import datetime

from ceilometer_os_pollster import record as record_mod

# Keys of one --json item before the record's metadata keys.
JSON_ID_KEYS = ('resource_id', 'project_id', 'user_id', 'vcpus')


def json_item(info, record):
    """One --json list item: ids, vCPUs, then the sample metadata."""
    item = {'resource_id': info.uuid, 'project_id': info.project_id,
            'user_id': info.user_id, 'vcpus': info.vcpus}
    item.update(record.metadata())
    return item


def progress_line(index, total, name, record, inspected=True):
    """'[2/5] instance-00000002 ... ok (41 s)' for stderr; '(cached)'
    instead of the duration for a record served without inspecting."""
    took = ('%d s' % round(record.duration)) if inspected else 'cached'
    line = '[%d/%d] %s ... %s (%s)' % (index, total, name, record.status,
                                       took)
    if record.status != record_mod.STATUS_OK and record.reason:
        line += ': ' + record.reason
    return line


def format_table(headers, rows):
    """Left-aligned columns separated by two spaces."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows])
              for i, h in enumerate(headers)]
    lines = [headers] + rows
    return '\n'.join('  '.join(cell.ljust(w) for cell, w in
                               zip(line, widths)).rstrip()
                     for line in lines)


INSPECT_HEADERS = ('DOMAIN', 'INSTANCE', 'VCPUS', 'STATUS', 'OS')
CACHE_HEADERS = ('INSTANCE', 'STATUS', 'FAMILY', 'DISTRO', 'OS_INFO',
                 'EDITION', 'INSPECTED_AT', 'EXPIRES')


def _when(seconds):
    """Epoch seconds as ISO 8601 UTC; '' for 0 (never)."""
    if not seconds:
        return ''
    return record_mod.utc_timestamp(
        datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc))


def cache_rows(entries, now):
    """One CACHE_HEADERS row per cache entry; EXPIRES says 'due' once the
    agent would refresh (or retry) the record."""
    rows = []
    for entry in entries:
        rec = entry.record
        expires = _when(entry.expires_at)
        if entry.expires_at and now >= entry.expires_at:
            expires += ' (due)'
        rows.append((rec.instance_id, rec.status, rec.os_family,
                     rec.os_distro, rec.os_info, rec.os_edition or '-',
                     rec.inspected_at or '-', expires or '-'))
    return rows


def entry_document(entry):
    """``cache show``: the whole entry, times as ISO 8601 UTC."""
    return {
        'instance_id': entry.record.instance_id,
        'record': entry.record.to_dict(),
        'metadata': entry.record.metadata(),
        'expires_at': _when(entry.expires_at) or None,
        'failures': entry.failures,
        'retry_at': _when(entry.retry_at) or None,
        'last_seen': _when(entry.last_seen) or None,
    }
