"""Where the command's records come from: the agent's jobs for the
chosen domains, and the agent's record cache, checked before use
(``cache_dir``) and opened for reading only unless a command changes
it."""

import os

from ceilometer_os_pollster.commands import errors
from ceilometer_os_pollster import options


def jobs_for(targets, all_disks=False):
    """The agent's InspectionJob for each chosen Scanned domain."""
    from ceilometer_os_pollster.agent import service as service_mod
    from ceilometer_os_pollster.instances import identity
    boot_id = service_mod.host_boot_id()
    # Fingerprints as the agent makes them, or each would re-inspect
    # what the other inspected.
    return [identity.make_job(s.info.uuid, s.info.name, s.xml,
                              s.domain_id, s.info.image_id, boot_id,
                              all_disks)
            for s in targets]


def checked_cache_dir(conf):
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
            raise errors.CLIError(errors.EXIT_USAGE, 'cannot use '
                                  '[os_inspection] cache_dir %s: %s'
                                  % (directory, exc))
        raise errors.CLIError(
            errors.EXIT_USAGE, 'refusing to use [os_inspection] cache_dir '
            '%s as root: %s; another user could redirect what root reads, '
            'writes or deletes there.  In native mode run this command as '
            'the agent\'s user (sudo -u ceilometer ...); in the '
            'privilege-separated mode set cache_dir to a directory only '
            'root can write, such as %s' % (directory, exc,
                                            options.ROOT_CACHE_DIR))
    return directory


def read_only_cache(conf):
    """The cache for reading only: it creates, writes, locks and unlinks
    nothing (made by root, cache_dir would not be the agent's any
    more; a missing one reads as empty)."""
    from ceilometer_os_pollster.agent import cache as cache_mod
    return cache_mod.RecordCache(checked_cache_dir(conf), read_only=True)


def cached_records(conf, jobs):
    """What the agent would publish for each job, never inspecting."""
    from ceilometer_os_pollster.agent import policy
    cache = read_only_cache(conf)
    return [policy.served(cache.get(job.instance_id), job) for job in jobs]
