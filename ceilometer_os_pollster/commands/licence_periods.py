"""Licensed time over a report period, from an instance's history (pure).

Owns how a period is counted (billing guide, "Monthly licence report"):

* running time comes from the meter's measures: a measure at ``t`` of
  granularity ``g`` says the instance ran during ``[t, t + g)``; the
  time up to the next measure counts too when that gap is at most
  ``max_gap`` seconds (a longer gap is not running time), and nothing
  counts after the resource's ``ended_at``;
* the vCPUs of a stretch are its measure's value, rounded up;
* a stretch is cut where a new attribute revision starts and each piece
  is billed as the products of the revision in effect (the first known
  revision also covers any time before it);
* licensed cores of a piece are max(vCPUs, the product's per-VM
  minimum) (licences.py);
* per (project, product, edition): instances, VM-, vCPU- and licensed
  core-hours, the peak of the licensed cores running at one moment and
  their time-weighted average over the period;
* the revenue risks of each instance.

Inputs are plain records that gnocchi_history.py reads; times are epoch
seconds.  Nothing here does I/O.
"""

import dataclasses
import math

from ceilometer_os_pollster.families import licences

RISK_STATUSES = ('unknown', 'failed', 'encrypted')
# Project of the cloud-wide lines (all projects together).
ALL_PROJECTS = '*'

# Risk kinds.
RISK_STATUS = 'status'
RISK_CHANGED = 'os-changed'
RISK_NO_ATTRIBUTES = 'no-os-attributes'

DEFAULT_MAX_GAP = 3600.0
DEFAULT_RISK_SHARE = 0.1


@dataclasses.dataclass(frozen=True)
class Revision:
    """One attribute revision of a Gnocchi instance resource."""

    start: float
    end: float           # math.inf for the current revision
    project_id: str
    name: str
    attributes: dict     # the os_* attributes (values may be None)
    ended_at: float = math.inf


@dataclasses.dataclass(frozen=True)
class Measure:
    timestamp: float
    granularity: float
    vcpus: float


@dataclasses.dataclass(frozen=True)
class Settings:
    start: float
    end: float
    max_gap: float = DEFAULT_MAX_GAP
    risk_share: float = DEFAULT_RISK_SHARE
    minimums: licences.Minimums = licences.Minimums()

    @property
    def hours(self):
        return (self.end - self.start) / 3600.0


@dataclasses.dataclass(frozen=True)
class Piece:
    """Running time billed under one revision."""

    start: float
    end: float
    vcpus: int
    revision: Revision


@dataclasses.dataclass(frozen=True)
class Risk:
    """One finding for the operator to check before filing."""

    kind: str
    resource_id: str
    name: str
    project_id: str
    detail: str
    at: float = None          # when (os-changed), else None
    share: float = None       # of the running time (status), else None
    hours: float = None       # running hours concerned


@dataclasses.dataclass(frozen=True)
class Line:
    project_id: str
    product: str
    edition: str
    instances: int
    vm_hours: float
    vcpu_hours: float
    licensed_core_hours: float
    peak_licensed_cores: int
    average_licensed_cores: float


def running_stretches(measures, settings, ended_at=math.inf):
    """[(start, end, vcpus)] of running time inside the period, in order,
    adjacent stretches with equal vCPUs merged."""
    points = sorted(measures, key=lambda m: m.timestamp)
    stop_at = min(settings.end, ended_at)
    found = []
    for index, point in enumerate(points):
        end = point.timestamp + point.granularity
        if index + 1 < len(points):
            following = points[index + 1].timestamp
            if following - end <= settings.max_gap:
                end = max(end, following)
        # overlapping slots (a granularity longer than the spacing)
        # count once
        start = max(point.timestamp, settings.start,
                    found[-1][1] if found else -math.inf)
        end = min(end, stop_at)
        if end <= start:
            continue
        vcpus = int(math.ceil(point.vcpus))
        if found and found[-1][1] == start and found[-1][2] == vcpus:
            found[-1] = (found[-1][0], end, vcpus)
        else:
            found.append((start, end, vcpus))
    return found


def pieces(revisions, stretches):
    """Cut stretches at revision boundaries: [Piece]."""
    ordered = sorted(revisions, key=lambda r: r.start)
    if not ordered:
        return []
    cut = []
    for start, end, vcpus in stretches:
        for index, revision in enumerate(ordered):
            lower = -math.inf if index == 0 else revision.start
            begin, finish = max(start, lower), min(end, revision.end)
            if index + 1 < len(ordered):
                finish = min(finish, ordered[index + 1].start)
            if finish > begin:
                cut.append(Piece(begin, finish, vcpus, revision))
    return cut


def _label(products):
    return ', '.join(' '.join(filter(None, p[:2])) for p in products)


def risks(resource_id, revisions, cut, settings):
    """The instance's Risk list (see RISK_*)."""
    if not cut:
        return []
    last = max(cut, key=lambda p: p.end).revision
    name, project = last.name, last.project_id
    running = sum(p.end - p.start for p in cut)
    found = []
    by_status = {}
    missing = 0.0
    for piece in cut:
        status = piece.revision.attributes.get('os_inspection_status')
        if not status:
            missing += piece.end - piece.start
        elif status in RISK_STATUSES:
            by_status[status] = (by_status.get(status, 0.0)
                                 + piece.end - piece.start)
    risky = sum(by_status.values())
    if running and risky / running > settings.risk_share:
        found.append(Risk(
            RISK_STATUS, resource_id, name, project,
            ', '.join('%s %.2f h' % (s, by_status[s] / 3600.0)
                      for s in sorted(by_status)),
            share=risky / running, hours=risky / 3600.0))
    previous = None
    for revision in sorted(revisions, key=lambda r: r.start):
        if revision.attributes.get('os_inspection_status') != 'ok':
            continue
        now = licences.products_of_attributes(
            resource_id, revision.attributes, settings.minimums)
        if (previous is not None and now != previous and
                settings.start <= revision.start < settings.end):
            found.append(Risk(RISK_CHANGED, resource_id, name, project,
                              '%s -> %s' % (_label(previous), _label(now)),
                              at=revision.start))
        previous = now
    if missing:
        found.append(Risk(RISK_NO_ATTRIBUTES, resource_id, name, project,
                          'measures without os_inspection_status',
                          share=missing / running, hours=missing / 3600.0))
    return found


class Totals:
    """Accumulates instances one at a time; lines() at the end.

    Memory: the sums per (project, product, edition), plus, for the
    peak, the licensed-core changes per group keyed by time; equal
    times merge, so a group holds at most one entry per distinct start
    or end of running time in it.
    """

    def __init__(self, settings):
        self.settings = settings
        self._sums = {}        # group -> [instances, vm, vcpu, licensed]
        self._changes = {}     # group -> {time: change of licensed cores}

    def _add(self, group, start, end, vcpus, licensed):
        sums = self._sums.setdefault(group, [0, 0.0, 0.0, 0.0])
        seconds = end - start
        sums[1] += seconds
        sums[2] += seconds * vcpus
        sums[3] += seconds * licensed
        changes = self._changes.setdefault(group, {})
        changes[start] = changes.get(start, 0) + licensed
        changes[end] = changes.get(end, 0) - licensed

    def add(self, resource_id, cut):
        seen = set()
        for piece in cut:
            products = licences.products_of_attributes(
                resource_id, piece.revision.attributes,
                self.settings.minimums)
            for product, edition, minimum in products:
                licensed = max(piece.vcpus, minimum)
                for project in (piece.revision.project_id, ALL_PROJECTS):
                    group = (project, product, edition)
                    self._add(group, piece.start, piece.end, piece.vcpus,
                              licensed)
                    seen.add(group)
        for group in seen:
            self._sums[group][0] += 1

    def lines(self):
        """Line per group: projects sorted, the ALL_PROJECTS lines last."""
        found = []
        for group, (count, vm, vcpu, licensed) in self._sums.items():
            peak = level = 0
            for _, change in sorted(self._changes[group].items()):
                level += change
                peak = max(peak, level)
            found.append(Line(
                *group, instances=count, vm_hours=vm / 3600.0,
                vcpu_hours=vcpu / 3600.0,
                licensed_core_hours=licensed / 3600.0,
                peak_licensed_cores=peak,
                average_licensed_cores=licensed / 3600.0 /
                self.settings.hours))
        return sorted(found, key=lambda line: (
            line.project_id == ALL_PROJECTS, line.project_id, line.product,
            line.edition))


def account(resource_id, revisions, measures, settings, totals):
    """Add one instance to totals; returns its Risk list."""
    if not revisions:
        return []
    ended_at = min(r.ended_at for r in revisions)
    cut = pieces(revisions, running_stretches(measures, settings, ended_at))
    totals.add(resource_id, cut)
    return risks(resource_id, revisions, cut, settings)
