"""``ceilometer-os-pollster cache list|show|forget``: the records in
``[os_inspection] cache_dir``; only ``forget`` changes anything."""

import json
import os
import time

from ceilometer_os_pollster.commands import errors
from ceilometer_os_pollster.commands import records as records_mod
from ceilometer_os_pollster.commands import render


def cmd_cache_list(args, conf, out, err):
    entries = records_mod.read_only_cache(conf).entries()
    out.write(render.format_table(
        render.CACHE_HEADERS, render.cache_rows(entries, time.time())) + '\n')
    return errors.EXIT_OK


def cmd_cache_show(args, conf, out, err):
    entry = records_mod.read_only_cache(conf).get(args.instance)
    if entry is None:
        err.write('no record for instance %s\n' % args.instance)
        return errors.EXIT_FAILED
    out.write(json.dumps(render.entry_document(entry), indent=2,
                         sort_keys=True) + '\n')
    return errors.EXIT_OK


def cmd_cache_forget(args, conf, out, err):
    if bool(args.all) == bool(args.instance):
        raise errors.CLIError(errors.EXIT_USAGE,
                              'give one instance ID or --all')
    from ceilometer_os_pollster.agent import cache as cache_mod
    directory = records_mod.checked_cache_dir(conf)
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
        return errors.EXIT_FAILED
    return errors.EXIT_OK
