"""The direct inspection method's reader stack: a guest's disk read as bytes.

Pure Python, read-only and bounded: every byte is written by the tenant.
One interface at the bottom (``source.Source``: ``size`` and
``read_at(offset, length)``), and every layer is a Source over the one
below, addressed by offset:

- ``source``: local files and block devices (``FileSource``), regions
  (``Window``), LVM segment maps (``Concat``, ``Striped``) and the
  ``Budget`` of bytes one inspection may read;
- ``nbd`` (our own read-only NBD client) and ``rbd_image`` (librbd,
  read-only): the bytes of network drives, opened by ``network``;
- ``qcow2``: the virtual disk of a qcow2 image over its file and the
  backing the caller pinned (never the one the image names); its header
  and L2 entries decoded by ``qcow2_header``;
- ``partitions``: MBR (with the extended/logical chain) and GPT, as small
  records the caller turns into Windows;
- ``lvm``: LVM2 physical volumes and their text metadata (``lvm.pv``),
  volume groups and their linear and striped logical volumes
  (``lvm.vg``);
- filesystems and the OS facts above them.

Each format module owns its on-disk structures, validates every offset
against the size it was given before following it, and stops with an
``errors.DirectError`` (Unsupported, LimitReached, Corrupt, TornRead)
whose reason an operator can act on.  None of them knows about OS
families or records.
"""
