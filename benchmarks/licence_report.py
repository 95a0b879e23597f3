"""licence-report's memory and time against the size of the cloud.

A synthetic Gnocchi API (stdlib HTTP server, in this process) makes up
pages on the fly: N instance resources in 500 projects (a third
Windows Server Standard, a third RHEL, a third Windows + SQL Server
Enterprise), every tenth one upgraded to Datacenter in mid-period (so
its history is read), each with ``compute.instance.os.metadata``
measures every 300 s over the period.  It answers the requests the
report makes (resource search paged by id with Gnocchi 4.7's scrambled
page order, history search, measures) and nothing else.

The report runs as a child process, exactly as an operator runs it
(``python -m ceilometer_os_pollster.commands.cli licence-report
--format json``, basic auth through the environment); its peak RSS is
the kernel's (wait4 ru_maxrss).  Each run is checked: the cloud-wide
lines count every instance and the VM-hours the server made up.

Usage: python -m benchmarks.licence_report [--instances 1000,10000,50000]
       [--days 1] [--month-instances 1000]
"""

import argparse
import datetime
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from benchmarks import common

GRANULARITY = 300
PROJECTS = 500
START = datetime.datetime(2026, 11, 1,
                          tzinfo=datetime.timezone.utc).timestamp()
METER = 'compute.instance.os.metadata'
WIN = {'os_inspection_status': 'ok', 'os_family': 'windows',
       'os_distro': 'windows', 'os_edition': 'Standard',
       'os_product_variant': 'Server'}
KINDS = (WIN, {'os_inspection_status': 'ok', 'os_family': 'linux',
               'os_distro': 'rhel'},
         dict(WIN, sql_server_edition='Enterprise'))


def iso(epoch):
    return datetime.datetime.fromtimestamp(
        epoch, datetime.timezone.utc).isoformat()


def rid(index):
    return '%08x-0000-4000-8000-000000000000' % index


class Cloud:
    def __init__(self, instances, days):
        self.instances = instances
        self.end = START + days * common.DAY
        self.upgrade = START + days * common.DAY / 2

    def resource(self, index, current=True):
        attributes = KINDS[index % 3]
        changed = index % 10 == 0
        since = START - common.DAY
        if changed and current:
            attributes = dict(attributes, os_edition='Datacenter')
            since = self.upgrade
        item = {'id': rid(index), 'project_id': 'project-%03d'
                % (index % PROJECTS), 'display_name': 'vm-%d' % index,
                'revision_start': iso(since), 'ended_at': None,
                'revision_end': None if current or not changed
                else iso(self.upgrade),
                'started_at': iso(START - common.DAY),
                'metrics': {METER: 'm-%d' % index}}
        item.update(attributes)
        return item

    def search(self, params, body):
        limit = int(params['limit'][0])
        if params.get('history') == ['true']:
            index = int(body['and'][0]['=']['id'][:8], 16)
            return [self.resource(index), self.resource(index, False)]
        first = (int(params['marker'][0][:8], 16) + 1
                 if 'marker' in params else 0)
        page = [self.resource(i) for i in
                range(first, min(first + limit, self.instances))]
        return page[::-1]     # Gnocchi 4.7 with details: any order

    def measures(self, params):
        begin = max(START, datetime.datetime.fromisoformat(
            params['start'][0]).timestamp())
        t = begin - begin % GRANULARITY
        rows = []
        while t < self.end:
            rows.append([iso(t), float(GRANULARITY), 2.0])
            t += GRANULARITY
        return rows


def serve(cloud):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        # headers and body are two writes: no 40 ms delayed-ACK stall
        disable_nagle_algorithm = True

        def _answer(self, doc):
            data = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get('Content-Length') or 0)
            body = json.loads(self.rfile.read(length) or b'{}')
            self._answer(cloud.search(urllib.parse.parse_qs(url.query),
                                      body))

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if not url.path.endswith('/measures'):
                # the metric itself: a policy keeping two months
                self._answer({'archive_policy': {'definition': [
                    {'granularity': '0:05:00',
                     'timespan': '62 days, 0:00:00'}]}})
                return
            self._answer(cloud.measures(urllib.parse.parse_qs(url.query)))

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_report(instances, days):
    cloud = Cloud(instances, days)
    server = serve(cloud)
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env.update(OS_AUTH_TYPE='gnocchi-basic', GNOCCHI_USER='admin',
               GNOCCHI_ENDPOINT='http://127.0.0.1:%d' % server.server_port)
    argv = [sys.executable, '-m', 'ceilometer_os_pollster.commands.cli',
            'licence-report', '--start', iso(START), '--end',
            iso(cloud.end), '--format', 'json', '--max-gap',
            str(GRANULARITY)]
    began = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err,
                                env=env)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        errors = err.read().decode(errors='replace')
    wall = time.monotonic() - began
    server.shutdown()
    if proc.returncode:
        raise SystemExit('licence-report exited %d:\n%s'
                         % (proc.returncode, errors[-2000:]))
    doc = json.loads(out)
    cloud_lines = [line for line in doc['lines']
                   if line['project_id'] == '*']
    hours = days * 24.0
    # every instance runs the whole period (one per OS line, SQL
    # Server being a second product of the third kind)
    vm_hours = sum(line['vm_hours'] for line in cloud_lines
                   if line['product'] != 'SQL Server')
    correct = (proc.returncode == 0 and
               abs(vm_hours - instances * hours) < 1e-3 * instances and
               len([r for r in doc['risks'] if r['kind'] == 'os-changed'])
               == (instances + 9) // 10)
    return {'instances': instances, 'days': days,
            'measures': instances * int(days * common.DAY / GRANULARITY),
            'peak_rss_kib': usage.ru_maxrss, 'wall_s': wall,
            'cpu_s': usage.ru_utime + usage.ru_stime, 'correct': correct,
            'lines': len(doc['lines']), 'risks': len(doc['risks'])}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks.licence_report')
    parser.add_argument('--instances', default='1000,10000,50000',
                        help='comma-separated cloud sizes')
    parser.add_argument('--days', type=float, default=1.0,
                        help='period of the size runs, in days')
    parser.add_argument('--month-instances', type=int, default=1000,
                        help='instances of the extra run over 30 days '
                             '(0: none)')
    args = parser.parse_args(argv)
    runs = [(int(n), args.days) for n in args.instances.split(',')]
    if args.month_instances:
        runs.append((args.month_instances, 30.0))
    results = []
    for instances, days in runs:
        results.append(run_report(instances, days))
        r = results[-1]
        print('%d instances x %g days: %.1f MiB, %.0f s' % (
            instances, days, r['peak_rss_kib'] / 1024.0, r['wall_s']),
            file=sys.stderr, flush=True)
    print('licence-report against a synthetic Gnocchi: peak RSS of the '
          'report process')
    print(common.table(
        ['instances', 'days', 'measures', 'peak RSS MiB', 'wall s',
         'CPU s', 'lines', 'risks', 'correct'],
        [[r['instances'], '%g' % r['days'], r['measures'],
          '%.1f' % (r['peak_rss_kib'] / 1024.0), '%.0f' % r['wall_s'],
          '%.0f' % r['cpu_s'], r['lines'], r['risks'], r['correct']]
         for r in results]))
    path = common.write_result('licence_report', {'runs': results})
    print('-> %s' % path)
    return 0 if all(r['correct'] for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
