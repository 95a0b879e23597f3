"""Filesystem readers (ext4, XFS, btrfs, NTFS), the identification of a
filesystem by its magic, and the common file API the root readers use.
"""
