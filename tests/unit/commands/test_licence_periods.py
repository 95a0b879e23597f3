"""licence_periods.py on hand-made histories, figures worked out by hand."""

import math

import pytest

from ceilometer_os_pollster.commands import licence_periods as lp
from ceilometer_os_pollster.families import licences

H = 3600.0
G = 300.0
DAY = 24 * H
# A 30-day period starting at 0.
SETTINGS = lp.Settings(0.0, 30 * DAY, max_gap=H, risk_share=0.1)

WIN_STD = {'os_inspection_status': 'ok', 'os_family': 'windows',
           'os_edition': 'Standard', 'os_product_variant': 'Server'}
WIN_DC = dict(WIN_STD, os_edition='Datacenter')
WIN_SQL = dict(WIN_STD, sql_server_edition='Enterprise')
RHEL = {'os_inspection_status': 'ok', 'os_family': 'linux',
        'os_distro': 'rhel'}
FAILED = {'os_inspection_status': 'failed'}


def every(start, end, step=G, vcpus=2, granularity=G):
    """Measures at start, start+step, ... < end."""
    count = int(round((end - start) / step))
    return [lp.Measure(start + i * step, granularity, vcpus)
            for i in range(count)]


def rev(start, end=math.inf, attributes=WIN_STD, project='p', name='vm',
        ended_at=math.inf):
    return lp.Revision(start, end, project, name, attributes, ended_at)


# -- running time -------------------------------------------------------

def test_back_to_back_measures_are_one_stretch():
    assert lp.running_stretches(every(0, 2 * H), SETTINGS) == [
        (0, 2 * H, 2)]


def test_a_gap_up_to_max_gap_counts_and_a_longer_one_does_not():
    # hourly polls (one measure per hour): every hour counts
    hourly = every(0, 5 * H, step=H)
    assert lp.running_stretches(hourly, SETTINGS) == [(0, 4 * H + G, 2)]
    # measures at 0 and 0+G+H+1: the gap after the first slot is H+1
    apart = [lp.Measure(0, G, 2), lp.Measure(G + H + 1, G, 2)]
    assert lp.running_stretches(apart, SETTINGS) == [
        (0, G, 2), (G + H + 1, 2 * G + H + 1, 2)]


def test_the_period_and_ended_at_clip_running_time():
    measures = every(-H, 2 * H)
    assert lp.running_stretches(measures, SETTINGS) == [(0, 2 * H, 2)]
    assert lp.running_stretches(measures, SETTINGS, ended_at=H + 10) == [
        (0, H + 10, 2)]
    late = lp.Settings(0, H)
    assert lp.running_stretches(every(0, 2 * H), late) == [(0, H, 2)]


def test_a_measure_before_the_period_carries_into_it_within_max_gap():
    # last measure before the period at -G/2, next one at 1000
    measures = [lp.Measure(-G / 2, G, 4), lp.Measure(1000, G, 4)]
    assert lp.running_stretches(measures, SETTINGS) == [(0, 1000 + G, 4)]


def test_vcpus_change_splits_and_fractions_round_up():
    measures = every(0, H, vcpus=2) + every(H, 2 * H, vcpus=3.5)
    assert lp.running_stretches(measures, SETTINGS) == [
        (0, H, 2), (H, 2 * H, 4)]


# -- revisions ----------------------------------------------------------

def test_pieces_follow_the_revision_in_effect_and_the_first_covers_before():
    first = rev(100, 2 * H, WIN_STD)
    second = rev(2 * H, math.inf, WIN_DC)
    cut = lp.pieces([second, first], [(0, 3 * H, 2)])
    assert [(p.start, p.end, p.revision.attributes['os_edition'])
            for p in cut] == [(0, 2 * H, 'Standard'),
                              (2 * H, 3 * H, 'Datacenter')]


# -- totals -------------------------------------------------------------

def lines_by_key(totals):
    return {(line.project_id, line.product, line.edition): line
            for line in totals.lines()}


def test_upgrade_mid_period_splits_hours_and_minimums_apply():
    totals = lp.Totals(SETTINGS)
    upgrade = 10 * DAY
    risks = lp.account('i1', [rev(-DAY, upgrade, WIN_STD),
                              rev(upgrade, math.inf, WIN_DC)],
                       every(0, 30 * DAY, vcpus=2), SETTINGS, totals)
    lines = lines_by_key(totals)
    std = lines[('p', 'Windows Server', 'Standard')]
    dc = lines[('p', 'Windows Server', 'Datacenter')]
    # 10 days Standard, 20 days Datacenter, 2 vCPUs counted as 8 cores
    assert (std.instances, std.vm_hours, std.vcpu_hours,
            std.licensed_core_hours, std.peak_licensed_cores) == \
        (1, 240.0, 480.0, 1920.0, 8)
    assert (dc.vm_hours, dc.licensed_core_hours) == (480.0, 3840.0)
    assert std.average_licensed_cores == pytest.approx(1920.0 / 720)
    assert dc.average_licensed_cores == pytest.approx(3840.0 / 720)
    assert [(r.kind, r.at) for r in risks] == [(lp.RISK_CHANGED, upgrade)]
    assert risks[0].detail == ('Windows Server Standard -> '
                               'Windows Server Datacenter')


def test_peak_is_of_simultaneous_cores_and_cloud_lines_add_projects():
    totals = lp.Totals(SETTINGS)
    # p: a 12-vCPU VM days 0-2 and a 2-vCPU (8 licensed) VM days 1-3;
    # q: a 16-vCPU VM days 2-4
    lp.account('a', [rev(0)], every(0, 2 * DAY, vcpus=12), SETTINGS, totals)
    lp.account('b', [rev(0)], every(DAY, 3 * DAY, vcpus=2), SETTINGS,
               totals)
    lp.account('c', [rev(0, project='q')], every(2 * DAY, 4 * DAY,
                                                 vcpus=16),
               SETTINGS, totals)
    lines = lines_by_key(totals)
    p = lines[('p', 'Windows Server', 'Standard')]
    q = lines[('q', 'Windows Server', 'Standard')]
    cloud = lines[(lp.ALL_PROJECTS, 'Windows Server', 'Standard')]
    assert (p.instances, p.peak_licensed_cores) == (2, 20)
    assert p.licensed_core_hours == 48 * 12 + 48 * 8
    assert (q.instances, q.peak_licensed_cores) == (1, 16)
    # day 2-3: b (8) and c (16) run together; a ended at day 2 exactly
    assert (cloud.instances, cloud.peak_licensed_cores) == (3, 24)
    assert cloud.licensed_core_hours == 48 * 12 + 48 * 8 + 48 * 16
    assert cloud.average_licensed_cores == pytest.approx(
        (48 * 12 + 48 * 8 + 48 * 16) / 720.0)
    assert [line.project_id for line in totals.lines()] == ['p', 'q', '*']


def test_sql_server_is_a_second_product_with_its_own_minimum():
    totals = lp.Totals(SETTINGS)
    lp.account('s', [rev(0, attributes=WIN_SQL)], every(0, H, vcpus=2),
               SETTINGS, totals)
    lines = lines_by_key(totals)
    assert lines[('p', 'SQL Server', 'Enterprise')].licensed_core_hours \
        == 4.0
    assert lines[('p', 'Windows Server', 'Standard')].licensed_core_hours \
        == 8.0


def test_other_minimums_and_per_vm_products():
    settings = lp.Settings(0, DAY, minimums=licences.Minimums(16, 2))
    totals = lp.Totals(settings)
    lp.account('w', [rev(0)], every(0, H, vcpus=2), settings, totals)
    lp.account('r', [rev(0, attributes=RHEL)], every(0, H, vcpus=2),
               settings, totals)
    lines = lines_by_key(totals)
    assert lines[('p', 'Windows Server', 'Standard')].peak_licensed_cores \
        == 16
    rhel = lines[('p', 'RHEL', '')]
    assert (rhel.vm_hours, rhel.licensed_core_hours) == (1.0, 2.0)


def test_an_instance_without_measures_counts_nowhere():
    totals = lp.Totals(SETTINGS)
    assert lp.account('x', [rev(0)], [], SETTINGS, totals) == []
    assert totals.lines() == []


# -- revenue risks --------------------------------------------------------

def test_failed_for_days_is_a_risk_above_the_share_only():
    # 30 days running, failed for the first 3 days plus 1 h
    changed = 3 * DAY + H
    revisions = [rev(0, changed, FAILED), rev(changed, math.inf, WIN_STD)]
    totals = lp.Totals(SETTINGS)
    risks = lp.account('f', revisions, every(0, 30 * DAY), SETTINGS, totals)
    status = [r for r in risks if r.kind == lp.RISK_STATUS]
    assert len(status) == 1
    assert status[0].share == pytest.approx(73.0 / 720)
    assert status[0].hours == pytest.approx(73.0)
    assert status[0].detail == 'failed 73.00 h'
    # the failed time is listed under its pseudo product
    assert lines_by_key(totals)[('p', '(failed)', '')].vm_hours == 73.0
    # a failed -> ok transition is not an OS change
    assert not [r for r in risks if r.kind == lp.RISK_CHANGED]
    tolerant = lp.Settings(0, 30 * DAY, risk_share=0.2)
    assert not [r for r in lp.account('f', revisions, every(0, 30 * DAY),
                                      tolerant, lp.Totals(tolerant))
                if r.kind == lp.RISK_STATUS]


def test_measures_without_os_attributes_are_a_risk():
    totals = lp.Totals(SETTINGS)
    risks = lp.account('n', [rev(0, attributes={'os_inspection_status':
                                                None})],
                       every(0, 2 * H), SETTINGS, totals)
    assert [(r.kind, r.hours, r.share) for r in risks] == [
        (lp.RISK_NO_ATTRIBUTES, 2.0, 1.0)]
    assert lines_by_key(totals)[('p', licences.NO_OS_ATTRIBUTES, '')] \
        .vm_hours == 2.0


def test_a_change_outside_the_period_is_not_listed():
    late = lp.Settings(DAY, 2 * DAY)
    revisions = [rev(0, H, WIN_STD), rev(H, math.inf, WIN_DC)]
    assert lp.account('i', revisions, every(0, 2 * DAY), late,
                      lp.Totals(late)) == []
