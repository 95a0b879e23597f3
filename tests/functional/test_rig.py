"""The test rig: nova-like XML (pure) and real running qemu domains.

The live tests bring up one domain per disk layout under a real libvirtd,
check that each disk shows the guest image's bytes and that the domains'
own qemu writes none, run Ceilometer's real libvirt-metadata discovery
over them, and check that a teardown leaves nothing behind.
"""

import hashlib
import json
import os
import struct
import subprocess
import time

from lxml import etree
import pytest

from ceilometer.compute import discovery
from ceilometer import service as ceilo_service

from ceilometer_os_pollster.instances import drives
from tests.rig import disks
from tests.rig import domains
from tests.rig import libvirtd
from tests.rig import rig as rig_mod

NS = {'nova': domains.NOVA_NS}
HOST = 'rig-compute-1'


# -- pure: the XML builder ------------------------------------------------

def _spec(**overrides):
    fields = dict(
        uuid='11111111-2222-4333-8444-555555555555',
        name=domains.instance_name(10), display_name='web-1',
        flavor=domains.flavor_for(2), project_id='p-uuid', user_id='u-uuid',
        image_id='i-uuid',
        disks=(domains.Disk('vda', 'file', '/i/disk', 'qcow2'),))
    fields.update(overrides)
    return domains.DomainSpec(**fields)


def _one(xml, path):
    found = etree.fromstring(xml).xpath(path, namespaces=NS)
    if isinstance(found, list):     # a node set, not a string()
        return found[0] if found else None
    return found


XML_CASES = [
    # (overrides, xpath, expected value; None means "absent")
    ({}, 'string(/domain/@type)', 'qemu'),
    ({}, 'string(/domain/name)', 'instance-0000000a'),
    ({}, 'string(/domain/vcpu)', '2'),
    ({}, 'string(/domain/os/type/@machine)', 'pc'),
    ({}, 'string(/domain/os/boot/@dev)', 'hd'),
    ({}, 'string(//nova:instance/nova:name)', 'web-1'),
    ({}, 'string(//nova:flavor/@id)', '3'),
    ({}, 'string(//nova:flavor/@name)', 'm1.medium'),
    ({}, 'string(//nova:flavor/nova:vcpus)', '2'),
    ({}, 'string(//nova:owner/nova:project/@uuid)', 'p-uuid'),
    ({}, 'string(//nova:owner/nova:user/@uuid)', 'u-uuid'),
    ({}, 'string(//nova:root[@type="image"]/@uuid)', 'i-uuid'),
    ({'image_id': None}, '//nova:root', None),
    ({}, 'string(//devices/serial/@type)', 'null'),
    ({'console_log': '/i/console.log'},
     'string(//devices/serial/source/@path)', '/i/console.log'),
    ({}, '//devices/graphics', None),
    ({}, '//devices/interface', None),
    ({}, 'string(//disk/source/@file)', '/i/disk'),
    ({}, 'string(//disk/driver/@type)', 'qcow2'),
    ({'disks': (domains.Disk('vda', 'block', '/dev/loop3', 'raw'),)},
     'string(//disk[@type="block"]/source/@dev)', '/dev/loop3'),
    ({'disks': (domains.Disk('vda', 'network', 'vol-1', 'raw',
                             host='127.0.0.1', port=10900),)},
     'string(//disk/source[@protocol="nbd"]/@name)', 'vol-1'),
    ({'disks': (domains.Disk('vda', 'network', 'vol-1', 'raw',
                             host='127.0.0.1', port=10900),)},
     'string(//disk/source/host/@port)', '10900'),
    ({'disks': (domains.Disk('vda', 'network', 'vol-2', 'raw',
                             socket='/v/s.sock'),)},
     'string(//disk/source/host[@transport="unix"]/@socket)', '/v/s.sock'),
    ({'disks': (domains.Disk('hdc', device='cdrom', format='raw'),)},
     '//disk[@device="cdrom"]/source', None),
    ({'disks': (domains.Disk('hdc', device='cdrom', format='raw'),)},
     'string(//disk[@device="cdrom"]/target/@bus)', 'ide'),
    ({'disks': (domains.Disk('vdb', serial='vol-9'),)},
     'string(//disk/serial)', 'vol-9'),
    ({'kernel': '/i/kernel'}, 'string(/domain/os/kernel)', '/i/kernel'),
    ({'kernel': '/i/kernel'}, '/domain/os/boot', None),
    ({'rig_tag': '/w'}, 'string(//metadata/*[local-name()="rig"]/@workdir)',
     '/w'),
]


@pytest.mark.parametrize('overrides,path,expected', XML_CASES)
def test_domain_xml(overrides, path, expected):
    found = _one(domains.domain_xml(_spec(**overrides)), path)
    if expected is None:
        assert found is None
    else:
        assert found == expected


@pytest.mark.parametrize('vcpus,name,flavor_id', [
    (1, 'm1.small', '2'), (2, 'm1.medium', '3'), (4, 'm1.large', '4'),
    (8, 'm1.xlarge', '5'), (3, 'rig.c3', '103')])
def test_flavor_for(vcpus, name, flavor_id):
    flavor = domains.flavor_for(vcpus)
    assert (flavor.name, flavor.id, flavor.vcpus) == (name, flavor_id, vcpus)


def test_halt_kernel_is_a_multiboot_image_that_halts():
    image = domains.halt_kernel()
    magic, flags, checksum, header, load, end, bss, entry = struct.unpack(
        '<8I', image[:32])
    assert magic == 0x1BADB002
    assert (magic + flags + checksum) & 0xffffffff == 0
    assert flags & 0x00010000      # load addresses given: no ELF needed
    assert header == load and end == bss == 0
    code = image[entry - load:]
    assert code[:2] == b'\xfa\xf4'    # cli; hlt
    assert code[2:] == b'\xeb\xfd'    # jmp back to the hlt


def test_rig_domain_survives_its_state_file_rendering():
    dom = rig_mod.RigDomain(
        uuid='u', name='instance-00000001', display_name='d',
        layout=rig_mod.BLOCK, flavor=domains.flavor_for(2), project_id='p',
        user_id='s', image_id=None,
        disks=(rig_mod.RigDisk('vda', 'block', 'raw', '/dev/loop0',
                               ('/dev/loop0', '/w/volumes/v')),),
        xml='<domain/>')
    assert rig_mod.RigDomain.from_dict(dom.to_dict()) == dom
    assert dom.disk_paths == ('/dev/loop0', '/w/volumes/v')


# -- live: real libvirtd, real qemu (TCG) ---------------------------------

def _make_image(path, label, size_mb=32):
    stage = path.parent / (label + '-root')
    (stage / 'etc').mkdir(parents=True)
    (stage / 'etc' / 'hostname').write_text(label + '\n')
    subprocess.run(['truncate', '-s', '%dM' % size_mb, str(path)],
                   check=True)
    subprocess.run(['mkfs.ext4', '-q', '-F', '-L', label, '-d', str(stage),
                    str(path)], check=True)
    return path


# (display name, add() keyword arguments); the images are filled in.
PLAN = [
    ('vm-overlay', dict(layout=rig_mod.OVERLAY, vcpus=1)),
    ('vm-blank-base', dict(layout=rig_mod.OVERLAY_BLANK_BASE, vcpus=2)),
    ('vm-qcow2', dict(layout=rig_mod.QCOW2, vcpus=4)),
    ('vm-raw', dict(layout=rig_mod.RAW, vcpus=1, from_volume=True)),
    ('vm-block', dict(layout=rig_mod.BLOCK, vcpus=2, from_volume=True)),
    ('vm-nbd', dict(layout=rig_mod.NBD, vcpus=2)),
    ('vm-nbd-unix', dict(layout=rig_mod.NBD_UNIX, vcpus=1)),
    ('vm-data', dict(layout=rig_mod.OVERLAY, vcpus=2, data_image=True)),
    ('vm-cdrom', dict(layout=rig_mod.OVERLAY, vcpus=1, cdrom=True)),
]


def _conn():
    import libvirt
    return libvirt.open(libvirtd.URI)


def _domain_uuids():
    conn = _conn()
    try:
        return {d.UUIDString() for d in conn.listAllDomains()}
    finally:
        conn.close()


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    where = tmp_path_factory.mktemp('images')
    return (_make_image(where / 'os-a.raw', 'os-a'),
            _make_image(where / 'os-b.raw', 'os-b', size_mb=24))


@pytest.fixture(scope='module')
def rig(libvirt_daemons, images, tmp_path_factory):
    os_a, os_b = images
    began = time.monotonic()
    with rig_mod.Rig(tmp_path_factory.mktemp('rig')) as the_rig:
        for name, kwargs in PLAN:
            kwargs = dict(kwargs)
            if kwargs.get('data_image'):
                kwargs['data_image'] = os_b
            the_rig.add(name, os_a, **kwargs)
        prepared = time.monotonic() - began
        started = the_rig.start_all()
        print('\nrig: %d domains, disks %.1f s, start %.1f s'
              % (len(PLAN), prepared, started))
        the_rig.checksums_at_start = rig_mod.disk_checksums(the_rig)
        yield the_rig
        assert the_rig.teardown() == []


def _by_name(rig):
    return {d.display_name: d for d in rig.domains}


@pytest.mark.libvirt
def test_ensure_daemons_twice_starts_nothing_more(libvirt_daemons):
    assert libvirtd.ensure_daemons() is False
    assert libvirtd.libvirt_answers()


@pytest.mark.libvirt
def test_every_domain_is_running(rig):
    listed = subprocess.run(
        ['virsh', '-c', libvirtd.URI, 'list', '--name', '--state-running'],
        capture_output=True, text=True, check=True).stdout.split()
    assert len(rig.domains) == len(PLAN)
    for dom in rig.domains:
        assert dom.name in listed
        assert dom.name.startswith('instance-')
    assert set(rig.states().values()) == {'running'}


def _cpu_ticks(name):
    with open('/run/libvirt/qemu/%s.pid' % name) as handle:
        pid = int(handle.read())
    with open('/proc/%d/stat' % pid) as handle:
        fields = handle.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])     # utime + stime


@pytest.mark.libvirt
def test_domains_sit_idle(rig):
    before = {d.name: _cpu_ticks(d.name) for d in rig.domains}
    time.sleep(3)
    used = {name: (_cpu_ticks(name) - ticks) / os.sysconf('SC_CLK_TCK') / 3
            for name, ticks in before.items()}
    # a BIOS running the images' zeroed boot code takes ~0.75 core each
    assert max(used.values()) < 0.1, used


def _compare(image, fmt, target, target_fmt):
    """qemu-img compare: 0 when both show the same bytes.

    -U: the running domain's qemu holds the image locks.
    """
    return subprocess.run(
        ['qemu-img', 'compare', '-U', '-f', fmt, '-F', target_fmt,
         str(image), target], capture_output=True, text=True).returncode


def _nbd_uri(disk):
    if disk.socket:
        return 'nbd+unix:///%s?socket=%s' % (disk.source, disk.socket)
    return 'nbd://%s:%d/%s' % (disk.host, disk.port, disk.source)


@pytest.mark.libvirt
def test_each_boot_disk_shows_the_guest_image(rig, images):
    os_a, _ = images
    for dom in rig.domains:
        boot = dom.boot_disk
        target = _nbd_uri(boot) if boot.kind == 'network' else boot.source
        # nbd: a second client beside the domain's own qemu.
        assert _compare(os_a, 'raw', target, boot.format) == 0, dom.layout


@pytest.mark.libvirt
def test_overlay_layouts_put_the_os_where_nova_would(rig, images):
    os_a, _ = images
    doms = _by_name(rig)
    base = doms['vm-overlay'].boot_disk.chain[1]
    assert '/_base/' in base
    assert _compare(os_a, 'raw', base, 'raw') == 0
    blank = doms['vm-blank-base'].boot_disk.chain[1]
    size = os_a.stat().st_size
    assert disks.sha256(blank) == hashlib.sha256(bytes(size)).hexdigest()
    # one _base file per image, shared as on a compute node
    assert doms['vm-cdrom'].boot_disk.chain[1] == base


@pytest.mark.libvirt
def test_data_disk_holds_the_other_guest(rig, images):
    _, os_b = images
    dom = _by_name(rig)['vm-data']
    data = [d for d in dom.disks if d.target == 'vdb'][0]
    assert _compare(os_b, 'raw', data.source, 'qcow2') == 0
    assert dom.boot_disk.target == 'vda'


@pytest.mark.libvirt
def test_live_xml_gives_the_pollster_the_boot_disk(rig):
    conn = _conn()
    try:
        for dom in rig.domains:
            xml = conn.lookupByUUIDString(dom.uuid).XMLDesc()
            boot = drives.boot_drives(drives.drive_specs(xml))[0]
            assert (boot.target, boot.kind, boot.format, boot.path) == (
                'vda', dom.boot_disk.kind, dom.boot_disk.format,
                dom.boot_disk.source)
            if dom.layout == rig_mod.NBD:
                assert boot.hosts == (('127.0.0.1',
                                       str(dom.boot_disk.port)),)
            if dom.layout == rig_mod.NBD_UNIX:
                assert boot.socket == dom.boot_disk.socket
            cdroms = etree.fromstring(xml).xpath(
                '//disk[@device="cdrom"]')
            assert len(cdroms) == (1 if dom.display_name == 'vm-cdrom'
                                   else 0)
    finally:
        conn.close()


@pytest.fixture
def discovered(rig):
    conf = ceilo_service.prepare_service([], [])
    conf.set_override('instance_discovery_method', 'libvirt_metadata',
                      group='compute')
    conf.set_override('host', HOST)
    conf.set_override('libvirt_uri', libvirtd.URI)
    found = discovery.InstanceDiscovery(conf).discover(manager=None)
    return {server.id: server for server in found}


@pytest.mark.libvirt
def test_ceilometer_discovery_finds_every_domain(rig, discovered):
    for dom in rig.domains:
        server = discovered[dom.uuid]
        assert server.name == dom.display_name
        assert getattr(server, 'OS-EXT-SRV-ATTR:instance_name') == dom.name
        assert getattr(server, 'OS-EXT-SRV-ATTR:host') == HOST
        assert server.status == 'active'
        assert server.flavor['id'] == dom.flavor.id
        assert server.flavor['name'] == dom.flavor.name
        assert server.flavor['vcpus'] == dom.vcpus
        assert server.tenant_id == dom.project_id
        assert server.user_id == dom.user_id
        if dom.image_id is None:
            assert server.image is None
        else:
            assert server.image == {'id': dom.image_id}
    assert {d.vcpus for d in rig.domains} == {1, 2, 4}
    assert {d.image_id is None for d in rig.domains} == {True, False}


@pytest.mark.libvirt
def test_running_domains_change_no_byte_of_their_disks(rig):
    # The guests sit in the BIOS; their qemu opened every disk read-write.
    assert rig_mod.disk_checksums(rig) == rig.checksums_at_start
    assert len(rig.checksums_at_start) >= len(PLAN)


@pytest.mark.libvirt
def test_teardown_from_the_state_file_leaves_nothing(libvirt_daemons,
                                                     images, tmp_path):
    os_a, _ = images
    the_rig = rig_mod.Rig(tmp_path)
    for layout in (rig_mod.BLOCK, rig_mod.NBD, rig_mod.NBD_UNIX,
                   rig_mod.OVERLAY):
        the_rig.add('gone-' + layout, os_a, layout=layout)
    the_rig.start_all()
    uuids = {d.uuid for d in the_rig.domains}
    loop, volume = the_rig.domains[0].boot_disk.chain
    nbd = list(the_rig._state['nbd'])
    assert disks.loop_backing(loop) == volume
    assert nbd and all(disks.nbd_alive(record) for record in nbd)
    assert set(rig_mod.rig_domains(the_rig.conn, tmp_path)) == uuids

    # what another process does: python -m tests.rig down
    assert rig_mod.Rig.load(tmp_path).teardown() == []

    assert not uuids & _domain_uuids()
    assert not any(disks.nbd_alive(record) for record in nbd)
    assert disks.loop_backing(loop) != volume     # detached (or reused)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.libvirt
def test_command_line_up_status_down(libvirt_daemons, images, tmp_path,
                                     capsys):
    from tests.rig import __main__ as cli
    os_a, os_b = images
    where = ['--workdir', str(tmp_path)]
    assert cli.main(['up', '--image', str(os_a), '--image', str(os_b),
                     '--layouts', 'raw,nbd'] + where) == 0
    shown = capsys.readouterr().out
    made = rig_mod.Rig.load(tmp_path).domains
    assert [d.layout for d in made] == ['raw', 'nbd', 'overlay']
    assert all(d.name in shown for d in made)
    assert cli.main(['status'] + where) == 0
    status = capsys.readouterr().out
    assert json.loads(status[:status.index('}') + 1])['libvirtd'] == \
        'running'
    assert status.count(' running ') == 3
    assert cli.main(['down', '--keep'] + where) == 0
    assert not {d.uuid for d in made} & _domain_uuids()
    assert libvirtd.libvirt_answers()     # --keep: daemons left running
