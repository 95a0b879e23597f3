"""Scheduler: policy functions, queue, workers, stop, run_now."""

import dataclasses
import logging
import random
import threading
import time

import pytest

from ceilometer_os_pollster.agent import cache as cache_mod
from ceilometer_os_pollster import record as record_mod
from ceilometer_os_pollster.agent import policy
from ceilometer_os_pollster.agent import scheduler as sched
from tests.helpers import FakeClock
from tests.helpers import FakeEngine
from tests.helpers import WAIT
from tests.helpers import entry
from tests.helpers import failed_record as failed
from tests.helpers import iid
from tests.helpers import job
from tests.helpers import ok_record as ok
from tests.helpers import unknown_record as unknown
from tests.helpers import wait_idle

SETTINGS = policy.Settings(concurrency=1, record_ttl=1000,
                           record_ttl_jitter=0.1, retry_initial_delay=100,
                           retry_max_delay=1000, unknown_retry_max_delay=700,
                           carry_over_max_age=5000, forget_after=86400,
                           inspection_deadline=30)


def workers():
    return [t for t in threading.enumerate()
            if t.name.startswith('os-inspection-') and t.is_alive()]


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def cache(tmp_path, clock):
    return cache_mod.RecordCache(str(tmp_path / 'records'), clock=clock)


@pytest.fixture
def make(cache, clock):
    made = []

    def factory(fake=None, settings=SETTINGS, seed=1):
        fake = fake or FakeEngine()
        scheduler = sched.Scheduler(settings, cache, fake, clock=clock,
                                    rng=random.Random(seed))
        made.append((scheduler, fake))
        return scheduler, fake

    yield factory
    for scheduler, fake in made:
        fake.release()
        assert scheduler.stop(timeout=WAIT)


# -- pure policy -----------------------------------------------------------

NOW = 10000.0


def entry_of(rec, expires_at=NOW + 50, failures=0, retry_at=0.0):
    return entry(record=rec, last_seen=NOW, expires_at=expires_at,
                 failures=failures, retry_at=retry_at)


# Fingerprints as identity.fingerprint makes them: <disks>-<qemu run>.
FP = 'a' * 16 + '-' + '1' * 16
RESTARTED = 'a' * 16 + '-' + '2' * 16      # same disks, new qemu run
REBUILT = 'b' * 16 + '-' + '2' * 16        # new boot disk or image

DECISIONS = [
    # name, entry, job fingerprint, settled, expected
    ('no record at start-up: backlog', None, FP, False, policy.NEW),
    ('no record after start-up: arrival', None, FP, True, policy.ARRIVED),
    ('fresh', entry_of(ok(iid(1), FP)), FP, True, None),
    ('fresh, first cycle', entry_of(ok(iid(1), FP)), FP, False, None),
    ('qemu restarted', entry_of(ok(iid(1), FP)), RESTARTED, True,
     policy.INVALIDATED),
    ('rebuilt', entry_of(ok(iid(1), FP)), REBUILT, True, policy.INVALIDATED),
    ('expired', entry_of(ok(iid(1), FP), expires_at=NOW), FP, True,
     policy.REFRESH),
    ('expired and changed', entry_of(ok(iid(1), FP), expires_at=NOW - 1),
     REBUILT, True, policy.INVALIDATED),
    ('encrypted fresh', entry_of(ok(iid(1), FP, status='encrypted')), FP,
     True, None),
    ('failed in backoff', entry_of(failed(iid(1), fingerprint=FP),
                                   failures=1, retry_at=NOW + 1), FP, True,
     None),
    ('failed, retry due', entry_of(failed(iid(1), fingerprint=FP),
                                   failures=3, retry_at=NOW), FP, True,
     policy.REFRESH),
    ('unknown in backoff', entry_of(unknown(iid(1), FP), failures=2,
                                    retry_at=NOW + 5), FP, True, None),
    # A change is never held back by a backoff.
    ('failed in backoff, changed', entry_of(
        failed(iid(1), fingerprint=FP), failures=1, retry_at=NOW + 9999),
     RESTARTED, True, policy.INVALIDATED),
    ('unknown in backoff, rebuilt', entry_of(
        unknown(iid(1), FP), failures=6, retry_at=NOW + 9999),
     REBUILT, True, policy.INVALIDATED),
    ('carried over in backoff', entry_of(
        ok(iid(1), FP), expires_at=NOW - 5, failures=1, retry_at=NOW + 5),
     FP, True, None),
    ('carried over in backoff, rebuilt', entry_of(
        ok(iid(1), FP), expires_at=NOW - 5, failures=1, retry_at=NOW + 5),
     REBUILT, True, policy.INVALIDATED),
]


@pytest.mark.parametrize('name, entry, fingerprint, settled, expected',
                         DECISIONS, ids=[d[0] for d in DECISIONS])
def test_decide(name, entry, fingerprint, settled, expected):
    j = job(1, fingerprint)
    assert policy.decide(entry, j, NOW, settled) == expected


@pytest.mark.parametrize('failures, expected', [
    (0, 100), (1, 100), (2, 200), (3, 400), (4, 800), (5, 1000),
    (6, 1000), (500, 1000),
])
def test_retry_delay_doubles_up_to_cap(failures, expected):
    assert policy.retry_delay(failures, 100, 1000) == expected


@pytest.mark.parametrize('seed', range(200))
def test_expiry_within_jitter_bounds(seed):
    rng = random.Random(seed)
    expires = policy.expiry(NOW, 1000, 0.1, rng.random())
    assert NOW + 1000 <= expires < NOW + 1100


def test_expiry_spreads_over_the_jitter_window():
    rng = random.Random(7)
    values = [policy.expiry(NOW, 1000, 0.5, rng.random()) for _ in range(500)]
    assert min(values) < NOW + 1050 and max(values) > NOW + 1450
    assert policy.expiry(NOW, 1000, 0.0, 0.99) == NOW + 1000


def test_next_entry_ok_resets_failures():
    previous = entry_of(failed(iid(1)), failures=4, retry_at=NOW)
    new = policy.next_entry(previous, ok(iid(1)), NOW, SETTINGS, 0.5)
    assert new.failures == 0
    assert new.expires_at == NOW + 1000 * (1 + 0.1 * 0.5)
    assert new.record.status == 'ok' and new.last_seen == NOW


def test_next_entry_failures_back_off():
    previous = None
    delays = []
    for _ in range(6):
        previous = policy.next_entry(previous, failed(iid(1)), NOW,
                                     SETTINGS, 0.5)
        delays.append(previous.retry_at - NOW)
    assert delays == [100, 200, 400, 800, 1000, 1000]
    assert previous.failures == 6
    assert previous.record.reason == 'deadline'


def at(seconds):
    """utc_timestamp of a fake-clock time."""
    import datetime
    return record_mod.utc_timestamp(datetime.datetime.fromtimestamp(
        seconds, datetime.timezone.utc))


GOOD = ok(iid(1), FP, inspected_at=at(NOW - 100))
GOOD_ENCRYPTED = GOOD.replace(status='encrypted', os_family='unknown',
                              reason='1 LUKS volume')


def failed_fp(fingerprint, reason='deadline'):
    return failed(iid(1), reason, fingerprint=fingerprint)


CARRY_OVER = [
    # name, previous entry, new result, now, carried?
    ('torn read of the same disk', entry_of(GOOD),
     unknown(iid(1), FP), NOW, True),
    ('appliance failure, same disk', entry_of(GOOD), failed_fp(FP), NOW,
     True),
    ('after a qemu restart', entry_of(GOOD), unknown(iid(1), RESTARTED),
     NOW, True),
    ('encrypted record', entry_of(GOOD_ENCRYPTED), unknown(iid(1), FP),
     NOW, True),
    ('again while carried over', entry_of(
        GOOD.replace(reason='carried over from x; latest inspection y'),
        failures=3, retry_at=NOW), failed_fp(FP, 'torn'), NOW, True),
    ('rebuilt: unknown is believed', entry_of(GOOD),
     unknown(iid(1), REBUILT), NOW, False),
    ('rebuilt: failure is published', entry_of(GOOD), failed_fp(REBUILT),
     NOW, False),
    ('good facts too old', entry_of(GOOD), unknown(iid(1), FP),
     NOW - 100 + 5000, False),
    ('good facts of unknown age', entry_of(GOOD.replace(inspected_at='')),
     unknown(iid(1), FP), NOW, False),
    ('good facts dated a year ahead (clock was wrong)',
     entry_of(GOOD.replace(inspected_at=at(NOW + 365 * 86400))),
     unknown(iid(1), FP), NOW, False),
    ('good facts dated a minute ahead (clock skew)',
     entry_of(GOOD.replace(inspected_at=at(NOW + 60))),
     unknown(iid(1), FP), NOW, True),
    ('previous not good', entry_of(unknown(iid(1), FP), failures=1),
     failed_fp(FP), NOW, False),
    ('no previous record', None, failed_fp(FP), NOW, False),
]


@pytest.mark.parametrize('name, previous, result, now, carried', CARRY_OVER,
                         ids=[c[0] for c in CARRY_OVER])
def test_next_entry_carry_over(name, previous, result, now, carried):
    new = policy.next_entry(previous, result, now, SETTINGS, 0.5)
    assert new.failures == (previous.failures if previous else 0) + 1
    # Whatever is kept, the backoff (not an invalidation) decides next.
    assert new.record.fingerprint == result.fingerprint
    j = job(1, result.fingerprint)
    assert policy.decide(new, j, now) is None
    if carried:
        good = previous.record
        assert new.record == good.replace(
            fingerprint=result.fingerprint, reason=new.record.reason)
        assert new.record.reason == (
            'carried over from the inspection of %s; latest inspection '
            '%s: %s' % (good.inspected_at, result.status, result.reason))
    else:
        assert new.record == result


def test_carry_over_disabled_with_zero_age():
    settings = dataclasses.replace(SETTINGS, carry_over_max_age=0)
    new = policy.next_entry(entry_of(GOOD), unknown(iid(1), FP), NOW,
                            settings, 0.5)
    assert new.record.status == 'unknown'


def test_carried_over_until_a_good_result():
    entry = entry_of(GOOD)
    for n in range(1, 4):
        entry = policy.next_entry(entry, unknown(iid(1), FP), NOW + n,
                                  SETTINGS, 0.5)
        assert entry.record.status == 'ok' and entry.failures == n
    back = policy.next_entry(entry, ok(iid(1), FP, os_edition='Standard'),
                             NOW + 9, SETTINGS, 0.5)
    assert back.failures == 0 and back.record.reason == ''
    assert back.record.os_edition == 'Standard'


@pytest.mark.parametrize('status, caps', [
    # unknown: its own cap, below (not up to) the record TTL.
    ('unknown', [100, 200, 400, 700, 700, 700]),
    ('failed', [100, 200, 400, 800, 1000, 1000]),
])
def test_backoff_caps_per_status(status, caps):
    settings = dataclasses.replace(SETTINGS, record_ttl=50000)
    make_result = unknown if status == 'unknown' else (
        lambda i, fp: failed(i, fingerprint=fp))
    previous, delays = None, []
    for _ in caps:
        previous = policy.next_entry(previous, make_result(iid(1), FP), NOW,
                                     settings, 0.5)
        delays.append(previous.retry_at - NOW)
    assert delays == caps


def test_horizon_covers_every_time_the_policy_writes():
    assert SETTINGS.horizon == 1100
    assert dataclasses.replace(SETTINGS, retry_max_delay=5000).horizon == 5000


@pytest.mark.parametrize('rec, expected', [
    (ok(iid(1), sql_server_edition=''), 'windows win2k22 Datacenter'),
    (ok(iid(1), sql_server_edition='Enterprise'),
     'windows win2k22 Datacenter + SQL Server Enterprise'),
    (ok(iid(1), os_family='linux', os_distro='rhel', os_info='rhel9.4',
        os_edition='', sql_server_edition=''), 'rhel rhel9.4'),
    (failed(iid(1)), '(deadline)'),
])
def test_describe(rec, expected):
    assert rec.summary() == expected


def test_settings_from_conf_group():
    from oslo_config import cfg
    from ceilometer_os_pollster import options
    conf = options.register_opts(cfg.ConfigOpts())
    conf([])
    settings = policy.as_settings(conf.os_inspection)
    assert settings.concurrency == conf.os_inspection.concurrency
    assert settings.record_ttl == conf.os_inspection.record_ttl
    assert policy.as_settings(settings) is settings


# -- scheduler -------------------------------------------------------------

def test_lazy_start_no_threads_before_work(make, cache, clock):
    before = workers()
    cache.put(entry_of(ok(iid(1))).replace(expires_at=clock.now + 500))
    scheduler, fake = make(settings=policy.Settings(concurrency=3))
    assert workers() == before
    assert scheduler.lookup(job(1)).status == 'ok'   # fresh: no work
    assert workers() == before
    assert scheduler.lookup(job(2)).status == 'pending'
    assert len(workers()) == len(before) + 3
    wait_idle(scheduler)
    assert fake.ids() == [iid(2)]


def test_new_instance_served_pending_then_record(make):
    scheduler, fake = make()
    first = scheduler.lookup(job(1, 'fpX'))
    assert first.status == 'pending' and first.fingerprint == 'fpX'
    wait_idle(scheduler)
    served = scheduler.lookup(job(1, 'fpX'))
    assert served.status == 'ok' and served.fingerprint == 'fpX'
    assert fake.ids() == [iid(1)]


def test_priority_order_fifo_within_priority(make, cache, clock):
    for n, fp in ((10, 'old'), (11, 'fp1'), (12, 'old')):
        cache.put(entry_of(ok(iid(n), fingerprint=fp),
                           expires_at=clock.now - 1))
    scheduler, fake = make()
    fake.hold()
    scheduler.lookup(job(1))            # NEW, taken by the worker at once
    fake.wait_entered()
    scheduler.lookup(job(11))           # REFRESH (expired)
    scheduler.lookup(job(10))           # INVALIDATED
    scheduler.lookup(job(2))            # NEW
    scheduler.lookup(job(12))           # INVALIDATED
    scheduler.lookup(job(3))            # NEW
    assert scheduler.stats()['queued'] == 5
    fake.release()
    wait_idle(scheduler)
    assert fake.ids() == [iid(1), iid(2), iid(3), iid(10), iid(12), iid(11)]


def test_dedup_upgrade_and_newest_job(make, cache, clock):
    cache.put(entry_of(ok(iid(5)), expires_at=clock.now - 1))
    cache.put(entry_of(ok(iid(6)), expires_at=clock.now - 1))
    scheduler, fake = make()
    fake.hold()
    scheduler.lookup(job(1))
    fake.wait_entered()
    scheduler.lookup(job(5, 'fp1', xml='<v1/>'))      # REFRESH
    scheduler.lookup(job(6))                          # REFRESH
    scheduler.lookup(job(5, 'fp1', xml='<v2/>'))      # still REFRESH
    assert scheduler.stats()['queued'] == 2
    scheduler.lookup(job(6, 'fp2', xml='<v3/>'))      # upgraded
    scheduler.lookup(job(6, 'fp1', xml='<v4/>'))      # newest, no downgrade
    assert scheduler.stats()['queued'] == 2
    fake.release()
    wait_idle(scheduler)
    assert fake.ids() == [iid(1), iid(6), iid(5)]
    assert [j.domain_xml for j in fake.jobs[1:]] == ['<v4/>', '<v2/>']


def test_in_flight_instance_not_queued_again(make):
    scheduler, fake = make()
    fake.hold()
    scheduler.lookup(job(1))
    fake.wait_entered()
    for _ in range(5):
        assert scheduler.lookup(job(1)).status == 'pending'
    assert scheduler.stats() == {'queued': 0, 'running': 1, 'cached': 0}
    fake.release()
    wait_idle(scheduler)
    assert fake.ids() == [iid(1)]


def test_stale_while_revalidate_on_fingerprint_change(make, cache, clock):
    scheduler, fake = make(FakeEngine(
        lambda j: ok(j.instance_id, j.fingerprint, os_edition='Standard')))
    cache.put(entry_of(ok(iid(1), 'fp1'), expires_at=clock.now + 500))
    fake.hold()
    served = scheduler.lookup(job(1, 'fp2'))
    assert served.fingerprint == 'fp1' and served.os_edition == 'Datacenter'
    fake.wait_entered()
    assert scheduler.lookup(job(1, 'fp2')).os_edition == 'Datacenter'
    fake.release()
    wait_idle(scheduler)
    served = scheduler.lookup(job(1, 'fp2'))
    assert served.fingerprint == 'fp2' and served.os_edition == 'Standard'
    assert len(fake.jobs) == 1


def test_ttl_expiry_refreshes_in_background(make, clock):
    scheduler, fake = make()
    scheduler.lookup(job(1))
    wait_idle(scheduler)
    expires = scheduler.cache.get(iid(1)).expires_at
    assert clock.now + 1000 <= expires < clock.now + 1100
    clock.advance(expires - clock.now - 1)
    assert scheduler.lookup(job(1)).status == 'ok'
    assert scheduler.stats()['queued'] == 0 and len(fake.jobs) == 1
    clock.advance(1)
    fake.hold()
    assert scheduler.lookup(job(1)).status == 'ok'    # old one, served
    fake.wait_entered()
    fake.release()
    wait_idle(scheduler)
    assert len(fake.jobs) == 2
    assert scheduler.cache.get(iid(1)).expires_at > expires


def test_failures_back_off_and_cap(make, clock):
    scheduler, fake = make(FakeEngine(lambda j: failed(j.instance_id)))
    delays = []
    for attempt in range(1, 7):
        scheduler.lookup(job(1))
        wait_idle(scheduler)
        assert len(fake.jobs) == attempt
        entry = scheduler.cache.get(iid(1))
        assert entry.failures == attempt
        assert entry.record.status == 'failed'
        assert entry.record.reason == 'deadline'
        delays.append(entry.retry_at - clock.now)
        clock.advance(delays[-1] - 1)
        assert scheduler.lookup(job(1)).status == 'failed'
        assert scheduler.stats()['queued'] == 0
        clock.advance(1)
    assert delays == [100, 200, 400, 800, 1000, 1000]


def test_recovery_after_failures_uses_ttl(make, clock):
    answers = [failed, unknown, ok]
    scheduler, fake = make(FakeEngine(
        lambda j: answers[len(fake.jobs) - 1](j.instance_id)))
    for _ in answers:
        scheduler.lookup(job(1))
        wait_idle(scheduler)
        clock.advance(scheduler.cache.get(iid(1)).retry_at - clock.now)
    entry = scheduler.cache.get(iid(1))
    assert entry.record.status == 'ok' and entry.failures == 0
    assert entry.expires_at > clock.now + 800


def test_exception_becomes_failed_record_worker_survives(make, caplog):
    def answer(j):
        if j.instance_id == iid(1):
            raise RuntimeError('engine bug')
        return ok(j.instance_id)

    scheduler, fake = make(FakeEngine(answer))
    scheduler.lookup(job(1))
    scheduler.lookup(job(2))
    wait_idle(scheduler)
    bad = scheduler.lookup(job(1))
    assert bad.status == 'failed'
    assert bad.reason == 'internal error: RuntimeError'
    assert scheduler.cache.get(iid(1)).failures == 1
    assert scheduler.lookup(job(2)).status == 'ok'
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and iid(1) in tracebacks[0].getMessage()


@pytest.mark.parametrize('bad', [
    None,
    'ok',
    record_mod.OSRecord.pending(iid(1)),
    ok(iid(99)),
])
def test_invalid_engine_answer_becomes_failed(make, bad):
    scheduler, fake = make(FakeEngine(lambda j: bad))
    scheduler.lookup(job(1))
    wait_idle(scheduler)
    served = scheduler.lookup(job(1))
    assert served.status == 'failed' and served.instance_id == iid(1)
    assert 'invalid record' in served.reason


def test_record_carries_job_fingerprint(make):
    scheduler, fake = make(FakeEngine(lambda j: ok(j.instance_id, 'other')))
    scheduler.lookup(job(1, 'fpJ'))
    wait_idle(scheduler)
    assert scheduler.lookup(job(1, 'fpJ')).fingerprint == 'fpJ'
    assert scheduler.stats()['queued'] == 0


def test_info_line_per_inspection(make, caplog):
    caplog.set_level(logging.INFO)
    scheduler, fake = make()
    scheduler.lookup(job(1))
    wait_idle(scheduler)
    lines = [r.getMessage() for r in caplog.records
             if r.getMessage().startswith('Inspected instance')]
    assert len(lines) == 1
    assert lines[0].startswith('Inspected instance %s (inst-1): status=ok '
                               'windows win2k22 Datacenter + SQL Server '
                               'Standard in ' % iid(1))


def test_failure_keeps_serving_good_record(make, cache, clock, caplog):
    caplog.set_level(logging.INFO)
    cache.put(entry_of(ok(iid(1)), expires_at=clock.now - 1))
    scheduler, fake = make(FakeEngine(lambda j: failed(j.instance_id)))
    scheduler.lookup(job(1))
    wait_idle(scheduler)
    served = scheduler.lookup(job(1))
    assert served.status == 'ok'
    assert served.reason.startswith('carried over from the inspection of')
    assert scheduler.cache.get(iid(1)).failures == 1
    assert any('still serving the previous ok record' in r.getMessage()
               for r in caplog.records)


def test_lock_held_elsewhere_skips_then_inspects(make, cache, clock):
    scheduler, fake = make()
    other = cache_mod.RecordCache(cache.directory, clock=clock)
    with other.inspection_lock(iid(1)) as got:
        assert got
        scheduler.lookup(job(1))
        wait_idle(scheduler)
        assert fake.jobs == []
        # The other process finishes and writes its record.
        other.put(entry_of(ok(iid(1), os_edition='Standard'),
                           expires_at=clock.now + 500))
    assert scheduler.lookup(job(1)).status == 'pending'   # not refreshed
    scheduler.end_cycle([iid(1)])
    assert scheduler.lookup(job(1)).os_edition == 'Standard'
    assert fake.jobs == []


def test_worker_rechecks_cache_under_lock(make, cache, clock):
    scheduler, fake = make()
    fake.hold()
    scheduler.lookup(job(1))
    fake.wait_entered()
    scheduler.lookup(job(2))                 # queued behind job 1
    # Meanwhile another process inspects instance 2.
    cache_mod.RecordCache(cache.directory, clock=clock).put(
        entry_of(ok(iid(2)), expires_at=clock.now + 500))
    fake.release()
    wait_idle(scheduler)
    assert fake.ids() == [iid(1)]
    assert scheduler.lookup(job(2)).status == 'ok'


def test_stop_joins_and_lookups_still_serve(make, clock):
    scheduler, fake = make(settings=policy.Settings(concurrency=2))
    before = workers()
    scheduler.lookup(job(1))
    wait_idle(scheduler)
    assert len(workers()) == len(before) + 2
    fake.hold()
    clock.advance(policy.Settings.record_ttl *
                  (1 + policy.Settings.record_ttl_jitter))
    scheduler.lookup(job(1))             # REFRESH in flight
    fake.wait_entered()
    scheduler.lookup(job(2))             # in flight on the 2nd worker
    fake.wait_entered()
    scheduler.lookup(job(3))             # queued
    assert scheduler.stats()['queued'] == 1
    stopper = threading.Thread(target=scheduler.stop, kwargs={'timeout': 5})
    stopper.start()
    time.sleep(0.05)
    assert stopper.is_alive()            # waits for the inspection
    fake.release()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert workers() == before
    # In-flight work finished, queued work was dropped.
    assert sorted(fake.ids()) == [iid(1), iid(1), iid(2)]
    assert scheduler.lookup(job(1)).status == 'ok'
    assert scheduler.lookup(job(4)).status == 'pending'
    assert scheduler.stats()['queued'] == 0
    assert workers() == before


def test_stop_times_out_on_stuck_inspection(make):
    scheduler, fake = make()
    fake.hold()
    scheduler.lookup(job(1))
    fake.wait_entered()
    assert scheduler.stop(timeout=0.2) is False
    # it gave up while the inspection was still held, not after it
    assert fake.active == 1
    fake.release()


def test_stop_before_any_work(make):
    scheduler, fake = make()
    assert scheduler.stop() is True
    assert scheduler.lookup(job(1)).status == 'pending'
    assert scheduler.stats()['queued'] == 0


def test_end_cycle_summary_prune_and_drop(make, cache, clock, caplog):
    caplog.set_level(logging.INFO)
    cache.put(entry_of(ok(iid(9))).replace(last_seen=clock.now - 90000))
    scheduler, fake = make()
    fake.hold()
    for n in (1, 2, 3):
        scheduler.lookup(job(n))
    fake.wait_entered()
    scheduler.end_cycle([iid(1), iid(2)])   # 3 vanished meanwhile
    assert cache.get(iid(9)) is None         # pruned
    summary = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith('OS inspection:')]
    assert summary == ['OS inspection: 1 queued, 1 running, 0 cached']
    fake.release()
    wait_idle(scheduler)
    assert fake.ids() == [iid(1), iid(2)]
    caplog.clear()
    scheduler.end_cycle([iid(1), iid(2)])
    assert not [r for r in caplog.records
                if r.getMessage().startswith('OS inspection:')]


def test_run_now_order_progress_and_cache(make, clock):
    scheduler, fake = make(settings=policy.Settings(concurrency=3))
    calls = []
    jobs = [job(n) for n in range(1, 8)]
    records = scheduler.run_now(
        jobs, progress=lambda j, r, i, t: calls.append((j, r, i, t)))
    assert [r.instance_id for r in records] == [j.instance_id for j in jobs]
    assert all(r.status == 'ok' for r in records)
    assert [c[2] for c in calls] == list(range(1, 8))
    assert all(c[3] == 7 and c[1].instance_id == c[0].instance_id
               for c in calls)
    assert len(scheduler.cache) == 7
    assert scheduler.lookup(job(4)).status == 'ok'
    assert scheduler.stats()['queued'] == 0
    # force=False: fresh records are not inspected again.
    assert scheduler.run_now(jobs[:2], force=False) == records[:2]
    assert len(fake.jobs) == 7
    assert len(scheduler.run_now(jobs[:2])) == 2
    assert len(fake.jobs) == 9


def test_run_now_respects_concurrency(make):
    fake = FakeEngine()
    fake.answer = lambda j: (time.sleep(0.02), ok(j.instance_id))[1]
    scheduler, fake = make(fake, settings=policy.Settings(concurrency=2))
    scheduler.run_now([job(n) for n in range(6)])
    assert fake.max_active == 2


def test_run_now_waits_for_other_process(make, cache, clock):
    scheduler, fake = make(settings=policy.Settings(inspection_deadline=30))
    other = cache_mod.RecordCache(cache.directory, clock=clock)
    holding = threading.Event()

    def other_process():
        with other.inspection_lock(iid(1)):
            holding.set()
            time.sleep(0.3)
            other.put(entry_of(ok(iid(1), os_edition='Standard'),
                               expires_at=clock.now + 500))

    thread = threading.Thread(target=other_process)
    thread.start()
    assert holding.wait(WAIT)
    [record] = scheduler.run_now([job(1)])
    thread.join()
    assert record.os_edition == 'Standard'
    assert fake.jobs == []


def test_run_now_empty(make):
    scheduler, fake = make()
    assert scheduler.run_now([]) == []
    assert not [t for t in workers()
                if t.name.startswith('os-inspection-now')]


def test_lookup_never_waits_for_a_slow_disk(make, cache, monkeypatch):
    # A worker stuck in fsync (slow or hung storage) must not stall the
    # poll path: lookup touches only memory and the queue.
    cache.load()
    entered, release = threading.Event(), threading.Event()
    gave_up = threading.Event()
    real_fsync = cache_mod.os.fsync

    def stuck_fsync(fd):
        entered.set()
        if not release.wait(WAIT):
            gave_up.set()
        return real_fsync(fd)

    monkeypatch.setattr(cache_mod.os, 'fsync', stuck_fsync)
    scheduler, fake = make()
    scheduler.lookup(job(1))
    assert entered.wait(WAIT)
    for _ in range(100):
        assert scheduler.lookup(job(1)).status == 'pending'
        assert scheduler.lookup(job(2)).status == 'pending'
    assert scheduler.stats()['running'] == 1
    # the lookups all returned while the fsync was still stuck
    assert not gave_up.is_set()
    release.set()
    wait_idle(scheduler)
    assert scheduler.lookup(job(1)).status == 'ok'


def test_arrival_is_inspected_before_backlog_and_due_records(make, cache,
                                                             clock):
    for n in (10, 11):
        cache.put(entry_of(ok(iid(n)), expires_at=clock.now - 1))
    scheduler, fake = make()
    fake.hold()
    scheduler.lookup(job(1))            # first cycle: taken at once
    fake.wait_entered()
    for n in (2, 3, 10, 11):            # backlog NEW, due REFRESH
        scheduler.lookup(job(n))
    scheduler.end_cycle([iid(n) for n in (1, 2, 3, 10, 11)])
    assert scheduler.lookup(job(50)).status == 'pending'   # arrived
    fake.release()
    wait_idle(scheduler)
    assert fake.ids() == [iid(1), iid(50), iid(2), iid(3), iid(10),
                          iid(11)]


def test_queue_order_is_arrived_new_invalidated_then_refresh(make, cache,
                                                             clock):
    cache.put(entry_of(ok(iid(10)), expires_at=clock.now - 1))   # due
    cache.put(entry_of(ok(iid(20), FP), expires_at=clock.now + 999))
    scheduler, fake = make()
    fake.hold()
    scheduler.lookup(job(1))            # first cycle: taken at once
    fake.wait_entered()
    # queued in the reverse of the order they are inspected in
    scheduler.lookup(job(10))                           # refresh
    scheduler.lookup(job(20, REBUILT))                  # invalidated
    scheduler.lookup(job(2))                            # new (backlog)
    scheduler.end_cycle([iid(n) for n in (1, 2, 10, 20)])
    scheduler.lookup(job(50))                           # arrived
    fake.release()
    wait_idle(scheduler)
    assert fake.ids() == [iid(1), iid(50), iid(2), iid(20), iid(10)]


def test_rebuilt_unknown_instance_is_inspected_despite_backoff(make, cache,
                                                               clock):
    cache.put(entry_of(unknown(iid(1), FP), failures=5,
                       retry_at=clock.now + 9999))
    scheduler, fake = make()
    assert scheduler.lookup(job(1, FP)).status == 'unknown'
    assert scheduler.stats()['queued'] == 0
    assert scheduler.lookup(job(1, REBUILT)).status == 'unknown'
    wait_idle(scheduler)
    assert fake.ids() == [iid(1)]
    served = scheduler.lookup(job(1, REBUILT))
    assert served.status == 'ok' and served.fingerprint == REBUILT


def test_scheduler_clamps_cache_times_to_its_horizon(cache, clock, make):
    far = clock.now + 365 * 86400
    cache.put(entry_of(ok(iid(1)), expires_at=far).replace(last_seen=far))
    make()
    entry = cache.get(iid(1))
    assert entry.expires_at == clock.now + SETTINGS.horizon
    assert entry.last_seen == clock.now


def test_result_written_after_a_write_underneath_decides_again(make, cache,
                                                               clock):
    # A writer that ignores the lock (an older version) stores a good
    # record while our inspection runs; ours then fails transiently.
    other = cache_mod.RecordCache(cache.directory, clock=clock)

    def answer(j):
        other.load()
        other.put(entry_of(ok(j.instance_id, j.fingerprint,
                              os_edition='Standard')))
        return unknown(j.instance_id, j.fingerprint)

    scheduler, fake = make(FakeEngine(answer))
    scheduler.lookup(job(1))
    wait_idle(scheduler)
    # Decided again from the file as it was: the good record the other
    # process wrote is carried over, not erased by a blind overwrite.
    served = scheduler.lookup(job(1))
    assert served.status == 'ok' and served.os_edition == 'Standard'
    assert served.reason.startswith('carried over')
    reread = cache_mod.RecordCache(cache.directory, clock=clock).get(iid(1))
    assert reread.record == served and reread.failures == 1


# -- a failing or restarted instance does not hold the queue -----------------

HOUR = 3600.0
# name, entry, job fingerprint, jumped_at (None: never), expected
AFTER_A_JUMP = [
    ('first change jumps', entry_of(ok(iid(1), FP)), RESTARTED, None,
     policy.INVALIDATED),
    ('change an hour after the last jump', entry_of(ok(iid(1), FP)),
     RESTARTED, NOW - HOUR, policy.INVALIDATED),
    ('change within the hour: with the refreshes', entry_of(ok(iid(1), FP)),
     RESTARTED, NOW - HOUR + 1, policy.REFRESH),
    ('rebuilt within the hour: with the refreshes', entry_of(
        ok(iid(1), FP)), REBUILT, NOW - 1, policy.REFRESH),
    ('failing, restarted within the hour: waits for its backoff', entry_of(
        failed(iid(1), fingerprint=FP), failures=4, retry_at=NOW + 1),
     RESTARTED, NOW - 10, None),
    ('failing, restarted within the hour, retry due', entry_of(
        failed(iid(1), fingerprint=FP), failures=4, retry_at=NOW),
     RESTARTED, NOW - 10, policy.REFRESH),
    ('failing, restarted after the hour: jumps the backoff', entry_of(
        failed(iid(1), fingerprint=FP), failures=4, retry_at=NOW + 999),
     RESTARTED, NOW - HOUR, policy.INVALIDATED),
    ('a jump dated in the future (clock set back) does not hold it',
     entry_of(unknown(iid(1), FP), failures=2, retry_at=NOW + 999),
     REBUILT, NOW + 60, policy.INVALIDATED),
    ('unchanged: the jump does not matter', entry_of(ok(iid(1), FP)), FP,
     NOW - 1, None),
]


@pytest.mark.parametrize('name, entry, fingerprint, jumped_at, expected',
                         AFTER_A_JUMP, ids=[d[0] for d in AFTER_A_JUMP])
def test_decide_after_a_jump(name, entry, fingerprint, jumped_at, expected):
    j = job(1, fingerprint)
    assert policy.decide(entry, j, NOW, True, jumped_at=jumped_at,
                         requeue_interval=HOUR) == expected


def test_zero_interval_lets_every_change_jump():
    j = job(1, RESTARTED)
    assert policy.decide(entry_of(ok(iid(1), FP)), j, NOW, True,
                         jumped_at=NOW - 1,
                         requeue_interval=0) == policy.INVALIDATED


@pytest.mark.parametrize('priority, entry, expected', [
    (policy.ARRIVED, None, (policy.ARRIVED, 0)),
    (policy.REFRESH, entry_of(ok(iid(1)), expires_at=NOW - 1),
     (policy.REFRESH, 0)),
    (policy.REFRESH, entry_of(failed(iid(1)), failures=7, retry_at=NOW),
     (policy.REFRESH, 7)),
    (policy.INVALIDATED, entry_of(unknown(iid(1)), failures=2),
     (policy.INVALIDATED, 2)),
])
def test_queue_rank(priority, entry, expected):
    assert policy.queue_rank(priority, entry) == expected


def test_queue_rank_orders_priority_before_failures():
    assert (policy.queue_rank(policy.INVALIDATED, entry_of(
        failed(iid(1)), failures=9)) < policy.queue_rank(
            policy.REFRESH, None))


@pytest.mark.parametrize('duration, deadline, expected_delays', [
    # quick failures: the usual doubling
    (0.5, 500, [100, 200, 400, 800, 1000]),
    # every try runs into a 500 s deadline: never retried sooner
    (500, 500, [500, 500, 500, 800, 1000]),
    # a duration beyond the deadline (kill grace) counts as the deadline
    (9999, 500, [500, 500, 500, 800, 1000]),
])
def test_retry_never_sooner_than_the_failure_took(duration, deadline,
                                                  expected_delays):
    settings = dataclasses.replace(SETTINGS, inspection_deadline=deadline)
    previous, delays = None, []
    for _ in expected_delays:
        result = failed(iid(1)).replace(duration=duration)
        previous = policy.next_entry(previous, result, NOW, settings, 0.5)
        delays.append(previous.retry_at - NOW)
    assert delays == expected_delays
    assert max(delays) <= settings.horizon


def test_repeatedly_failing_instance_waits_behind_the_others(make, cache,
                                                             clock):
    # All due at the same priority (REFRESH), queued most-failing first.
    cache.put(entry_of(failed(iid(10)), failures=6,
                       retry_at=clock.now - 1))
    cache.put(entry_of(unknown(iid(11)), failures=2,
                       retry_at=clock.now - 1))
    cache.put(entry_of(ok(iid(12)), expires_at=clock.now - 1))
    cache.put(entry_of(failed(iid(13)), failures=6,
                       retry_at=clock.now - 1))
    scheduler, fake = make()
    fake.hold()
    scheduler.lookup(job(1))            # takes the only slot
    fake.wait_entered()
    for n in (10, 11, 12, 13):
        scheduler.lookup(job(n))
    fake.release()
    wait_idle(scheduler)
    assert fake.ids() == [iid(1), iid(12), iid(11), iid(10), iid(13)]


def test_restart_loop_jumps_the_queue_once_an_hour(make, cache, clock):
    cache.put(entry_of(ok(iid(5), 'run1'), expires_at=clock.now + 9999))
    scheduler, fake = make()
    settings = scheduler.settings
    assert settings.changed_requeue_interval == HOUR

    def restart_while_busy(fingerprint, expired):
        """Restart instance 5 while the slot is busy and instance
        ``expired`` waits for its refresh: the inspection order."""
        cache.put(entry_of(ok(iid(expired)), expires_at=clock.now - 1))
        fake.jobs.clear()
        fake.hold()
        scheduler.lookup(job(1, 'busy-%s' % fingerprint))
        fake.wait_entered()
        scheduler.lookup(job(expired))
        served = scheduler.lookup(job(5, fingerprint))
        fake.release()
        wait_idle(scheduler)
        return served, fake.ids()

    scheduler.lookup(job(1))
    wait_idle(scheduler)
    # First restart: ahead of the refresh, the old record served.
    served, order = restart_while_busy('run2', 20)
    assert served.fingerprint == 'run1'
    assert order == [iid(1), iid(5), iid(20)]
    # Restarted again ten minutes later: behind the refresh.
    clock.advance(600)
    served, order = restart_while_busy('run3', 21)
    assert served.fingerprint == 'run2'
    assert order == [iid(1), iid(21), iid(5)]
    # An hour after the first jump it jumps again.
    clock.advance(HOUR - 600)
    served, order = restart_while_busy('run4', 22)
    assert order == [iid(1), iid(5), iid(22)]
    assert scheduler.lookup(job(5, 'run4')).fingerprint == 'run4'


def test_failing_instance_restarted_in_a_loop_keeps_its_backoff(make,
                                                                clock):
    scheduler, fake = make(FakeEngine(
        lambda j: failed(j.instance_id, fingerprint=j.fingerprint)))
    scheduler.lookup(job(1, 'run1'))
    wait_idle(scheduler)
    clock.advance(10)
    scheduler.lookup(job(1, 'run2'))    # first restart: at once
    wait_idle(scheduler)
    assert len(fake.jobs) == 2
    entry = scheduler.cache.get(iid(1))
    assert entry.failures == 2 and entry.retry_at == clock.now + 200
    for n in range(3, 8):               # restarts every 30 s
        clock.advance(30)
        assert scheduler.lookup(job(1, 'run%d' % n)).status == 'failed'
        assert scheduler.stats()['queued'] == 0
    assert len(fake.jobs) == 2
    clock.advance(200 - 5 * 30)         # the backoff is over
    scheduler.lookup(job(1, 'run8'))
    wait_idle(scheduler)
    assert [j.fingerprint for j in fake.jobs] == ['run1', 'run2', 'run8']


def test_end_cycle_forgets_the_jumps_of_gone_instances(make, cache, clock):
    cache.put(entry_of(ok(iid(5), 'run1')))
    scheduler, fake = make()
    scheduler.lookup(job(5, 'run2'))
    wait_idle(scheduler)
    assert scheduler._jumped == {iid(5): clock.now}
    scheduler.end_cycle([iid(1)])
    assert scheduler._jumped == {}
