"""The renderings of a licence report: table, CSV and JSON (pure).

Owns the column names and rounding; the figures come from
licence_periods.Totals and its risks.  One list of keys (LINE_KEYS,
RISK_KEYS) names the JSON fields and the CSV columns, so a figure is
added in one place.
"""

import csv
import io
import json

from ceilometer_os_pollster.commands import gnocchi_history
from ceilometer_os_pollster.commands import licence_periods
from ceilometer_os_pollster.commands import render

LINE_KEYS = ('project_id', 'product', 'edition', 'instances', 'vm_hours',
             'vcpu_hours', 'licensed_core_hours', 'peak_licensed_cores',
             'average_licensed_cores')
LINE_HEADERS = ('PROJECT', 'PRODUCT', 'EDITION', 'INSTANCES', 'VM-HOURS',
                'VCPU-HOURS', 'LICENSED CORE-HOURS', 'PEAK CORES',
                'AVERAGE CORES')
RISK_KEYS = ('kind', 'resource_id', 'name', 'project_id', 'at', 'share',
             'hours', 'detail')
RISK_HEADERS = ('RISK', 'RESOURCE', 'NAME', 'PROJECT', 'WHEN', 'SHARE',
                'HOURS', 'DETAIL')
# JSON and CSV are for programs: hours to the 1/1000000 (3.6 ms), so
# that sums over thousands of lines do not drift; the table shows 2.
DECIMALS = 6


def _figure(value):
    return round(value, DECIMALS) if isinstance(value, float) else value


def line_document(line):
    return {key: _figure(getattr(line, key)) for key in LINE_KEYS}


def risk_document(risk):
    doc = {key: _figure(getattr(risk, key)) for key in RISK_KEYS}
    if risk.at is not None:
        doc['at'] = gnocchi_history.iso(risk.at)
    return doc


def json_text(settings, lines, risks, warnings=()):
    return json.dumps({
        'period': {'start': gnocchi_history.iso(settings.start),
                   'end': gnocchi_history.iso(settings.end),
                   'hours': _figure(settings.hours)},
        'max_gap_seconds': settings.max_gap,
        'risk_share': settings.risk_share,
        'minimums': {
            'windows_server': settings.minimums.windows_server,
            'sql_server': settings.minimums.sql_server},
        'lines': [line_document(line) for line in lines],
        'risks': [risk_document(risk) for risk in risks],
        'warnings': list(warnings),
    }, indent=2) + '\n'


def csv_text(lines, risks):
    """The lines, then after an empty row the risks, each with a header
    row of the JSON keys (a spreadsheet opens both)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(LINE_KEYS)
    for line in lines:
        doc = line_document(line)
        writer.writerow([doc[key] for key in LINE_KEYS])
    writer.writerow([])
    writer.writerow(RISK_KEYS)
    for risk in risks:
        doc = risk_document(risk)
        writer.writerow(['' if doc[key] is None else doc[key]
                         for key in RISK_KEYS])
    return out.getvalue()


def _cell(value, digits=2):
    if value is None:
        return '-'
    if isinstance(value, float):
        return '%.*f' % (digits, value)
    return value or '-'


def table_text(settings, lines, risks, warnings=()):
    rows = [(line.project_id, line.product, line.edition or '-',
             line.instances, _cell(line.vm_hours), _cell(line.vcpu_hours),
             _cell(line.licensed_core_hours), line.peak_licensed_cores,
             _cell(line.average_licensed_cores)) for line in lines]
    risk_rows = [(r.kind, r.resource_id, r.name or '-', r.project_id,
                  gnocchi_history.iso(r.at) if r.at is not None else '-',
                  '-' if r.share is None else '%.0f%%' % (100 * r.share),
                  _cell(r.hours), r.detail) for r in risks]
    parts = ['Licences from %s to %s (%s hours); project "%s" is every '
             'project.' % (gnocchi_history.iso(settings.start),
                           gnocchi_history.iso(settings.end),
                           _cell(settings.hours),
                           licence_periods.ALL_PROJECTS),
             *['WARNING: ' + warning for warning in warnings],
             render.format_table(LINE_HEADERS, rows) if rows
             else '(no running instance in the period)',
             'Revenue risks (status share over %.0f%% of running time, OS '
             'changes, no OS attributes):' % (100 * settings.risk_share),
             render.format_table(RISK_HEADERS, risk_rows) if risk_rows
             else '(none)']
    return '\n\n'.join(parts) + '\n'
