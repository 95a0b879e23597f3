"""CRC-32C: the standard check value and the raw register's chaining."""

from ceilometer_os_pollster.direct.filesystem import btrfs
from ceilometer_os_pollster.direct.filesystem import crc32c


def test_standard_check_values():
    assert crc32c.crc32c(b'123456789') == 0xE3069283
    assert crc32c.crc32c(b'') == 0
    assert crc32c.crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c.crc32c(b'\xff' * 32) == 0x62A8AB43


def test_raw_register_chains_and_is_not_inverted():
    whole = crc32c.crc32c_update(0x12345678, b'hello world')
    part = crc32c.crc32c_update(0x12345678, b'hello ')
    assert crc32c.crc32c_update(part, b'world') == whole
    assert crc32c.crc32c_update(0x12345678, b'') == 0x12345678
    assert (crc32c.crc32c_update(crc32c.MASK, b'123456789')
            == 0xE3069283 ^ crc32c.MASK)


def test_btrfs_still_exports_it():
    assert btrfs.crc32c is crc32c.crc32c
