"""The inspection worker process: one job in, one OSRecord out.

``python -m ceilometer_os_pollster.inspection.worker`` is started by the agent
(``engine`` through ``supervisor``) for every inspection.  It reads one
JSON request on stdin (the job, the ``[os_inspection]`` option values,
its private directory), confines itself (``confinement``: a root worker
becomes ``worker_user``; temporary files and sockets in the private
directory; qemu started through a limiting, sandboxing wrapper), lowers
its own CPU and I/O priority (``worker_process``), runs the
one-way flow (domain XML -> drive specs -> the direct readers or the
appliance -> raw facts -> OS record) and writes JSON lines on stdout:
``{"stage": ...}`` as it goes, ``{"log": [level, text]}`` for its log
messages and finally ``{"record": {...}}``.  Anything else a library
prints goes to stderr.

Everything that can block on guest storage happens here, never in the
agent: the agent only waits on the pipe and kills this process group at
the deadline.  The worker dies with the thread that started it
(PR_SET_PDEATHSIG), and a guard it forks then kills what it started
(qemu-img), so an agent that is killed leaves no inspection running.
"""

import json
import logging
import os
import signal
import sys
import time
import types

from ceilometer_os_pollster.inspection import worker_process

MAX_REQUEST = 4 << 20


class _Channel:
    """The protocol stream: a private duplicate of the original stdout.
    fd 1 itself is pointed at stderr so that stray prints from C
    libraries cannot corrupt the protocol."""

    def __init__(self):
        fd = os.dup(1)
        os.dup2(2, 1)
        self._out = os.fdopen(fd, 'w', encoding='utf-8', buffering=1)

    def send(self, **message):
        self._out.write(json.dumps(message, separators=(',', ':'),
                                   ensure_ascii=True) + '\n')
        self._out.flush()


class _ChannelHandler(logging.Handler):
    def __init__(self, channel):
        super().__init__()
        self._channel = channel

    def emit(self, record):
        try:
            self._channel.send(log=[record.levelname,
                                    record.getMessage()[:2000]])
        except Exception:
            pass


def options_namespace(values):
    """The options an agent sent, over every option's default: an agent
    still running the previous version (the package was upgraded under
    it) sends fewer."""
    from ceilometer_os_pollster import options
    merged = {opt.dest: opt.default for opt in options.OPTS}
    merged.update(values)
    return types.SimpleNamespace(**merged)


class _DirectOnly(Exception):
    """The direct method could not decide and the appliance may not."""


def read_disks(opts, specs, private_dir, stage, appliance_factory,
               direct_reader):
    """(ApplianceFacts, method, why direct fell back or '') for specs,
    by ``inspection_method``: auto tries our own readers first and falls
    back to the appliance on anything they do not read, direct never
    starts an appliance (raises _DirectOnly), appliance never reads the
    disks itself."""
    from ceilometer_os_pollster import record
    from ceilometer_os_pollster.direct import errors

    method = opts.inspection_method
    why = ''
    if method in ('auto', 'direct'):
        for attempt in (1, 2):
            try:
                return (direct_reader(specs, stage), record.METHOD_DIRECT,
                        '')
            except errors.TornRead as exc:
                why = exc.reason
                if attempt == 1:
                    continue        # a live disk changed under us: once
            except errors.DirectError as exc:
                why = exc.reason
            except Exception as exc:  # a reader bug on hostile bytes
                logging.getLogger(__name__).warning(
                    'direct readers failed: %r', exc, exc_info=True)
                why = 'internal error of the direct readers (%s)' % (
                    type(exc).__name__)
            break
        if method == 'direct':
            raise _DirectOnly(why)
    facts = appliance_factory(opts, specs, private_dir, stage=stage).inspect()
    return facts, record.METHOD_APPLIANCE, why


class _ConfinedAppliance:
    """An appliance inside the worker's bounds on disk writes: it does
    not start without room for every overlay at its file-size limit, and
    an overlay found at its limit fails the inspection, whatever the
    appliance made of the refused write (the guest may have seen no OS
    at all): never a cheaper record for it."""

    def __init__(self, factory, hv, space_problem, opts, specs, private_dir,
                 stage):
        self._factory, self._hv, self._space = factory, hv, space_problem
        self._opts, self._specs = opts, specs
        self._dir, self._stage = private_dir, stage

    def inspect(self):
        from ceilometer_os_pollster.inspection import (
            appliance as appliance_mod)
        from ceilometer_os_pollster.inspection import confinement
        problem = self._space(self._dir, self._opts, len(self._specs))
        if problem:
            raise appliance_mod.ApplianceError(problem)
        extra = {'hv': self._hv} if self._hv else {}
        try:
            facts = self._factory(self._opts, self._specs, self._dir,
                                  stage=self._stage, **extra).inspect()
            failure = None
        except appliance_mod.ApplianceError as exc:
            facts, failure = None, exc
        # qemu has exited (the handle is closed): the sizes are final.
        full = confinement.limit_hit(confinement.overlay_sizes(self._dir),
                                     self._opts)
        if full:
            raise appliance_mod.ApplianceError(
                confinement.limit_reason(full, self._opts))
        if failure is not None:
            raise failure
        return facts


def confined(factory, hv=None, space_problem=None):
    """``factory`` (an appliance factory) within the worker's bounds;
    ``hv`` is the hypervisor wrapper that confines qemu (see
    ``confinement``), ``space_problem(path, opts, drives)`` says why the
    private directory's filesystem cannot take the overlays."""
    from ceilometer_os_pollster.inspection import confinement
    check = space_problem or confinement.space_problem

    def make(opts, specs, private_dir, stage):
        return _ConfinedAppliance(factory, hv, check, opts, specs,
                                  private_dir, stage)
    return make


def inspect(opts, job, private_dir, stage, appliance_factory=None,
            direct_reader=None, *, hv=None, space_problem=None):
    """The OSRecord of one job: the whole one-way flow.  Never raises.
    ``hv`` and ``space_problem``: see ``confined``; ``direct_reader``
    replaces direct.inspect.inspect (tests)."""
    from ceilometer_os_pollster.inspection import appliance as appliance_mod
    from ceilometer_os_pollster.instances import drives
    from ceilometer_os_pollster.families import facts as facts_mod
    from ceilometer_os_pollster import record
    from ceilometer_os_pollster import sanitize

    factory = confined(appliance_factory or appliance_mod.Appliance, hv,
                       space_problem)
    if direct_reader is None:
        from ceilometer_os_pollster.direct import inspect as direct_mod
        from ceilometer_os_pollster.direct.block import network
        disks = network.NetworkDisks(opts, private_dir)

        def direct_reader(specs, stage):
            return direct_mod.inspect(
                specs, stage, max_filesystems=opts.max_filesystems,
                network=disks)
    start = time.monotonic()

    def elapsed():
        return round(max(0.0, time.monotonic() - start), 3)

    def read(specs):
        return read_disks(opts, specs, private_dir, stage, factory,
                          direct_reader)

    instance_id = job['instance_id']
    fingerprint = job.get('fingerprint', '')
    try:
        stage('reading the domain XML')
        specs = drives.drive_specs(job['domain_xml'])
        chosen = drives.boot_drives(specs, all_disks=opts.inspect_all_disks)
        if not chosen:
            return record.OSRecord.failed(instance_id, 'no disk to inspect',
                                          fingerprint, elapsed(),
                                          status=record.STATUS_UNKNOWN)
        logging.getLogger(__name__).debug(
            'inspecting instance %s: %s', instance_id,
            '; '.join(drives.describe(s) for s in chosen))
        facts, method, why = read(chosen)
        every = drives.boot_drives(specs, all_disks=True)
        if (len(every) > len(chosen) and not facts.limits
                and not facts_mod.billing_candidates(facts.roots)[0]):
            # No OS on the boot disk: a bootloader may start one from
            # another disk, and a VM is never free for hiding its OS
            # there.  Rare (blank or chain-loading boot disks), so the
            # other disks are read only then.
            stage('inspecting every disk (no OS on the boot disk)')
            facts, method, why_all = read(every)
            why = why_all or why
        rec = facts_mod.normalise(facts, instance_id, fingerprint,
                                  elapsed())
        if why:
            rec = rec.replace(reason=sanitize.clean_text('; '.join(
                filter(None, (rec.reason,
                              'direct reading fell back: ' + why)))))
        return rec.replace(inspection_method=method)
    except drives.DomainXMLError as exc:
        return record.OSRecord.failed(instance_id,
                                      'unusable domain XML: %s' % exc,
                                      fingerprint, elapsed())
    except appliance_mod.ApplianceError as exc:
        return record.OSRecord.failed(instance_id, exc.reason, fingerprint,
                                      elapsed())
    except _DirectOnly as exc:
        return record.OSRecord.failed(
            instance_id, 'not read directly, and inspection_method is '
            'direct: %s' % exc, fingerprint, elapsed())


def confine(opts, private_dir, environ=None):
    """Switch to the worker user (when root) and keep every temporary
    file of libguestfs and qemu in the private directory.  Returns the
    hypervisor wrapper factory for the appliance; raises
    ConfinementError when the inspection must not run (root without
    worker_user and without allow_root_inspection among them)."""
    from ceilometer_os_pollster.inspection import confinement
    environ = os.environ if environ is None else environ
    # Checked again here, not only by the agent: the worker is the
    # process that reads the disks and starts qemu.
    account = confinement.worker_account(
        opts.worker_user, allow_root=opts.allow_root_inspection)
    if account is not None:
        confinement.drop_privileges(opts.worker_user, account)
        environ['HOME'] = private_dir
        environ['USER'] = environ['LOGNAME'] = opts.worker_user
    confinement.private_environment(private_dir, environ)
    # qemu must die at its file-size limit rather than answer the guest
    # with write errors it may ignore; Python ignores SIGXFSZ and exec
    # (libguestfs' fork, the wrapper, prlimit) would pass that on.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)

    def wrapper(qemu):
        try:
            return confinement.write_wrapper(private_dir, qemu, opts)
        except OSError as exc:
            # Seen by the appliance as a libguestfs error: a failed record.
            raise RuntimeError('cannot write the qemu wrapper: %s'
                               % exc.strerror) from None
    return wrapper


def main(stdin=None):
    from ceilometer_os_pollster.inspection import confinement
    from ceilometer_os_pollster import record
    channel = _Channel()
    handler = _ChannelHandler(channel)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    stdin = stdin or sys.stdin.buffer
    request = json.loads(stdin.read(MAX_REQUEST))
    root.setLevel(request.get('log_level', logging.INFO))
    opts = options_namespace(request['options'])
    job = request['job']
    try:
        hv = confine(opts, request['private_dir'])
    except (confinement.ConfinementError, OSError) as exc:
        result = record.OSRecord.failed(
            job['instance_id'], 'inspection not confined: %s' % exc,
            job.get('fingerprint', ''), 0.0)
        channel.send(record=result.to_dict())
        return 0
    # After the switch of user: a change of credentials clears it.
    worker_process.die_with_parent(request.get('parent_pid'))
    worker_process.guard_group()
    problem = worker_process.lower_priority(opts.worker_nice,
                                            opts.worker_io_class)
    if problem:
        logging.getLogger(__name__).warning(
            'inspection worker priority not lowered: %s', problem)
    result = inspect(opts, job, request['private_dir'],
                     lambda name: channel.send(stage=name), hv=hv)
    channel.send(record=result.to_dict())
    return 0


if __name__ == '__main__':
    sys.exit(main())
