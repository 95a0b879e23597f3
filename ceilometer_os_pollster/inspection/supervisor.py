"""Runs one inspection worker process under a hard deadline.

Agent side.  The worker
(``python -m ceilometer_os_pollster.inspection.worker``) is started
with fork+exec done in C by ``subprocess`` (no Python code runs in a
forked copy of the multi-threaded agent), in a new session and so
its own process group, which qemu-img, qemu and libguestfs' helpers
inherit.  This module only writes the request to the worker's stdin and
reads its stdout/stderr through non-blocking pipes with a deadline; it
never touches a guest disk or libguestfs, so nothing a disk does can
stall the calling thread past the deadline, and the GIL is never held
while waiting.

At the deadline, on oversized output, or when the worker has ended, its
whole process group is sent SIGKILL while the worker is still
unreaped (a zombie keeps its pid, so the group id cannot have been
reused), and the run returns once every process of the group is gone.
A process stuck in the kernel (hung NFS) that does not die within a
short grace is left behind, said (``lingering``) and remembered for
``Workers.stop``: the caller gets its answer and its slot back.

``Workers`` is the set of workers one owner (an engine) runs, so that
stopping the service ends all of them, including one being started at
that moment, and waits, bounded, until their process groups are empty.
"""

import dataclasses
import json
import os
import selectors
import signal
import subprocess
import threading
import time

MAX_STDOUT = 1 << 20        # a record is a few KiB
MAX_STDERR_TAIL = 8192
MAX_LOG_MESSAGES = 100
# Seconds a killed worker and the rest of its process group are waited for.
KILL_GRACE = 5.0
_READ = 65536

STOP_POLL = 0.05            # how often stop() looks at the killed groups


@dataclasses.dataclass
class Outcome:
    """What one worker run produced (plain data, for ``engine``)."""

    record: dict | None = None
    stage: str = ''
    logs: list = dataclasses.field(default_factory=list)
    returncode: int | None = None      # negative: killed by that signal
    timed_out: bool = False
    oversized: bool = False
    garbage: int = 0                    # lines that were not our protocol
    stderr_tail: str = ''
    start_error: str = ''
    lingering: bool = False             # left after KILL_GRACE
    cancelled: bool = False             # Workers.stop() ended it
    seconds: float = 0.0


class Workers:
    """The worker processes of one owner (an engine).

    ``stop()`` closes the set for good: it SIGKILLs the process group of
    every worker running now, and a worker whose fork+exec was under way
    is killed as soon as its pid is known (the lock orders the two: the
    pid is either in the set when stop() kills, or sees the set closed).
    Then it waits until every run() has returned and nothing is left in
    those groups (qemu, qemu-img, libguestfs' helpers).
    """

    def __init__(self, clock=time.monotonic):
        self._cond = threading.Condition()
        self._clock = clock
        self._running = {}      # pgid -> label; leader not reaped yet
        self._runs = 0          # run() calls in progress
        self._ended = {}        # pgid -> label: groups stop() waits for
        self.stopped = False

    def _enter(self):
        with self._cond:
            if self.stopped:
                return False
            self._runs += 1
            return True

    def _leave(self):
        with self._cond:
            self._runs -= 1
            self._cond.notify_all()

    def _admit(self, pgid, label):
        """Track a started worker; False if stop() came first (it is
        then killed here)."""
        with self._cond:
            if self.stopped:
                self._ended[pgid] = label
                _killpg(pgid)
                return False
            self._running[pgid] = label
            # Forget lingering workers that have gone since.
            for gone in [g for g in self._ended if not _group_alive(g)]:
                del self._ended[gone]
            return True

    def _release(self, pgid, lingering):
        # Before the leader is reaped: afterwards its pid may be reused.
        with self._cond:
            label = self._running.pop(pgid, None)
            if lingering and label is not None:
                self._ended[pgid] = label

    def stop(self, timeout):
        """Kill every worker and its group, now and from now on; wait at
        most ``timeout`` seconds until they are gone.  Returns (how many
        were running, ['pid name (label)' of each process still alive])."""
        end = self._clock() + timeout
        with self._cond:
            self.stopped = True
            killed = len(self._running)
            for pgid in self._running:
                _killpg(pgid)
            self._ended.update(self._running)
            # The runs reap their killed workers (or give up on one stuck
            # in the kernel after KILL_GRACE).
            while self._runs and self._clock() < end:
                self._cond.wait(min(STOP_POLL * 4,
                                    max(0.0, end - self._clock())))
            ended = dict(self._ended)
        left = _group_members(ended)
        while left and self._clock() < end:
            time.sleep(STOP_POLL)
            left = _group_members(ended)
        return killed, ['%d %s (%s)' % (pid, name, ended[pgid])
                        for pgid, pid, name in left]


def run(argv, request, deadline, *, env=None, cwd=None, on_message=None,
        clock=time.monotonic, workers=None, label=''):
    """Run one worker: write ``request`` (bytes), collect its messages
    until it exits or ``deadline`` seconds pass.  Never raises for
    anything the worker does.  ``on_message(dict)`` sees every protocol
    message as it arrives (stages, logs).  The worker belongs to
    ``workers`` (a Workers; its own otherwise), under ``label``; once
    that set is stopped nothing is started (``cancelled``)."""
    outcome = Outcome()
    workers = workers if workers is not None else Workers()
    if not workers._enter():
        outcome.cancelled = True
        return outcome
    try:
        _run(argv, request, deadline, env, cwd, on_message, clock,
             workers, label, outcome)
    finally:
        workers._leave()
    return outcome


def _run(argv, request, deadline, env, cwd, on_message, clock, workers,
         label, outcome):
    start = clock()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, close_fds=True, start_new_session=True,
            env=env, cwd=cwd)
    except OSError as exc:
        outcome.start_error = '%s: %s' % (argv[0], exc.strerror)
        return
    try:
        if workers._admit(proc.pid, label):
            _exchange(proc, request, start + deadline, outcome, on_message,
                      clock)
        else:
            outcome.cancelled = True
    finally:
        _finish(proc, outcome, workers)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass
        outcome.seconds = clock() - start


def _exchange(proc, request, end, outcome, on_message, clock):
    sel = selectors.DefaultSelector()
    pending = memoryview(request)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        os.set_blocking(pipe.fileno(), False)
    sel.register(proc.stdin, selectors.EVENT_WRITE)
    sel.register(proc.stdout, selectors.EVENT_READ)
    sel.register(proc.stderr, selectors.EVENT_READ)
    stdout = bytearray()
    stdout_total = 0
    stderr = bytearray()
    open_readers = 2
    try:
        while open_readers:
            left = end - clock()
            if left <= 0:
                outcome.timed_out = True
                return
            for key, _ in sel.select(min(left, 1.0)):
                pipe = key.fileobj
                if pipe is proc.stdin:
                    try:
                        written = os.write(pipe.fileno(), pending[:_READ])
                    except BrokenPipeError:
                        written = len(pending)
                    except BlockingIOError:
                        continue
                    pending = pending[written:]
                    if not pending:
                        sel.unregister(pipe)
                        pipe.close()
                    continue
                try:
                    data = os.read(pipe.fileno(), _READ)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(pipe)
                    open_readers -= 1
                    continue
                if pipe is proc.stderr:
                    stderr += data
                    del stderr[:-MAX_STDERR_TAIL]
                    continue
                stdout_total += len(data)
                if stdout_total > MAX_STDOUT:
                    outcome.oversized = True
                    return
                stdout += data
                while b'\n' in stdout:
                    line, _, rest = bytes(stdout).partition(b'\n')
                    stdout[:] = rest
                    _message(line, outcome, on_message)
        if stdout.strip():
            _message(bytes(stdout), outcome, on_message)
        # Both pipes closed: the worker is exiting; give it until the end.
        if not _wait_exited(proc.pid, end, clock):
            outcome.timed_out = True
    finally:
        sel.close()
        outcome.stderr_tail = bytes(stderr).decode('utf-8', 'replace')


def _message(line, outcome, on_message):
    try:
        message = json.loads(line)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        outcome.garbage += 1
        return
    if 'stage' in message and isinstance(message['stage'], str):
        outcome.stage = message['stage'][:64]
    elif 'log' in message and isinstance(message['log'], list):
        if len(outcome.logs) < MAX_LOG_MESSAGES:
            outcome.logs.append(message['log'])
    elif 'record' in message and isinstance(message['record'], dict):
        outcome.record = message['record']
    else:
        outcome.garbage += 1
        return
    if on_message is not None:
        on_message(message)


def _finish(proc, outcome, workers):
    """Kill the worker's process group (qemu, qemu-img, helpers) before
    the worker is reaped; wait, within the grace, until the worker and
    every other process of its group are gone, then reap the worker.
    The worker often dies first: on a busy host a killed qemu can take
    a moment longer, and the inspection is not over until it has gone.
    """
    until = time.monotonic() + KILL_GRACE
    _killpg(proc.pid)
    exited = _wait_exited(proc.pid, until)
    if exited:
        # The group may have gained members between the kill and the
        # exit.  The unreaped worker keeps the group's id from reuse.
        _killpg(proc.pid)
        outcome.lingering = not _wait_group_gone(proc.pid, until)
    else:
        outcome.lingering = True
    workers._release(proc.pid, outcome.lingering)
    if workers.stopped and outcome.record is None:
        outcome.cancelled = True
    if not exited:
        return
    proc.wait()
    outcome.returncode = proc.returncode


def _group_alive(pgid):
    """Whether any process (a zombie too) is in process group pgid."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _group_members(pgids):
    """[(pgid, pid, name)] of the live processes (zombies excepted) in
    one of the process groups ``pgids``."""
    pgids = [p for p in pgids if _group_alive(p)]
    if not pgids:
        return []       # the usual case: not even a zombie is left
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/stat' % pid, 'rb') as f:
                stat = f.read()
        except OSError:
            continue
        # pid (name) state ppid pgrp ...; the name may hold ') '.
        name = stat[stat.find(b'(') + 1:stat.rfind(b')')]
        state, _ppid, pgrp = stat[stat.rfind(b')') + 2:].split()[:3]
        if state != b'Z' and int(pgrp) in pgids:
            found.append((int(pgrp), int(pid),
                          name.decode('utf-8', 'replace')))
    return found


def _killpg(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_for(done, until, clock=time.monotonic):
    """Whether done() holds before clock() reaches until; polled with a
    pause growing from 2 to 50 ms."""
    pause = 0.002
    while not done():
        if clock() >= until:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


def _wait_exited(pid, until, clock=time.monotonic):
    """Whether pid exits (left unreaped) before clock() reaches until."""
    return _wait_for(lambda: _exited(pid), until, clock)


def _wait_group_gone(pgid, until):
    """Whether every live process of group pgid (zombies aside) is gone
    before until."""
    return _wait_for(lambda: not _group_members([pgid]), until)


def _exited(pid):
    """Whether pid has exited, without reaping it (WNOWAIT)."""
    try:
        info = os.waitid(os.P_PID, pid,
                         os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None
