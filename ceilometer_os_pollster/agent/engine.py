"""Inspection engine (agent side): one job in, one OSRecord out.

Owns how the agent gets a record for an ``identity.InspectionJob``: it
makes the inspection's private directory, runs one worker process
(``worker``, through ``supervisor``) under ``inspection_deadline``,
relays the worker's log messages and maps whatever happened (a record,
a deadline, a crash, garbage) to an ``OSRecord``.  ``Engine.inspect``
never raises and never touches a guest disk or libguestfs: one
appliance per instance, each in its own process group, so disks of
different tenants never share an appliance and no disk can stall the
agent.
"""

import dataclasses
import json
import logging
import os
import signal
import sys
import time

from oslo_log import log

from ceilometer_os_pollster.inspection import appliance as appliance_mod
from ceilometer_os_pollster.inspection import confinement
from ceilometer_os_pollster.instances import drives
from ceilometer_os_pollster.instances import identity
from ceilometer_os_pollster import options
from ceilometer_os_pollster import record
from ceilometer_os_pollster import sanitize
from ceilometer_os_pollster.inspection import supervisor
from ceilometer_os_pollster.agent import workdir

LOG = log.getLogger(__name__)

FORCE_TCG_HINT = ('set [%s] libguestfs_backend_settings = force_tcg'
                  % options.GROUP)
WORKER_ARGV = (sys.executable, '-m',
               'ceilometer_os_pollster.inspection.worker')


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
    besides the options): each inspect() runs its own worker process."""

    def __init__(self, conf, worker_argv=WORKER_ARGV, clock=time.monotonic):
        options.register_opts(conf)
        self._opts = conf[options.GROUP]
        self._argv = list(worker_argv)
        self._clock = clock
        self.deadline = self._opts.inspection_deadline
        self._workers = supervisor.Workers()

    def request(self, job, private_dir):
        """The worker's request (JSON bytes): job, options, directory."""
        values = {opt.dest: self._opts[opt.dest] for opt in options.OPTS}
        return json.dumps({
            'job': dataclasses.asdict(job),
            'options': values,
            'private_dir': private_dir,
            'parent_pid': os.getpid(),
            'log_level': logging.getLogger(
                'ceilometer_os_pollster').getEffectiveLevel(),
        }).encode('utf-8')

    def inspect(self, job):
        """The OSRecord for one job.  Never raises."""
        start = self._clock()
        fingerprint = job.fingerprint
        try:
            job = identity.with_fingerprint(job,
                                            self._opts.inspect_all_disks)
            fingerprint = job.fingerprint
            try:
                account = self._account()
            except confinement.ConfinementError as exc:
                return self._failed(job, 'inspection not confined: %s'
                                    % exc, fingerprint, start)
            private = workdir.PrivateDir(self._opts.tmp_dir or None,
                                         owner=account and account[:2])
            try:
                private.__enter__()
            except OSError as exc:
                return self._failed(
                    job, 'cannot create a temporary directory in %s: %s'
                    % (private.root, exc.strerror), fingerprint, start)
            try:
                outcome = supervisor.run(
                    self._argv, self.request(job, private.path),
                    self.deadline, cwd=private.path,
                    on_message=lambda m: self._relay(job, m),
                    workers=self._workers, label=job.instance_id)
            finally:
                private.remove()
        except drives.DomainXMLError as exc:
            return self._failed(job, 'unusable domain XML: %s' % exc,
                                fingerprint, start)
        except Exception as exc:
            LOG.exception('inspection of instance %s (%s) failed '
                          'unexpectedly', job.instance_id, job.domain_name)
            return self._failed(job, 'internal error: %s'
                                % type(exc).__name__, fingerprint, start)
        if outcome.lingering:
            LOG.error('inspection worker of instance %s, or a process '
                      'it started (qemu, qemu-img), did not die after '
                      'SIGKILL (stuck in the kernel, e.g. on hung '
                      'storage); it is left to exit on its own',
                      job.instance_id)
        rec, reason = outcome_record(job, outcome, self.deadline)
        if outcome.cancelled:
            LOG.info('inspection of instance %s (%s) cancelled: the '
                     'service is stopping', job.instance_id, job.domain_name)
            return record.OSRecord.failed(job.instance_id, reason,
                                          fingerprint, self._elapsed(start))
        if reason:
            return self._failed(job, reason, fingerprint, start)
        rec = rec.replace(fingerprint=fingerprint,
                          duration=self._elapsed(start))
        LOG.info('instance %s (%s): %s %s %s in %.1f s%s',
                 job.instance_id, job.domain_name, rec.status,
                 rec.os_distro, rec.os_info, rec.duration,
                 ' (%s)' % rec.reason if rec.reason else '')
        return rec

    def stop(self, timeout):
        """End every inspection this engine runs, and any it is asked
        for from now on, with everything they started (qemu, qemu-img);
        wait at most ``timeout`` seconds until all of it is gone.
        Returns (how many were running, ['pid name (instance id)' of each
        process still alive])."""
        return self._workers.stop(timeout)

    @staticmethod
    def _relay(job, message):
        entry = message.get('log')
        if not entry or len(entry) != 2:
            return
        level = logging.getLevelName(str(entry[0]))
        if not isinstance(level, int):
            level = logging.WARNING
        LOG.log(level, 'inspection worker for instance %s: %s',
                job.instance_id, sanitize.clean_text(entry[1], 500))

    def start(self):
        """Once per process, before the first inspection: log what will
        make inspections fail (the preflight) and remove the private
        directories of inspections whose process was killed (overlays,
        and a Ceph keyring a worker killed before its launch could not
        delete) and the socket directories root workers leave in /tmp.
        The preflight's problems."""
        problems = self.preflight()
        try:
            account = self._account()
        except confinement.ConfinementError:
            account = None      # the preflight said why
        else:
            if account is None and os.geteuid() == 0:
                LOG.warning('OS inspections run as root and so does the '
                            'appliance\'s qemu ([%s] allow_root_inspection '
                            '= true): set worker_user to a dedicated '
                            'unprivileged user', options.GROUP)
        workdir.remove_orphan_dirs(self._opts.tmp_dir or None,
                                   owners=[account[0]] if account else [])
        workdir.remove_orphan_sockdirs()
        return problems

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
            problems.append('libguestfs backend %r is not supported: only '
                            '"direct" lets the inspector check what qemu '
                            'opens and kill it at the deadline; every '
                            'inspection will fail' % backend)
        for name in ('tmp_dir', 'appliance_cache_dir'):
            path = getattr(self._opts, name)
            if path and not os.access(path, os.W_OK | os.X_OK):
                problems.append('[%s] %s = %s is not a writable directory'
                                % (options.GROUP, name, path))
        try:
            self._account()
        except confinement.ConfinementError as exc:
            problems.append('%s: every inspection will fail' % exc)
        for problem in problems:
            LOG.warning('OS inspection preflight: %s', problem)
        return problems

    # ----------------------------------------------------------------

    def _account(self):
        """The worker user's account (see confinement.worker_account);
        ConfinementError when this process must not inspect."""
        return confinement.worker_account(
            self._opts.worker_user,
            allow_root=self._opts.allow_root_inspection)

    def _elapsed(self, start):
        return round(max(0.0, self._clock() - start), 3)

    def _failed(self, job, reason, fingerprint, start):
        reason = (sanitize.clean_text(reason, record.REASON_LIMIT)
                  or 'failed')
        duration = self._elapsed(start)
        LOG.warning('inspection of instance %s (%s) failed after %.1f s: '
                    '%s', job.instance_id, job.domain_name, duration, reason)
        return record.OSRecord.failed(job.instance_id, reason, fingerprint,
                                      duration)


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return 'signal %d' % number


def outcome_record(job, outcome, deadline):
    """(record, '') for a worker run that produced a valid record, else
    (None, public reason).  Pure."""
    if outcome.cancelled:
        return None, 'inspection cancelled: the service stopped'
    if outcome.start_error:
        return None, ('cannot start the inspection worker: %s'
                      % outcome.start_error)
    if outcome.timed_out:
        where = ' while %s' % outcome.stage if outcome.stage else ''
        return None, ('deadline: inspection killed after %d s%s'
                      % (deadline, where))
    if outcome.oversized:
        return None, 'inspection worker output too large'
    code = outcome.returncode
    if code is not None and code < 0:
        name = _signal_name(-code)
        hint = ' (out of memory?)' if -code == signal.SIGKILL else ''
        where = ' while %s' % outcome.stage if outcome.stage else ''
        return None, ('inspection worker killed by %s%s%s'
                      % (name, where, hint))
    if outcome.record is None:
        tail = [line for line in outcome.stderr_tail.splitlines()
                if line.strip()]
        detail = ': %s' % tail[-1].strip() if tail else ''
        if outcome.garbage:
            return None, ('inspection worker returned unreadable output'
                          '%s' % detail)
        return None, ('inspection worker failed (exit %s)%s'
                      % (code, detail))
    try:
        rec = record.OSRecord.from_dict(outcome.record)
    except (TypeError, ValueError) as exc:
        return None, 'inspection worker returned an invalid record: %s' % exc
    if (rec.instance_id != job.instance_id
            or rec.status == record.STATUS_PENDING):
        return None, 'inspection worker returned a record for another job'
    # It crossed a process boundary: clean it again, as guest data.
    return rec.cleaned(), ''
