"""One record file of the cache, reached through an open directory
handle (``cache_dir.open_dir``): read it bounded, without following a
link or blocking on a planted FIFO; write it atomically (temporary file,
fsync, rename); remove the temporary files a killed writer left.

No state: ``RecordCache`` decides what to read and write and keeps the
signatures these functions return.  Every call works relative to the
handle (``*at()`` calls, no symbolic link followed).
"""

import contextlib
import os
import secrets
import stat
import time

from ceilometer_os_pollster.agent import cache_format

# Temp files left by a process killed mid-write; younger ones may be in
# use by another process right now.
STALE_TEMP_SECONDS = 3600.0
# A FIFO or device planted as a record must not block the open.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
               | os.O_CLOEXEC)


def signature(st):
    # The inode changes on every os.replace, so equal mtimes within the
    # filesystem's granularity cannot hide a rewrite.
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def name(instance_id):
    return instance_id + cache_format.SUFFIX


def lstat(handle, instance_id):
    return os.stat(name(instance_id), dir_fd=handle.fd,
                   follow_symlinks=False)


def remove_stale_temp(handle, item):
    # Only regular files: a symbolic link named like a temp file is
    # not ours (and unlinking it would only remove the link).
    if not item.name.endswith('.tmp'):
        return
    try:
        st = item.stat(follow_symlinks=False)
        if (stat.S_ISREG(st.st_mode)
                and time.time() - st.st_mtime > STALE_TEMP_SECONDS):
            os.unlink(item.name, dir_fd=handle.fd)
    except OSError:
        pass


def read_entry(handle, instance_id, sig):
    """(entry or None, signature, problem or None); never raises.  The
    entry is read back (``cache_format.read_back``), not yet clamped."""
    try:
        fd = os.open(name(instance_id), _READ_FLAGS, dir_fd=handle.fd)
    except FileNotFoundError:
        return None, None, None
    except OSError as exc:
        return None, sig, 'unreadable (%s)' % exc.strerror
    try:
        st = os.fstat(fd)
        sig = signature(st)
        if not stat.S_ISREG(st.st_mode):
            return None, sig, 'not a regular file'
        chunks = []
        size = 0
        while size <= cache_format.MAX_FILE_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        return None, sig, 'unreadable (%s)' % exc.strerror
    finally:
        os.close(fd)
    try:
        entry = cache_format.decode_entry(b''.join(chunks), instance_id)
    except ValueError as exc:
        return None, sig, str(exc)
    return cache_format.read_back(entry, st.st_mtime), sig, None


def _create_temp(dir_fd, instance_id):
    # mkstemp() has no dir_fd: the same thing relative to the handle.
    for _attempt in range(100):
        temp = '.%s.%s.tmp' % (instance_id, secrets.token_hex(6))
        try:
            return temp, os.open(temp, _TEMP_FLAGS,
                                 cache_format.FILE_MODE, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise FileExistsError(17, 'no free temporary file name')


def write_file(handle, instance_id, data):
    """Replace the instance's file by data; the new file's signature."""
    # Temp file in the same directory + fsync + rename: a reader (or
    # a crash at any instant) sees the old file or the new one, never
    # a mix.  Dot-prefixed so a scan never takes it for a record.
    dir_fd = handle.fd
    tmp, fd = _create_temp(dir_fd, instance_id)
    try:
        try:
            os.fchmod(fd, cache_format.FILE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name(instance_id), src_dir_fd=dir_fd,
                   dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    # Makes the rename itself durable; best effort.
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)
    return signature(st)
