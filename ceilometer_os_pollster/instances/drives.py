"""From a libvirt domain's live XML to the drives worth inspecting.

This module owns the reading of ``<devices><disk>`` elements into
``DriveSpec`` values and the choice of the boot disk (``identity``
fingerprints what it chose).  It is pure: a string in, plain values out;
no libvirt, no guestfs, no files.

Formats are always explicit: a disk without ``<driver type>`` is raw,
which is what libvirt itself assumes, so the appliance never lets qemu
probe a guest-writable image (CVE-2010-3851).
"""

import dataclasses
import re

from ceilometer_os_pollster.instances import domain_xml as domain_xml_mod
from ceilometer_os_pollster import sanitize

# Raised by drive_specs for text that is not a libvirt domain.
DomainXMLError = domain_xml_mod.DomainXMLError

KIND_FILE = 'file'
KIND_BLOCK = 'block'
KIND_NETWORK = 'network'

# Network protocols the appliance can open, with the port qemu would use
# when <host> has none.  libguestfs refuses an rbd server without a port,
# so the default is made explicit here.  http(s), ftp, ssh... are skipped:
# nova never puts an instance disk there.
DEFAULT_PORTS = {
    'rbd': '6789',
    'iscsi': '3260',
    'nbd': '10809',
    'gluster': '24007',
}
# Protocols whose <source name> is required (nbd has a default export).
_NAME_REQUIRED = frozenset(('rbd', 'iscsi', 'gluster'))
# Protocols that cannot work without a <host> (rbd falls back to the
# monitors listed in ceph.conf).
_HOST_REQUIRED = frozenset(('iscsi', 'nbd', 'gluster'))

# <disk device=...> values that are hard disks; cdrom and floppy media
# are installers or config drives, never the installed OS.  'lun' is a
# SCSI passthrough of a whole block device: still a disk.
_DISK_DEVICES = frozenset(('disk', 'lun'))

# vda, sdb, hdd, xvda, vdaa: a bus prefix and a letter index.
_TARGET = re.compile(r'(?:xv|[vsh])d([a-z]+)')
_UNKNOWN_POSITION = 1 << 30

_LABEL = re.compile(r'[A-Za-z]{1,20}')


@dataclasses.dataclass(frozen=True)
class DriveSpec:
    """One disk of a domain, as the appliance must add it.

    ``path`` is the file, the block device, or for network disks the
    source name (``pool/image`` for rbd, ``iqn.../lun`` for iscsi, the
    export for nbd, possibly '').  ``hosts`` holds (name, port) pairs with
    the protocol's default port filled in; an nbd server on a unix socket
    is ``socket`` instead.  The auth fields name the libvirt secret only;
    no key is ever in the domain XML.
    """

    target: str
    kind: str
    path: str
    format: str = 'raw'
    bus: str = ''
    protocol: str = ''
    hosts: tuple = ()
    socket: str = ''
    username: str = ''
    secret_type: str = ''
    secret_uuid: str = ''
    secret_usage: str = ''
    boot_order: int | None = None
    device: str = 'disk'
    readonly: bool = False
    # '' or the <encryption format> of a qemu-encrypted disk (e.g. luks).
    encryption: str = ''
    # Unique [A-Za-z]{1,20} name for guestfs' add_drive(label=...).
    label: str = ''
    # <source tls='yes'>: the server expects TLS (nbd).
    tls: bool = False


def _boot_order(disk):
    boot = disk.find('boot')
    if boot is None:
        return None
    order = (boot.get('order') or '').strip()
    if order.isascii() and order.isdigit() and 0 < int(order) < 1 << 16:
        return int(order)
    return None


def _port(value, protocol):
    """The host port as a string, the default when absent, None if bad."""
    if value is None or not value.strip():
        return DEFAULT_PORTS[protocol]
    value = value.strip()
    if value.isascii() and value.isdigit() and 0 < int(value) < 65536:
        return str(int(value))
    return None


def _network_source(source):
    """(protocol, name, hosts, socket) of a network <source>, or None."""
    protocol = (source.get('protocol') or '').lower()
    if protocol not in DEFAULT_PORTS:
        return None
    name = source.get('name') or ''
    if protocol in _NAME_REQUIRED and not name:
        return None
    hosts = []
    socket = ''
    for host in source.findall('host'):
        if host.get('transport') == 'unix':
            if protocol != 'nbd' or not host.get('socket'):
                return None
            socket = host.get('socket')
            continue
        hostname = (host.get('name') or '').strip()
        port = _port(host.get('port'), protocol)
        if not hostname or port is None:
            return None
        hosts.append((hostname, port))
    if socket and hosts:
        return None     # one nbd server: either a socket or a host
    if protocol in _HOST_REQUIRED and not (hosts or socket):
        return None
    return protocol, name, tuple(hosts), socket


def _drive(disk):
    """A DriveSpec without label for one <disk>, or None to skip it."""
    device = disk.get('device') or 'disk'
    kind = disk.get('type') or KIND_FILE
    source = disk.find('source')
    if device not in _DISK_DEVICES or source is None:
        return None
    target = disk.find('target')
    target_dev = target.get('dev', '') if target is not None else ''
    bus = target.get('bus', '') if target is not None else ''
    driver = disk.find('driver')
    fmt = driver.get('type') if driver is not None else None
    auth = disk.find('auth')
    secret = auth.find('secret') if auth is not None else None
    encryption = source.find('encryption')
    if encryption is None:
        encryption = disk.find('encryption')    # older placement
    fields = dict(
        target=target_dev,
        kind=kind,
        format=fmt or 'raw',
        bus=bus,
        username=auth.get('username', '') if auth is not None else '',
        secret_type=secret.get('type', '') if secret is not None else '',
        secret_uuid=secret.get('uuid', '') if secret is not None else '',
        secret_usage=secret.get('usage', '') if secret is not None else '',
        boot_order=_boot_order(disk),
        device=device,
        readonly=disk.find('readonly') is not None,
        encryption=(encryption.get('format', '')
                    if encryption is not None else ''),
    )
    if kind == KIND_FILE:
        path = source.get('file')
    elif kind == KIND_BLOCK:
        path = source.get('dev')
    elif kind == KIND_NETWORK:
        network = _network_source(source)
        if network is None:
            return None
        protocol, path, hosts, socket = network
        fields.update(protocol=protocol, hosts=hosts, socket=socket,
                      tls=(source.get('tls') or '').lower() == 'yes')
        return DriveSpec(path=path, **fields)
    else:
        # volume (pool/volume), dir, nvme, vhostuser: not an image the
        # appliance can open from the XML alone.
        return None
    if not path:
        return None
    return DriveSpec(path=path, **fields)


def target_position(target):
    """Index of a target on its bus: vda/sda/hda -> 0, vdb -> 1, vdaa -> 26.

    Names that follow no known pattern sort after every known one.
    """
    match = _TARGET.fullmatch(target or '')
    if not match:
        return _UNKNOWN_POSITION
    position = 0
    for letter in match.group(1):
        position = position * 26 + ord(letter) - ord('a') + 1
    return position - 1


def _boot_key(indexed):
    position, spec = indexed
    explicit = spec.boot_order is not None
    return (not explicit,
            spec.boot_order if explicit else 0,
            target_position(spec.target),
            position)


def _in_boot_order(specs):
    return [spec for _, spec in sorted(enumerate(specs), key=_boot_key)]


def _label(spec, taken):
    if _LABEL.fullmatch(spec.target) and spec.target not in taken:
        return spec.target
    number = len(taken)
    while True:
        suffix = ''
        value = number
        while True:
            suffix = chr(ord('a') + value % 26) + suffix
            value = value // 26 - 1
            if value < 0:
                break
        candidate = 'disk' + suffix
        if candidate not in taken:
            return candidate
        number += 1


def drive_specs(domain_xml):
    """The inspectable disks of a domain, boot disk first.

    Every ``<disk device='disk'|'lun'>`` of type file, block or network
    (rbd, iscsi, nbd, gluster) with a usable source.  Skipped silently:
    cdroms and floppies (installer media, config drives), empty drives,
    ``type='volume'``/``dir``/``nvme``/``vhostuser`` disks, other network
    protocols, and network disks whose hosts are unusable.

    Order (see ``boot_drives``): disks with ``<boot order=N>`` by N, then
    the others by their position on their bus (vda, sda, hda before vdb),
    then document order.

    Raises DomainXMLError only when the text is not a parsable libvirt
    domain.
    """
    root = domain_xml_mod.parse(domain_xml)
    specs = []
    for disk in root.findall('devices/disk'):
        spec = _drive(disk)
        if spec is not None:
            specs.append(spec)
    labelled = []
    taken = set()
    for spec in _in_boot_order(specs):
        label = _label(spec, taken)
        taken.add(label)
        labelled.append(dataclasses.replace(spec, label=label))
    return labelled


def boot_drives(specs, all_disks=False):
    """The boot disk alone (a one-item list), or every disk, boot first.

    Policy, matching what nova writes:

    * libvirt refuses per-device ``<boot order>`` together with
      ``<os><boot dev>``.  When any disk has a boot order (nova's stable
      device rescue gives the rescue disk order 1), the lowest order wins.
    * Otherwise the domain boots ``<os><boot dev='hd'/>``: the first hard
      disk.  Nova names the root disk first on its bus (vda, sda, hda,
      xvda), but the document order is no guide: for boot-from-volume
      instances it writes the config drive before the volumes.  So the
      disk with the lowest position on its bus wins, ties going to the
      one written first.  Nova's config drive is a cdrom (skipped) or
      takes the next free name after the root disk (vdb..., or hdd with
      older nova), so it never outranks the root disk.
    * ``<os><boot dev='cdrom'/>`` (nova's ISO images) is not followed:
      cdroms are installer media; the installed OS is on a hard disk.

    An attached volume holding another OS never decides the record unless
    ``all_disks`` is asked for.  Returns [] for no disks.
    """
    ordered = _in_boot_order(specs)
    if all_disks:
        return ordered
    return ordered[:1]


def describe(spec):
    """A short, log-safe description of a drive (never the auth data).

    e.g. ``vda (qcow2, virtio): file /var/lib/nova/instances/X/disk`` or
    ``vda (raw, virtio): rbd vms/X_disk via 10.0.0.1:6789 (+2)``.
    """
    if spec.kind == KIND_NETWORK:
        where = '%s %s' % (spec.protocol, spec.path or '(default export)')
        if spec.socket:
            where += ' via unix:%s' % spec.socket
        elif spec.hosts:
            where += ' via %s:%s' % tuple(spec.hosts[0])
            if len(spec.hosts) > 1:
                where += ' (+%d)' % (len(spec.hosts) - 1)
    else:
        where = '%s %s' % (spec.kind, spec.path)
    # Target and format first: a long path may be truncated.
    text = '%s (%s%s): %s' % (spec.target or '?', spec.format,
                              ', ' + spec.bus if spec.bus else '', where)
    return sanitize.clean_text(text)
