"""The ``ceilometer-os-pollster`` command.

Owns the operator's side of the inspection service:

* ``inspect``: inspect instances now through the same engine, record
  cache and locks as the agent, or (``--cached-only``) answer at once
  from the cache, which is what Ceilometer's dynamic pollster runs in
  the privilege-separated mode (etc/pollsters.d);
* ``cache list|show|forget``;
* ``report``: the licence summary (report.py) of the host's instances;
* ``licence-report``: the cloud's licences over a period, from Gnocchi
  (licence_cli.py owns it);
* listing the host's domains with the nova metadata libvirt keeps in
  each one (``domain_xml.instance_info``), so that the CLI sees the
  same instances, owners and vCPUs as the agent's discovery;
* what reaches stdout and stderr.

Output contract of ``--json``: stdout carries exactly one JSON list and
stderr stays empty except for one line on a fatal error (exit 2 or 3,
and then there is no JSON).  Ceilometer's ``host_command`` merges stderr
into stdout, so a stray log line would make it drop every sample of the
cycle; logs therefore go to ``--log-file`` or nowhere in that mode.
"""

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time

from oslo_config import cfg

from ceilometer_os_pollster.instances import domain_xml
from ceilometer_os_pollster import options
from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster.commands import render

PROG = 'ceilometer-os-pollster'

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LIBVIRT = 3

# Newest first, as Ceilometer's discovery reads them.
_SHUTOFF = 5   # VIR_DOMAIN_SHUTOFF

# Keys of one --json item before the record's metadata keys.
JSON_ID_KEYS = ('resource_id', 'project_id', 'user_id', 'vcpus')

EPILOG = """\
exit status:
  0  success
  1  inspect: at least one reported instance has status "failed";
     cache show/forget: no such record; or an internal error
  2  usage or configuration error (run as root: a cache_dir that
     another user could change, see [os_inspection] cache_dir)
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


class CLIError(Exception):
    """A failure of the command as a whole: a message and an exit code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


# -- nova metadata in domain XML (pure) --------------------------------

# -- choosing domains (pure) ------------------------------------------

@dataclasses.dataclass(frozen=True)
class Scanned:
    """One listed domain: its parsed XML and the live facts make_job
    needs."""

    info: domain_xml.DomainInfo
    xml: str
    domain_id: int
    state: int


def select(scanned, names=(), all_domains=False, include_stopped=False):
    """(chosen Scanned list, names matching no domain).

    Names match the libvirt name or the UUID (any case).  --all keeps
    Nova instances only, shut-off ones only with include_stopped; named
    domains are taken as they are.  Order: the listing's, no duplicates.
    """
    if all_domains:
        return [s for s in scanned if s.info.nova and
                (include_stopped or s.state != _SHUTOFF)], []
    chosen, unknown = [], []
    for name in names:
        matches = [s for s in scanned
                   if name == s.info.name or
                   name.lower() == s.info.uuid.lower()]
        if not matches:
            unknown.append(name)
        for s in matches:
            if s not in chosen:
                chosen.append(s)
    return chosen, unknown


# -- renderings (pure) ------------------------------------------------

# -- configuration and logging ----------------------------------------

def load_conf(config_files):
    """The agent's options from the given files (None: oslo.config's
    search for ceilometer.conf); CLIError(2) on any problem."""
    from ceilometer.compute import discovery
    from ceilometer.compute.virt.libvirt import utils as libvirt_utils

    conf = cfg.ConfigOpts()
    conf.register_opts(libvirt_utils.OPTS)
    conf.register_opts(discovery.OPTS, group='compute')
    options.register_opts(conf)
    try:
        conf(args=[], project='ceilometer', prog=PROG,
             default_config_files=config_files or None,
             validate_default_values=True)
        # Values are checked on access: read them all now, so that a bad
        # one is a configuration error and not a crash half-way.
        for opt in options.OPTS:
            getattr(conf[options.GROUP], opt.dest)
        for name in ('libvirt_uri', 'libvirt_type'):
            getattr(conf, name)
        getattr(conf.compute, 'report_stopped_instance_metrics')
    except (cfg.Error, ValueError) as exc:
        raise CLIError(EXIT_USAGE, 'configuration error: %s' % exc)
    return conf


def setup_logging(json_mode, verbose=False, debug=False, log_file=None,
                  stream=None):
    """Route every log record: to stream (stderr) normally; to
    --log-file or nowhere with --json.  Returns the handler installed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    level = (logging.DEBUG if debug else
             logging.INFO if verbose else logging.WARNING)
    if log_file:
        try:
            handler = logging.FileHandler(log_file, encoding='utf-8')
        except OSError as exc:
            raise CLIError(EXIT_USAGE, 'cannot open log file %s: %s'
                           % (log_file, exc.strerror or exc))
    elif json_mode:
        # A NullHandler keeps Python's last-resort stderr handler away.
        handler = logging.NullHandler()
        level = logging.CRITICAL + 1
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(
        '%(asctime)s %(levelname)s %(name)s: %(message)s'))
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler


# -- libvirt (I/O) ----------------------------------------------------

def open_libvirt(conf):
    """A read-only connection to [DEFAULT] libvirt_uri (or the URI the
    libvirt_type implies), like the agent's; CLIError(3) if none."""
    try:
        import libvirt
    except ImportError:
        raise CLIError(EXIT_LIBVIRT, 'the libvirt Python binding is not '
                       'installed (distribution package python3-libvirt)')
    # libvirt prints every error to stderr by default; we report them.
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    from ceilometer.compute.virt.libvirt import utils as libvirt_utils
    try:
        return libvirt_utils.new_libvirt_connection(conf)
    except libvirt.libvirtError as exc:
        uri = conf.libvirt_uri or libvirt_utils.LIBVIRT_PER_TYPE_URIS.get(
            conf.libvirt_type, 'qemu:///system')
        raise CLIError(EXIT_LIBVIRT, 'cannot connect to libvirt at %s: %s'
                       % (uri, exc))


def scan(connection):
    """Every domain of the connection as Scanned, sorted by name."""
    try:
        domains = connection.listAllDomains(0)
    except Exception as exc:
        raise CLIError(EXIT_LIBVIRT, 'cannot list libvirt domains: %s'
                       % exc)
    found = []
    for domain in domains:
        try:
            xml = domain.XMLDesc(0)
            state = domain.state()[0]
            domain_id = domain.ID()
        except Exception as exc:
            # Undefined while we were listing: not an instance any more.
            logging.getLogger(__name__).debug(
                'Skipping a domain that vanished: %s', exc)
            continue
        info = domain_xml.instance_info(xml)
        if info is not None:
            found.append(Scanned(info, xml, domain_id, state))
    return sorted(found, key=lambda s: (s.info.name, s.info.uuid))


# -- commands ---------------------------------------------------------

def _jobs(targets, all_disks=False):
    from ceilometer_os_pollster.agent import service as service_mod
    boot_id = service_mod.host_boot_id()
    # Fingerprints as the agent makes them, or each would re-inspect
    # what the other inspected.
    return [service_mod.make_job(s.info.uuid, s.info.name, s.xml,
                                 s.domain_id, s.info.image_id, boot_id,
                                 all_disks)
            for s in targets]


def _checked_cache_dir(conf):
    """[os_inspection] cache_dir, if this user may use it (cache_dir.py);
    CLIError(2) naming the path and why otherwise.

    Run as root it must be root's alone: the agent's user must not be
    able to redirect what root reads, writes, locks or deletes.
    """
    from ceilometer_os_pollster.agent import cache_dir
    directory = conf[options.GROUP].cache_dir
    try:
        cache_dir.check(directory)
    except cache_dir.Refused as exc:
        if os.geteuid() != 0:
            raise CLIError(EXIT_USAGE, 'cannot use [os_inspection] '
                           'cache_dir %s: %s' % (directory, exc))
        raise CLIError(
            EXIT_USAGE, 'refusing to use [os_inspection] cache_dir %s as '
            'root: %s; another user could redirect what root reads, '
            'writes or deletes there.  In native mode run this command as '
            'the agent\'s user (sudo -u ceilometer ...); in the '
            'privilege-separated mode set cache_dir to a directory only '
            'root can write, such as %s' % (directory, exc,
                                            options.ROOT_CACHE_DIR))
    return directory


def _read_only_cache(conf):
    """The cache for reading only: it creates, writes, locks and unlinks
    nothing (made by root, cache_dir would not be the agent's any
    more; a missing one reads as empty)."""
    from ceilometer_os_pollster.agent import cache as cache_mod
    return cache_mod.RecordCache(_checked_cache_dir(conf), read_only=True)


def _cached_records(conf, jobs):
    """What the agent would publish for each job, never inspecting."""
    from ceilometer_os_pollster.agent import policy
    cache = _read_only_cache(conf)
    return [policy.served(cache.get(job.instance_id), job) for job in jobs]


def _inspected_records(conf, jobs, force, service_factory, err,
                       show_progress, alive_ids=None):
    from ceilometer_os_pollster.agent import policy
    service = service_factory(conf)
    try:
        if force:
            due = {job.instance_id for job in jobs}
        else:
            # The scheduler's own policy says which ones it will inspect.
            now = time.time()
            due = {job.instance_id for job in jobs
                   if policy.decide(service.cache.get(job.instance_id),
                                    job, now) is not None}

        def progress(job, record, index, total):
            if show_progress:
                err.write(render.progress_line(
                    index, total, job.domain_name, record,
                    job.instance_id in due) + '\n')
                err.flush()

        records = service.scheduler.run_now(jobs, progress=progress,
                                            force=force)
        if alive_ids is not None:
            # The whole host was listed: drop records of instances gone
            # for forget_after, as the agent does after each cycle.
            service.end_cycle(alive_ids)
    finally:
        service.stop()
    return records


def _refuse_unconfined(conf):
    """CLIError(2) when this process may not inspect (run as root
    without a worker_user that confines it, see confinement), before
    anything is opened, locked or started."""
    from ceilometer_os_pollster.inspection import confinement
    opts = conf[options.GROUP]
    try:
        confinement.worker_account(opts.worker_user,
                                   allow_root=opts.allow_root_inspection)
    except confinement.ConfinementError as exc:
        raise CLIError(
            EXIT_USAGE, 'refusing to inspect: %s; worker_user must be a '
            'dedicated user that can read the instance disks, such as '
            'os-inspector (README, "Privilege-separated mode", step 3)'
            % exc) from None


def cmd_inspect(args, conf, out, err, connect, service_factory):
    if args.all and args.domains:
        raise CLIError(EXIT_USAGE, 'give DOMAIN names or --all, not both')
    if not args.all and not args.domains:
        raise CLIError(EXIT_USAGE, 'give at least one DOMAIN, or --all')
    if not args.cached_only:
        _refuse_unconfined(conf)
    _checked_cache_dir(conf)
    scanned = scan(connect(conf))
    targets, unknown = select(
        scanned, args.domains, args.all,
        conf.compute.report_stopped_instance_metrics)
    if unknown:
        raise CLIError(EXIT_USAGE, 'no such libvirt domain: %s'
                       % ', '.join(unknown))
    jobs = _jobs(targets, conf[options.GROUP].inspect_all_disks)
    if args.cached_only:
        records = _cached_records(conf, jobs)
    else:
        alive = ([s.info.uuid for s in scanned if s.info.nova]
                 if args.all else None)
        records = _inspected_records(
            conf, jobs, not args.stale_only, service_factory, err,
            show_progress=not args.json, alive_ids=alive)
    if args.json:
        out.write(json.dumps([render.json_item(s.info, r)
                              for s, r in zip(targets, records)],
                             indent=2) + '\n')
    elif targets:
        out.write(render.format_table(render.INSPECT_HEADERS, [
            (s.info.name, s.info.uuid, s.info.vcpus, r.status, r.summary())
            for s, r in zip(targets, records)]) + '\n')
    else:
        err.write('no Nova instance on this host\n')
    failed = any(r.status == record_mod.STATUS_FAILED for r in records)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_report(args, conf, out, err, connect):
    """Licence summary of the host's instances, from the cache only."""
    from ceilometer_os_pollster.commands import report
    _checked_cache_dir(conf)
    targets, _ = select(scan(connect(conf)), all_domains=True,
                        include_stopped=conf.compute
                        .report_stopped_instance_metrics)
    records = _cached_records(
        conf, _jobs(targets, conf[options.GROUP].inspect_all_disks))
    lines = report.summarise(
        [report.Instance(s.info.uuid, s.info.project_id, s.info.vcpus, r)
         for s, r in zip(targets, records)],
        report.Minimums(args.windows_server_min_cores,
                        args.sql_server_min_cores))
    if args.json:
        out.write(json.dumps(report.json_document(lines), indent=2) + '\n')
    else:
        out.write(render.format_table(report.HEADERS, report.rows(lines))
                  + '\n')
    return EXIT_OK


def cmd_cache_list(args, conf, out, err):
    entries = _read_only_cache(conf).entries()
    out.write(render.format_table(
        render.CACHE_HEADERS, render.cache_rows(entries, time.time())) + '\n')
    return EXIT_OK


def cmd_cache_show(args, conf, out, err):
    entry = _read_only_cache(conf).get(args.instance)
    if entry is None:
        err.write('no record for instance %s\n' % args.instance)
        return EXIT_FAILED
    out.write(json.dumps(render.entry_document(entry), indent=2,
                         sort_keys=True) + '\n')
    return EXIT_OK


def cmd_cache_forget(args, conf, out, err):
    if bool(args.all) == bool(args.instance):
        raise CLIError(EXIT_USAGE, 'give one instance ID or --all')
    from ceilometer_os_pollster.agent import cache as cache_mod
    directory = _checked_cache_dir(conf)
    # Not created when missing: there is nothing to forget.
    cache = (cache_mod.RecordCache(directory)
             if os.path.isdir(directory) else None)
    if cache is None:
        count = 0
    elif args.all:
        count = cache.forget_all()
    else:
        count = 1 if cache.forget(args.instance) else 0
    out.write('forgot %d record%s\n' % (count, '' if count == 1 else 's'))
    if args.instance and not count:
        err.write('no record for instance %s\n' % args.instance)
        return EXIT_FAILED
    return EXIT_OK


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


def main(argv=None, stdout=None, stderr=None, connect=open_libvirt,
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
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    json_mode = getattr(args, 'json', False)
    with _silenced_stderr_fd(json_mode, err) as err:
        return _run(args, json_mode, out, err, connect, service_factory)


@contextlib.contextmanager
def _silenced_stderr_fd(json_mode, err):
    """With --json, point file descriptor 2 at /dev/null for the run.

    C libraries (libvirt, libxml2, libguestfs) write warnings straight to
    fd 2, past Python's logging, and Ceilometer would read them as part
    of the JSON.  Yields the stream for our own fatal-error line, which
    still reaches the real stderr.  Only when err is the process's fd 2.
    """
    try:
        real = json_mode and err.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    if not real:
        yield err
        return
    err.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with open(saved, 'w', closefd=False) as stream:
            yield stream
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _run(args, json_mode, out, err, connect, service_factory):
    try:
        setup_logging(json_mode, args.verbose, args.debug, args.log_file,
                      err)
        if args.handler == 'licence-report':
            # Gnocchi only: no agent configuration needed
            from ceilometer_os_pollster.commands import licence_cli
            code, message = licence_cli.run(args, out, err)
            if message:
                raise CLIError(code, message)
            return code
        conf = load_conf(args.config_file)
        if args.handler == 'inspect':
            return cmd_inspect(args, conf, out, err, connect,
                               service_factory)
        if args.handler == 'report':
            return cmd_report(args, conf, out, err, connect)
        handler = {'cache list': cmd_cache_list,
                   'cache show': cmd_cache_show,
                   'cache forget': cmd_cache_forget}[args.handler]
        return handler(args, conf, out, err)
    except CLIError as exc:
        err.write('%s: error: %s\n' % (PROG, exc.message))
        return exc.code
    except KeyboardInterrupt:
        err.write('%s: interrupted\n' % PROG)
        return 130
    except Exception as exc:
        logging.getLogger(__name__).exception('Unexpected error')
        err.write('%s: internal error: %s: %s\n'
                  % (PROG, type(exc).__name__, exc))
        return EXIT_FAILED


if __name__ == '__main__':
    sys.exit(main())
