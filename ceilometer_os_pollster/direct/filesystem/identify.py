"""What a volume holds, from its magic numbers alone (pure).

``identify(source)`` reads a few sectors and names the content the way
the inspection needs it: a filesystem we read (ext, xfs, ntfs, btrfs),
one that holds no OS (swap, vfat), an
encrypted volume (LUKS, BitLocker), an LVM physical volume, an md-raid
member, nothing at all (zeros), or None for anything else.  Guest data
chooses the answer, never what is opened: each answer only picks which
of our own readers looks next.
"""

from ceilometer_os_pollster.direct import errors

EXT, XFS, NTFS, BTRFS = 'ext', 'xfs', 'ntfs', 'btrfs'
SWAP, VFAT = 'swap', 'vfat'
LUKS, BITLOCKER, LVM, MDRAID, EMPTY = ('luks', 'bitlocker', 'lvm', 'mdraid',
                                       'empty')

# What list_filesystems would call each kind (for counts and reasons).
VFS_TYPES = {EXT: 'ext4', XFS: 'xfs', NTFS: 'ntfs', BTRFS: 'btrfs',
             SWAP: 'swap', VFAT: 'vfat', LUKS: 'crypto_LUKS',
             BITLOCKER: 'BitLocker', LVM: 'LVM2_member',
             MDRAID: 'linux_raid_member'}

HEAD = 8192                      # bytes read at the start of a volume
BTRFS_SUPER = 65536
MD_MAGIC = b'\xfc\x4e\x2b\xa9'   # 0xa92b4efc, little-endian


def _at(data, offset, magic):
    return data[offset:offset + len(magic)] == magic


def kind_of_head(head, btrfs_super=b''):
    """The content kind of a volume from its first HEAD bytes (and the
    64 KiB btrfs superblock area when read), or None (pure)."""
    if _at(head, 0, b'LUKS\xba\xbe') or _at(head, 0, b'SKUL\xba\xbe'):
        return LUKS
    if _at(head, 3, b'-FVE-FS-'):
        return BITLOCKER
    if _at(head, 3, b'NTFS    '):
        return NTFS
    if _at(head, 0, b'XFSB'):
        return XFS
    if _at(head, 1024 + 56, b'\x53\xef'):
        return EXT
    if any(_at(head, 512 * n, b'LABELONE') for n in range(4)):
        return LVM
    if _at(head, 4096, MD_MAGIC) or _at(head, 0, MD_MAGIC):
        return MDRAID
    if _at(head, 4086, b'SWAPSPACE2') or _at(head, 4086, b'SWAP-SPACE'):
        return SWAP
    fat = _at(head, 54, b'FAT1') or _at(head, 82, b'FAT32   ')
    if fat and _at(head, 510, b'\x55\xaa'):
        return VFAT
    if _at(btrfs_super, 64, b'_BHRfS_M'):
        return BTRFS
    if not head.strip(b'\0') and not btrfs_super.strip(b'\0'):
        return EMPTY
    return None


def identify(source):
    """The content kind of ``source`` (see kind_of_head)."""
    head = source.read_at(0, min(HEAD, source.size))
    btrfs = b''
    if source.size >= BTRFS_SUPER + 4096:
        btrfs = source.read_at(BTRFS_SUPER, 4096)
    kind = kind_of_head(head, btrfs)
    if kind == EMPTY and source.size > 2 * BTRFS_SUPER:
        # md 0.90/1.0 keep their superblock at the end of the device.
        tail = source.read_at(source.size - BTRFS_SUPER, 4096)
        if _at(tail, 0, MD_MAGIC):
            return MDRAID
    return kind


def _uuid(raw):
    text = bytes(raw).hex()
    return '%s-%s-%s-%s-%s' % (text[:8], text[8:12], text[12:16],
                               text[16:20], text[20:32])


def _label(raw):
    return bytes(raw).split(b'\0', 1)[0].decode('utf-8', 'replace')


def fs_ids(source, kind):
    """(UUID, LABEL) of a filesystem as blkid prints them (what fstab's
    UUID= and LABEL= name), '' where there is none.  Guest data: only
    compared with fstab's strings, never used to open anything."""
    if kind == EXT:
        sb = source.read_at(1024, 0x88)
        return _uuid(sb[0x68:0x78]), _label(sb[0x78:0x88])
    if kind == XFS:
        sb = source.read_at(0, 120)
        return _uuid(sb[32:48]), _label(sb[108:120])
    if kind == BTRFS:
        sb = source.read_at(BTRFS_SUPER, 0x12b + 256)
        return _uuid(sb[0x20:0x30]), _label(sb[0x12b:0x12b + 256])
    if kind == SWAP:
        head = source.read_at(1024, 44)
        return _uuid(head[12:28]), _label(head[28:44])
    if kind == VFAT:
        boot = source.read_at(0, 90)
        fat32 = boot[82:87] == b'FAT32'
        serial = boot[67:71] if fat32 else boot[39:43]
        label = boot[71:82] if fat32 else boot[43:54]
        text = bytes(reversed(serial)).hex().upper()
        name = _label(label).rstrip(' ')
        return '%s-%s' % (text[:4], text[4:]), ('' if name == 'NO NAME'
                                                else name)
    if kind == NTFS:
        serial = source.read_at(0x48, 8)
        return bytes(reversed(serial)).hex().upper(), ''
    return '', ''


def unsupported(kind, device):
    """The Unsupported error for a kind the direct method leaves to the
    appliance."""
    why = {MDRAID: 'md-raid members are assembled by the appliance',
           None: 'unknown filesystem or volume type'}.get(kind, kind)
    return errors.Unsupported('%s: %s' % (device, why))
