"""The direct LVM reader against a kernel's device-mapper.

This host's kernel has no device-mapper, so the unit tests check LV
bytes against lvm's own segment report.  Here the PVs made by the real
`lvm` on loop devices are given read-only to a libguestfs appliance,
whose kernel activates the VG; the sha256 of every LV as the kernel
reads it must equal the sha256 of what direct.lvm reads.
Appliance launches: 1.
"""

import hashlib

import pytest

from ceilometer_os_pollster.direct.volumes import lvm
from ceilometer_os_pollster.direct.block import source as S
from tests.unit.direct import loops

pytestmark = [pytest.mark.appliance, pytest.mark.timeout(600)]

MiB = 1 << 20


def test_lvs_read_as_the_kernel_reads_them(tmp_path):
    guestfs = pytest.importorskip('guestfs')
    with loops.built_vg(tmp_path) as info:
        files = list(info['files'].values())
        budget = S.Budget(256 * MiB)
        (vg,) = lvm.volume_groups(
            [S.FileSource(str(p), budget) for p in files])
        ours = {}
        for lv in vg.lvs:
            src = lvm.open_lv(vg, lv)
            h = hashlib.sha256()
            for off in range(0, src.size, MiB):
                h.update(src.read_at(off, min(MiB, src.size - off)))
            ours['/dev/%s/%s' % (vg.name, lv.name)] = h.hexdigest()
        g = guestfs.GuestFS(python_return_dict=True)
        try:
            for path in files:
                g.add_drive_opts(str(path), format='raw', readonly=1)
            g.launch()
            kernel = {path: g.checksum_device('sha256', path)
                      for path in g.lvs()}
        finally:
            g.close()
    assert len(ours) == 4
    assert kernel == ours
