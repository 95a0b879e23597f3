"""The numbers every btrfs tree shares (the btrfs documentation's
"On-disk format" names): object ids, item key types, the largest key
and the deepest tree level.  The structures of each part are owned by
the module that reads them.
"""

MAX_LEVEL = 8                   # BTRFS_MAX_LEVEL: levels 0..7

# Object ids.
ROOT_TREE_OBJECTID = 1
CHUNK_TREE_OBJECTID = 3
FS_TREE_OBJECTID = 5
ROOT_TREE_DIR_OBJECTID = 6
FIRST_FREE_OBJECTID = 256
LAST_FREE_OBJECTID = (1 << 64) - 256
FIRST_CHUNK_TREE_OBJECTID = 256
MAX_KEY = (1 << 64) - 1

# Key types.
INODE_ITEM = 1
INODE_REF = 12
DIR_ITEM = 84
DIR_INDEX = 96
EXTENT_DATA = 108
ROOT_ITEM = 132
ROOT_BACKREF = 144
ROOT_REF = 156
CHUNK_ITEM = 228
