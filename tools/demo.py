"""The README demo: a few phony guests metered by a real Ceilometer agent.

Builds catalog guests, runs them as nova-like libvirt domains (tests.rig),
polls them twice with a real Ceilometer AgentManager that loads our
pollster by its entry point (first cycle: everything pending; then the
appliances' records), and prints the samples as a table.  Exit status 0
only if every sample matches the catalog's expectation.  Run it through
``tools/demo`` (installs what it needs first).
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

HOST = 'demo-compute-1'
COLUMNS = ('instance', 'vCPUs', 'family', 'distro', 'os_info', 'version',
           'edition', 'SQL', 'status')


def pick_guests(catalog):
    """[(display name, catalog guest, layout)] for the demo."""
    sql = [n for n, g in catalog.GUESTS.items()
           if g.windows and g.expected.sql_server_edition
           and g.expected.os_info == 'win2k22'
           and 'Datacenter' in g.expected.os_edition]
    return [
        ('sql-server', sql[0] if sql else 'win2019-sql', 'overlay'),
        ('rhel', 'rhel-9.4', 'overlay-blank-base'),
        ('ubuntu', 'ubuntu-22.04', 'qcow2'),
        ('encrypted', 'luks', 'raw'),
    ]


def row(name, sample):
    """One table row (strings) from a published sample dict."""
    md = sample['resource_metadata']
    status = md['os_inspection_status']
    if status != 'ok' and md.get('os_inspection_reason'):
        status += ' (%s)' % md['os_inspection_reason']
    version = ''
    if md.get('os_version_major'):
        # Ubuntu numbers its releases by month: 22.04, not 22.4
        minor = '%02d' if md['os_distro'] == 'ubuntu' else '%d'
        version = ('%d.' + minor) % (md['os_version_major'],
                                     md['os_version_minor'])
    return (name, '%g' % sample['counter_volume'], md['os_family'],
            md['os_distro'], md['os_info'], version, md['os_edition'],
            md['sql_server_edition'], status)


def table(rows):
    """Aligned text table with COLUMNS as header."""
    rows = [COLUMNS] + [tuple(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def quiet_logs(verbose):
    """Logs to stderr (stdout is for the tables), warnings only unless
    ``verbose``."""
    import logging
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, 'stream', None) is sys.stdout:
            handler.setStream(sys.stderr)
    root.setLevel(logging.INFO if verbose else logging.WARNING)


def make_conf(workdir, libvirt_uri, concurrency, verbose=False):
    from tests.functional import agent

    conf = agent.agent_conf(
        workdir, libvirt_uri, host=HOST, concurrency=concurrency,
        appliance_memory_mb=768,
        # TCG on a busy machine: be patient rather than fail
        inspection_deadline=900)
    quiet_logs(verbose)
    return conf


def wait_for_inspections(svc, ids, timeout, out=sys.stderr):
    """Report progress every 5 s until done; False on timeout."""
    began = time.monotonic()
    last = 0.0
    while True:
        stats = svc.scheduler.stats()
        done = sum(1 for i in ids if svc.cache.get(i))
        finished = (done == len(ids) and not stats['queued']
                    and not stats['running'])
        now = time.monotonic() - began
        if finished or now - last >= 5:
            last = now
            print('inspecting: %d done, %d running, %d queued, %.0f s'
                  % (done, stats['running'], stats['queued'], now),
                  file=out, flush=True)
        if finished:
            return True
        if now > timeout:
            return False
        time.sleep(0.5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--keep', action='store_true',
                        help='leave the domains, disks and cache in place')
    parser.add_argument('--workdir', help='default: a new temp directory')
    parser.add_argument('--concurrency', type=int, default=2)
    parser.add_argument('--verbose', action='store_true',
                        help='show the agent\'s INFO logs on stderr')
    parser.add_argument('--timeout', type=int, default=900,
                        help='seconds to wait for the inspections')
    args = parser.parse_args(argv)
    os.environ.setdefault('LIBGUESTFS_BACKEND_SETTINGS', 'force_tcg')

    import pytest

    from tests.functional import agent as agent_mod
    from tests.guests import builder
    from tests.guests import catalog
    from tests.rig import libvirtd
    from tests.rig import rig as rig_mod

    workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(
        prefix='os-pollster-demo-'))
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = pick_guests(catalog)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    log('building guests: %s' % ', '.join(g for _, g, _ in chosen))
    images = builder.build_all([g for _, g, _ in chosen])
    started = libvirtd.ensure_daemons()
    the_rig = rig_mod.Rig(workdir / 'rig')
    agent = None
    failed = True
    try:
        names, guests = {}, {}
        for name, guest, layout in chosen:
            dom = the_rig.add(name, images[guest], layout=layout,
                              vcpus=4 if catalog.GUESTS[guest].windows
                              else 2)
            names[dom.uuid], guests[dom.uuid] = name, guest
            log('domain %s (%s) on a %s disk: %s'
                % (dom.name, name, layout, guest))
        the_rig.start_all()
        before = rig_mod.disk_checksums(the_rig)

        conf = make_conf(workdir, the_rig.uri, args.concurrency,
                         args.verbose)
        # Other rigs (tests, other demos) may share the libvirtd.
        agent = agent_mod.Agent(conf, pytest.MonkeyPatch(), only=names)
        svc = agent.svc

        began = time.monotonic()
        first = agent.cycle()
        print('First polling cycle (%.1f s): records pending while the '
              'appliances work\n' % (time.monotonic() - began))
        print(table(row(names.get(u, u), s) for u, s in
                    sorted(first.items(), key=lambda i: names.get(i[0]))))
        print(flush=True)
        if not wait_for_inspections(svc, list(names), args.timeout):
            log('inspections did not finish in %d s' % args.timeout)
            return 1
        second = agent.cycle()
        print('Next polling cycle: what Ceilometer publishes\n')
        print(table(row(names.get(u, u), s) for u, s in
                    sorted(second.items(), key=lambda i: names.get(i[0]))))
        print()

        problems = []
        for uuid, name in sorted(names.items(), key=lambda i: i[1]):
            sample = second.get(uuid)
            if sample is None:
                problems.append('%s: no sample' % name)
                continue
            expected = catalog.GUESTS[guests[uuid]].expected
            for field, want, got in catalog.mismatches(
                    expected, sample['resource_metadata']):
                problems.append('%s: %s is %r, expected %r'
                                % (name, field, got, want))
        if rig_mod.disk_checksums(the_rig) != before:
            problems.append('a guest disk changed during inspection')
        for p in problems:
            print('MISMATCH ' + p)
        if not problems:
            print('All %d samples match the catalog; no guest disk was '
                  'written.' % len(names))
        failed = bool(problems)
        return 1 if problems else 0
    finally:
        if agent is not None:
            agent.stop()
        if args.keep:
            log('kept: %s (undo: python -m tests.rig down --workdir %s)'
                % (workdir, workdir / 'rig'))
        else:
            for p in the_rig.teardown():
                log('teardown: %s' % p)
            if started and not the_rig.conn.listAllDomains():
                libvirtd.stop_started_daemons()
            if not failed or not args.workdir:
                import shutil
                shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
