"""CLI: python -m tests.guests build [NAME...] [--dir D] | list [--json]"""

import argparse
import json
import sys
import time

from tests.guests import builder
from tests.guests import catalog


def _list(args):
    if args.json:
        data = {name: dict(description=guest.description,
                           family=guest.family, hostile=guest.hostile,
                           expected=guest.expected.scored())
                for name, guest in catalog.GUESTS.items()}
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    for name, guest in catalog.GUESTS.items():
        exp = guest.expected
        print('%-24s %-9s %-12s %-10s %s' % (
            name, exp.status, exp.os_distro, exp.os_info,
            guest.description))
    return 0


def _build(args):
    start = time.monotonic()
    try:
        paths = builder.build_all(args.names or None, args.dir, args.jobs)
    except KeyError as exc:
        print('error: %s' % exc.args[0], file=sys.stderr)
        return 2
    except builder.BuildError as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 1
    for name, path in paths.items():
        print('%s\t%s' % (name, path))
    print('%d images in %.1f s' % (len(paths), time.monotonic() - start),
          file=sys.stderr)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m tests.guests',
        description='Build the phony guest disk images tests inspect.')
    sub = parser.add_subparsers(dest='command', required=True)
    build = sub.add_parser('build', help='build (or find cached) images')
    build.add_argument('names', nargs='*', metavar='NAME',
                       help='guests to build (default: all)')
    build.add_argument('--dir', help='cache directory (default: env %s or '
                       'tests/.guest-cache)' % builder.CACHE_ENV)
    build.add_argument('--jobs', type=int, help='parallel builds')
    build.set_defaults(func=_build)
    listing = sub.add_parser('list', help='the catalog')
    listing.add_argument('--json', action='store_true',
                         help='descriptions and expected fields as JSON')
    listing.set_defaults(func=_list)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
