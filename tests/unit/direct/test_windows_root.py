"""direct.windows_root: the Windows RootFacts read directly.

First the contract: every Windows guest of the test catalog normalises
to the catalog's Expected record (the one the appliance path is tested
against), read from its built image by the direct readers (partition
table, direct.ntfs, direct.regf), and from its files as the layout plan
puts them on each NTFS partition (hives built by hivexregedit, as the
image builder does) through an in-memory case-insensitive filesystem.
Then libguestfs 1.48's rules one by one.
"""

import functools
import pathlib
import struct
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ceilometer_os_pollster.families import facts
from ceilometer_os_pollster.families import raw_facts
from ceilometer_os_pollster.direct import errors
from ceilometer_os_pollster.direct.filesystem import fs
from ceilometer_os_pollster.direct.filesystem import filesystems
from ceilometer_os_pollster.direct.volumes import partitions
from ceilometer_os_pollster.direct.block import source as S
from ceilometer_os_pollster.direct import windows_hives
from ceilometer_os_pollster.direct import windows_root as W
from tests.guests import builder
from tests.guests import catalog
from tests.guests import hive
from tests.guests import layout
from tests.unit.direct import hostile


MiB = 1 << 20


def image_roots(name):
    """(RootFacts found on each filesystem of the guest's built image,
    Budget), read as the direct method reads disks."""
    budget = S.Budget()
    disk = S.FileSource(str(builder.build(name)), budget)
    roots = []
    try:
        table = partitions.read_table(disk)
        found = partitions.partition_sources(disk, table)
        assert [(p.start, p.size) for p, _ in found] == [
            (p.offset, p.size)
            for p in layout.plan(catalog.GUESTS[name]).partitions]
        for part, window in found:
            volume = filesystems.open_filesystem(window, budget)
            if volume is None:
                continue
            root = W.windows_root(volume, '/dev/sda%d' % part.number, 0)
            if root is not None:
                roots.append(root)
    finally:
        disk.close()
    return roots, budget


@pytest.mark.parametrize('name', catalog.WINDOWS)
def test_catalog_image_record(name):
    roots, budget = image_roots(name)
    assert len(roots) == 1
    record = facts.normalise(raw_facts.ApplianceFacts(roots=roots,
                                                      drives=1), name)
    assert catalog.mismatches(catalog.GUESTS[name].expected, record) == []
    # The same RootFacts as from the files themselves.
    assert roots[0] == guest_roots(name, random_access=True)[0]
    # MFT records, indexes and the hive cells looked at, not the hives.
    assert budget.used < 4 * MiB


class Node:
    def __init__(self, kind, data=b''):
        self.kind, self.data, self.children = kind, data, {}


class NoCaseFs(fs.Filesystem):
    """{path: bytes | None (directory)}, names looked up without case
    as NTFS does; ``open_stream`` when ``random_access``."""

    kind = 'memory-ntfs'

    def __init__(self, files, random_access=False):
        self.root = Node(fs.DIRECTORY)
        self.read_bytes = 0
        if random_access:
            self.open_stream = self._open_stream
        for path, content in sorted(files.items()):
            parts = [p for p in path.split('/') if p]
            node = self.root
            for part in parts[:-1]:
                node = node.children.setdefault(part.lower(),
                                                Node(fs.DIRECTORY))
            leaf = (Node(fs.DIRECTORY) if content is None
                    else Node(fs.FILE, bytes(content)))
            node.children.setdefault(parts[-1].lower(), leaf)

    def lookup(self, dir_inode, name):
        return dir_inode.children.get(name.decode('utf-8').lower())

    def kind_of(self, inode):
        return inode.kind

    def read(self, inode, limit):
        self.read_bytes += min(limit, len(inode.data))
        return inode.data[:limit]

    def size(self, inode):
        return len(inode.data)

    def readlink(self, inode):
        return b''

    def _open_stream(self, inode):
        from ceilometer_os_pollster.direct.block import source
        return source.BytesSource(inode.data, name='file')


_WORK = pathlib.Path(tempfile.mkdtemp(prefix='test-windows-root-'))


@functools.lru_cache(maxsize=None)
def hive_bytes(spec):
    """The bytes builder._make_hive writes for a layout.Hive."""
    work = pathlib.Path(tempfile.mkdtemp(dir=_WORK))
    target = work / 'hive'
    builder._make_hive(spec, target, work)
    return target.read_bytes()


def partition_files(part):
    files = {}
    for path, content in part.fs.files:
        if content is layout.DIRECTORY:
            files[path] = None
        elif isinstance(content, layout.Hive):
            files[path] = hive_bytes(content)
        elif isinstance(content, bytes):
            files[path] = content
    return files


def guest_roots(name, random_access=False):
    roots = []
    plan = layout.plan(catalog.GUESTS[name])
    for number, part in enumerate(plan.partitions, 1):
        if part.fs is None or part.fs.kind != 'ntfs':
            continue
        found = W.windows_root(NoCaseFs(partition_files(part),
                                        random_access),
                               '/dev/sda%d' % number, 0)
        if found is not None:
            roots.append(found)
    return roots


@pytest.mark.parametrize('random_access', [False, True])
@pytest.mark.parametrize('name', catalog.WINDOWS)
def test_catalog_guest_record(name, random_access):
    roots = guest_roots(name, random_access)
    assert len(roots) == 1
    record = facts.normalise(raw_facts.ApplianceFacts(roots=roots,
                                                      drives=1), name)
    assert catalog.mismatches(catalog.GUESTS[name].expected, record) == []
    assert W.dirty_hives(roots[0]) == []


def test_catalog_guests_as_libguestfs_says():
    """The raw answers where the policy would hide a difference."""
    root, = guest_roots('win2019-datacenter')
    assert (root.type, root.distro, root.arch, root.product_name,
            root.product_variant, root.major, root.minor, root.osinfo) == (
        'windows', 'windows', 'x86_64', 'Windows Server 2019 Datacenter',
        'Server', 10, 0, 'win2k19')
    assert root.windows['EditionID'] == 'ServerDatacenter'
    assert root.windows['CurrentMajorVersionNumber'] == 10
    # cmd.exe not PE: libguestfs fails, the appliance scans by hand.
    bad, = guest_roots('windows-bad-cmd')
    assert (bad.arch, bad.product_name, bad.osinfo, bad.major) == (
        '', '', 'unknown', 0)
    assert bad.windows['ProductName'] == 'Windows Server 2022 Standard'
    assert W.inspection_fails(bad) and not W.inspection_fails(root)
    # No SOFTWARE hive: a root with libguestfs' answers only.
    nosoft, = guest_roots('windows-no-software')
    assert (nosoft.arch, nosoft.product_name, nosoft.windows) == (
        'x86_64', 'unknown', {})


def test_sql_flood_stops_at_the_bound():
    root, = guest_roots('sql-instance-flood', random_access=True)
    assert root.sql_complete is False
    assert root.sql_editions == []


def test_sql_editions_all_instances():
    root, = guest_roots('win2019-sql')
    assert root.sql_complete is True
    assert root.sql_editions == [
        'Enterprise Edition: Core-based Licensing (64-bit)',
        'Express Edition (64-bit)']


# --------------------------------------------------------------------------
# libguestfs' rules over small trees

def software(values=None, sql=None):
    current = {'ProductName': hive.sz('Windows Server 2022 Standard'),
               'InstallationType': hive.sz('Server'),
               'EditionID': hive.sz('ServerStandard'),
               'CurrentBuildNumber': hive.sz('20348'),
               'CurrentMajorVersionNumber': hive.dword(10),
               'CurrentMinorVersionNumber': hive.dword(0)}
    if values is not None:
        current = values
    keys = {'Microsoft\\Windows NT\\CurrentVersion': current}
    keys.update(sql or {})
    return hive_bytes(layout.Hive('ROOT', 'SOFTWARE', tuple(
        (p, tuple(sorted(v.items()))) for p, v in sorted(keys.items()))))


def tree(systemroot='/Windows', cmd=None, soft=b'', system=True,
         extra=None):
    files = {systemroot + '/System32/cmd.exe':
             layout.pe_image() if cmd is None else cmd}
    if soft is not None:
        files[systemroot + '/System32/config/SOFTWARE'] = soft or software()
    if system:
        files[systemroot + '/System32/config/SYSTEM'] = hive.empty_hive()
    files[systemroot + '/System32/config'] = None
    files.update(extra or {})
    return NoCaseFs(files)


def test_systemroot_names_and_case():
    for path in ('/WINNT', '/win32', '/Win', '/ReactOS', '/windows'):
        root = W.windows_root(tree(path), '/dev/sda1', 0)
        assert root.type == 'windows' and root.arch == 'x86_64', path
    assert W.windows_root(tree('/Windows2'), '/dev/sda1', 0) is None


def test_boot_ini_systemroot():
    ini = (b'[boot loader]\r\ntimeout=30\r\n[operating systems]\r\n'
           b'multi(0)disk(0)rdisk(0)partition(1)\\MYWIN="XP" /fastdetect'
           b'\r\n')
    root = W.windows_root(tree('/mywin', extra={'/boot.ini': ini}),
                          '/dev/sda1', 0)
    assert root.product_name == 'Windows Server 2022 Standard'
    assert W.windows_root(tree('/mywin'), '/dev/sda1', 0) is None


def test_pe32_is_i386_and_other_pe_falls_to_the_scan():
    pe32 = bytearray(layout.pe_image())
    struct.pack_into('<H', pe32, 0x40 + 24, 0x10b)
    assert W.windows_root(tree(cmd=bytes(pe32)), 'd', 0).arch == 'i386'
    rom = bytearray(layout.pe_image())
    struct.pack_into('<H', rom, 0x40 + 24, 0x107)
    scanned = W.windows_root(tree(cmd=bytes(rom)), 'd', 0)
    assert (scanned.arch, scanned.product_name) == ('', '')
    assert scanned.windows['EditionID'] == 'ServerStandard'


def test_pe_header_far_away_is_not_guessed():
    far = bytearray(layout.dos_stub().ljust(W.PE_READ + 0x200, b'\0'))
    struct.pack_into('<I', far, 0x3c, W.PE_READ + 0x10)
    with pytest.raises(errors.Unsupported):
        W.windows_root(tree(cmd=bytes(far)), 'd', 0)


def test_no_system_hive_no_libguestfs_product():
    root = W.windows_root(tree(system=False), 'd', 0)
    assert (root.product_name, root.major, root.osinfo) == (
        'unknown', 0, 'unknown')
    # The billing details are read all the same.
    assert root.windows['ProductName'] == 'Windows Server 2022 Standard'


@pytest.mark.parametrize('values, expected', [
    # CurrentVersion string when the numbers are missing.
    ({'ProductName': hive.sz('Windows Server 2012 R2 Standard'),
      'InstallationType': hive.sz('Server'),
      'CurrentVersion': hive.sz('6.3')},
     ('Windows Server 2012 R2 Standard', 'Server', 6, 3, 'win2k12r2')),
    ({'ProductName': hive.sz('Windows 7 Professional'),
      'CurrentVersion': hive.sz('6.1'),
      'InstallationType': hive.sz('Client')},
     ('Windows 7 Professional', 'Client', 6, 1, 'win7')),
    # No version at all: InstallationType is never reached.
    ({'ProductName': hive.sz('Windows'), 'InstallationType': hive.sz('S')},
     ('Windows', 'unknown', 0, 0, 'unknown')),
    # DWORDs as OCaml's Int32.to_int: signed.
    ({'CurrentMajorVersionNumber': hive.dword(0xffffffff),
      'CurrentMinorVersionNumber': hive.dword(0)},
     ('unknown', 'unknown', -1, 0, 'unknown')),
    # Names are exact for libguestfs (List.assoc), not case-folded.
    ({'productname': hive.sz('X'), 'CurrentVersion': hive.sz('10.0')},
     ('unknown', 'unknown', 10, 0, 'win10')),
])
def test_libguestfs_software_answers(values, expected):
    root = W.windows_root(tree(soft=software(values)), 'd', 0)
    assert (root.product_name, root.product_variant, root.major,
            root.minor, root.osinfo) == expected


@pytest.mark.parametrize('values', [
    {'ProductName': hive.dword(1)},                      # not a string
    {'ProductName': hive.raw(hive.REG_SZ, b'\x00\xd8A\x00')},  # bad UTF-16
    {'CurrentMajorVersionNumber': hive.sz('10'),
     'CurrentMinorVersionNumber': hive.dword(0)},        # not a DWORD
])
def test_values_hivex_refuses_fail_inspection_then_scan(values):
    values = dict(values, EditionID=hive.sz('ServerDatacenter'))
    root = W.windows_root(tree(soft=software(values)), 'd', 0)
    assert (root.arch, root.product_name, root.osinfo) == ('', '',
                                                           'unknown')
    assert root.windows['EditionID'] == 'ServerDatacenter'


def test_not_windows():
    assert W.windows_root(NoCaseFs({'/bootmgr': b'x', '/Boot/BCD':
                                    hive.empty_hive()}), 'd', 0) is None
    # cmd.exe missing, or a directory: no systemroot.
    no_cmd = {'/Windows/System32/config/SOFTWARE': software()}
    assert W.windows_root(NoCaseFs(no_cmd), 'd', 0) is None
    assert W.windows_root(NoCaseFs(dict(no_cmd, **{
        '/Windows/System32/cmd.exe': None})), 'd', 0) is None


@pytest.mark.parametrize('extra', [
    {'/etc/fstab': b'', '/bin': None, '/etc': None},      # Linux root
    {'/etc/hosts': b'', '/bin': None},
    {'/grub2/grub.cfg': b''},                             # Grub /boot
    {'/log': None, '/run': None, '/spool': None},         # Linux /var
    {'/bin': None, '/local': None, '/share': None, '/src': None},
])
def test_what_libguestfs_classifies_first_is_left_to_it(extra):
    # libguestfs would not call it Windows; the direct method does not
    # decide either way.
    with pytest.raises(errors.Unsupported, match='libguestfs takes'):
        W.windows_root(tree(extra=extra), 'd', 0)


def test_linux_usr_local_needs_no_local_dir():
    extra = {'/etc': None, '/bin': None, '/share': None, '/local': None}
    assert W.windows_root(tree(extra=extra), 'd', 0).type == 'windows'


def test_corrupt_hive_is_a_direct_error():
    with pytest.raises(errors.DirectError):
        W.windows_root(tree(soft=b'regf' + bytes(8000)), 'd', 0)


def test_huge_hive_without_random_access_is_a_limit():
    big = software() + bytes(windows_hives.MAX_HIVE_FILE)
    with pytest.raises(errors.LimitReached):
        W.windows_root(tree(soft=big), 'd', 0)


def test_dirty_hive_read_as_is_and_said():
    data = bytearray(software())
    struct.pack_into('<I', data, 4, 7)          # primary sequence
    struct.pack_into('<I', data, 0x1fc, hive.checksum(bytes(data)))
    root = W.windows_root(tree(soft=bytes(data)), 'd', 0)
    assert root.windows['EditionID'] == 'ServerStandard'
    assert W.dirty_hives(root) == ['SOFTWARE']


_BASE = 'Microsoft\\Microsoft SQL Server'
SQL = {_BASE + '\\Instance Names\\SQL': {
           'A': hive.sz('MSSQL16.A'), 'B': hive.sz('MSSQL16.B'),
           'C': hive.sz('mssql16.a')},
       _BASE + '\\MSSQL16.A\\Setup': {
           'Edition': hive.sz('Express Edition (64-bit)')},
       _BASE + '\\MSSQL16.B\\Setup': {
           'edition': hive.sz('Standard Edition (64-bit)')},
       'WOW6432Node\\' + _BASE + '\\Instance Names\\SQL': {
           'X': hive.sz('MSSQL16.X')},
       'WOW6432Node\\' + _BASE + '\\MSSQL16.X\\SETUP': {
           'Edition': hive.sz('Developer Edition')}}


def test_sql_instances_shared_rules():
    sql = SQL
    root = W.windows_root(tree(soft=software(sql=sql)), 'd', 0)
    assert root.sql_complete is True
    # Case-folded lookups (hivex's), the duplicate in other case read
    # again, as the appliance path does.
    assert root.sql_editions == ['Express Edition (64-bit)',
                                 'Standard Edition (64-bit)',
                                 'Developer Edition']


# --------------------------------------------------------------------------
# fuzz: a flipped SOFTWARE hive (checksum resealed) ends with a root or a
# DirectError, never another exception

@hostile.FUZZ
@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)),
                min_size=1, max_size=8))
def test_fuzz_flipped_software_hive(changes):
    base = software(sql=SQL)
    data = bytearray(base)
    for pos, xor in changes:
        data[0x1000 + pos % (len(data) - 0x1000)] ^= xor
    struct.pack_into('<I', data, 0x1fc, hive.checksum(bytes(data)))
    try:
        root = W.windows_root(tree(soft=bytes(data)), 'd', 0)
    except errors.DirectError as exc:
        assert exc.reason
    else:
        assert root.type == 'windows'
        assert isinstance(root.windows, dict)
        assert len(root.sql_editions) <= 4
