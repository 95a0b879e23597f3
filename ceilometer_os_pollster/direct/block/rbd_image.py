"""An rbd image's bytes as a Source, through librbd's Python binding.

The image is opened READ-ONLY (``rbd.Image(..., read_only=True)``:
librbd then takes no lock, registers no watch that writes and refuses
every write), so a running guest's exclusive lock is never touched.
Which ceph.conf and key librados reads is ``ceph_access``' business,
exactly as for the appliance: the operator's ``ceph_conf``, or a
private 0600 keyring written from the disk's libvirt secret and removed
as soon as librados has authenticated.  The key is never on a command
line, in an environment or in a reason.  librbd parses no guest data:
it moves the tenant's bytes, our readers parse them.
"""

import os

from ceilometer_os_pollster.direct.block import source as source_mod
from ceilometer_os_pollster.direct.errors import DirectError
from ceilometer_os_pollster.direct.errors import Unsupported

# Variables that would make librados read another configuration than
# the one we name (as for qemu-img on the appliance path).
SCRUBBED_ENV = ('CEPH_CONF', 'CEPH_ARGS', 'CEPH_KEYRING')
# One librbd read at most this big (MAX_READ bounds callers anyway).
MAX_REQUEST = 4 << 20


def image_name(path):
    """(pool, namespace, image, snapshot) of an rbd <source name>:
    ``pool/image``, ``pool/namespace/image``, either with ``@snapshot``."""
    name, _, snap = (path or '').partition('@')
    parts = name.split('/')
    if len(parts) == 2:
        parts.insert(1, '')
    if len(parts) != 3 or not parts[0] or not parts[2] or (
            '@' in snap or (_ and not snap)):
        raise Unsupported('rbd: unsupported image name %r' % (path or '')[:80])
    return parts[0], parts[1], parts[2], snap or None


def mon_host(hosts):
    """The monitors of a drive as ceph.conf's mon_host ('' for none)."""
    return ','.join('[%s]:%s' % (name, port) if ':' in name
                    else '%s:%s' % (name, port) for name, port in hosts)


def _reason(exc):
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


class RbdSource(source_mod.Source):
    """A read-only rbd image; every read charged to the Budget first."""

    def __init__(self, image, size, budget, name):
        self._image = image
        self.size = size
        self.budget = budget
        self.name = name

    def _read(self, offset, length):
        if self._image is None:
            raise ValueError('read from a closed RbdSource')
        self.budget.charge(length)
        chunks = []
        done = 0
        while done < length:
            n = min(MAX_REQUEST, length - done)
            try:
                chunk = self._image.read(offset + done, n)
            except Exception as exc:      # rbd.Error and its family
                raise DirectError('%s: read error at offset %d: %s'
                                  % (self.name, offset + done,
                                     _reason(exc)))
            if not chunk:
                break
            chunks.append(chunk)
            done += len(chunk)
        return b''.join(chunks)


def open_image(path, hosts, user, conf_path, budget, stack,
               mount_timeout, op_timeout, name='rbd', forget=None):
    """An RbdSource for the rbd image ``path`` (``pool/image``), read as
    ``user`` with ``conf_path`` (never a searched ceph.conf).  Closing
    is pushed on ``stack``.  ``forget()``, when given, is called once
    librados has authenticated (or failed to): it removes private keys.
    ``mount_timeout`` bounds the monitor connection; ``op_timeout`` is
    only a backstop (the worker's deadline ends storage that hangs)."""
    pool, namespace, image_part, snap = image_name(path)
    label = '%s (rbd %s)' % (name, path)
    try:
        import rados
        import rbd
    except ImportError:
        raise Unsupported('rbd: the librbd Python binding (python3-rbd) is '
                          'not installed: read by the appliance')
    if not conf_path:
        raise Unsupported('rbd: no ceph configuration to read %s with'
                          % path)
    for variable in SCRUBBED_ENV:
        os.environ.pop(variable, None)
    conf = {'client_mount_timeout': str(int(mount_timeout)),
            'rados_mon_op_timeout': str(int(op_timeout)),
            'rados_osd_op_timeout': str(int(op_timeout))}
    if hosts:
        conf['mon_host'] = mon_host(hosts)
    try:
        try:
            cluster = rados.Rados(conffile=conf_path, rados_id=user or None,
                                  conf=conf)
            stack.callback(cluster.shutdown)
            cluster.connect(timeout=int(mount_timeout))
        finally:
            if forget is not None:
                forget()
        ioctx = cluster.open_ioctx(pool)
        stack.callback(ioctx.close)
        if namespace:
            ioctx.set_namespace(namespace)
        image = rbd.Image(ioctx, image_part, snapshot=snap, read_only=True)
        stack.callback(image.close)
        size = image.size()
    except (rados.Error, rbd.Error) as exc:
        raise DirectError('%s: cannot open: %s' % (label, _reason(exc)))
    return RbdSource(image, size, budget, label)
