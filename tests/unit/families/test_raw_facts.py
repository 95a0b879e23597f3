"""The encryption kinds (raw_facts.ENCRYPTION_KINDS): both inspection
methods name an encrypted volume by one of them, and the reason counts
each under its word."""

import pytest

from ceilometer_os_pollster.direct.filesystem import identify
from ceilometer_os_pollster.families import facts
from ceilometer_os_pollster.inspection import guest_files
from ceilometer_os_pollster.families import raw_facts


@pytest.mark.parametrize('kind, label', raw_facts.ENCRYPTION_KINDS)
def test_each_kind_is_counted_under_its_word(kind, label):
    types = {'/dev/sda': kind, '/dev/sdb': kind.upper(), '/dev/sdc': 'zfs'}
    assert facts.encryption_summary(sorted(types), types) == (
        '2 %s volumes, 1 encrypted volume' % label)


class FakeGuestfs:
    """What guest_files.encrypted_devices asks libguestfs."""

    def __init__(self, vfs_types):
        self.vfs_types = vfs_types

    def list_partitions(self):
        return [d for d in self.vfs_types if d[-1].isdigit()]

    def lvs(self):
        return []

    def vfs_type(self, device):
        return self.vfs_types.get(device, '')   # a partitioned disk


def test_the_appliance_names_each_kind_as_the_table_does():
    # list_filesystems leaves encrypted volumes out: they are probed.
    g = FakeGuestfs({'/dev/sda1': 'crypto_LUKS', '/dev/sda2': 'ext4',
                     '/dev/sdb1': 'BitLocker', '/dev/sdc1': 'CRYPTO_luks'})
    found = guest_files.encrypted_devices(
        g, ['/dev/sda', '/dev/sdb', '/dev/sdc'], {'/dev/sda2': 'ext4'})
    assert found == [('/dev/sda1', raw_facts.LUKS),
                     ('/dev/sdb1', raw_facts.BITLOCKER),
                     ('/dev/sdc1', raw_facts.LUKS)]


@pytest.mark.parametrize('head, kind', [
    (b'LUKS\xba\xbe' + bytes(identify.HEAD - 6), raw_facts.LUKS),
    (b'\xeb\x58\x90-FVE-FS-' + bytes(identify.HEAD - 11),
     raw_facts.BITLOCKER),
])
def test_the_direct_method_names_each_kind_as_the_table_does(head, kind):
    assert identify.VFS_TYPES[identify.kind_of_head(head)] == kind
