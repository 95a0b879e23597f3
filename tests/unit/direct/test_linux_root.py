"""direct.linux_root: the Linux RootFacts read directly.

First the contract: every Linux guest of the test catalog, read from its
built image by the direct readers, normalises to the catalog's Expected
record (the one the appliance path is tested against).  Then tables of
libguestfs 1.48's detection rules over an in-memory filesystem.
"""

import os
import shutil
import subprocess

import pytest

from ceilometer_os_pollster.families import facts
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import filesystems
from ceilometer_os_pollster.direct import linux_root
from ceilometer_os_pollster.direct.volumes import partitions
from ceilometer_os_pollster.direct.block import source as S
from tests.guests import builder
from tests.guests import catalog
from tests.guests import layout
from tests.unit.direct.fakefs import ELF_X86_64
from tests.unit.direct.fakefs import FakeFs

MiB = 1 << 20


def _roots(name):
    """(RootFacts found on each filesystem of the guest's disk, Budget):
    the partition table read by direct.partitions (checked against the
    layout the builder followed), each partition's filesystem by
    direct.fs."""
    guest = catalog.GUESTS[name]
    budget = S.Budget()
    disk = S.FileSource(str(builder.build(name)), budget)
    roots = []
    try:
        table = partitions.read_table(disk)
        found_parts = partitions.partition_sources(disk, table)
        assert [(p.start, p.size) for p, _ in found_parts] == [
            (p.offset, p.size) for p in layout.plan(guest).partitions]
        for part, window in found_parts:
            found = filesystems.open_filesystem(window, budget)
            if found is None:
                continue
            root = linux_root.linux_root(found, '/dev/sda%d' % part.number,
                                         0)
            if root is not None:
                roots.append(root)
    finally:
        disk.close()
    return roots, budget


# One root on one partition; the btrfs and separate-/usr guests need
# the whole disk read (test_inspect), and the LVM guest's root is
# on an LV (test_direct_catalog).
ONE_FILESYSTEM = tuple(n for n in catalog.LINUX
                       if not (catalog.GUESTS[n].linux.btrfs
                               or catalog.GUESTS[n].linux.separate_usr
                               or catalog.GUESTS[n].linux.xfs_lvm))


@pytest.mark.parametrize('name', ONE_FILESYSTEM)
def test_catalog_guest_record(name):
    roots, budget = _roots(name)
    assert len(roots) == 1
    record = facts.normalise(raw_facts.ApplianceFacts(roots=roots,
                                                      drives=1), name)
    assert catalog.mismatches(catalog.GUESTS[name].expected, record) == []
    assert record.reason == ''
    # A few kilobytes: superblock, descriptors, inodes, directories.
    assert budget.used < MiB


def test_catalog_guests_as_libguestfs_says():
    """The raw answers themselves, where the policy would hide a
    difference (libguestfs' vocabulary and its quirks)."""
    seen = {name: _roots(name)[0][0] for name in
            ('almalinux-9.4', 'oracle-8.9', 'debian-12', 'sles-sap-15-sp5',
             'rhel-9.4')}
    alma = seen['almalinux-9.4']
    assert (alma.distro, alma.osinfo, alma.product_name) == (
        'redhat-based', 'redhat-based9.4',
        'AlmaLinux release 9.4 (Seafoam Ocelot)')
    oracle = seen['oracle-8.9']
    assert (oracle.distro, oracle.product_name, oracle.major,
            oracle.minor) == ('oraclelinux',
                              'Oracle Linux Server release 8.9', 8, 9)
    debian = seen['debian-12']
    assert (debian.distro, debian.product_name, debian.major,
            debian.minor, debian.osinfo) == ('debian', '12.5', 12, 5,
                                             'debian12')
    sap = seen['sles-sap-15-sp5']
    assert b'<name>SLES_SAP</name>' in sap.suse_baseproduct
    assert sap.osinfo == 'sles15sp5'
    rhel = seen['rhel-9.4']
    assert rhel.os_release['ID'] == 'rhel'
    assert (rhel.type, rhel.arch, rhel.product_variant) == (
        'linux', 'x86_64', 'unknown')


@pytest.mark.parametrize('name', ['data-only', 'luks'])
def test_catalog_disks_without_linux(name):
    roots, _ = _roots(name)
    assert roots == []


def test_catalog_corrupt_superblock_is_a_direct_error():
    with pytest.raises(errors.DirectError):
        _roots('corrupt-fs')


# --------------------------------------------------------------------------
# libguestfs' rules, over an in-memory filesystem

BASE = {'/etc/fstab': b'', '/bin': '->usr/bin', '/usr/bin/ls': ELF_X86_64}


def _root(files, base=BASE):
    tree = dict(base)
    tree.update(files)
    return linux_root.linux_root(FakeFs(tree), '/dev/sda1', 0)


def _os_release(**fields):
    return ''.join('%s="%s"\n' % item for item in fields.items()).encode()


@pytest.mark.parametrize('files, expected', [
    # Debian's os-release has only the major: debian_version decides.
    ({'/etc/os-release': _os_release(ID='debian', VERSION_ID='12',
                                     PRETTY_NAME='Debian 12'),
      '/etc/debian_version': b'12.5\n'},
     ('debian', '12.5', 12, 5, 'debian12')),
    # Testing: no VERSION_ID, a codename in debian_version.
    ({'/etc/os-release': _os_release(ID='debian', PRETTY_NAME='trixie'),
      '/etc/debian_version': b'trixie/sid\n'},
     ('debian', 'trixie/sid', 0, 0, 'unknown')),
    # CentOS 7: centos-release gives the minor.
    ({'/etc/os-release': _os_release(ID='centos', VERSION_ID='7',
                                     PRETTY_NAME='CentOS Linux 7 (Core)'),
      '/etc/centos-release': b'CentOS Linux release 7.9.2009 (Core)\n'},
     ('centos', 'CentOS Linux release 7.9.2009 (Core)', 7, 9, 'centos7.0')),
    ({'/etc/os-release': _os_release(ID='fedora', VERSION_ID='39',
                                     PRETTY_NAME='Fedora Linux 39')},
     ('fedora', 'Fedora Linux 39', 39, 0, 'fedora39')),
    # Rolling release: no VERSION_ID is fine.
    ({'/etc/os-release': _os_release(ID='arch', PRETTY_NAME='Arch Linux')},
     ('archlinux', 'Arch Linux', 0, 0, 'archlinux')),
    # Unknown ID: distro unknown, but the PRETTY_NAME it read stays.
    ({'/etc/os-release': _os_release(ID='almalinux', VERSION_ID='9.4',
                                     PRETTY_NAME='AlmaLinux 9.4')},
     ('unknown', 'AlmaLinux 9.4', 9, 4, 'unknown')),
    ({'/etc/lsb-release': b'DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=20.04\n'
                          b'DISTRIB_DESCRIPTION="Ubuntu 20.04.6 LTS"\n'},
     ('ubuntu', 'Ubuntu 20.04.6 LTS', 20, 4, 'ubuntu20.04')),
    ({'/etc/SuSE-release': b'SUSE Linux Enterprise Server 11 (x86_64)\n'
                           b'VERSION = 11\nPATCHLEVEL = 4\n'},
     ('sles', 'SUSE Linux Enterprise Server 11 (x86_64)', 11, 4,
      'sles11sp4')),
    ({'/etc/redhat-release': b'Red Hat Enterprise Linux Server release '
                             b'6.10 (Santiago)\n'},
     ('rhel', 'Red Hat Enterprise Linux Server release 6.10 (Santiago)',
      6, 10, 'rhel6.10')),
    ({'/etc/redhat-release': b'Fedora release 20 (Heisenbug)\n'},
     ('fedora', 'Fedora release 20 (Heisenbug)', 20, 0, 'fedora20')),
    # Oracle's os-release ID is not libguestfs', its release file is.
    ({'/etc/os-release': _os_release(ID='ol', VERSION_ID='8.9',
                                     PRETTY_NAME='Oracle Linux Server 8.9'),
      '/etc/oracle-release': b'Oracle Linux Server release 8.9\n',
      '/etc/redhat-release': b'Red Hat Enterprise Linux release 8.9\n'},
     ('oraclelinux', 'Oracle Linux Server release 8.9', 8, 9,
      'oraclelinux8.9')),
    # Release file symlinked, absolutely, inside the guest.
    ({'/etc/redhat-release': '->/etc/rocky-release',
      '/etc/rocky-release': b'Rocky Linux release 8.10 (Green Obsidian)\n'},
     ('rocky', 'Rocky Linux release 8.10 (Green Obsidian)', 8, 10,
      'rocky8')),
    # Nothing known: a Linux root all the same.
    ({}, ('unknown', 'unknown', 0, 0, 'unknown')),
])
def test_release_files(files, expected):
    root = _root(files)
    assert (root.distro, root.product_name, root.major, root.minor,
            root.osinfo) == expected
    assert root.type == 'linux' and root.arch == 'x86_64'


@pytest.mark.parametrize('files', [
    {},                                                     # nothing
    {'/etc': None},                                         # no bin
    {'/etc': None, '/bin': None},                           # no fstab
    {'/etc': None, '/bin': '->/usr/bin', '/etc/hosts': b''},
    {'/etc': '->/real-etc', '/real-etc/os-release': b'ID=x\n',
     '/bin': None, '/real-etc/fstab': b''},                 # /etc a link
    {'/etc/os-release': None, '/etc/hosts': b''},           # dir, no bin
])
def test_not_a_root(files):
    assert _root(files, base={}) is None


@pytest.mark.parametrize('files', [
    {'/etc/hosts': b'', '/bin': None},
    {'/etc/fstab': b'', '/bin': '->usr/bin'},
    # No fstab, no hosts, no /bin: found by its os-release, as the
    # appliance's scan would.
    {'/etc/os-release': b'ID=rhel\nVERSION_ID=9.4\n'},
    {'/etc': None, '/usr/lib/os-release': b'ID=rhel\n'},
])
def test_a_root(files):
    assert _root(files, base={}).type == 'linux'


def _elf(elf_class, encoding, machine):
    order = 'little' if encoding == 1 else 'big'
    return (b'\x7fELF' + bytes([elf_class, encoding, 1]) + bytes(9)
            + (2).to_bytes(2, order) + machine.to_bytes(2, order)
            + bytes(40))


@pytest.mark.parametrize('header, arch', [
    (_elf(2, 1, 62), 'x86_64'),
    (_elf(1, 1, 3), 'i386'),
    (_elf(2, 1, 183), 'aarch64'),
    (_elf(1, 1, 40), 'arm'),
    (_elf(2, 1, 21), 'ppc64le'),
    (_elf(2, 2, 21), 'ppc64'),
    (_elf(2, 2, 22), 's390x'),
    (_elf(2, 1, 243), 'riscv64'),
    (_elf(3, 1, 62), None),                     # bad class
    (_elf(2, 1, 9999), None),                   # unknown machine
    (b'MZ' + bytes(100), None),
    (b'\x7fELF', None),                         # truncated
])
def test_elf_arch(header, arch):
    assert linux_root.elf_arch(header) == arch


def test_arch_from_the_first_elf_binary():
    root = _root({'/bin': None, '/bin/bash': b'#!/bin/sh\n',
                  '/bin/ls': _elf(2, 1, 183)}, base={'/etc/fstab': b''})
    assert root.arch == 'aarch64'
    root = _root({'/bin': None}, base={'/etc/fstab': b''})
    assert root.arch == 'unknown'


def test_billing_inputs_read_as_the_appliance_does():
    root = _root({
        '/etc/os-release': '->../usr/lib/os-release',
        '/usr/lib/os-release': _os_release(ID='sles', VERSION_ID='15.5',
                                           PRETTY_NAME='SLES 15 SP5'),
        '/etc/products.d/baseproduct': '->SLES_SAP.prod',
        '/etc/products.d/SLES_SAP.prod': b'<product><name>SLES_SAP</name>'
                                         b'</product>'})
    assert root.os_release == {'ID': 'sles', 'VERSION_ID': '15.5',
                               'PRETTY_NAME': 'SLES 15 SP5'}
    assert root.suse_baseproduct.startswith(b'<product>')
    plain = _root({'/usr/lib/os-release': b'ID=rhel\n'})
    assert plain.os_release == {'ID': 'rhel'}
    assert plain.suse_baseproduct == b''


def test_hostile_values():
    release = (b'ID=rhel\nVERSION_ID=9' + b'9' * 40
               + b'.4\nPRETTY_NAME="RHEL \xff\xfe"\n')
    root = _root({'/etc/os-release': release})
    # Not UTF-8: the binding would have failed; no version that fits.
    assert root.product_name == 'unknown'
    assert (root.distro, root.major, root.minor) == ('rhel', 0, 0)
    # Without a version os-release is not enough: the next file decides.
    root = _root({'/etc/os-release': release, '/etc/redhat-release':
                  b'Red Hat Enterprise Linux release 9.4\n'})
    assert (root.distro, root.product_name, root.major, root.minor) == (
        'rhel', 'Red Hat Enterprise Linux release 9.4', 9, 4)


def test_large_release_files_are_not_read():
    huge = b'ID=rhel\nVERSION_ID=9.4\nPRETTY_NAME=big\n' + b'#' * (3 * MiB)
    tree = dict(BASE)
    tree.update({'/etc/os-release': huge,
                 '/etc/debian_version': b'12.5\n'})
    fake = FakeFs(tree)
    root = linux_root.linux_root(fake, '/dev/sda1', 0)
    # libguestfs skips files over 2 MiB; the appliance's os-release read
    # takes the first 64 KiB.
    assert (root.distro, root.product_name) == ('debian', '12.5')
    assert root.os_release['ID'] == 'rhel'
    assert fake.bytes_read < 128 * 1024


def test_rhel_on_xfs(tmp_path):
    """The RHEL family's own layout: an XFS root, filled by the kernel."""
    guest = catalog.GUESTS['rhel-9.4']
    image = tmp_path / 'root.img'
    with open(image, 'wb') as stream:
        stream.truncate(64 * MiB)
    env = dict(os.environ, TEST_DEV='1', TEST_DIR='1', QA_CHECK_FS='1')
    subprocess.run(['mkfs.xfs', '-q', '-f', str(image)], check=True,
                   capture_output=True, env=env)
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    subprocess.run(['mount', '-t', 'xfs', '-o', 'loop', str(image),
                    str(mnt)], check=True, capture_output=True)
    try:
        for path in ('etc', 'usr/bin', 'usr/lib'):
            (mnt / path).mkdir(parents=True)
        os.symlink('usr/bin', mnt / 'bin')
        shutil.copyfile(os.path.realpath('/bin/ls'), mnt / 'usr/bin/ls')
        (mnt / 'etc/fstab').write_bytes(b'/dev/sda2 / xfs defaults 0 0\n')
        (mnt / 'usr/lib/os-release').write_bytes(guest.linux.os_release)
        os.symlink('../usr/lib/os-release', mnt / 'etc/os-release')
        (mnt / 'etc/redhat-release').write_bytes(
            b'Red Hat Enterprise Linux release 9.4 (Plow)\n')
    finally:
        subprocess.run(['umount', str(mnt)], check=True,
                       capture_output=True)
    budget = S.Budget()
    with S.FileSource(str(image), budget) as source:
        found = filesystems.open_filesystem(source, budget)
        assert found.kind == 'xfs'
        root = linux_root.linux_root(found, '/dev/sda2', 0)
    record = facts.normalise(raw_facts.ApplianceFacts(roots=[root],
                                                      drives=1), 'x')
    assert catalog.mismatches(guest.expected, record) == []
    assert budget.used < MiB


def test_long_hostile_lines_are_matched_bounded():
    """2 MiB of digits and 'release' words: regexes look at the first
    KiB only (Python's re is quadratic on these), and say nothing."""
    digits = b'1' * (2 * MiB - 100)
    root = _root({
        '/etc/os-release': b'ID=rhel\nPRETTY_NAME=x\nVERSION_ID=' + digits,
        '/etc/redhat-release': b'Red Hat release 1 ' * 100000})
    # The first KiB of digits is too big a number: no version, so
    # os-release is not enough and redhat-release's first match counts.
    assert (root.distro, root.major, root.minor) == ('rhel', 1, 0)
