"""LVM2 volume groups: the VG a metadata text describes, and its LVs.

``parse_vg`` turns one parsed metadata text into a VolumeGroup (pure);
``volume_groups`` groups PVs by VG id and keeps the newest metadata
(highest seqno); ``open_lv`` turns a linear or striped LV into a Source
over the PV Sources (``Concat`` of segments, ``Striped`` for stripes).
Thin, RAID, mirror, snapshot, cache and other segment types are refused
with a reason; names are kept as the guest wrote them.
"""

import dataclasses

from ceilometer_os_pollster.direct.block import source as src_mod
from ceilometer_os_pollster.direct.errors import Corrupt
from ceilometer_os_pollster.direct.errors import LimitReached
from ceilometer_os_pollster.direct.errors import Unsupported
from ceilometer_os_pollster.direct.volumes.lvm.pv import SECTOR
from ceilometer_os_pollster.direct.volumes.lvm.pv import read_pv

MAX_LVS = 4096
MAX_SEGMENTS = 4096               # segments of one LV
MAX_STRIPES = 128


# -- the volume group (pure) ---------------------------------------------

@dataclasses.dataclass(frozen=True)
class PvRef:
    name: str                   # 'pv0', as the metadata names it
    uuid: str                   # 32 characters, no dashes
    pe_start: int               # bytes
    pe_count: int
    missing: bool


@dataclasses.dataclass(frozen=True)
class Segment:
    start_extent: int
    extent_count: int
    type: str
    stripe_size: int            # bytes (0 for one stripe)
    stripes: tuple              # (pv name, first extent on that PV)


@dataclasses.dataclass(frozen=True)
class LogicalVolume:
    name: str
    size: int                   # bytes
    visible: bool
    segments: tuple
    unsupported: str = ''       # why it cannot be read, or ''


@dataclasses.dataclass(frozen=True)
class VolumeGroup:
    name: str
    id: str
    seqno: int
    extent_size: int            # bytes
    pvs: dict                   # name -> PvRef
    lvs: tuple                  # LogicalVolume, in metadata order
    sources: dict = dataclasses.field(default_factory=dict)  # pv name ->


def _get(d, key, kind, what):
    value = d.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Corrupt('lvm: %s has no valid %s' % (what, key))
    return value


def _uuid(text):
    return text.replace('-', '')


def parse_vg(config):
    """The VolumeGroup a parsed metadata text describes (pure)."""
    sections = [(k, v) for k, v in config.items() if isinstance(v, dict)]
    if len(sections) != 1:
        raise Corrupt('lvm: metadata has %d volume groups, not one'
                      % len(sections))
    name, vg = sections[0]
    what = 'VG %s' % name[:64]
    extent_sectors = _get(vg, 'extent_size', int, what)
    if extent_sectors <= 0 or extent_sectors > 1 << 32:
        raise Corrupt('lvm: %s has an invalid extent size' % what)
    pvs = {}
    for pv_name, pv in _get(vg, 'physical_volumes', dict, what).items():
        if not isinstance(pv, dict):
            raise Corrupt('lvm: %s PV %s is malformed' % (what, pv_name))
        pv_what = '%s PV %s' % (what, pv_name[:64])
        flags = pv.get('flags', [])
        status = pv.get('status', [])
        pe_start = _get(pv, 'pe_start', int, pv_what)
        pe_count = _get(pv, 'pe_count', int, pv_what)
        if pe_start < 0 or pe_count < 0:
            raise Corrupt('lvm: %s has a negative extent range' % pv_what)
        pvs[pv_name] = PvRef(
            pv_name, _uuid(_get(pv, 'id', str, pv_what)), pe_start * SECTOR,
            pe_count, 'MISSING' in (flags if isinstance(flags, list) else [])
            or 'MISSING' in (status if isinstance(status, list) else []))
    lv_sections = vg.get('logical_volumes', {})
    if not isinstance(lv_sections, dict):
        raise Corrupt('lvm: %s logical_volumes is malformed' % what)
    if len(lv_sections) > MAX_LVS:
        raise LimitReached('lvm: %s has more than %d LVs' % (what, MAX_LVS))
    extent = extent_sectors * SECTOR
    snapshots = _snapshot_names(lv_sections)
    lvs = []
    for lv_name, lv in lv_sections.items():
        if not isinstance(lv, dict):
            raise Corrupt('lvm: %s LV %s is malformed' % (what, lv_name))
        lvs.append(_parse_lv(what, lv_name, lv, extent, pvs, snapshots))
    return VolumeGroup(name=name, id=_get(vg, 'id', str, what),
                       seqno=_get(vg, 'seqno', int, what),
                       extent_size=extent, pvs=pvs, lvs=tuple(lvs))


def _snapshot_names(lv_sections):
    """Names of the LVs that are a snapshot's copy-on-write store."""
    cows = set()
    for lv in lv_sections.values():
        if not isinstance(lv, dict):
            continue
        for seg in lv.values():
            if isinstance(seg, dict) and seg.get('type') == 'snapshot':
                if isinstance(seg.get('cow_store'), str):
                    cows.add(seg['cow_store'])
    return cows


def _parse_lv(vg_what, name, lv, extent, pvs, snapshots):
    what = '%s LV %s' % (vg_what, name[:64])
    status = lv.get('status', [])
    visible = isinstance(status, list) and 'VISIBLE' in status
    segs = [(k, v) for k, v in lv.items()
            if isinstance(v, dict) and k.startswith('segment')]
    if len(segs) > MAX_SEGMENTS:
        raise LimitReached('lvm: %s has more than %d segments'
                           % (what, MAX_SEGMENTS))
    segments = []
    unsupported = ''
    for key, seg in segs:
        seg_type = seg.get('type')
        start = _get(seg, 'start_extent', int, what)
        count = _get(seg, 'extent_count', int, what)
        if not isinstance(seg_type, str):
            raise Corrupt('lvm: %s has a segment without a type' % what)
        if seg_type not in ('striped', 'linear'):
            unsupported = unsupported or (
                'lvm: %s is a %s volume, which is not read'
                % (what, seg_type[:32]))
            segments.append(Segment(start, count, seg_type, 0, ()))
            continue
        segments.append(_parse_striped(what, seg, start, count, pvs))
    segments.sort(key=lambda s: s.start_extent)
    pos = 0
    for seg in segments:
        if seg.start_extent != pos or seg.extent_count <= 0:
            raise Corrupt('lvm: %s has segments that overlap or leave a gap'
                          % what)
        pos += seg.extent_count
    if name in snapshots and not unsupported:
        unsupported = ('lvm: %s is a snapshot, which is not read' % what)
    return LogicalVolume(name=name, size=pos * extent, visible=visible,
                         segments=tuple(segments), unsupported=unsupported)


def _parse_striped(what, seg, start, count, pvs):
    stripe_count = _get(seg, 'stripe_count', int, what)
    stripes = seg.get('stripes')
    if not 1 <= stripe_count <= MAX_STRIPES or not isinstance(stripes, list) \
            or len(stripes) != 2 * stripe_count:
        raise Corrupt('lvm: %s has a malformed striped segment' % what)
    if count % stripe_count:
        raise Corrupt('lvm: %s segment of %d extents does not divide into '
                      '%d stripes' % (what, count, stripe_count))
    per_stripe = count // stripe_count
    pairs = []
    for pv_name, pe in zip(stripes[0::2], stripes[1::2]):
        if not isinstance(pv_name, str) or not isinstance(pe, int):
            raise Corrupt('lvm: %s has a malformed stripe' % what)
        pv = pvs.get(pv_name)
        if pv is None:
            raise Corrupt('lvm: %s names an unknown PV %s'
                          % (what, pv_name[:64]))
        if pe < 0 or pe + per_stripe > pv.pe_count:
            raise Corrupt('lvm: %s uses extents %d-%d of %s, which has %d'
                          % (what, pe, pe + per_stripe - 1, pv_name[:64],
                             pv.pe_count))
        pairs.append((pv_name, pe))
    stripe_size = 0
    if stripe_count > 1:
        stripe_size = _get(seg, 'stripe_size', int, what) * SECTOR
        if stripe_size <= 0:
            raise Corrupt('lvm: %s has an invalid stripe size' % what)
    return Segment(start, count, 'striped', stripe_size, tuple(pairs))


# -- reading (I/O) -------------------------------------------------------

def volume_groups(sources):
    """The VGs whose PVs are among ``sources`` (Sources that are not PVs
    are skipped), each with the newest metadata any of its PVs holds."""
    pvs = []
    for source in sources:
        pv = read_pv(source)
        if pv is not None:
            pvs.append(pv)
    newest = {}
    for pv in pvs:
        if pv.metadata is None:
            continue
        vg = parse_vg(pv.metadata)
        old = newest.get(vg.id)
        if old is None or vg.seqno > old.seqno:
            newest[vg.id] = vg
    by_uuid = {}
    for pv in pvs:
        by_uuid.setdefault(pv.label.uuid, pv.source)
    out = []
    for vg in newest.values():
        sources = {name: by_uuid.get(ref.uuid)
                   for name, ref in vg.pvs.items() if not ref.missing}
        out.append(dataclasses.replace(vg, sources=sources))
    return out


def open_lv(vg, lv):
    """A linear or striped LV as a Source over its PVs' Sources."""
    if lv.unsupported:
        raise Unsupported(lv.unsupported)
    what = 'lvm: VG %s LV %s' % (vg.name[:64], lv.name[:64])
    parts = []
    for seg in lv.segments:
        per_stripe = seg.extent_count // len(seg.stripes) * vg.extent_size
        windows = []
        for pv_name, pe in seg.stripes:
            pv_source = vg.sources.get(pv_name)
            if pv_source is None:
                raise Unsupported('%s needs PV %s, which is missing'
                                  % (what, pv_name[:64]))
            ref = vg.pvs[pv_name]
            windows.append(src_mod.Window(
                pv_source, ref.pe_start + pe * vg.extent_size, per_stripe,
                name='%s/%s' % (vg.name[:64], lv.name[:64])))
        if len(windows) == 1:
            parts.append(windows[0])
        else:
            parts.append(src_mod.Striped(windows, seg.stripe_size,
                                         name=what))
    return src_mod.Concat(parts, name='%s/%s' % (vg.name[:64],
                                                 lv.name[:64]))
