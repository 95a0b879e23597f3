"""``python -m tests.rig up|down|status``: the rig from a shell.

``up`` starts the daemons if needed and leaves one running domain per
layout (and a data-disk and a cdrom variant) under ``--workdir``; ``down``
removes what ``up`` made and stops the daemons the rig started (``--keep``
leaves them running); ``status`` says what is there.  Guest images come
from ``--image PATH`` or ``--guest NAME`` (built by tests.guests).
"""

import argparse
import json
import sys
import time

from tests.rig import libvirtd
from tests.rig import rig as rig_mod

DEFAULT_WORKDIR = '/var/tmp/ceilometer-os-pollster-rig'
DEFAULT_GUESTS = ('rhel-9.4', 'win2022-standard')


def _images(args):
    images = list(args.image or [])
    guests = args.guest or ([] if images else list(DEFAULT_GUESTS))
    if guests:
        from tests.guests import builder    # only when asked for
        images += [str(builder.build(name)) for name in guests]
    return images


def up(args):
    began = time.monotonic()
    started = libvirtd.ensure_daemons()
    daemons = time.monotonic() - began
    images = _images(args)
    rig = rig_mod.Rig.load(args.workdir)
    plan = [dict(layout=layout) for layout in args.layouts.split(',')]
    plan += [dict(layout=rig_mod.OVERLAY, data_image=images[-1],
                  cdrom=True)]
    prepared = time.monotonic()
    for number, extra in enumerate(plan):
        image = images[number % len(images)]
        rig.add('rig-vm-%d' % (number + 1), image, vcpus=args.vcpus,
                **extra)
    prepared = time.monotonic() - prepared
    boot = rig.start_all()
    print('daemons: %s in %.1f s; disks for %d domains in %.1f s; '
          'started in %.1f s' % ('started' if started else 'already running',
                                 daemons, len(plan), prepared, boot))
    _print_domains(rig)
    return 0


def _print_domains(rig):
    states = rig.states()
    for dom in rig.domains:
        print('%s %s %-8s %-18s %s' % (
            dom.name, dom.uuid, states[dom.uuid], dom.layout,
            ' '.join('%s=%s' % (d.target, d.source or '(empty)')
                     for d in dom.disks)))


def down(args):
    problems = []
    if libvirtd.libvirt_answers():
        rig = rig_mod.Rig.load(args.workdir)
        problems += rig.teardown()
        # Leftovers of a run whose state file is gone.
        import libvirt
        conn = libvirt.open(libvirtd.URI)
        try:
            problems += rig_mod.remove_domains(
                conn, rig_mod.rig_domains(
                    conn, None if args.all else rig.workdir))
        finally:
            conn.close()
    else:
        problems += rig_mod.Rig.load(args.workdir).teardown()
    if not args.keep:
        problems += libvirtd.stop_started_daemons()
    for problem in problems:
        print('problem: %s' % problem, file=sys.stderr)
    return 1 if problems else 0


def status(args):
    print(json.dumps(libvirtd.status(), indent=1))
    if libvirtd.libvirt_answers():
        _print_domains(rig_mod.Rig.load(args.workdir))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tests.rig')
    parser.add_argument('command', choices=('up', 'down', 'status'))
    parser.add_argument('--workdir', default=DEFAULT_WORKDIR)
    parser.add_argument('--image', action='append',
                        help='raw or qcow2 guest image (repeatable)')
    parser.add_argument('--guest', action='append',
                        help='tests.guests catalog name (repeatable)')
    parser.add_argument('--layouts', default=','.join(rig_mod.LAYOUTS))
    parser.add_argument('--vcpus', type=int, default=2)
    parser.add_argument('--keep', action='store_true',
                        help='down: leave the daemons running')
    parser.add_argument('--all', action='store_true',
                        help='down: also remove every rig-tagged domain')
    args = parser.parse_args(argv)
    return {'up': up, 'down': down, 'status': status}[args.command](args)


if __name__ == '__main__':
    sys.exit(main())
