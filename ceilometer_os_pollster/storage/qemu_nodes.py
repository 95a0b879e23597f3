"""What qemu may open for one drive: every block node pinned by us.

Pure code.  A guest must never choose what the appliance opens.  qemu
probes the format of any node whose driver is not given, and a probed
qcow2 header (which a guest can write at the start of its own disk) may
name any host file or network URL as a backing file.  So the appliance
is never handed a guest disk directly: it gets our own qcow2 overlay
whose backing is a ``json:`` tree naming the driver of every node below
it, down to the protocol (file, host_device, nbd, rbd, iscsi).  The
guest's data is then only ever read as raw bytes by a pinned driver.

Where the drivers come from: the top format from the domain XML
(``<driver type>``); below a qcow2 disk on the host, the backing file
and its format from the qcow2 header on the host (written by nova and
qemu-img, not by the guest), parsed here.  A backing without a recorded
format is pinned as raw: probing it would let the bytes of a tenant's
uploaded image decide.

Also here: the check of the appliance's qemu command line (defence in
depth: every ``-drive`` must carry a format we chose) and the text of
the private Ceph files for the libvirt-secret route.
"""

import base64
import dataclasses
import json
import os
import re
import struct

# Formats we let qemu open.  vmdk, vpc, vhdx... can name further files
# in their own metadata; nova writes raw and qcow2 only.
FORMATS = ('raw', 'qcow2')
MAX_CHAIN = 8                   # backing files below one disk
HEADER_BYTES = 64 * 1024        # what is read of a qcow2 header
MAX_BACKING_NAME = 1023         # qemu's own limit

QCOW2_MAGIC = b'QFI\xfb'
_EXT_END = 0
_EXT_BACKING_FORMAT = 0xE2792ACA
_EXT_DATA_FILE = 0x44415441
_EXT_CRYPTO = 0x0537BE77
_INCOMPAT_DATA_FILE = 1 << 2

# Characters allowed in what is spliced into qemu's legacy rbd filename,
# whose separators are ':' '@' '\\' and ';'.
_RBD_SAFE = re.compile(r'[A-Za-z0-9_./+=-]+')
_RBD_NAME_SAFE = re.compile(r'[A-Za-z0-9_./+=@-]+')
_RBD_HOST_SAFE = re.compile(r'[A-Za-z0-9_.:\[\]-]+')
# A backing name that is a protocol (nbd:, http:, json:, rbd:...) rather
# than a path: nova never writes one; qemu would follow it.
_PROTOCOL = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*:')


class Refused(ValueError):
    """What qemu would open is not something we can pin; ``str`` is a
    short public reason."""


@dataclasses.dataclass(frozen=True)
class Qcow2Header:
    """What a host-side qcow2 header says about the files below it."""

    version: int
    size: int
    backing_file: str = ''
    backing_format: str = ''
    data_file: bool = False
    encrypted: bool = False


def parse_qcow2_header(data):
    """Qcow2Header of the first bytes of a qcow2 file; Refused if it is
    not one we can follow (bounded: only ``data`` is looked at)."""
    data = bytes(data[:HEADER_BYTES])
    if len(data) < 72 or data[:4] != QCOW2_MAGIC:
        raise Refused('not a qcow2 image')
    version, backing_offset, backing_size, _, size, crypt = struct.unpack(
        '>IQIIQI', data[4:36])
    if version not in (2, 3):
        raise Refused('qcow2 version %d not supported' % version)
    header_length = 72
    incompatible = 0
    if version == 3:
        if len(data) < 104:
            raise Refused('truncated qcow2 header')
        incompatible = struct.unpack('>Q', data[72:80])[0]
        header_length = struct.unpack('>I', data[100:104])[0]
    backing_file = ''
    if backing_offset:
        end = backing_offset + backing_size
        if backing_size > MAX_BACKING_NAME or end > len(data):
            raise Refused('qcow2 backing file name out of bounds')
        backing_file = data[backing_offset:end].decode('utf-8', 'replace')
    backing_format = ''
    data_file = bool(incompatible & _INCOMPAT_DATA_FILE)
    encrypted = crypt != 0
    offset = header_length
    # Header extensions: (type, length, data padded to 8 bytes) until
    # the end marker or the bytes we read.
    while offset + 8 <= len(data):
        ext_type, ext_len = struct.unpack('>II', data[offset:offset + 8])
        if ext_type == _EXT_END:
            break
        body = data[offset + 8:offset + 8 + ext_len]
        if ext_type == _EXT_BACKING_FORMAT:
            backing_format = body.decode('ascii', 'replace').rstrip('\0')
        elif ext_type == _EXT_DATA_FILE:
            data_file = True
        elif ext_type == _EXT_CRYPTO:
            encrypted = True
        offset += 8 + (ext_len + 7) // 8 * 8
    return Qcow2Header(version=version, size=size,
                       backing_file=backing_file,
                       backing_format=backing_format,
                       data_file=data_file, encrypted=encrypted)


def backing_path(image_path, backing_file):
    """The host path of a backing file named in ``image_path``'s header
    (relative names are relative to the image's directory)."""
    if not backing_file or '\0' in backing_file:
        raise Refused('empty backing file name')
    if _PROTOCOL.match(backing_file) and not backing_file.startswith('/'):
        raise Refused('backing file is not a local path: %s'
                      % backing_file.split(':', 1)[0])
    if not backing_file.startswith('/'):
        backing_file = os.path.join(os.path.dirname(image_path),
                                    backing_file)
    return os.path.normpath(backing_file)


def backing_format(header):
    """The format to pin a header's backing file at: what the header
    recorded, else raw (never probed)."""
    fmt = header.backing_format or 'raw'
    if fmt not in FORMATS:
        raise Refused('backing format %s not supported' % fmt[:16])
    return fmt


def check_format(fmt):
    if fmt not in FORMATS:
        raise Refused('disk format %s not supported (raw and qcow2 only)'
                      % (fmt or '?')[:16])
    return fmt


def file_node(path, block_device):
    """The protocol node of a host file or block device, unlocked: a
    running guest's qemu holds the write lock."""
    return {'driver': 'host_device' if block_device else 'file',
            'filename': path, 'locking': 'off'}


def format_node(fmt, protocol_node, backing=None, has_backing=False):
    """A format node over a protocol node.  A qcow2 node always names
    its backing (a node, or None for none): left out, qemu would take
    it from the header and probe its format."""
    node = {'driver': check_format(fmt), 'file': protocol_node}
    if fmt == 'qcow2':
        node['backing'] = backing if has_backing else None
    return node


def nbd_node(spec):
    if spec.socket:
        server = {'type': 'unix', 'path': spec.socket}
    elif spec.hosts:
        host, port = spec.hosts[0]
        server = {'type': 'inet', 'host': host, 'port': str(port)}
    else:
        raise Refused('nbd disk without a server')
    node = {'driver': 'nbd', 'server': server}
    if spec.path:
        node['export'] = spec.path
    return node


def rbd_filename(spec, conf_path, mount_timeout):
    """qemu's legacy rbd filename for a drive: image, user, monitors,
    an explicit ceph.conf (never one librados would search for: not
    $CEPH_CONF, not ./ceph.conf) and the monitor connect timeout, which
    only the legacy syntax can pass.  Never a key."""
    if not _RBD_NAME_SAFE.fullmatch(spec.path or ''):
        raise Refused('unsupported rbd image name')
    if not conf_path or not _RBD_SAFE.fullmatch(conf_path):
        raise Refused('ceph configuration path unusable for qemu: %s'
                      % (conf_path or '(none)'))
    parts = ['rbd:' + spec.path]
    if spec.username:
        if not _RBD_SAFE.fullmatch(spec.username):
            raise Refused('unsupported rbd user name')
        parts.append('id=' + spec.username)
    if spec.hosts:
        monitors = []
        for name, port in spec.hosts:
            if not _RBD_HOST_SAFE.fullmatch(name):
                raise Refused('unsupported rbd monitor address')
            if ':' in name and not name.startswith('['):
                name = '[%s]' % name
            monitors.append('%s:%s' % (name, port))
        parts.append('mon_host=' + ';'.join(monitors).replace(
            ':', '\\:').replace(';', '\\;'))
    parts.append('conf=' + conf_path)
    parts.append('client_mount_timeout=%d' % int(mount_timeout))
    return ':'.join(parts)


def iscsi_node(spec):
    target, _, lun = (spec.path or '').rpartition('/')
    if not target or not lun.isdigit() or not spec.hosts:
        raise Refused('unsupported iscsi source')
    host, port = spec.hosts[0]
    return {'driver': 'iscsi', 'transport': 'tcp',
            'portal': '%s:%s' % (host, port), 'target': target,
            'lun': int(lun)}


def backing_string(tree):
    """The ``json:`` backing file name of a node tree (canonical)."""
    return 'json:' + json.dumps(tree, sort_keys=True,
                                separators=(',', ':'), ensure_ascii=True)


def drive_problems(argv, overlays):
    """Why the appliance's qemu would open something we did not pin: one
    sentence per ``-drive`` that lacks an explicit format, or opens a
    file that is neither one of ``overlays`` (with format qcow2) nor the
    appliance's own root disk.  [] when all is as built.

    ``argv``: the qemu command line as a list of str.
    """
    problems = []
    overlays = set(overlays)
    for index, arg in enumerate(argv[:-1]):
        if arg != '-drive':
            continue
        options = _drive_options(argv[index + 1])
        fmt = options.get('format')
        path = options.get('file', '')
        if options.get('id') == 'appliance':
            if fmt != 'raw':
                problems.append('appliance root disk without format=raw')
            continue
        if not fmt:
            problems.append('a -drive without format= (qemu would probe '
                            'it)')
        elif path not in overlays or fmt != 'qcow2':
            problems.append('a -drive that is not one of our overlays')
    for arg in argv:
        if arg in ('-blockdev', '-hda', '-hdb', '-cdrom', '-snapshot'):
            problems.append('unexpected %s option' % arg)
    return problems


def _drive_options(text):
    # qemu option syntax: ',' separates, ',,' is a literal comma.
    options = {}
    for item in re.split(r'(?<!,),(?!,)', text):
        key, _, value = item.partition('=')
        options[key] = value.replace(',,', ',')
    return options


def ceph_keyring(username, key):
    """A Ceph keyring for one client; ``key`` is the raw secret value."""
    return '[client.%s]\n\tkey = %s\n' % (
        username or 'admin', base64.b64encode(key).decode('ascii'))


def ceph_conf(hosts, keyring_path, mount_timeout):
    """A minimal ceph.conf naming the monitors and the keyring file."""
    lines = ['[global]']
    if hosts:
        lines.append('mon_host = %s' % ','.join(
            '[%s]:%s' % (name, port) if ':' in name else
            '%s:%s' % (name, port) for name, port in hosts))
    lines.append('keyring = %s' % keyring_path)
    lines.append('client_mount_timeout = %d' % int(mount_timeout))
    return '\n'.join(lines) + '\n'
