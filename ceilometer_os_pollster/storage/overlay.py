"""Our protective overlays: one qcow2 per drive, its backing pinned.

Runs in the inspection worker process (it may block on guest storage).
For each drive it reads what the host says about the disk (file type,
the qcow2 headers of the chain), builds the pinned node tree with
``qemu_nodes``, and creates ``<private dir>/<label>.qcow2`` with
``qemu-img create`` whose backing is that tree.  The appliance then
opens only these overlays, with an explicit format; writes (journal
replay, fsync at shutdown) land in them and never in a guest disk.

For rbd disks, which ceph.conf librbd reads (and any private keyring of
a libvirt secret) is ``ceph_access``' business; ``forget_secrets``
removes such keyrings as soon as the appliance has opened the disks.
"""

import os
import stat
import subprocess

from ceilometer_os_pollster.storage import ceph_access
from ceilometer_os_pollster.instances import drives
from ceilometer_os_pollster.storage import qemu_nodes
from ceilometer_os_pollster import sanitize

MAX_REASON = 200
# Variables that would make librados read another configuration than
# the one named in the rbd filename.
_SCRUBBED_ENV = ('CEPH_CONF', 'CEPH_ARGS', 'CEPH_KEYRING')


class OverlayError(Exception):
    """A drive we cannot open safely; ``reason`` is public."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = sanitize.clean_text(reason, MAX_REASON)


class EncryptedImage(OverlayError):
    """A qcow2 image encrypted by qemu: reported, never opened."""


def read_header(path):
    """The first bytes of a host file or block device (never a FIFO or
    anything else a guest path could point at)."""
    info = os.stat(path)
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISBLK(info.st_mode)):
        raise OverlayError('cannot open disk: %s: not a file or block '
                           'device' % path)
    with open(path, 'rb', buffering=0) as f:
        return f.read(qemu_nodes.HEADER_BYTES)


def is_block_device(path):
    info = os.stat(path)
    if stat.S_ISBLK(info.st_mode):
        return True
    if stat.S_ISREG(info.st_mode):
        return False
    raise OverlayError('cannot open disk: %s: not a file or block device'
                       % path)


def local_tree(path, fmt, read=read_header, is_block=is_block_device):
    """The pinned node tree of a host file or block device and, for
    qcow2, of every backing file below it."""
    seen = set()

    def node(path, fmt, depth):
        if depth > qemu_nodes.MAX_CHAIN:
            raise OverlayError('backing chain longer than %d'
                               % qemu_nodes.MAX_CHAIN)
        real = os.path.realpath(path)
        if real in seen:
            raise OverlayError('backing chain loops')
        seen.add(real)
        qemu_nodes.check_format(fmt)
        protocol = qemu_nodes.file_node(path, is_block(path))
        if fmt == 'raw':
            return qemu_nodes.format_node('raw', protocol)
        header = qemu_nodes.parse_qcow2_header(read(path))
        if header.encrypted:
            raise EncryptedImage('qcow2 image is encrypted')
        if header.data_file:
            raise qemu_nodes.Refused('qcow2 image with an external data '
                                     'file')
        backing = None
        if header.backing_file:
            below = qemu_nodes.backing_path(path, header.backing_file)
            backing = node(below, qemu_nodes.backing_format(header),
                           depth + 1)
        return qemu_nodes.format_node('qcow2', protocol, backing,
                                      has_backing=bool(header.backing_file))

    try:
        return node(path, fmt, 0)
    except qemu_nodes.Refused as exc:
        raise OverlayError('refused %s: %s' % (path, exc)) from None
    except OSError as exc:
        raise OverlayError('cannot open disk: %s: %s'
                           % (exc.filename or path, exc.strerror)) from None


def network_tree(spec, ceph_conf, mount_timeout):
    """The pinned node tree of a network disk.  A qcow2 image there is
    opened without its backing file (we cannot read its header first)."""
    try:
        if spec.protocol == 'nbd':
            protocol = qemu_nodes.nbd_node(spec)
        elif spec.protocol == 'rbd':
            protocol = {'driver': 'rbd',
                        'filename': qemu_nodes.rbd_filename(
                            spec, ceph_conf, mount_timeout)}
        elif spec.protocol == 'iscsi':
            if spec.secret_uuid or spec.secret_usage:
                raise qemu_nodes.Refused('iscsi disks with a secret are '
                                         'not supported')
            protocol = qemu_nodes.iscsi_node(spec)
        else:
            raise qemu_nodes.Refused('%s disks are not supported'
                                     % (spec.protocol or 'network'))
        return qemu_nodes.format_node(spec.format, protocol)
    except qemu_nodes.Refused as exc:
        raise OverlayError('%s: %s' % (spec.target, exc)) from None


def qemu_img_reason(stderr, overlay=''):
    """The useful line of qemu-img's stderr: the first that is not a
    deprecation warning (later ones only say "Could not open backing
    image."), without the json: tree it repeats (long, and no news)."""
    lines = [line.strip() for line in stderr.decode(
        'utf-8', 'replace').splitlines() if line.strip()]
    errors = [line for line in lines if 'warning:' not in line]
    text = (errors or lines or ['qemu-img failed'])[0]
    if "': " in text:
        text = text.rsplit("': ", 1)[1]
    if overlay:
        text = text.replace(overlay + ': ', '')
    return text.replace('qemu-img: ', '')


class Overlays:
    """The overlays (and private Ceph files) of one inspection."""

    def __init__(self, opts, private_dir, *,
                 read_secret=ceph_access.read_libvirt_secret,
                 run=subprocess.run, qemu_img='qemu-img'):
        self._opts = opts
        self._dir = private_dir
        self._keys = ceph_access.PrivateKeys(opts, private_dir, read_secret)
        self._run = run
        self._qemu_img = qemu_img
        self.paths = []

    def tree(self, spec):
        spec = ceph_access.reading_spec(self._opts, spec)
        if spec.kind == drives.KIND_NETWORK:
            try:
                conf = (self._keys.conf_for(spec)
                        if spec.protocol == 'rbd' else '')
            except ceph_access.CephAccessError as exc:
                raise OverlayError(str(exc)) from None
            return network_tree(spec, conf,
                                self._opts.ceph_client_mount_timeout)
        if spec.kind in (drives.KIND_FILE, drives.KIND_BLOCK):
            return local_tree(spec.path, spec.format)
        raise OverlayError('%s: %s disks are not supported'
                           % (spec.target, spec.kind))

    def add(self, spec):
        """Create the overlay of one drive; its path."""
        tree = self.tree(spec)
        path = os.path.join(self._dir, '%s.qcow2' % spec.label)
        backing = qemu_nodes.backing_string(tree)
        env = {k: v for k, v in os.environ.items()
               if k not in _SCRUBBED_ENV}
        # Without a size qemu-img opens the backing through the pinned
        # tree to learn it: the first read of the disk happens here.
        result = self._run(
            [self._qemu_img, 'create', '-q', '-f', 'qcow2',
             '-F', tree['driver'], '-b', backing, path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=self._dir, env=env, check=False)
        if result.returncode != 0:
            reason = qemu_img_reason(result.stderr or b'', path)
            if spec.protocol == 'rbd' and 'timed out' in reason:
                # librados reports a refused cephx key the same way as
                # monitors that never answer: it keeps trying until
                # client_mount_timeout.
                reason += (' (no monitor answered, or the cephx key was '
                           'refused)')
            raise OverlayError('cannot open disk %s: %s'
                               % (spec.target, reason))
        # Belt and braces: the header we wrote says what we meant.
        header = qemu_nodes.parse_qcow2_header(read_header(path))
        if (header.backing_file != backing
                or header.backing_format != tree['driver']):
            raise OverlayError('%s: overlay header does not match its '
                               'pinned backing' % spec.target)
        self.paths.append(path)
        return path

    def forget_secrets(self):
        """Remove the private keyrings: qemu has opened the disks."""
        self._keys.forget()
