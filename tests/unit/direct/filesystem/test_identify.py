"""direct.identify: what a volume holds, by its magic numbers."""

import pytest

from ceilometer_os_pollster.direct.filesystem import identify as ID
from ceilometer_os_pollster.direct import disks


def head(*patches, size=ID.HEAD):
    data = bytearray(size)
    for offset, magic in patches:
        data[offset:offset + len(magic)] = magic
    return bytes(data)


@pytest.mark.parametrize('data,btrfs,kind', [
    (head((0, b'LUKS\xba\xbe')), b'', ID.LUKS),
    (head((3, b'-FVE-FS-')), b'', ID.BITLOCKER),
    (head((3, b'NTFS    ')), b'', ID.NTFS),
    (head((0, b'XFSB')), b'', ID.XFS),
    (head((1024 + 56, b'\x53\xef')), b'', ID.EXT),
    (head((512, b'LABELONE')), b'', ID.LVM),
    (head((4096, ID.MD_MAGIC)), b'', ID.MDRAID),
    (head((4086, b'SWAPSPACE2')), b'', ID.SWAP),
    (head((82, b'FAT32   '), (510, b'\x55\xaa')), b'', ID.VFAT),
    (head(), head((64, b'_BHRfS_M'), size=4096), ID.BTRFS),
    (head(), head(size=4096), ID.EMPTY),
    (head((100, b'x')), b'', None),
    # A FAT label without the boot signature is not FAT.
    (head((82, b'FAT32   ')), b'', None),
    (b'', b'', ID.EMPTY),
])
def test_kind_of_head(data, btrfs, kind):
    assert ID.kind_of_head(data, btrfs) == kind


@pytest.mark.parametrize('kind,reason', [
    (None, '/dev/sda2: unknown filesystem or volume type'),
])
def test_unsupported_reasons(kind, reason):
    assert ID.unsupported(kind, '/dev/sda2').reason == reason


@pytest.mark.parametrize('index,name', [
    (0, '/dev/sda'), (1, '/dev/sdb'), (25, '/dev/sdz'), (26, '/dev/sdaa'),
    (27, '/dev/sdab'),
])
def test_disk_names_follow_the_appliance(index, name):
    assert disks.disk_name(index) == name
