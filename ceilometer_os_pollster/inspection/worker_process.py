"""What the inspection worker does to its own process: die with the
thread of the agent that started it (PR_SET_PDEATHSIG), fork a guard
that kills the worker's process group once the worker is gone (so an
agent that is killed leaves no qemu-img running), and lower its CPU and
I/O priority (inherited by qemu-img and the appliance's qemu).
"""

import ctypes
import ctypes.util
import errno
import os
import platform
import signal
import time

# ioprio_set(2): not wrapped by Python; syscall numbers per machine.
_IOPRIO_SET = {'x86_64': 251, 'aarch64': 30, 'ppc64le': 273,
               's390x': 282, 'i686': 289}
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13
IO_CLASSES = {'realtime': 1, 'best-effort': 2, 'idle': 3}
_PR_SET_PDEATHSIG = 1


def _libc():
    return ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)


def die_with_parent(parent_pid):
    """Be killed when the thread that started us ends; exit now if the
    agent is already gone."""
    try:
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if parent_pid and os.getppid() != parent_pid:
        os._exit(3)


def guard_group():
    """Fork a guard that SIGKILLs this worker's process group as soon as
    the worker is gone, however it went.  Killed with the agent
    (PR_SET_PDEATHSIG, the agent's SIGTERM), the worker would otherwise
    leave its qemu-img waiting for storage that does not answer,
    re-parented to init.  Call once, before any other thread exists."""
    worker = os.getpid()
    if os.getpgrp() != worker:
        return      # not started by the agent: the group is our parent's
    prctl = _libc().prctl
    if os.fork():
        return
    try:
        os.closerange(0, 1 << 16)       # the agent must see our pipes close
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
        prctl(_PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0)
        if os.getppid() == worker:
            signal.sigwait([signal.SIGUSR1])
        os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(0)


def _write_line(path, text):
    with open(path, 'w') as f:
        f.write(text + '\n')


def set_autogroup_nice(path, nice, attempts=5, pause=0.11):
    """Give this process's autogroup (its session) the nice value.
    Returns what went wrong as log-ready text, '' when done or when
    there is nothing to weigh: a kernel without autogroups, autogroups
    switched off, or a process left in the root group (EINVAL), where
    the process's own nice level already applies.  The kernel lets an
    unprivileged user change autogroup nice at most ten times a second
    host-wide (EAGAIN): workers starting together retry briefly."""
    for attempt in range(attempts):
        try:
            _write_line(path, '%d' % nice)
            return ''
        except FileNotFoundError:
            return ''
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return ''
            if exc.errno == errno.EAGAIN and attempt + 1 < attempts:
                time.sleep(pause)
                continue
            return 'autogroup nice %s: %s' % (nice, exc.strerror)


def lower_priority(nice, io_class, autogroup='/proc/self/autogroup'):
    """Apply the operator's nice level and I/O class to this process
    (inherited by qemu-img and the appliance's qemu).  Returns what
    could not be applied, as log-ready text ('' when all was)."""
    problems = []
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, int(nice))
        except OSError as exc:
            problems.append('nice %s: %s' % (nice, exc.strerror))
        # With autogroups (Debian's default) the CPU is shared between
        # sessions before nice counts, and the worker leads a session of
        # its own: give that whole session the same nice value.
        problem = set_autogroup_nice(autogroup, int(nice))
        if problem:
            problems.append(problem)
    if io_class and io_class != 'none':
        number = _IOPRIO_SET.get(platform.machine())
        value = IO_CLASSES[io_class] << _IOPRIO_CLASS_SHIFT
        if io_class == 'best-effort':
            value |= 7          # lowest level of the class
        if number is None:
            problems.append('I/O class %s: unsupported machine %s'
                            % (io_class, platform.machine()))
        elif _libc().syscall(number, _IOPRIO_WHO_PROCESS, 0, value) != 0:
            problems.append('I/O class %s: %s' % (
                io_class, os.strerror(ctypes.get_errno())))
    return '; '.join(problems)
