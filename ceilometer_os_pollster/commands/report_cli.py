"""``ceilometer-os-pollster report``: the licence summary
(``report``) of the host's instances, from the record cache only."""

import json

from ceilometer_os_pollster.commands import domains
from ceilometer_os_pollster.commands import errors
from ceilometer_os_pollster.commands import records as records_mod
from ceilometer_os_pollster.commands import render
from ceilometer_os_pollster import options


def cmd_report(args, conf, out, err, connect):
    """Licence summary of the host's instances, from the cache only."""
    from ceilometer_os_pollster.commands import report
    records_mod.checked_cache_dir(conf)
    targets, _ = domains.select(domains.scan(connect(conf)),
                                all_domains=True,
                                include_stopped=conf.compute
                                .report_stopped_instance_metrics)
    records = records_mod.cached_records(conf, records_mod.jobs_for(
        targets, conf[options.GROUP].inspect_all_disks))
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
    return errors.EXIT_OK
