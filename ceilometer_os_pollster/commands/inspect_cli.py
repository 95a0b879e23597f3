"""``ceilometer-os-pollster inspect``: inspect instances now through
the agent's engine, record cache and locks, or (``--cached-only``)
answer at once from the cache, which is what Ceilometer's dynamic
pollster runs in the privilege-separated mode (etc/pollsters.d)."""

import json
import time

from ceilometer_os_pollster.commands import domains
from ceilometer_os_pollster.commands import errors
from ceilometer_os_pollster.commands import records as records_mod
from ceilometer_os_pollster.commands import render
from ceilometer_os_pollster import options
from ceilometer_os_pollster import record as record_mod


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


def _unconfined(conf):
    """Why this process may not start inspections (run as root without a
    worker_user that confines them, see confinement), or None."""
    from ceilometer_os_pollster.inspection import confinement
    opts = conf[options.GROUP]
    try:
        confinement.worker_account(opts.worker_user,
                                   allow_root=opts.allow_root_inspection)
    except confinement.ConfinementError as exc:
        return ('refusing to inspect: %s; worker_user must be a dedicated '
                'user that can read the instance disks, such as '
                'os-inspector (installation guide, "Privilege-separated '
                'mode", step 3)' % exc)
    return None


def cmd_inspect(args, conf, out, err, connect, service_factory):
    if args.all and args.domains:
        raise errors.CLIError(errors.EXIT_USAGE,
                              'give DOMAIN names or --all, not both')
    if not args.all and not args.domains:
        raise errors.CLIError(errors.EXIT_USAGE,
                              'give at least one DOMAIN, or --all')
    refusal = None if args.cached_only else _unconfined(conf)
    records_mod.checked_cache_dir(conf)
    scanned = domains.scan(connect(conf))
    targets, unknown = domains.select(
        scanned, args.domains, args.all,
        conf.compute.report_stopped_instance_metrics)
    if unknown:
        raise errors.CLIError(errors.EXIT_USAGE, 'no such libvirt domain: %s'
                              % ', '.join(unknown))
    jobs = records_mod.jobs_for(targets,
                                conf[options.GROUP].inspect_all_disks)
    if args.cached_only:
        records = records_mod.cached_records(conf, jobs)
    else:
        alive = ([s.info.uuid for s in scanned if s.info.nova]
                 if args.all else None)
        records = _inspected_records(
            conf, jobs, not args.stale_only, service_factory, err,
            show_progress=not args.json, alive_ids=alive)
    if refusal:
        # The engine refused each due job before starting a worker and
        # recorded it "failed" (billed as unverified, never free); the
        # command fails too, so the timer's unit shows why.
        raise errors.CLIError(errors.EXIT_USAGE, refusal)
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
    return errors.EXIT_FAILED if failed else errors.EXIT_OK
