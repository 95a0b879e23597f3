"""direct.mounts: /etc/fstab read as libguestfs 1.48 reads it, and a
root seen through the mounts guest_files.mount_root would make."""

import pytest

from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs
from ceilometer_os_pollster.direct import mounts
from tests.unit.direct.fakefs import FakeFs


@pytest.mark.parametrize('path, canonical', [
    ('/', '/'), ('///usr//local//', '/usr/local'), ('/usr', '/usr'),
    ('none', 'none'), ('', ''),
])
def test_canonical_path(path, canonical):
    assert mounts.canonical_path(path) == canonical


def test_fstab_entries_as_augeas_reads_them():
    data = (b'# /etc/fstab\n\n'
            b'UUID=abc /  btrfs  defaults 0 0\n'
            b'  UUID=abc /var btrfs subvol=/@/var,noatime 0 0 # trailing\n'
            b'tmpfs /tmp tmpfs\n'
            b'LABEL=data /data ext4 defaults 1\n')
    assert mounts.fstab_entries(data) == [
        ('UUID=abc', '/', 'btrfs', [('defaults', None)]),
        ('UUID=abc', '/var', 'btrfs', [('subvol', '/@/var'),
                                       ('noatime', None)]),
        ('tmpfs', '/tmp', 'tmpfs', []),
        ('LABEL=data', '/data', 'ext4', [('defaults', None)]),
    ]


@pytest.mark.parametrize('bad', [
    b'UUID=abc /\n',                            # no vfstype
    b'UUID=abc / ext4 defaults x 0\n',          # dump not a number
    b'UUID=abc / ext4 defaults 0 0 extra\n',
])
def test_a_line_augeas_cannot_parse_empties_the_file(bad):
    assert mounts.fstab_entries(b'UUID=x /boot ext4 defaults 0 0\n'
                                + bad) == []


IDS = {('UUID', 'root-uuid'): '/dev/sda2', ('UUID', 'btrfs-uuid'): '/dev/sda3',
       ('LABEL', 'usr'): '/dev/sda4'}
DEVICES = {'/dev/sda1', '/dev/sdb1', '/dev/vg0/lv-root', '/dev/sda2'}


def _mountpoints(text, root='/dev/sda2'):
    return mounts.mountpoints(mounts.fstab_entries(text), root,
                              lambda tag, value: IDS.get((tag, value)),
                              DEVICES)


@pytest.mark.parametrize('text, expected', [
    # UUID=, LABEL= (quotes removed) and the ignored mountpoints.
    (b'UUID=root-uuid / ext4 defaults 0 1\nLABEL="usr" /usr xfs ro 0 0\n'
     b'proc /proc proc defaults 0 0\n/dev/sda1 /media/x ext4 ro 0 0\n',
     [('/', '/dev/sda2'), ('/usr', '/dev/sda4')]),
    # A UUID no filesystem has drops its entry; none left: the root.
    (b'UUID=gone / ext4 defaults 0 1\n', [('/', '/dev/sda2')]),
    # Entries left, none for '/': nothing is mounted there.
    (b'UUID=gone / ext4 defaults 0 1\nUUID=root-uuid /boot ext4 ro 0 0\n'
     b'UUID=btrfs-uuid none swap sw 0 0\n',
     [('/boot', '/dev/sda2')]),
    # Guest device names as the appliance names them.
    (b'/dev/vdb1 /srv ext4 defaults 0 0\n/dev/root / ext4 defaults 0 0\n'
     b'/dev/mapper/vg0-lv--root /opt ext4 defaults 0 0\n'
     b'/dev/xvdc1 /x ext4 defaults 0 0\n/dev/cdrom /mnt/cd iso9660 ro 0 0\n',
     [('/srv', '/dev/sdb1'), ('/', '/dev/sda2'),
      ('/opt', '/dev/vg0/lv-root'), ('/x', '/dev/xvdc1')]),
    # btrfs: subvol= names a subvolume, spelled as the fstab spells it.
    (b'UUID=btrfs-uuid / btrfs subvol=root,compress=zstd:1 0 0\n'
     b'UUID=btrfs-uuid /var btrfs subvol=/@/var 0 0\n'
     b'UUID=btrfs-uuid /.snapshots btrfs defaults 0 0\n'
     b'UUID=root-uuid /data ext4 subvol=ignored 0 0\n',
     [('/', 'btrfsvol:/dev/sda3/root'), ('/var', 'btrfsvol:/dev/sda3//@/var'),
      ('/.snapshots', '/dev/sda3'), ('/data', '/dev/sda2')]),
])
def test_mountpoints(text, expected):
    assert _mountpoints(text) == expected


ROOT = {'/etc/os-release': '->../usr/lib/os-release', '/usr': None,
        '/var': None, '/etc/products.d/baseproduct': '->SLES.prod',
        '/etc/products.d/SLES.prod': b'root product'}
USR = {'/lib/os-release': b'ID=usr\n', '/bin': None}


def test_a_tree_reads_through_its_mounts():
    usr = FakeFs(USR)
    tree = mounts.Tree(FakeFs(ROOT), {'/usr': lambda: usr,
                                      '//var/': lambda: None,
                                      '/missing': lambda: usr})
    assert fs.read_file(tree, '/etc/os-release', 100) == b'ID=usr\n'
    assert fs.read_file(tree, '/usr/../etc/products.d/baseproduct',
                        100) == b'root product'
    # A failed mount shows the directory below; a mountpoint that does
    # not exist mounts nothing.
    assert fs.kind_at(tree, '/var') == fs.DIRECTORY
    assert fs.kind_at(tree, '/missing') is None
    assert fs.resolve(tree, '/usr').fs is usr


def test_without_mounts_a_tree_is_its_root():
    tree = mounts.Tree(FakeFs(ROOT))
    assert fs.read_file(tree, '/etc/os-release', 100) is None
    assert fs.kind_at(tree, '/usr') == fs.DIRECTORY


def test_a_mount_is_opened_once_and_only_when_walked():
    opened = []

    def opener():
        opened.append(1)
        return FakeFs(USR)
    tree = mounts.Tree(FakeFs(ROOT), {'/usr': opener})
    fs.read_file(tree, '/etc/products.d/baseproduct', 100)
    assert opened == []
    fs.read_file(tree, '/etc/os-release', 100)
    fs.read_file(tree, '/usr/lib/os-release', 100)
    assert opened == [1]


def test_read_fstab_is_bounded():
    assert mounts.read_fstab(FakeFs({'/etc': None})) == []
    assert mounts.read_fstab(FakeFs({'/etc/fstab': b'a / ext4\n'})) == [
        ('a', '/', 'ext4', [])]
    with pytest.raises(errors.LimitReached):
        mounts.read_fstab(FakeFs({'/etc/fstab': b'#' * (mounts.MAX_FSTAB
                                                        + 1)}))
