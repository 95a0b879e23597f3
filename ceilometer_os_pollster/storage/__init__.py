"""What an inspection may open of the host's storage: the pinned qemu
node tree of each drive, Ceph access for rbd disks, and the protective
overlays.  Shared by both inspection methods; runs in the worker.
"""
