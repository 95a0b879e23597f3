"""What one inspection may use of the host, and how that is enforced.

Runs in the inspection worker.  Owns the limits of one inspection:

* the user the worker (and so qemu-img and the appliance's qemu) runs
  as when the inspection is started by root (``worker_user``), and the
  refusal of an unconfined root inspection unless the operator opted
  out (``allow_root_inspection``);
* the environment that keeps libguestfs' sockets and qemu's scratch
  files inside the inspection's private directory;
* the free space the private directory's filesystem must have before
  the appliance starts;
* the hypervisor wrapper libguestfs starts instead of qemu: qemu with a
  file-size and an address-space limit and ``-sandbox`` (libguestfs 1.48
  has no option for either);
* whether an overlay reached its file-size limit (the guest made the
  appliance write more than the operator allows: never billed cheaper).

The pure parts (sizes, texts) are plain functions over options; the
I/O is a few small calls with the system functions passed in for tests.
"""

import glob
import os
import pwd
import shlex

MIB = 1 << 20
# qemu 7.2's seccomp filter: no obsolete syscalls, no setuid/setgid or
# capabilities, no fork/exec, no scheduler or affinity changes.
SANDBOX = ('on,obsolete=deny,elevateprivileges=deny,spawn=deny,'
           'resourcecontrol=deny')
WRAPPER_NAME = 'qemu-confined'
PRLIMIT = '/usr/bin/prlimit'
# Address space qemu maps beyond the guest's RAM (TCG's 1 GiB code
# buffer, libraries, thread stacks); measured ~1.5 GiB under TCG.
ADDRESS_SPACE_HEADROOM_MB = 3072
# An overlay that ends this close to the limit hit it: the write that
# failed may have been a cluster allocation just below the limit.
LIMIT_MARGIN = 8 * MIB
LIMIT_REASON = 'overlay write limit reached'


class ConfinementError(Exception):
    """The inspection cannot be confined as configured; public text."""


# ------------------------------------------------------------ user

# Kept short: it ends up in a record's reason (200 characters).
UNCONFINED = ('started by root with no [os_inspection] worker_user (set '
              'it, or allow_root_inspection = true to run qemu as root)')


def worker_account(user, euid=None, getpwnam=pwd.getpwnam,
                   allow_root=False):
    """(uid, gid, home) the worker must run as, or None to stay as is.

    Only a root process switches, and only when ``user`` is set.  Root
    without ``user`` is refused unless the operator opted out
    (``allow_root``, allow_root_inspection); a ``user`` that is root
    itself or unknown is an error, never a silent root worker."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return None
    if not user:
        if allow_root:
            return None
        raise ConfinementError(UNCONFINED)
    try:
        entry = getpwnam(user)
    except KeyError:
        raise ConfinementError('[os_inspection] worker_user %s does not '
                               'exist' % user) from None
    if entry.pw_uid == 0:
        raise ConfinementError('[os_inspection] worker_user %s is root'
                               % user)
    return entry.pw_uid, entry.pw_gid, entry.pw_dir


def drop_privileges(user, account):
    """Become ``account`` (from worker_account) with the user's groups
    (e.g. kvm, or one allowed to read instance disks).  Irreversible."""
    uid, gid, _ = account
    os.setgroups(os.getgrouplist(user, gid))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:   # belt and braces
        raise ConfinementError('could not switch to worker_user %s' % user)


def private_environment(private_dir, environ):
    """Set the variables that decide where libguestfs and qemu put
    temporary files: the socket directory (XDG_RUNTIME_DIR, honoured by
    libguestfs 1.48 for non-root only), qemu's scratch copy of the
    appliance disk (TMPDIR, ``snapshot=on``) and libguestfs' temporary
    directory.  Must run before the libguestfs handle is created."""
    # libguestfs builds its appliance in $TMPDIR when LIBGUESTFS_CACHEDIR
    # is unset: keep the cache it would have used, shared and built once.
    environ.setdefault('LIBGUESTFS_CACHEDIR',
                       environ.get('TMPDIR') or '/var/tmp')
    for name in ('XDG_RUNTIME_DIR', 'TMPDIR', 'LIBGUESTFS_TMPDIR'):
        environ[name] = private_dir


# ------------------------------------------------------------ space

def required_space_mb(opts, drives):
    """Free MiB the private directory's filesystem needs: every overlay
    and the appliance's scratch disk may each grow to the file-size
    limit, and the operator's reserve must still be left."""
    return (drives + 1) * opts.overlay_max_mb + opts.tmp_min_free_mb


def space_problem(path, opts, drives, statvfs=os.statvfs):
    """Why the inspection must not start for lack of space, or ''."""
    try:
        info = statvfs(path)
    except OSError as exc:
        return 'cannot check free space in %s: %s' % (path, exc.strerror)
    free_mb = info.f_bavail * info.f_frsize // MIB
    needed = required_space_mb(opts, drives)
    if free_mb < needed:
        return ('not enough free space for the overlays: %d MiB free in '
                '%s, %d MiB needed (%d disk(s) x overlay_max_mb %d + '
                'tmp_min_free_mb %d)'
                % (free_mb, os.path.dirname(path.rstrip('/')) or path,
                   needed, drives + 1, opts.overlay_max_mb,
                   opts.tmp_min_free_mb))
    return ''


# ------------------------------------------------------------ qemu

def address_space_mb(opts):
    value = getattr(opts, 'appliance_address_space_mb', 0)
    return value or opts.appliance_memory_mb + ADDRESS_SPACE_HEADROOM_MB


def wrapper_script(qemu, opts, prlimit=PRLIMIT):
    """The hypervisor wrapper's text: qemu with our limits and sandbox.

    The sandbox comes after libguestfs' own arguments, so its probes
    (``-help``, ``-version``) still answer: qemu handles those while
    parsing, before it installs the filter."""
    fsize = opts.overlay_max_mb * MIB
    space = address_space_mb(opts) * MIB
    return ('#!/bin/sh\n'
            '# Written by ceilometer-os-pollster for one inspection.\n'
            'exec %s --fsize=%d --as=%d -- %s "$@" -sandbox %s\n'
            % (shlex.quote(prlimit), fsize, space, shlex.quote(qemu),
               SANDBOX))


def write_wrapper(private_dir, qemu, opts):
    """Write the wrapper (mode 0700) into the private directory; its
    path."""
    path = os.path.join(private_dir, WRAPPER_NAME)
    try:
        os.unlink(path)         # an earlier appliance of this inspection
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                 | os.O_CLOEXEC, 0o700)
    with os.fdopen(fd, 'w') as f:
        f.write(wrapper_script(qemu, opts))
    # libguestfs caches what it probed of its qemu in the appliance
    # cache under the hypervisor's size and mtime: with qemu's mtime the
    # wrappers of all inspections share one entry (renewed when qemu is
    # upgraded) instead of adding one, and a probe, per inspection.
    try:
        mtime = os.stat(qemu).st_mtime_ns
    except OSError:
        return path             # libguestfs will say qemu is missing
    os.utime(path, ns=(mtime, mtime))
    return path


def sandbox_in(argv):
    """Whether a qemu argv carries our sandbox."""
    return any(a == '-sandbox' and b == SANDBOX
               for a, b in zip(argv, argv[1:]))


# ------------------------------------------------------------ limit

def limit_hit(sizes, opts):
    """The names of the overlays that reached the file-size limit.
    ``sizes``: {name: bytes}.  Pure."""
    limit = opts.overlay_max_mb * MIB
    margin = min(LIMIT_MARGIN, limit // 2)
    return sorted(name for name, size in sizes.items()
                  if size >= limit - margin)


def overlay_sizes(private_dir):
    sizes = {}
    for path in glob.glob(os.path.join(glob.escape(private_dir),
                                       '*.qcow2')):
        try:
            sizes[os.path.basename(path)[:-len('.qcow2')]] = (
                os.lstat(path).st_size)
        except OSError:
            continue
    return sizes


def limit_reason(names, opts):
    return ('%s: the appliance wrote %d MiB into the overlay of %s '
            '(e.g. replaying a journal); [os_inspection] overlay_max_mb'
            % (LIMIT_REASON, opts.overlay_max_mb, ', '.join(names)))
