"""The ``ceilometer-os-pollster licence-report`` command (CLI glue).

Owns its arguments (the period, the output format, the counting
settings, and keystoneauth's standard auth, session and endpoint
options and ``OS_*`` environment), the period a ``--month`` or
``--start``/``--end`` names, the progress lines on stderr, and the
loop: each instance read from Gnocchi (gnocchi_history.py) is counted
(licence_periods.py) and forgotten; the report is rendered at the end
(licence_render.py).
"""

import datetime
import os
import time

from ceilometer_os_pollster.families import licences

FORMATS = ('table', 'csv', 'json')
PROGRESS_EVERY = 10.0   # seconds between progress lines

DESCRIPTION = """\
The monthly licence report of the whole cloud, from Gnocchi: per
project, product and edition, the instances, VM-hours, vCPU-hours,
licensed core-hours (per-VM minimums applied), the peak licensed cores
at one moment and their time-weighted average over the period, then
the revenue risks to check before filing.  Read-only.

Gnocchi is reached with the standard OpenStack options and environment
(keystoneauth: OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME,
... and OS_INTERFACE, OS_REGION_NAME; service type "metric").  For
Gnocchi's basic auth: OS_AUTH_TYPE=gnocchi-basic with GNOCCHI_ENDPOINT
and GNOCCHI_USER.  Give passwords in the environment, never as options
(other users can read a command line)."""

EPILOG = """\
how time is counted (billing guide, "Monthly licence report"): a measure of
compute.instance.os.metadata at time t and granularity g means running
during [t, t+g); the time to the next measure counts too if that gap is
at most --max-gap seconds; nothing counts after the resource's ended_at.
Running time is billed as the attribute revision in effect at each
moment; an OS or edition change splits the instance between two lines.
Project "*" lines are the whole cloud (their peak is the peak of the
sum, not a sum of peaks).

exit status: 0 success, 2 usage error or Gnocchi unreachable/refusing,
1 internal error.
"""


class PeriodError(ValueError):
    """A period argument an operator must correct."""


def _utc(text):
    try:
        moment = datetime.datetime.fromisoformat(text.replace('Z',
                                                              '+00:00'))
    except ValueError:
        raise PeriodError('not an ISO 8601 time: %r' % text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def period(month=None, start=None, end=None):
    """(start, end) epoch seconds of --month YYYY-MM (UTC) or of
    --start/--end; PeriodError with the reason otherwise."""
    if month and (start or end):
        raise PeriodError('give --month or --start/--end, not both')
    if month:
        try:
            first = datetime.datetime.strptime(month, '%Y-%m').replace(
                tzinfo=datetime.timezone.utc)
        except ValueError:
            raise PeriodError('--month wants YYYY-MM, not %r' % month)
        following = (first.replace(year=first.year + 1, month=1)
                     if first.month == 12
                     else first.replace(month=first.month + 1))
        return first.timestamp(), following.timestamp()
    if not (start and end):
        raise PeriodError('give --month YYYY-MM, or both --start and --end')
    begin, finish = _utc(start), _utc(end)
    if finish <= begin:
        raise PeriodError('--end must be after --start')
    return begin, finish


def add_minimum_arguments(parser):
    """The per-VM core minimums, as both reports take them."""
    parser.add_argument(
        '--windows-server-min-cores', type=int, metavar='N',
        default=licences.WINDOWS_SERVER_MIN_CORES_PER_VM,
        help='cores counted at least per Windows Server VM (default: '
             '%(default)s)')
    parser.add_argument(
        '--sql-server-min-cores', type=int, metavar='N',
        default=licences.SQL_SERVER_MIN_CORES_PER_VM,
        help='cores counted at least per SQL Server VM (default: '
             '%(default)s)')


def add_parser(commands, argv, formatter, common):
    """The licence-report subcommand on ``commands``; ``argv`` decides
    which auth plugin's options exist (keystoneauth reads
    --os-auth-type / OS_AUTH_TYPE from it)."""
    from keystoneauth1 import loading

    parser = commands.add_parser(
        'licence-report', formatter_class=formatter, epilog=EPILOG,
        help='monthly licence report of the cloud, from Gnocchi',
        description=DESCRIPTION)
    common(parser, suppress=True)
    when = parser.add_argument_group('period (UTC)')
    when.add_argument('--month', metavar='YYYY-MM',
                      help='a calendar month, UTC')
    when.add_argument('--start', metavar='TIME',
                      help='ISO 8601 start (UTC unless an offset is given)')
    when.add_argument('--end', metavar='TIME',
                      help='ISO 8601 end, excluded')
    parser.add_argument('--format', choices=FORMATS, default='table',
                        help='output on stdout (default: %(default)s)')
    parser.add_argument(
        '--max-gap', type=float, metavar='SECONDS', default=3600.0,
        help='a gap between two measures of at most this long counts as '
             'running time; set it to at least the polling interval of '
             'the compute agent (default: %(default)s)')
    parser.add_argument(
        '--risk-share', type=float, metavar='SHARE', default=0.1,
        help='list instances whose status was unknown, failed or '
             'encrypted for more than this share of their running time '
             '(default: %(default)s)')
    parser.add_argument(
        '--granularity', type=float, metavar='SECONDS',
        help='the measures\' granularity to read (default: the finest '
             'one the archive policy stores)')
    parser.add_argument(
        '--page-size', type=int, metavar='N', default=1000,
        help='resource revisions per Gnocchi request (at most Gnocchi\'s '
             '[api] max_limit; default: %(default)s)')
    add_minimum_arguments(parser)
    parser.add_argument('--quiet', action='store_true',
                        help='no progress lines on stderr')
    endpoint = parser.add_argument_group('Gnocchi endpoint')
    endpoint.add_argument(
        '--os-interface', metavar='INTERFACE',
        default=os.environ.get('OS_INTERFACE', 'public'),
        help='catalog interface of Gnocchi (env OS_INTERFACE; default '
             'public)')
    endpoint.add_argument(
        '--os-region-name', metavar='REGION',
        default=os.environ.get('OS_REGION_NAME'),
        help='catalog region of Gnocchi (env OS_REGION_NAME)')
    loading.register_session_argparse_arguments(parser)
    # gnocchiclient's loaders read "password" too: the default of its
    # own CLI when a cloud's rc file sets no OS_AUTH_TYPE
    loading.register_auth_argparse_arguments(parser, argv,
                                             default='password')
    parser.set_defaults(handler='licence-report')
    return parser


def adapter(args):
    """A keystoneauth adapter for Gnocchi from the parsed options."""
    from keystoneauth1 import adapter as adapter_mod
    from keystoneauth1 import loading
    import gnocchiclient.auth  # noqa: F401 (its auth plugins)

    auth = loading.load_auth_from_argparse_arguments(args)
    session = loading.load_session_from_argparse_arguments(args, auth=auth)
    return adapter_mod.Adapter(session, service_type='metric',
                               interface=args.os_interface,
                               region_name=args.os_region_name)


class Progress:
    """One line on stderr every PROGRESS_EVERY seconds, and at the end."""

    def __init__(self, err, enabled, clock=time.monotonic):
        self.err, self.enabled, self.clock = err, enabled, clock
        self.last = clock()
        self.resources = self.revisions = 0

    def __call__(self, resources, revisions, force=False):
        self.resources, self.revisions = resources, revisions
        now = self.clock()
        if self.enabled and (force or now - self.last >= PROGRESS_EVERY):
            self.last = now
            self.err.write('licence-report: %d instances, %d revisions '
                           'read\n' % (resources, revisions))
            self.err.flush()


def retention_warning(granularity, timespan, settings, now):
    """The warning to print when Gnocchi no longer keeps the measures of
    the period's start, else None."""
    kept_since = now - timespan
    if settings.start >= kept_since:
        return None
    from ceilometer_os_pollster.commands import gnocchi_history
    return ('Gnocchi keeps the %s measures (%g s granularity) for %g '
            'days only: those before %s are gone and the period from %s '
            'is UNDER-COUNTED; give the metric an archive policy that '
            'keeps at least two months (billing guide, "Monthly licence '
            'report")'
            % (gnocchi_history.METER, granularity, timespan / 86400.0,
               gnocchi_history.iso(kept_since),
               gnocchi_history.iso(settings.start)))


def compute(reader, settings, progress, now=None):
    """(lines, risks, warnings) over every instance the reader yields."""
    from ceilometer_os_pollster.commands import licence_periods

    now = time.time() if now is None else now
    totals = licence_periods.Totals(settings)
    risks, warnings = [], []
    checked = False
    for resource_id, metric_id, revisions in reader.revisions(
            settings.start, settings.end):
        if metric_id and not checked:
            # Ceilometer gives every instance's meter the same policy
            checked = True
            warning = retention_warning(*reader.retention(metric_id),
                                        settings, now)
            if warning:
                warnings.append(warning)
        measures = (reader.measures(metric_id, settings.start,
                                    settings.end, settings.max_gap)
                    if metric_id and revisions else [])
        risks.extend(licence_periods.account(resource_id, revisions,
                                             measures, settings, totals))
    progress(progress.resources, progress.revisions, force=True)
    risks.sort(key=lambda r: (r.kind, r.project_id, r.resource_id,
                              r.at or 0))
    return totals.lines(), risks, warnings


def run(args, out, err, make_adapter=adapter):
    """The command; returns (exit status, message or None)."""
    from ceilometer_os_pollster.commands import gnocchi_history
    from ceilometer_os_pollster.commands import licence_periods
    from ceilometer_os_pollster.commands import licence_render

    try:
        start, end = period(args.month, args.start, args.end)
    except PeriodError as exc:
        return 2, str(exc)
    if not 0 <= args.risk_share <= 1:
        return 2, '--risk-share must be between 0 and 1'
    if args.max_gap < 0 or args.page_size < 1:
        return 2, '--max-gap must be >= 0 and --page-size >= 1'
    settings = licence_periods.Settings(
        start, end, max_gap=args.max_gap, risk_share=args.risk_share,
        minimums=licences.Minimums(args.windows_server_min_cores,
                                   args.sql_server_min_cores))
    progress = Progress(err, not args.quiet)
    reader = gnocchi_history.Reader(
        make_adapter(args), page_size=args.page_size,
        granularity=args.granularity, progress=progress)
    try:
        lines, risks, warnings = compute(reader, settings, progress)
    except gnocchi_history.GnocchiError as exc:
        return 2, str(exc)
    except Exception as exc:
        # keystoneauth's connection and auth failures
        if type(exc).__module__.startswith('keystoneauth1'):
            return 2, 'cannot reach Gnocchi: %s' % exc
        raise
    for warning in warnings:
        err.write('licence-report: WARNING: %s\n' % warning)
    if args.format == 'json':
        out.write(licence_render.json_text(settings, lines, risks,
                                           warnings))
    elif args.format == 'csv':
        out.write(licence_render.csv_text(lines, risks))
    else:
        out.write(licence_render.table_text(settings, lines, risks,
                                            warnings))
    return 0, None
