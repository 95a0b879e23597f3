"""Network disks (nbd, rbd) for the direct method: which server, which
key, which bounds.

``NetworkDisks(opts, private_dir)`` is made by the worker for one
inspection and opens the protocol layer of a network drive: ``nbd``
(our own read-only client) or ``rbd`` (librbd, read-only, keys as
``ceph_access`` hands them to the appliance).  The format above it
(raw, qcow2) is the caller's, from the domain XML.  Other protocols
(iscsi, gluster) are read by the appliance.
"""

from ceilometer_os_pollster.storage import ceph_access
from ceilometer_os_pollster.direct.block import nbd
from ceilometer_os_pollster.direct.block import rbd_image
from ceilometer_os_pollster.direct.errors import DirectError
from ceilometer_os_pollster.direct.errors import Unsupported

PROTOCOLS = ('nbd', 'rbd')


class NetworkDisks:
    """Opens the network drives of one inspection."""

    def __init__(self, opts, private_dir,
                 read_secret=ceph_access.read_libvirt_secret):
        self._opts = opts
        self._dir = private_dir
        self._read_secret = read_secret

    def _backstop(self):
        # Any one wait on a server.  The worker's deadline kill ends a
        # server that stops answering; this only ends a wait where no
        # deadline runs (a library caller), so it is well past the
        # deadline and never decides an agent's inspection.
        return 2 * max(30, int(self._opts.inspection_deadline))

    def open(self, spec, budget, stack):
        """The Source of a network drive's bytes (below its format)."""
        if spec.protocol == 'nbd':
            if spec.tls:
                raise Unsupported('%s: nbd over TLS is read by the '
                                  'appliance' % spec.target)
            disk = nbd.connect(spec.socket, spec.hosts, spec.path, budget,
                               self._backstop(), name=spec.target)
            stack.callback(disk.close)
            return disk
        if spec.protocol == 'rbd':
            spec = ceph_access.reading_spec(self._opts, spec)
            keys = ceph_access.PrivateKeys(self._opts, self._dir,
                                           self._read_secret)
            try:
                conf = keys.conf_for(spec)
            except ceph_access.CephAccessError as exc:
                raise DirectError(str(exc)) from None
            try:
                return rbd_image.open_image(
                    spec.path, spec.hosts, spec.username, conf, budget,
                    stack, self._opts.ceph_client_mount_timeout,
                    self._backstop(), name=spec.target, forget=keys.forget)
            finally:
                keys.forget()       # also when librados never got to it
        raise Unsupported('%s: %s disks are read by the appliance'
                          % (spec.target, spec.protocol or 'network'))
