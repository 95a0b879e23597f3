"""The NTFS numbers every part shares (ntfs-3g's ``layout.h`` names):
the system files' record numbers, attribute types, MFT record flags and
the record-number part of an MFT reference.  The structures of each
part are owned by the module that reads them.
"""

MFT_RECORD = 0
ROOT_RECORD = 5
UPCASE_RECORD = 10
UPCASE_BYTES = 65536 * 2

# Attribute types.
AT_STANDARD_INFORMATION = 0x10
AT_ATTRIBUTE_LIST = 0x20
AT_FILE_NAME = 0x30
AT_DATA = 0x80
AT_INDEX_ROOT = 0x90
AT_INDEX_ALLOCATION = 0xA0
AT_REPARSE_POINT = 0xC0
AT_END = 0xFFFFFFFF

# MFT record flags.
MFT_IN_USE = 0x1
MFT_DIRECTORY = 0x2

REF_MASK = (1 << 48) - 1
