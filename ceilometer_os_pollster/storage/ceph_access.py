"""Ceph access for rbd disks (worker side): which ceph.conf librbd reads.

Route (a), the default: the operator's ``ceph_conf``, for the user in
the disk's ``<auth username>`` or ``ceph_user``.  Route (b), with
``libvirt_secret_uri``: the key of the disk's libvirt ``ceph`` secret,
read over a read-write libvirt connection, is written (0600) to a
keyring in a directory of its own inside the inspection's private
directory, named by a private ceph.conf there (monitors, keyring,
``client_mount_timeout``); ``forget`` removes them once qemu has opened
the disks.  The key is never on a command line, in an environment or in
a log; libvirt's errors name the secret's uuid, never its value.
"""

import dataclasses
import os
import shutil
import tempfile

from ceilometer_os_pollster.storage import qemu_nodes


class CephAccessError(Exception):
    """The key of an rbd disk cannot be had; ``str`` is public."""


def read_libvirt_secret(uri, spec):
    """The raw value of a disk's libvirt secret (READ-WRITE connection:
    read-only ones cannot read secret values)."""
    import libvirt
    conn = libvirt.open(uri)
    try:
        if spec.secret_uuid:
            secret = conn.secretLookupByUUIDString(spec.secret_uuid)
        else:
            secret = conn.secretLookupByUsage(
                libvirt.VIR_SECRET_USAGE_TYPE_CEPH, spec.secret_usage)
        return secret.value()
    finally:
        conn.close()


def reading_spec(opts, spec):
    """The drive as the inspector reads it: with ``ceph_user`` set, as
    the operator's own (read-only) user, keyring via ceph_conf (the
    domain's secret belongs to nova's user)."""
    if spec.protocol == 'rbd' and opts.ceph_user:
        return dataclasses.replace(spec, username=opts.ceph_user,
                                   secret_uuid='', secret_usage='')
    return spec


class PrivateKeys:
    """The ceph.conf of each rbd drive of one inspection, and the private
    keyrings of route (b)."""

    def __init__(self, opts, private_dir, read_secret=read_libvirt_secret):
        self._opts = opts
        self._dir = private_dir
        self._read_secret = read_secret
        self._secret_dirs = []

    def conf_for(self, spec):
        """The ceph.conf librbd must read for this drive."""
        uri = self._opts.libvirt_secret_uri
        if not (uri and (spec.secret_uuid or spec.secret_usage)):
            return self._opts.ceph_conf
        try:
            key = self._read_secret(uri, spec)
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise CephAccessError('%s: cannot read the rbd secret: %s' % (
                spec.target, text[0] if text else type(exc).__name__))
        directory = tempfile.mkdtemp(prefix='ceph-', dir=self._dir)
        self._secret_dirs.append(directory)
        keyring = os.path.join(directory, 'keyring')
        conf = os.path.join(directory, 'ceph.conf')
        _write_private(keyring, qemu_nodes.ceph_keyring(spec.username, key))
        _write_private(conf, qemu_nodes.ceph_conf(
            spec.hosts, keyring, self._opts.ceph_client_mount_timeout))
        return conf

    def forget(self):
        """Remove the private keyrings."""
        while self._secret_dirs:
            shutil.rmtree(self._secret_dirs.pop(), ignore_errors=True)


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
