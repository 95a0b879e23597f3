"""LVM2: physical volume labels, the text metadata, linear and striped LVs.

On a PV (lvm2 ``lib/label``, ``lib/format_text``): a 512-byte label
(``LABELONE``) in one of the first four sectors, the PV header after it
(UUID, size, lists of data and metadata areas), a metadata area header
(magic `` LVM2 x[5A%r0N*>``) whose first ``raw_locn`` locates the
committed metadata in a circular text buffer, and that text: the format
``vgcfgbackup`` writes, parsed here by a small bounded parser.

``read_pv`` reads one Source's label and metadata; ``volume_groups``
groups PVs by VG id, keeps the newest metadata (highest seqno) and
returns VolumeGroups whose linear and striped LVs ``open_lv`` turns into
Sources over the PV Sources (``Concat`` of segments, ``Striped`` for
stripes).  Thin, RAID, mirror, snapshot, cache and other segment types
are refused with a reason; names are kept as the guest wrote them.

Checksums are LVM's CRC-32 variant; a metadata checksum that does not
match is a torn read (LVM rewrites it while the guest runs).

Two modules: ``pv`` (what one PV holds: label, metadata area, metadata
text) and ``vg`` (the volume groups and their LVs as Sources).
"""

from ceilometer_os_pollster.direct.volumes.lvm.pv import MAX_METADATA
from ceilometer_os_pollster.direct.volumes.lvm.pv import MAX_TOKENS
from ceilometer_os_pollster.direct.volumes.lvm.pv import MDA_MAGIC
from ceilometer_os_pollster.direct.volumes.lvm.pv import lvm_crc
from ceilometer_os_pollster.direct.volumes.lvm.pv import parse_text
from ceilometer_os_pollster.direct.volumes.lvm.pv import read_pv
from ceilometer_os_pollster.direct.volumes.lvm.vg import LogicalVolume
from ceilometer_os_pollster.direct.volumes.lvm.vg import VolumeGroup
from ceilometer_os_pollster.direct.volumes.lvm.vg import open_lv
from ceilometer_os_pollster.direct.volumes.lvm.vg import parse_vg
from ceilometer_os_pollster.direct.volumes.lvm.vg import volume_groups

__all__ = ['MAX_METADATA', 'MAX_TOKENS', 'MDA_MAGIC', 'LogicalVolume',
           'VolumeGroup', 'lvm_crc', 'open_lv', 'parse_text', 'parse_vg',
           'read_pv', 'volume_groups']
