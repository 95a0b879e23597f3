"""direct.inspect: the roots of an instance as the appliance path finds
them: btrfs volumes listed as libguestfs 1.48 lists them (the device for
the default subvolume, btrfsvol:DEVICE/PATH for the others), a Linux
root's billing inputs read through its /etc/fstab's mounts, a separate
/usr merged into its root, snapshots counted without a limit.

First over fakes (a btrfs reader of FakeFs subvolumes), then on the
catalog's btrfs and separate-/usr guests built with the kernel's btrfs.
"""

import dataclasses
import types

import pytest

from ceilometer_os_pollster.instances import drives
from ceilometer_os_pollster.families import facts
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster.direct.filesystem import btrfs
from ceilometer_os_pollster.direct import disks as DD
from ceilometer_os_pollster.direct import inspect as DI
from ceilometer_os_pollster.direct.block import source as S
from tests import helpers
from tests.guests import builder
from tests.guests import catalog
from tests.guests import layout
from tests.unit.direct.fakefs import ELF_X86_64
from tests.unit.direct.fakefs import FakeFs

FSID = '4434010c-4e8e-51ab-8bed-eaf0bff38be6'


def _release(version, name='sles'):
    return ('ID="%s"\nVERSION_ID="%s"\nPRETTY_NAME="%s %s"\n'
            % (name, version, name.upper(), version)).encode()


def _root_files(release, fstab):
    return {'/etc/fstab': fstab.encode(), '/bin': '->usr/bin',
            '/usr/bin/ls': ELF_X86_64,
            '/etc/os-release': '->../usr/lib/os-release',
            '/usr/lib/os-release': release}


SUSE_FSTAB = ('UUID=%s / btrfs defaults 0 0\n'
              'UUID=%s /var btrfs subvol=/@/var 0 0\n'
              'UUID=%s /.snapshots btrfs subvol=/@/.snapshots 0 0\n'
              % (FSID, FSID, FSID))


class FakeBtrfs(FakeFs):
    """A btrfs reader: {id: (path, files)}, the default id's view."""

    def __init__(self, subvolumes, default, snapshots=()):
        self.trees = {5: FakeFs({'/@': None})}
        self.trees.update({i: FakeFs(files)
                           for i, (_, files) in subvolumes.items()})
        self.listing = [btrfs.Subvolume(i, path, 5, i in snapshots, False,
                                        b'', b'')
                        for i, (path, _) in sorted(subvolumes.items())]
        self.default = default
        view = self.trees[default]
        self.root = view.root
        self.lookups = self.bytes_read = 0
        self.opened = []

    def subvolumes(self):
        return self.listing

    def default_subvolume(self):
        return self.default

    def subvolume(self, subvolume_id):
        self.opened.append(subvolume_id)
        return self.trees[subvolume_id]

    def subvolume_at(self, path):
        path = path.strip('/')
        return {s.path: s.id for s in self.listing}.get(path)


def _suse(snapshots=3, old=1):
    """SLES: @, @/.snapshots, root in snapshot 1 (default), @/var, and
    ``snapshots`` snapper snapshots, the first ``old`` of them SP4."""
    subvolumes = {256: ('@', {'/var': None}),
                  257: ('@/.snapshots', {'/1/info.xml': b'x'}),
                  258: ('@/.snapshots/1/snapshot',
                        _root_files(_release('15.5'), SUSE_FSTAB)),
                  259: ('@/var', {'/log': None})}
    for n in range(snapshots):
        subvolumes[260 + n] = ('@/.snapshots/%d/snapshot' % (n + 2),
                               _root_files(_release(
                                   '15.4' if n < old else '15.5'),
                                   SUSE_FSTAB))
    return FakeBtrfs(subvolumes, 258,
                     snapshots=range(260, 260 + snapshots))


def _read(monkeypatch, volumes, max_filesystems=None):
    """ApplianceFacts of (device, disk index, FakeBtrfs or FakeFs)."""
    result = raw_facts.ApplianceFacts(drives=2)
    disks = DI._Disks()
    readers = {}
    monkeypatch.setattr(DI.btrfs, 'Filesystem',
                        lambda source, budget: readers[source.name])
    monkeypatch.setattr(DI.id_mod, 'fs_ids', lambda source, kind: (
        (FSID, '') if kind == DI.id_mod.BTRFS else ('', '')))
    for device, disk_index, reader in volumes:
        source = types.SimpleNamespace(name=device)
        volume = DD.Volume(device, disk_index, source)
        if isinstance(reader, FakeBtrfs):
            readers[device] = reader
            DI._list_btrfs(volume, S.Budget(), disks, result)
        else:
            disks.add_ids(volume, DI.id_mod.EXT)
            disks.listed.append(DI._Listed(device, disk_index, reader,
                                           DI.id_mod.EXT))
    roots = DI._all_roots(disks, DI._linux_roots(disks), result)
    DI._limits(disks, roots, result, max_filesystems)
    result.roots, limited = facts.kept_roots(roots, DI.MAX_ROOTS)
    assert not limited
    return result


def test_a_suse_btrfs_lists_its_snapshots_as_roots(monkeypatch):
    result = _read(monkeypatch, [('/dev/sda2', 0, _suse())])
    by_device = {r.device: r for r in result.roots}
    assert list(by_device) == [
        '/dev/sda2', 'btrfsvol:/dev/sda2/@/.snapshots/2/snapshot',
        'btrfsvol:/dev/sda2/@/.snapshots/3/snapshot',
        'btrfsvol:/dev/sda2/@/.snapshots/4/snapshot']
    # What libguestfs reads in the snapshot itself...
    old = by_device['btrfsvol:/dev/sda2/@/.snapshots/2/snapshot']
    assert (old.distro, old.major, old.minor) == ('sles', 15, 4)
    # ... and what the appliance path reads after mounting it by its
    # fstab: the running system's subvolume at '/'.
    assert old.os_release['VERSION_ID'] == '15.5'
    # @, @/.snapshots, @/var and the default one: 1 + 6 subvolumes.
    assert result.filesystems == 7
    assert result.limits == []
    record = facts.normalise(result, 'i')
    assert (record.os_distro, record.os_version_minor) == ('sles', 5)
    assert '/dev/sda2' in record.reason


def test_the_running_root_is_billed_when_snapshots_tie(monkeypatch):
    result = _read(monkeypatch, [('/dev/sda2', 0, _suse(snapshots=30,
                                                        old=30))])
    assert len(result.roots) == DI.MAX_ROOTS
    assert result.roots[0].device == '/dev/sda2'
    assert facts.choose_root(result.roots).device == '/dev/sda2'
    # Thirty snapper snapshots are not a flood: no limit, no Datacenter.
    assert result.limits == []
    assert facts.normalise(result, 'i').os_distro == 'sles'


def test_a_fedora_btrfs_root_is_mounted_by_subvol(monkeypatch):
    fstab = ('UUID=%s / btrfs subvol=root,compress=zstd:1 0 0\n'
             'UUID=%s /home btrfs subvol=home 0 0\n' % (FSID, FSID))
    reader = FakeBtrfs({256: ('root', _root_files(_release('39', 'fedora'),
                                                  fstab)),
                        257: ('home', {'/user': None})}, 5)
    reader.trees[5] = FakeFs({'/root': None, '/home': None})
    result = _read(monkeypatch, [('/dev/sda3', 0, reader)])
    (root,) = result.roots
    assert root.device == 'btrfsvol:/dev/sda3/root'
    assert (root.distro, root.major, root.os_release['ID']) == (
        'fedora', 39, 'fedora')
    assert result.filesystems == 3


def test_a_snapshot_mounting_a_missing_subvolume_falls_back(monkeypatch):
    fstab = 'UUID=%s / btrfs subvol=/@/gone 0 0\n' % FSID
    reader = FakeBtrfs({256: ('@', _root_files(_release('15.5'), fstab))},
                       256)
    with pytest.raises(DI.errors.Unsupported, match='mounts btrfsvol:'):
        _read(monkeypatch, [('/dev/sda2', 0, reader)])


def test_a_subvolume_flood_is_bounded(monkeypatch):
    flood = {256 + n: ('sv%04d' % n, {}) for n in range(
        DI.MAX_SUBVOLUMES + 5)}
    reader = FakeBtrfs(flood, 5)
    result = _read(monkeypatch, [('/dev/sda1', 0, reader)])
    assert len(reader.opened) == DI.MAX_SUBVOLUMES
    assert result.limits == ['btrfs /dev/sda1: %d subvolumes, more than '
                             '%d read' % (DI.MAX_SUBVOLUMES + 5,
                                          DI.MAX_SUBVOLUMES)]
    # On a data disk beside a boot disk with its root: nothing hidden.
    boot = FakeFs(_root_files(_release('15.5'), ''))
    result = _read(monkeypatch, [('/dev/sda1', 0, boot),
                                 ('/dev/sdb1', 1, FakeBtrfs(flood, 5))])
    assert result.limits == []


def test_max_filesystems_bills_a_flood_as_the_appliance_does(monkeypatch):
    flood = {256 + n: ('sv%04d' % n, {}) for n in range(40)}
    result = _read(monkeypatch, [('/dev/sda1', 0, FakeBtrfs(flood, 5))],
                   max_filesystems=16)
    assert result.limits == ['41 filesystems and subvolumes, more than '
                             'max_filesystems 16']
    assert _read(monkeypatch, [('/dev/sda1', 0, FakeBtrfs(flood, 5))],
                 max_filesystems=41).limits == []


USR = {'/bin/ls': ELF_X86_64, '/lib/os-release': _release('15.5'),
       '/local': None, '/share': None, '/src': None}


def test_a_separate_usr_is_merged_into_its_root(monkeypatch):
    fstab = '/dev/sda1 / ext4 defaults 0 0\nLABEL=usr /usr ext4 ro 0 0\n'
    root_files = {'/etc/fstab': fstab.encode(), '/etc/hosts': b'',
                  '/bin': '->usr/bin', '/usr': None,
                  '/etc/os-release': '->../usr/lib/os-release'}
    monkeypatch.setattr(DI._Disks, 'resolve', lambda self, tag, value: (
        '/dev/sda2' if (tag, value) == ('LABEL', 'usr') else None))
    result = _read(monkeypatch, [('/dev/sda1', 0, FakeFs(root_files)),
                                 ('/dev/sda2', 0, FakeFs(USR))])
    (root,) = result.roots
    assert (root.device, root.distro, root.major, root.minor, root.arch,
            root.product_name) == ('/dev/sda1', 'sles', 15, 5, 'x86_64',
                                   'SLES 15.5')
    assert root.os_release['ID'] == 'sles'
    # A /usr its fstab does not mount is not its /usr.
    root_files['/etc/fstab'] = b'UUID=x / ext4 defaults 0 0\n'
    (root,) = _read(monkeypatch, [('/dev/sda1', 0, FakeFs(root_files)),
                                  ('/dev/sda2', 0, FakeFs(USR))]).roots
    assert (root.distro, root.arch, root.os_release) == (
        'unknown', 'unknown', {})


def test_a_root_whose_fstab_mounts_nothing_at_slash(monkeypatch):
    files = _root_files(_release('15.5'), 'LABEL=gone / ext4 ro 0 0\n'
                        '/dev/sda1 /boot ext4 ro 0 0\n')
    (root,) = _read(monkeypatch, [('/dev/sda1', 0, FakeFs(files))]).roots
    # libguestfs read the release files in the root itself; the
    # appliance path mounts nothing at '/' and reads no os-release.
    assert (root.distro, root.os_release) == ('sles', {})


def _linux(device, distro='debian', disk_index=0):
    return raw_facts.RootFacts(device=device, type='linux', distro=distro,
                               disk_index=disk_index,
                               os_release={'ID': distro})


def test_kept_roots_are_the_dearest_and_the_running_one():
    snaps = [_linux('btrfsvol:/dev/sda2/@/.snapshots/%d/snapshot' % n)
             for n in range(2, 40)]
    dear = _linux('btrfsvol:/dev/sda2/@/.snapshots/39/snapshot', 'rhel')
    other_disk = _linux('/dev/sdb1', 'rhel', disk_index=1)
    roots = [_linux('/dev/sda2'), other_disk] + snaps[:-1] + [dear]
    kept, limited = facts.kept_roots(roots, DI.MAX_ROOTS)
    assert not limited and len(kept) == DI.MAX_ROOTS
    assert kept[:3] == [roots[0], other_disk, dear]
    assert facts.choose_root(kept) is dear
    many = [_linux('/dev/sda%d' % n) for n in range(1, 19)]
    kept, limited = facts.kept_roots(many + snaps, DI.MAX_ROOTS)
    assert limited and kept[:DI.MAX_ROOTS] == many[:DI.MAX_ROOTS]


def test_the_dearest_subvolume_root_is_kept_beside_full_volume_roots():
    # As many cheap roots on partitions as are kept, and the dearer OS
    # the tenant boots as a btrfs snapshot: it is kept, and billed.
    volumes = [_linux('/dev/sda%d' % n) for n in range(1, DI.MAX_ROOTS + 1)]
    dear = _linux('btrfsvol:/dev/sda20/@/.snapshots/9/snapshot', 'rhel')
    cheap = _linux('btrfsvol:/dev/sda20/@/.snapshots/8/snapshot')
    kept, limited = facts.kept_roots(volumes + [cheap, dear], DI.MAX_ROOTS)
    assert not limited and kept == volumes + [dear]
    assert facts.choose_root(kept) is dear


@pytest.fixture(scope='module')
def catalog_facts():
    out = {}
    for name in ('sles-15-sp5-btrfs', 'fedora-39-btrfs',
                 'sles-15-sp5-separate-usr'):
        budget = S.Budget()
        specs = drives.drive_specs(helpers.files_domain_xml(
            builder.disk_images(name), name))
        out[name] = (DI.inspect(specs, budget=budget), budget.used)
    return out


def test_catalog_btrfs_guests_read_directly(catalog_facts):
    sles, used = catalog_facts['sles-15-sp5-btrfs']
    assert [(r.device, r.minor, r.os_release['VERSION_ID'])
            for r in sles.roots] == [
        ('/dev/sda1', 5, '15.5'),
        ('btrfsvol:/dev/sda1/@/.snapshots/2/snapshot', 4, '15.5'),
        ('btrfsvol:/dev/sda1/@/.snapshots/3/snapshot', 5, '15.5'),
        ('btrfsvol:/dev/sda1/@/.snapshots/4/snapshot', 5, '15.5')]
    assert b'<name>SLES</name>' in sles.roots[0].suse_baseproduct
    # @, @/.snapshots, seven under @, three snapshots, and the device.
    assert (sles.filesystems, sles.limits) == (13, [])
    assert used < 1 << 20
    fedora, _ = catalog_facts['fedora-39-btrfs']
    assert [(r.device, r.distro, r.os_release['ID'])
            for r in fedora.roots] == [
        ('btrfsvol:/dev/sda1/root', 'fedora', 'fedora')]
    usr, _ = catalog_facts['sles-15-sp5-separate-usr']
    assert [(r.device, r.distro, r.arch, r.os_release['ID'])
            for r in usr.roots] == [('/dev/sda1', 'sles', 'x86_64',
                                     'sles')]


def test_twenty_snapper_snapshots_read_directly(tmp_path):
    """SLES with 20 snapshots (21 roots, past the appliance's 16 read in
    detail): every one read, the 16 dearest kept, no bound reached."""
    guest = catalog.GUESTS['sles-15-sp5-btrfs']
    guest = dataclasses.replace(guest, name='sles-20-snapshots',
                                linux=dataclasses.replace(
                                    guest.linux,
                                    snapshots=guest.linux.snapshots[1:2]
                                    * 20))
    image = tmp_path / 'disk.raw'
    builder._build_disk(guest, layout.plan(guest), image, tmp_path)
    specs = drives.drive_specs(helpers.files_domain_xml([image], guest.name))
    result = DI.inspect(specs)
    assert result.limits == []
    assert len(result.roots) == DI.MAX_ROOTS
    assert result.warnings == ['21 roots read, the 16 dearest kept']
    record = facts.normalise(result, 'i')
    assert (record.status, record.os_distro, record.os_version_minor) == (
        'ok', 'sles', 5)
    assert record.reason.startswith(
        '16 operating systems on the boot disk (15 of them btrfs snapshots '
        'or other subvolumes), billed the dearest: /dev/sda1')
