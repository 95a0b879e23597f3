"""Disk images, loop devices and nbd servers behind the rig's domains.

Owns every host-side command the rig runs for storage: ``qemu-img`` to
copy, convert and stack images, ``losetup`` for block-device disks,
``qemu-nbd`` for network disks, and sha256 of what ends up behind a
domain.  Input images are the project's own test images (trusted), so
their format may be probed; the formats written are always explicit.
"""

import errno
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import time

from tests.rig import libvirtd

NBD_HOST = '127.0.0.1'
# Clients one export accepts at once: the domain's qemu holds one for its
# whole life, inspections and checks take the others.
NBD_CLIENTS = 8


class DiskError(RuntimeError):
    """A storage command failed; the message carries its output."""


def run(argv, timeout=600):
    result = subprocess.run(argv, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise DiskError('%s exited %d: %s' % (
            ' '.join(argv), result.returncode,
            (result.stderr or result.stdout).strip()[-2000:]))
    return result.stdout


def image_info(path):
    """qemu-img's JSON description of one image (no backing chain)."""
    return json.loads(run(['qemu-img', 'info', '--output=json', str(path)]))


def to_raw(src, dest):
    """A sparse raw copy of ``src`` (raw or qcow2) at ``dest``."""
    fmt = image_info(src)['format']
    run(['qemu-img', 'convert', '-f', fmt, '-O', 'raw', str(src),
         str(dest)])


def to_qcow2(src, dest):
    """A standalone qcow2 with the content of ``src``."""
    fmt = image_info(src)['format']
    run(['qemu-img', 'convert', '-f', fmt, '-O', 'qcow2', str(src),
         str(dest)])


def encrypted_qcow2(path, method):
    """A qcow2 whose header says crypt_method ``method`` (1 AES, 2 LUKS),
    as qemu-img writes it for an encrypted image.  Made by patching a
    plain one: qemu-img's own LUKS set-up times PBKDF on the CPU, which
    fails now and then on a loaded host."""
    run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path), '1M'])
    with open(path, 'r+b') as f:
        f.seek(32)
        f.write(struct.pack('>I', method))


def blank_raw(dest, size):
    """A sparse raw file of ``size`` bytes, all zeros."""
    with open(dest, 'wb') as handle:
        handle.truncate(size)


def overlay(base, dest, content=None):
    """A qcow2 at ``dest`` backed by the raw ``base``.

    With ``content``, the overlay holds that image's bytes wherever they
    differ from the base (an OS installed over a blank base image).
    """
    if content is None:
        run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', str(base),
             '-F', 'raw', str(dest)])
    else:
        fmt = image_info(content)['format']
        run(['qemu-img', 'convert', '-f', fmt, '-O', 'qcow2', '-B',
             str(base), '-F', 'raw', str(content), str(dest)])


def direct_io_works(directory):
    """Whether files in ``directory`` open with O_DIRECT (cache='none')."""
    probe = os.path.join(directory, '.direct-io-probe')
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    os.close(fd)
    os.unlink(probe)
    return True


def attach_loop(path):
    """The loop device now showing ``path`` (the whole file is the disk)."""
    return run(['losetup', '--find', '--show', str(path)]).strip()


def loop_backing(device):
    """The file behind a loop device, '' if it is free."""
    try:
        return run(['losetup', '--noheadings', '--output', 'BACK-FILE',
                    device]).strip()
    except DiskError:
        return ''


def detach_loop(device, path):
    """Detach ``device`` if it still shows ``path``; True when done."""
    backing = loop_backing(device)
    if backing.removesuffix(' (deleted)') != str(path):
        return False
    run(['losetup', '--detach', device])
    return True


def free_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((NBD_HOST, 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


def _port_answers(port):
    try:
        socket.create_connection((NBD_HOST, port), timeout=1.0).close()
        return True
    except OSError:
        return False


def _unix_answers(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def start_nbd(path, export, pidfile, unix_socket='', timeout=30.0):
    """Serve raw ``path`` read-write as nbd ``export``.

    On 127.0.0.1 at a free port, or on ``unix_socket`` when given.
    Returns a record {'pid', 'start', 'port', 'socket', 'path'} for
    ``stop_nbd``.  Retries on another port if the chosen one was taken
    meanwhile.
    """
    argv = ['qemu-nbd', '--fork', '--persistent', '--pid-file=%s' % pidfile,
            '--shared=%d' % NBD_CLIENTS, '--format=raw',
            '--export-name=%s' % export, '--cache=none']
    for _ in range(5):
        port = 0 if unix_socket else free_port()
        where = (['--socket=%s' % unix_socket] if unix_socket else
                 ['--bind=%s' % NBD_HOST, '--port=%d' % port])
        try:
            run(argv + where + [str(path)], timeout=timeout)
        except DiskError as exc:
            if 'Address already in use' in str(exc) and not unix_socket:
                continue
            raise
        break
    else:
        raise DiskError('qemu-nbd found no free port')
    deadline = time.monotonic() + timeout
    while not (_unix_answers(unix_socket) if unix_socket
               else _port_answers(port)):
        if time.monotonic() > deadline:
            raise DiskError('qemu-nbd does not listen on %s'
                            % (unix_socket or port))
        time.sleep(0.05)
    with open(pidfile) as handle:
        pid = int(handle.read().strip())
    identity = libvirtd.process_identity(pid)
    if identity is None:
        raise DiskError('qemu-nbd (pid %d) is gone' % pid)
    return {'pid': pid, 'start': identity[1], 'port': port,
            'socket': unix_socket, 'path': str(path)}


def nbd_alive(record):
    identity = libvirtd.process_identity(record['pid'])
    return identity is not None and identity[1] == record['start']


def stop_nbd(record, timeout=10.0):
    """Stop the qemu-nbd of ``record`` (if it is still that process)."""
    if not nbd_alive(record):
        return True
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(record['pid'], sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not nbd_alive(record):
                return True
            time.sleep(0.05)
    return False


def sha256(path):
    """sha256 hex digest of a file or block device's whole content."""
    with open(path, 'rb') as handle:
        return hashlib.file_digest(handle, 'sha256').hexdigest()
