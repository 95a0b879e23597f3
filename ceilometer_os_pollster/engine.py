"""Inspection engine: one libvirt domain in, one OSRecord out.

Owns the glue of the one-way flow: domain XML -> ``drives`` (specs, boot
disk) -> ``appliance`` (raw facts) -> ``facts.normalise`` (the record).
``Engine.inspect`` never raises: every failure becomes a record with a
short, publishable reason, and a log line with more detail.  One
appliance per instance, always: disks of different tenants never share
an appliance.
"""

import dataclasses
import os
import time

from oslo_log import log

from ceilometer_os_pollster import appliance as appliance_mod
from ceilometer_os_pollster import drives
from ceilometer_os_pollster import facts as facts_mod
from ceilometer_os_pollster import options
from ceilometer_os_pollster import record
from ceilometer_os_pollster import sanitize

LOG = log.getLogger(__name__)

FORCE_TCG_HINT = ('set [%s] libguestfs_backend_settings = force_tcg'
                  % options.GROUP)


@dataclasses.dataclass(frozen=True)
class InspectionJob:
    """A snapshot of what is needed to inspect one instance.

    Taken on the poll path (cheap libvirt calls only) and handed to a
    background worker, so the worker never touches the agent's libvirt
    connection.
    """

    instance_id: str
    domain_name: str
    domain_xml: str       # live XML at poll time
    image_id: str = ''    # nova image id, '' when booted from a volume
    boot_identity: str = ''   # changes whenever the domain's qemu restarts
    fingerprint: str = ''     # drives.fingerprint(...) of the above


def kvm_problem(device='/dev/kvm', cpuinfo='/proc/cpuinfo'):
    """Why KVM may not serve the appliance, or '' when it looks usable.

    Nested KVM (this host is itself a VM) is reported too: there the
    appliance can hang at boot even though /dev/kvm opens.
    """
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return '%s cannot be opened (%s)' % (device, exc.strerror)
    os.close(fd)
    try:
        with open(cpuinfo, encoding='ascii', errors='replace') as f:
            nested = any(line.startswith('flags') and
                         ' hypervisor' in line for line in f)
    except OSError:
        nested = False
    if nested:
        return ('this host is a virtual machine (nested KVM), where the '
                'appliance may hang at boot')
    return ''


class Engine:
    """Turns InspectionJobs into OSRecords; thread-safe (no shared state
    besides the options): each inspect() owns its own appliance."""

    def __init__(self, conf, appliance_factory=None, clock=time.monotonic):
        options.register_opts(conf)
        self._opts = conf[options.GROUP]
        self._appliance = appliance_factory or appliance_mod.Appliance
        self._clock = clock

    def inspect(self, job):
        """The OSRecord for one job.  Never raises."""
        start = self._clock()
        fingerprint = job.fingerprint
        try:
            specs = drives.drive_specs(job.domain_xml)
            if not fingerprint:
                fingerprint = drives.fingerprint(
                    specs, job.image_id, job.boot_identity,
                    self._opts.inspect_all_disks)
            chosen = drives.boot_drives(
                specs, all_disks=self._opts.inspect_all_disks)
            if not chosen:
                return self._unknown(job, 'no disk to inspect', fingerprint,
                                     start)
            LOG.debug('inspecting instance %s: %s', job.instance_id,
                      '; '.join(drives.describe(s) for s in chosen))
            facts = self._appliance(self._opts, chosen).inspect()
            rec = facts_mod.normalise(facts, job.instance_id, fingerprint,
                                      self._elapsed(start))
        except drives.DomainXMLError as exc:
            return self._failed(job, 'unusable domain XML: %s' % exc,
                                fingerprint, start)
        except appliance_mod.ApplianceError as exc:
            return self._failed(job, exc.reason, fingerprint, start)
        except Exception as exc:
            LOG.exception('inspection of instance %s (%s) failed '
                          'unexpectedly', job.instance_id, job.domain_name)
            return self._failed(job, 'internal error: %s'
                                % type(exc).__name__, fingerprint, start)
        LOG.info('instance %s (%s): %s %s %s in %.1f s%s',
                 job.instance_id, job.domain_name, rec.status,
                 rec.os_distro, rec.os_info, rec.duration,
                 ' (%s)' % rec.reason if rec.reason else '')
        return rec

    def preflight(self):
        """Problems that will make inspections fail or hang, as log-ready
        sentences (also logged).  [] when the host looks ready."""
        problems = []
        ok, why = appliance_mod.guestfs_available()
        if not ok:
            problems.append('the libguestfs Python module cannot be '
                            'imported (%s): install python3-guestfs' % why)
        backend = self._opts.libguestfs_backend
        settings = [s.strip() for s in self._opts.libguestfs_backend_settings]
        if backend == 'direct' and 'force_tcg' not in settings:
            kvm = kvm_problem()
            if kvm:
                problems.append('KVM is unusable for the libguestfs '
                                'appliance: %s; %s' % (kvm, FORCE_TCG_HINT))
        elif backend != 'direct':
            problems.append('libguestfs backend %r: the inspection deadline '
                            'cannot kill an appliance started by libvirtd; '
                            'the "direct" backend is recommended' % backend)
        for name in ('tmp_dir', 'appliance_cache_dir'):
            path = getattr(self._opts, name)
            if path and not os.access(path, os.W_OK | os.X_OK):
                problems.append('[%s] %s = %s is not a writable directory'
                                % (options.GROUP, name, path))
        for problem in problems:
            LOG.warning('OS inspection preflight: %s', problem)
        return problems

    # ----------------------------------------------------------------

    def _elapsed(self, start):
        return round(max(0.0, self._clock() - start), 3)

    def _failed(self, job, reason, fingerprint, start):
        reason = sanitize.clean_text(reason, 200) or 'failed'
        duration = self._elapsed(start)
        LOG.warning('inspection of instance %s (%s) failed after %.1f s: '
                    '%s', job.instance_id, job.domain_name, duration, reason)
        return record.OSRecord.failed(job.instance_id, reason, fingerprint,
                                      duration)

    def _unknown(self, job, reason, fingerprint, start):
        LOG.info('instance %s (%s): %s', job.instance_id, job.domain_name,
                 reason)
        return record.OSRecord.failed(job.instance_id, reason, fingerprint,
                                      self._elapsed(start),
                                      status=record.STATUS_UNKNOWN)
