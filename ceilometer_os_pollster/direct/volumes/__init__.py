"""Partition tables (MBR, GPT) and LVM: the block ranges a disk is cut
into.
"""
