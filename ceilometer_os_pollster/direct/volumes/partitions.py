"""Partition tables: MBR (with the extended/logical chain) and GPT.

Returns small records (``Partition``: Linux's number, start and size in
bytes, type, GPT name and GUID); the caller turns them into Windows.
Parsing of each structure is pure (bytes in, records out); ``read_table``
does the few reads.  A protective MBR means GPT.  The GPT header's and
entry array's CRCs are checked (a mismatch is a torn read: a running
guest may be rewriting its table); the backup header is not read.  The
logical chain is bounded and loops are detected; every partition must
lie on the disk.
"""

import dataclasses
import struct
import uuid
import zlib

from ceilometer_os_pollster.direct.block import source as src_mod
from ceilometer_os_pollster.direct.errors import Corrupt
from ceilometer_os_pollster.direct.errors import LimitReached
from ceilometer_os_pollster.direct.errors import TornRead

SECTOR = 512

# -- MBR ----------------------------------------------------------------
MBR_SIGNATURE = b'\x55\xaa'
MBR_SIGNATURE_OFFSET = 510
MBR_TABLE_OFFSET = 446
MBR_ENTRY = struct.Struct(
    '<B'    # status (0x80 bootable, 0x00 not)
    '3s'    # CHS of the first sector (ignored)
    'B'     # partition type
    '3s'    # CHS of the last sector (ignored)
    'I'     # first LBA (relative: see parse_ebr)
    'I')    # number of sectors
MBR_EXTENDED_TYPES = frozenset((0x05, 0x0f, 0x85))
MBR_PROTECTIVE = 0xee
MAX_LOGICAL = 128          # EBRs followed on one disk

# -- GPT ----------------------------------------------------------------
GPT_SIGNATURE = b'EFI PART'
GPT_HEADER = struct.Struct(
    '<8s'   # signature
    'I'     # revision
    'I'     # header_size
    'I'     # header_crc32
    'I'     # reserved
    'Q'     # my_lba
    'Q'     # alternate_lba
    'Q'     # first_usable_lba
    'Q'     # last_usable_lba
    '16s'   # disk_guid
    'Q'     # partition_entry_lba
    'I'     # num_partition_entries
    'I'     # sizeof_partition_entry
    'I')    # partition_entry_array_crc32
GPT_HEADER_CRC_OFFSET = 16
GPT_ENTRY = struct.Struct(
    '<16s'  # partition_type_guid
    '16s'   # unique_partition_guid
    'Q'     # starting_lba
    'Q'     # ending_lba (inclusive)
    'Q'     # attributes
    '72s')  # partition_name (UTF-16LE)
MAX_GPT_ENTRIES_BYTES = 1 << 20
GPT_SECTOR_SIZES = (512, 4096)


@dataclasses.dataclass(frozen=True)
class Partition:
    number: int               # as Linux numbers it: sda1..4, logicals 5+
    start: int                # bytes from the start of the disk
    size: int                 # bytes
    type: str                 # MBR: '0x83'; GPT: type GUID (lower case)
    name: str = ''            # GPT partition name
    guid: str = ''            # GPT unique partition GUID
    bootable: bool = False    # MBR active flag
    container: bool = False   # an MBR extended partition (holds logicals)


@dataclasses.dataclass(frozen=True)
class PartitionTable:
    kind: str                 # 'dos' or 'gpt' (sfdisk's names)
    sector_size: int
    partitions: tuple
    disk_id: str = ''         # MBR disk signature or GPT disk GUID


@dataclasses.dataclass(frozen=True)
class MbrEntry:
    slot: int
    status: int
    type: int
    lba: int
    sectors: int

    @property
    def extended(self):
        return self.type in MBR_EXTENDED_TYPES


def has_mbr_signature(sector):
    return sector[MBR_SIGNATURE_OFFSET:MBR_SIGNATURE_OFFSET + 2] \
        == MBR_SIGNATURE


def parse_mbr_entries(sector):
    """The four entries of an MBR or EBR sector (pure)."""
    return [MbrEntry(i, *_fields(MBR_ENTRY.unpack_from(
        sector, MBR_TABLE_OFFSET + i * MBR_ENTRY.size)))
        for i in range(4)]


def _fields(raw):
    status, _, ptype, _, lba, sectors = raw
    return status, ptype, lba, sectors


def looks_like_mbr(sector):
    """Whether sector 0 holds a partition table, not a filesystem's boot
    sector (which also ends in 55 AA): every status byte is 0 or 0x80,
    as libblkid and the kernel require, and no FAT/NTFS boot sector."""
    if len(sector) < SECTOR or not has_mbr_signature(sector):
        return False
    if sector[3:11] in (b'NTFS    ', b'EXFAT   '):
        return False
    if sector[54:59] in (b'FAT12', b'FAT16') or sector[82:87] == b'FAT32':
        # A FAT boot sector; a real MBR has code there, not these names.
        return False
    return all(e.status in (0, 0x80) for e in parse_mbr_entries(sector))


def _used(entry):
    return entry.sectors != 0 and entry.type != 0


def mbr_primaries(sector, disk_sectors):
    """Primary partitions 1-4 and the extended one, if any (pure)."""
    parts = []
    extended = None
    for e in parse_mbr_entries(sector):
        if not _used(e):
            continue
        _check_on_disk('mbr: partition %d' % (e.slot + 1), e.lba, e.sectors,
                       disk_sectors)
        parts.append(Partition(
            number=e.slot + 1, start=e.lba * SECTOR,
            size=e.sectors * SECTOR, type='0x%02x' % e.type,
            bootable=e.status == 0x80, container=e.extended))
        if e.extended and extended is None:
            extended = e
    return parts, extended


def parse_ebr(sector, ebr_lba, extended_lba):
    """One EBR: (logical partitions as (lba, sectors, type, status),
    the LBA of the next EBR or None) (pure).

    A logical partition is relative to its EBR; the link to the next EBR
    is relative to the start of the extended partition (as the kernel
    reads it, every used non-extended entry is a logical partition).
    """
    if not has_mbr_signature(sector):
        return [], None
    logicals = []
    next_lba = None
    for e in parse_mbr_entries(sector):
        if not _used(e):
            continue
        if e.extended:
            if next_lba is None:
                next_lba = extended_lba + e.lba
        else:
            logicals.append((ebr_lba + e.lba, e.sectors, e.type, e.status))
    return logicals, next_lba


def _check_on_disk(what, lba, sectors, disk_sectors):
    if lba + sectors > disk_sectors or lba == 0:
        raise Corrupt('%s (sectors %d-%d) is not on the disk (%d sectors)'
                      % (what, lba, lba + sectors - 1, disk_sectors))


def read_mbr(source, sector):
    disk_sectors = source.size // SECTOR
    parts, extended = mbr_primaries(sector, disk_sectors)
    if extended is not None:
        parts.extend(_read_logicals(source, extended, disk_sectors))
    disk_id = '0x%08x' % struct.unpack_from('<I', sector, 440)[0]
    return PartitionTable('dos', SECTOR, tuple(parts), disk_id)


def _read_logicals(source, extended, disk_sectors):
    ext_start, ext_end = extended.lba, extended.lba + extended.sectors
    seen = set()
    logicals = []
    ebr = ext_start
    while ebr is not None:
        if ebr in seen:
            raise Corrupt('mbr: the chain of logical partitions loops '
                          '(sector %d)' % ebr)
        if len(seen) >= MAX_LOGICAL:
            raise LimitReached('mbr: more than %d logical partitions'
                               % MAX_LOGICAL)
        if not ext_start <= ebr < ext_end:
            raise Corrupt('mbr: logical partition table at sector %d is '
                          'outside the extended partition' % ebr)
        seen.add(ebr)
        found, ebr_next = parse_ebr(source.read_at(ebr * SECTOR, SECTOR),
                                    ebr, ext_start)
        for lba, sectors, ptype, status in found:
            number = 5 + len(logicals)
            _check_on_disk('mbr: partition %d' % number, lba, sectors,
                           disk_sectors)
            logicals.append(Partition(
                number=number, start=lba * SECTOR, size=sectors * SECTOR,
                type='0x%02x' % ptype, bootable=status == 0x80))
        ebr = ebr_next
    return logicals


@dataclasses.dataclass(frozen=True)
class GptHeader:
    first_usable: int
    last_usable: int
    disk_guid: str
    entries_lba: int
    entries: int
    entry_size: int
    entries_crc: int


def _guid(raw):
    return str(uuid.UUID(bytes_le=raw))


def parse_gpt_header(sector, sector_size, disk_sectors):
    """The primary GPT header at LBA 1 (pure); CRC and bounds checked."""
    if sector[:8] != GPT_SIGNATURE:
        raise Corrupt('gpt: no GPT header at sector 1')
    (_, _, header_size, header_crc, _, my_lba, _, first_usable, last_usable,
     disk_guid, entries_lba, entries, entry_size, entries_crc) = \
        GPT_HEADER.unpack_from(sector)
    if not GPT_HEADER.size <= header_size <= sector_size:
        raise Corrupt('gpt: header size %d is invalid' % header_size)
    data = bytearray(sector[:header_size])
    data[GPT_HEADER_CRC_OFFSET:GPT_HEADER_CRC_OFFSET + 4] = bytes(4)
    if zlib.crc32(data) != header_crc:
        # Torn: a running guest's growpart/parted rewrites the table.
        raise TornRead('gpt: header checksum mismatch')
    if my_lba != 1:
        raise Corrupt('gpt: header says it is at sector %d' % my_lba)
    if entry_size < GPT_ENTRY.size or entry_size % 8 or entry_size > 4096:
        raise Corrupt('gpt: partition entry size %d is invalid' % entry_size)
    if entries * entry_size > MAX_GPT_ENTRIES_BYTES:
        raise LimitReached('gpt: %d partition entries of %d bytes are more '
                           'than %d KiB' % (entries, entry_size,
                                            MAX_GPT_ENTRIES_BYTES >> 10))
    array_sectors = -(-entries * entry_size // sector_size)
    if entries_lba < 2 or entries_lba + array_sectors > disk_sectors:
        raise Corrupt('gpt: partition entries at sector %d are not on the '
                      'disk' % entries_lba)
    if first_usable > last_usable or last_usable >= disk_sectors:
        raise Corrupt('gpt: usable sectors %d-%d are not on the disk'
                      % (first_usable, last_usable))
    return GptHeader(first_usable, last_usable, _guid(disk_guid),
                     entries_lba, entries, entry_size, entries_crc)


def parse_gpt_entries(data, header, sector_size):
    """Used entries of the partition entry array (pure); CRC checked."""
    if zlib.crc32(data) != header.entries_crc:
        raise TornRead('gpt: partition entries checksum mismatch')
    parts = []
    for i in range(header.entries):
        (ptype, unique, first, last, _, name) = GPT_ENTRY.unpack_from(
            data, i * header.entry_size)
        if ptype == bytes(16):
            continue
        if first > last or first < header.first_usable \
                or last > header.last_usable:
            raise Corrupt('gpt: partition %d (sectors %d-%d) is outside the '
                          'usable sectors' % (i + 1, first, last))
        parts.append(Partition(
            number=i + 1, start=first * sector_size,
            size=(last - first + 1) * sector_size, type=_guid(ptype),
            name=_gpt_name(name), guid=_guid(unique)))
    return parts


def _gpt_name(raw):
    text = raw.decode('utf-16-le', errors='replace')
    return text.split('\x00', 1)[0]


def read_gpt(source):
    for sector_size in GPT_SECTOR_SIZES:
        if source.size < 2 * sector_size:
            break
        sector = source.read_at(sector_size, sector_size)
        if sector[:8] == GPT_SIGNATURE:
            break
    else:
        sector = b''
    if sector[:8] != GPT_SIGNATURE:
        raise Corrupt('gpt: protective MBR but no GPT header')
    disk_sectors = source.size // sector_size
    header = parse_gpt_header(sector, sector_size, disk_sectors)
    data = source.read_at(header.entries_lba * sector_size,
                          header.entries * header.entry_size)
    parts = parse_gpt_entries(data, header, sector_size)
    return PartitionTable('gpt', sector_size, tuple(parts),
                          header.disk_guid)


def read_table(source):
    """The disk's partition table, or None when it has none (a filesystem
    or a PV on the whole disk)."""
    if source.size < SECTOR:
        return None
    sector = source.read_at(0, SECTOR)
    if not looks_like_mbr(sector):
        return None
    if any(e.type == MBR_PROTECTIVE and e.sectors
           for e in parse_mbr_entries(sector)):
        return read_gpt(source)
    return read_mbr(source, sector)


def partition_sources(source, table):
    """(Partition, Window) for each partition that can hold a filesystem
    or a PV, in the table's order (MBR extended containers skipped)."""
    return [(p, src_mod.Window(source, p.start, p.size,
                               name='%s partition %d' % (source.name,
                                                         p.number)))
            for p in table.partitions if not p.container]
