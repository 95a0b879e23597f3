"""Libvirt domain XML for the rig's nova-like instances, as pure code.

Owns the shape of a rig domain: ``Flavor``/``Disk``/``DomainSpec`` values
and ``domain_xml(spec) -> str``, which renders them the way nova's libvirt
driver does for ``virt_type=qemu`` (TCG): nova metadata in namespace
``NOVA_NS`` (Ceilometer's libvirt-metadata discovery reads it), smbios
sysinfo, virtio disks, no network and no graphics.

What the guest runs: the test images carry an MBR signature over zeroed
boot code, so a BIOS boot executes zeros (about 75% of a host core per
domain under TCG, and nothing says it never writes).  By default the
domain instead boots ``halt_kernel()``, a multiboot stub that halts its
CPU at once: near 0% CPU, disks never touched by the guest.  Nova writes
the same ``<kernel>``/``<cmdline>`` for images with a kernel_id.

No libvirt, no files: ``rig.py`` makes the disks and runs the domains.
"""

import dataclasses
import struct
import uuid as uuid_mod

from lxml import etree

NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1'
# Marks a domain as the rig's own, so a later run can sweep leftovers.
RIG_NS = 'urn:ceilometer-os-pollster:test-rig'
NOVA_VERSION = '27.0.0'
NAME_TEMPLATE = 'instance-%08x'     # nova's default instance_name_template

DEVICE_DISK = 'disk'
DEVICE_CDROM = 'cdrom'


@dataclasses.dataclass(frozen=True)
class Flavor:
    """A nova flavor as the metadata carries it (memory/swap in MiB)."""

    name: str
    id: str
    vcpus: int
    memory_mb: int = 2048
    disk_gb: int = 20
    swap_mb: int = 0
    ephemeral_gb: int = 0


# Nova's classic m1.* flavors, by vCPU count.
_M1 = {1: ('m1.small', '2', 2048, 20), 2: ('m1.medium', '3', 4096, 40),
       4: ('m1.large', '4', 8192, 80), 8: ('m1.xlarge', '5', 16384, 160)}


def flavor_for(vcpus):
    """The m1.* flavor with ``vcpus`` vCPUs, or a made-up one."""
    if vcpus in _M1:
        name, flavor_id, memory, disk = _M1[vcpus]
        return Flavor(name, flavor_id, vcpus, memory, disk)
    return Flavor('rig.c%d' % vcpus, str(100 + vcpus), vcpus,
                  1024 * vcpus, 10 * vcpus)


@dataclasses.dataclass(frozen=True)
class Disk:
    """One ``<disk>``: kind is file, block or network (nbd or rbd).

    ``source`` is the file, the device, the nbd export name or rbd's
    ``pool/image``; a cdrom with ``source=''`` is an empty drive.
    ``serial`` is the volume id nova puts on attached volumes.  rbd disks
    list their monitors in ``hosts`` ((name, port) pairs, in order) and
    authenticate as ``auth_username`` with the libvirt ``ceph`` secret
    ``secret_uuid``, as nova writes them.
    """

    target: str
    kind: str = 'file'
    source: str = ''
    format: str = 'qcow2'
    device: str = DEVICE_DISK
    host: str = ''
    port: int = 0
    socket: str = ''        # nbd on a unix socket instead of host:port
    serial: str = ''
    cache: str = 'none'
    protocol: str = 'nbd'
    hosts: tuple = ()
    auth_username: str = ''
    secret_uuid: str = ''


@dataclasses.dataclass(frozen=True)
class DomainSpec:
    """Everything the XML of one rig instance says."""

    uuid: str
    name: str               # libvirt name, instance-0000000N
    display_name: str       # <nova:name>, what the tenant typed
    flavor: Flavor
    project_id: str
    user_id: str
    image_id: str | None    # None: booted from a volume, no <nova:root>
    disks: tuple
    creation_time: str = '2025-01-01 00:00:00'
    memory_mib: int = 64    # what the domain really gets, not the flavor
    project_name: str = 'demo'
    user_name: str = 'demo'
    console_log: str = ''   # '' sends the serial port to nothing
    kernel: str = ''        # '' boots the disk through the BIOS
    rig_tag: str = ''       # workdir of the rig that owns the domain


# Multiboot (v1) header with the "a.out kludge" flag, so qemu's -kernel
# loads the file as is at 1 MiB and jumps past the header.
_MB_MAGIC = 0x1BADB002
_MB_FLAGS = 0x00010000
_MB_LOAD = 0x100000
_HALT_CODE = bytes((0xFA, 0xF4, 0xEB, 0xFD))    # cli; hlt; jmp back to hlt


def halt_kernel():
    """A tiny kernel image that disables interrupts and halts forever."""
    header = struct.pack(
        '<8I', _MB_MAGIC, _MB_FLAGS, -(_MB_MAGIC + _MB_FLAGS) & 0xffffffff,
        _MB_LOAD, _MB_LOAD, 0, 0, _MB_LOAD + 32)
    return header + _HALT_CODE


def instance_name(number):
    return NAME_TEMPLATE % number


def stable_uuid(*parts):
    """A UUID that depends only on ``parts`` (ids for tests and demos)."""
    return str(uuid_mod.uuid5(uuid_mod.NAMESPACE_URL,
                              'ceilometer-os-pollster:' + ':'.join(parts)))


def _sub(parent, tag, text=None, **attrs):
    node = etree.SubElement(parent, tag, {k: str(v)
                                          for k, v in attrs.items()})
    if text is not None:
        node.text = str(text)
    return node


def _nova(tag):
    return '{%s}%s' % (NOVA_NS, tag)


def nova_metadata(spec):
    """The ``<nova:instance>`` element nova writes into ``<metadata>``."""
    inst = etree.Element(_nova('instance'), nsmap={'nova': NOVA_NS})
    _sub(inst, _nova('package'), version=NOVA_VERSION)
    _sub(inst, _nova('name'), spec.display_name)
    _sub(inst, _nova('creationTime'), spec.creation_time)
    fl = spec.flavor
    # flavor@id matters: without it discovery asks the Nova API.
    flavor = _sub(inst, _nova('flavor'), name=fl.name, id=fl.id)
    for tag, value in (('memory', fl.memory_mb), ('disk', fl.disk_gb),
                       ('swap', fl.swap_mb), ('ephemeral', fl.ephemeral_gb),
                       ('vcpus', fl.vcpus)):
        _sub(flavor, _nova(tag), value)
    owner = _sub(inst, _nova('owner'))
    _sub(owner, _nova('user'), spec.user_name, uuid=spec.user_id)
    _sub(owner, _nova('project'), spec.project_name, uuid=spec.project_id)
    if spec.image_id:
        _sub(inst, _nova('root'), type='image', uuid=spec.image_id)
    _sub(inst, _nova('ports'))
    return inst


def _disk(devices, disk):
    node = _sub(devices, 'disk', type=disk.kind, device=disk.device)
    driver = {'name': 'qemu', 'type': disk.format}
    if disk.device == DEVICE_DISK and disk.cache:
        driver['cache'] = disk.cache
    if disk.kind == 'block':
        driver['io'] = 'native'
    _sub(node, 'driver', **driver)
    if disk.kind == 'file' and disk.source:
        _sub(node, 'source', file=disk.source)
    elif disk.kind == 'block':
        _sub(node, 'source', dev=disk.source)
    elif disk.kind == 'network':
        source = _sub(node, 'source', protocol=disk.protocol,
                      name=disk.source)
        if disk.socket:
            _sub(source, 'host', transport='unix', socket=disk.socket)
        for name, port in disk.hosts or ((disk.host, disk.port),):
            if not disk.socket:
                _sub(source, 'host', name=name, port=port)
        if disk.auth_username:
            auth = _sub(node, 'auth', username=disk.auth_username)
            _sub(auth, 'secret', type='ceph', uuid=disk.secret_uuid)
    bus = 'ide' if disk.device == DEVICE_CDROM else 'virtio'
    _sub(node, 'target', dev=disk.target, bus=bus)
    if disk.device == DEVICE_CDROM:
        _sub(node, 'readonly')
    if disk.serial:
        _sub(node, 'serial', disk.serial)


def _sysinfo(domain, spec):
    sysinfo = _sub(domain, 'sysinfo', type='smbios')
    system = _sub(sysinfo, 'system')
    for name, value in (('manufacturer', 'OpenStack Foundation'),
                        ('product', 'OpenStack Nova'),
                        ('version', NOVA_VERSION),
                        ('serial', spec.uuid), ('uuid', spec.uuid),
                        ('family', 'Virtual Machine')):
        _sub(system, 'entry', value, name=name)


def ceph_secret_xml(secret_uuid, usage_name):
    """A libvirt ``ceph`` secret as deployers define it for nova/Cinder
    (not private: its value can be read back with a read-write
    connection, which is what the libvirt_secret_uri route does)."""
    secret = etree.Element('secret', ephemeral='no', private='no')
    _sub(secret, 'uuid', secret_uuid)
    usage = _sub(secret, 'usage', type='ceph')
    _sub(usage, 'name', usage_name)
    return etree.tostring(secret, encoding='unicode')


def domain_xml(spec):
    """The full ``<domain type='qemu'>`` XML of ``spec``, as text."""
    domain = etree.Element('domain', type='qemu')
    _sub(domain, 'name', spec.name)
    _sub(domain, 'uuid', spec.uuid)
    metadata = _sub(domain, 'metadata')
    metadata.append(nova_metadata(spec))
    if spec.rig_tag:
        tag = etree.SubElement(metadata, '{%s}rig' % RIG_NS,
                               nsmap={'rig': RIG_NS})
        tag.set('workdir', spec.rig_tag)
    _sub(domain, 'memory', spec.memory_mib * 1024, unit='KiB')
    _sub(domain, 'currentMemory', spec.memory_mib * 1024, unit='KiB')
    _sub(domain, 'vcpu', spec.flavor.vcpus)
    _sysinfo(domain, spec)
    os_node = _sub(domain, 'os')
    _sub(os_node, 'type', 'hvm', arch='x86_64', machine='pc')
    if spec.kernel:
        _sub(os_node, 'kernel', spec.kernel)
        _sub(os_node, 'cmdline', 'root=/dev/vda console=tty0 console=ttyS0')
    else:
        _sub(os_node, 'boot', dev='hd')
    _sub(os_node, 'smbios', mode='sysinfo')
    features = _sub(domain, 'features')
    _sub(features, 'acpi')
    _sub(features, 'apic')
    _sub(domain, 'clock', offset='utc')
    _sub(domain, 'on_poweroff', 'destroy')
    _sub(domain, 'on_reboot', 'restart')
    _sub(domain, 'on_crash', 'destroy')
    devices = _sub(domain, 'devices')
    for disk in spec.disks:
        _disk(devices, disk)
    if spec.console_log:
        serial = _sub(devices, 'serial', type='file')
        _sub(serial, 'source', path=spec.console_log)
    else:
        _sub(devices, 'serial', type='null')
    _sub(devices, 'memballoon', model='none')
    # qemu runs as root and libvirt leaves file owners alone: the rig's
    # workdir may be a 0700 pytest directory, and the guest images are
    # shared with other tests.  Nova relies on dynamic_ownership; nothing
    # the pollster reads depends on it.
    seclabel = _sub(domain, 'seclabel', type='static', model='dac',
                    relabel='no')
    _sub(seclabel, 'label', '+0:+0')
    return etree.tostring(domain, pretty_print=True, encoding='unicode')
