"""Opening the cache directory safely, and what root checks before
trusting it.

Every file operation on ``[os_inspection] cache_dir`` (records, locks,
temporary files, pruning) goes through a file descriptor opened with
``O_DIRECTORY|O_NOFOLLOW`` and ``*at()`` calls relative to it, so a
symbolic link planted in place of the directory, of ``.locks`` or of a
file never redirects a read, a write or an unlink elsewhere.

Run as root, the handle is reached by opening ``/`` and then each
component in turn with ``O_NOFOLLOW``, checking every directory on the
way (``cache_format.root_refusal``): owned by root and writable by no
one else, so that no other user can swap what root is about to use.
A path that fails is ``Refused``, never repaired (root chowns nothing).
"""

import errno
import os
import pwd
import stat

from ceilometer_os_pollster.agent import cache_format

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Directories root creates above cache_dir (its own mode is DIR_MODE).
PARENT_MODE = 0o755


class Refused(OSError):
    """A directory root must not use, or a symbolic link where a
    directory was expected; says which path and why."""

    def __init__(self, path, reason):
        super().__init__(errno.EPERM, '%s %s' % (path, reason))
        self.path = path
        self.reason = reason

    def __str__(self):
        return self.strerror


class Handle:
    """An open directory (a context manager closing it)."""

    def __init__(self, fd, path):
        self.fd = fd
        self.path = path

    def close(self):
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _as_root():
    return os.geteuid() == 0


def _owner_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


def _check(fd, path, sticky_ok):
    st = os.fstat(fd)
    reason = cache_format.root_refusal(st.st_uid, st.st_mode, sticky_ok)
    if reason and st.st_uid != 0:
        reason = cache_format.root_refusal(
            st.st_uid, st.st_mode, sticky_ok, _owner_name(st.st_uid))
    if reason:
        raise Refused(path, reason)


def _is_link(parent_fd, name):
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISLNK(st.st_mode)


def _open_child(parent_fd, name, path, create, mode, strict,
                sticky_ok=False):
    """Open (or create with ``mode``) directory ``name`` under
    ``parent_fd``; the caller closes the fd.

    Refused for a symbolic link, and when ``strict`` (root) for a
    directory another user owns or can write (a sticky one passes when
    ``sticky_ok``: a parent like /tmp, where others may add entries but
    not rename root's).
    """
    created = False
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
        try:
            os.mkdir(name, mode, dir_fd=parent_fd)
            created = True
        except FileExistsError:
            pass
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(
                parent_fd, name):
            raise Refused(path, 'is a symbolic link (give the path of '
                          'the directory itself)')
        raise
    try:
        if created:
            os.fchmod(fd, mode)         # whatever the umask was
        if strict:
            _check(fd, path, sticky_ok)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir(path, create=False, as_root=None):
    """A Handle on directory ``path``; OSError (Refused included) if not.

    ``create`` makes what is missing (cache_dir itself with DIR_MODE).
    Run as root (``as_root``, default: the effective uid is 0) every
    component from ``/`` is opened without following symbolic links
    and checked; otherwise only the last one is opened so (the parents
    are the user's own business).
    """
    path = os.path.abspath(os.fspath(path))
    strict = _as_root() if as_root is None else as_root
    if strict:
        parts = [p for p in path.split('/') if p]
        fd = os.open('/', DIR_FLAGS)
        try:
            _check(fd, '/', sticky_ok=bool(parts))
            walked = '/'
            for index, name in enumerate(parts):
                walked = os.path.join(walked, name)
                last = index == len(parts) - 1
                child = _open_child(
                    fd, name, walked, create,
                    cache_format.DIR_MODE if last else PARENT_MODE,
                    strict=True, sticky_ok=not last)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return Handle(fd, path)
    parent, name = os.path.split(path)
    if not name:
        return Handle(os.open(path, DIR_FLAGS), path)
    if create:
        os.makedirs(parent, exist_ok=True)
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY
                        | os.O_CLOEXEC)
    try:
        fd = _open_child(parent_fd, name, path, create,
                         cache_format.DIR_MODE, strict=False)
    finally:
        os.close(parent_fd)
    return Handle(fd, path)


def open_subdir(handle, name, create=False, as_root=None):
    """A file descriptor on ``handle``'s subdirectory ``name`` (the
    caller closes it), checked like cache_dir itself when root."""
    strict = _as_root() if as_root is None else as_root
    return _open_child(handle.fd, name, os.path.join(handle.path, name),
                       create, cache_format.DIR_MODE, strict=strict)


def check(path):
    """Raise Refused if the current user must not use ``path`` as its
    cache directory.  A path that does not exist yet passes when what
    exists of it does (it is created safely later)."""
    try:
        open_dir(path).close()
    except Refused:
        raise
    except OSError:
        pass
