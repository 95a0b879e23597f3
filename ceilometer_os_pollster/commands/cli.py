"""The ``ceilometer-os-pollster`` command: its argument parser, ``main``
and the dispatch to the module that owns each command:

* ``inspect`` (inspect_cli.py): inspect instances now through the same
  engine, record cache and locks as the agent, or (``--cached-only``)
  answer at once from the cache, which is what Ceilometer's dynamic
  pollster runs in the privilege-separated mode (etc/pollsters.d);
* ``cache list|show|forget`` (cache_cli.py);
* ``report`` (report_cli.py): the licence summary (report.py) of the
  host's instances;
* ``licence-report``: the cloud's licences over a period, from Gnocchi
  (licence_cli.py owns it).

The host's domains are listed and chosen in domains.py, the agent's
jobs and records found in records.py, configuration and logging set up
in configuration.py.

Output contract of ``--json``: stdout carries exactly one JSON list and
stderr stays empty except for one line on a fatal error (exit 2 or 3,
and then there is no JSON).  Ceilometer's ``host_command`` merges stderr
into stdout, so a stray log line would make it drop every sample of the
cycle; logs therefore go to ``--log-file`` or nowhere in that mode, and
what C libraries write on fd 2 to /dev/null (stderr_fd.py).
"""

import argparse
import contextlib
import logging
import sys

from ceilometer_os_pollster.commands import cache_cli
from ceilometer_os_pollster.commands import configuration
from ceilometer_os_pollster.commands import domains
from ceilometer_os_pollster.commands import errors
from ceilometer_os_pollster.commands import inspect_cli
from ceilometer_os_pollster.commands import report_cli
from ceilometer_os_pollster.commands import stderr_fd

PROG = errors.PROG

EPILOG = """\
exit status:
  0  success
  1  inspect: at least one reported instance has status "failed";
     cache show/forget: no such record; or an internal error
  2  usage or configuration error (run as root: a cache_dir that
     another user could change, see [os_inspection] cache_dir; or
     inspect without [os_inspection] worker_user, whose instances due
     are recorded "failed", see allow_root_inspection)
  3  libvirt unreachable
"""

INSPECT_EPILOG = """\
DOMAIN is the libvirt name (instance-0000002a) or the UUID of a domain.
--all takes every domain carrying nova metadata, like the agent's
discovery (shut-off ones only with [compute]
report_stopped_instance_metrics = true).

With --json, stdout holds only a JSON list (one object per instance:
resource_id, project_id, user_id, vcpus and every os_* sample metadata
key) and nothing is written to stderr unless the command fails as a
whole (exit 2 or 3); logs go to --log-file if given, else nowhere.

--cached-only never inspects: it answers from the record cache, with
status "pending" for instances not inspected yet.  It is what
Ceilometer's dynamic pollster runs; fill the cache with a periodic
"inspect --all --stale-only" (see the operator guide).  Run as root,
the command uses a cache_dir only if it and every directory above it
are root's alone (/var/lib/ceilometer-os-pollster in the
privilege-separated mode); --cached-only creates, locks and deletes
nothing.

""" + EPILOG


# -- argument parsing -------------------------------------------------

def _common(parser, suppress):
    # Accepted before and after the command; the subcommand copies must
    # not overwrite what was given before it.
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        '--config-file', action='append', metavar='PATH',
        default=default,
        help='configuration file, repeatable (default: the agent\'s '
             'ceilometer.conf, found as oslo.config does). Read: [DEFAULT] '
             'libvirt_uri/libvirt_type, [compute] '
             'report_stopped_instance_metrics, [os_inspection]')
    parser.add_argument(
        '--log-file', metavar='PATH',
        default=default,
        help='append log messages to this file instead of stderr (with '
             '--json: instead of nowhere)')
    parser.add_argument('-v', '--verbose', action='store_true',
                        default=default if suppress else False,
                        help='log INFO messages too')
    parser.add_argument('--debug', action='store_true',
                        default=default if suppress else False,
                        help='log DEBUG messages too')


def build_parser(argv=None):
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=formatter, epilog=EPILOG,
        description='Inspect the guest operating systems of this compute '
                    'node\'s instances\n(read-only, with libguestfs) and '
                    'manage the records the Ceilometer\npollster '
                    'publishes.')
    _common(parser, suppress=False)
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True

    inspect = commands.add_parser(
        'inspect', formatter_class=formatter, epilog=INSPECT_EPILOG,
        help='inspect instances now, or answer from the cache',
        description='Inspect instances now through the agent\'s engine, '
                    'record cache and\nlocks; progress goes to stderr.')
    _common(inspect, suppress=True)
    inspect.add_argument('domains', nargs='*', metavar='DOMAIN',
                         help='libvirt domain name or UUID')
    inspect.add_argument('--all', action='store_true',
                         help='every Nova instance on this host')
    inspect.add_argument('--json', action='store_true',
                         help='print only a JSON list on stdout')
    mode = inspect.add_mutually_exclusive_group()
    mode.add_argument('--cached-only', action='store_true',
                      help='never inspect: report the cached records '
                           '("pending" when there is none), instantly')
    mode.add_argument('--stale-only', action='store_true',
                      help='inspect only instances the agent would '
                           'inspect now (never inspected, disks or image '
                           'changed, record expired, retry due); answer '
                           'the others from the cache')
    inspect.set_defaults(handler='inspect')

    summary = commands.add_parser(
        'report', formatter_class=formatter, epilog=EPILOG,
        help='licence summary of this host, from the cache',
        description='Instances and vCPUs per project, product and edition '
                    '(Windows Server,\nSQL Server, RHEL, SLES, ...) of '
                    'this host\'s Nova instances, from the\nrecord cache '
                    '(never inspects; instances not inspected yet count '
                    'as\n"(pending)").  "WITH MINIMUMS" counts each VM '
                    'at least at its per-VM\ncore minimum, as Microsoft '
                    'licenses them (free editions have none).')
    _common(summary, suppress=True)
    summary.add_argument('--json', action='store_true',
                         help='print a JSON list instead of a table')
    from ceilometer_os_pollster.commands import licence_cli
    licence_cli.add_minimum_arguments(summary)
    summary.set_defaults(handler='report')

    licence_cli.add_parser(commands,
                           sys.argv[1:] if argv is None else argv,
                           formatter, _common)

    cache = commands.add_parser(
        'cache', formatter_class=formatter, epilog=EPILOG,
        help='list, show or forget cached records',
        description='The inspection records in [os_inspection] cache_dir.')
    _common(cache, suppress=True)
    cache_commands = cache.add_subparsers(dest='cache_command',
                                          metavar='ACTION')
    cache_commands.required = True
    listing = cache_commands.add_parser(
        'list', formatter_class=formatter, epilog=EPILOG,
        help='one line per cached record')
    _common(listing, suppress=True)
    listing.set_defaults(handler='cache list')
    show = cache_commands.add_parser(
        'show', formatter_class=formatter, epilog=EPILOG,
        help='one record with its scheduling state, as JSON')
    _common(show, suppress=True)
    show.add_argument('instance', metavar='ID', help='instance UUID')
    show.set_defaults(handler='cache show')
    forget = cache_commands.add_parser(
        'forget', formatter_class=formatter, epilog=EPILOG,
        help='delete records; the agent re-inspects those instances',
        description='Delete records, so that the instances are inspected '
                    'again (by the\nagent at its next poll, or by '
                    '"inspect").')
    _common(forget, suppress=True)
    forget.add_argument('instance', nargs='?', metavar='ID',
                        help='instance UUID')
    forget.add_argument('--all', action='store_true',
                        help='every record')
    forget.set_defaults(handler='cache forget')
    return parser


def _default_service_factory(conf):
    from ceilometer_os_pollster.agent import engine as engine_mod
    from ceilometer_os_pollster.agent import service as service_mod
    engine = engine_mod.Engine(conf)
    # Logged as warnings: KVM unusable, guestfs missing, unwritable dirs;
    # and what killed inspections left behind is removed, as the agent
    # does at its start.
    engine.start()
    return service_mod.InspectionService(conf, engine=engine)


def main(argv=None, stdout=None, stderr=None, connect=domains.open_libvirt,
         service_factory=_default_service_factory):
    """Run the command; returns the exit status (see EPILOG)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser(argv)
    try:
        # argparse prints help and usage errors itself.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else errors.EXIT_USAGE
    json_mode = getattr(args, 'json', False)
    with stderr_fd.silenced_stderr_fd(json_mode, err) as err:
        return _run(args, json_mode, out, err, connect, service_factory)


def _run(args, json_mode, out, err, connect, service_factory):
    try:
        configuration.setup_logging(json_mode, args.verbose, args.debug,
                                    args.log_file, err)
        if args.handler == 'licence-report':
            # Gnocchi only: no agent configuration needed
            from ceilometer_os_pollster.commands import licence_cli
            code, message = licence_cli.run(args, out, err)
            if message:
                raise errors.CLIError(code, message)
            return code
        conf = configuration.load_conf(args.config_file)
        if args.handler == 'inspect':
            return inspect_cli.cmd_inspect(args, conf, out, err, connect,
                                           service_factory)
        if args.handler == 'report':
            return report_cli.cmd_report(args, conf, out, err, connect)
        handler = {'cache list': cache_cli.cmd_cache_list,
                   'cache show': cache_cli.cmd_cache_show,
                   'cache forget': cache_cli.cmd_cache_forget}[args.handler]
        return handler(args, conf, out, err)
    except errors.CLIError as exc:
        err.write('%s: error: %s\n' % (PROG, exc.message))
        return exc.code
    except KeyboardInterrupt:
        err.write('%s: interrupted\n' % PROG)
        return 130
    except Exception as exc:
        logging.getLogger(__name__).exception('Unexpected error')
        err.write('%s: internal error: %s: %s\n'
                  % (PROG, type(exc).__name__, exc))
        return errors.EXIT_FAILED


if __name__ == '__main__':
    sys.exit(main())
