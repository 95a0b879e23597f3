"""RecordCache (cache.py and what is mixed into it: cache_write.py,
cache_prune.py; its files: cache_files.py): file format, memory
mirror, degradation, locks, pruning."""

import errno
import json
import logging
import os
import stat
import time

import pytest

from ceilometer_os_pollster.agent import cache as cache_mod
from ceilometer_os_pollster.agent import cache_dir as cache_dir_mod
from ceilometer_os_pollster.agent import cache_files
from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster.agent import cache_prune
from ceilometer_os_pollster import record as record_mod
from tests.helpers import FakeClock
from tests.helpers import INSTANCE_ID
from tests.helpers import entry
from tests.helpers import ok_record

ID_A = INSTANCE_ID
ID_B = '0b1c2d3e-0000-4000-8000-00000000000b'


def valid_doc(instance_id=ID_A):
    return json.loads(cache_format.encode_entry(entry(instance_id, 5.0)))


def records_in(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith('.json'))


def errors(caplog):
    return [r for r in caplog.records if r.levelno == logging.ERROR]


def warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / 'records')


# -- pure helpers --------------------------------------------------------

@pytest.mark.parametrize('instance_id, valid', [
    (ID_A, True),
    ('instance-0000001a', True),
    ('A' * 64, True),
    ('A' * 65, False),
    ('', False),
    ('-leading-dash', False),
    ('../etc/passwd', False),
    ('a/b', False),
    ('a.json', False),
    ('.locks', False),
    ('id with space', False),
    ('id\n', False),
    ('caf\u00e9', False),
    (None, False),
    (42, False),
])
def test_valid_instance_id(instance_id, valid):
    assert cache_format.valid_instance_id(instance_id) is valid


def test_encode_decode_round_trip():
    original = cache_format.Entry(
        record=ok_record(os_product_name='Windows Server 2022 \u00e9'),
        expires_at=123.5, failures=2, retry_at=99.0, last_seen=7.0)
    data = cache_format.encode_entry(original)
    assert json.loads(data)['schema'] == record_mod.SCHEMA_VERSION
    assert cache_format.decode_entry(data, ID_A) == original


def _mutated(change):
    doc = valid_doc()
    change(doc)
    return json.dumps(doc).encode()


BAD_FILES = [
    ('empty', b''),
    ('not json', b'{"schema": 1, "rec'),
    ('truncated', cache_format.encode_entry(entry())[:-7]),
    ('not utf-8', b'\xff\xfe{}'),
    ('a list', b'[1, 2]'),
    ('deep nesting', b'[' * 60000),
    ('too large', b' ' * (cache_format.MAX_FILE_BYTES + 1)),
    ('other schema', _mutated(lambda d: d.update(schema=99))),
    ('schema as bool', _mutated(lambda d: d.update(schema=True))),
    ('schema as string', _mutated(lambda d: d.update(schema='1'))),
    ('missing key', _mutated(lambda d: d.pop('retry_at'))),
    ('extra key', _mutated(lambda d: d.update(owner='x'))),
    ('time as string', _mutated(lambda d: d.update(expires_at='soon'))),
    ('time as bool', _mutated(lambda d: d.update(last_seen=True))),
    ('failures negative', _mutated(lambda d: d.update(failures=-1))),
    ('failures float', _mutated(lambda d: d.update(failures=1.5))),
    ('NaN time', json.dumps(dict(valid_doc(), retry_at=float('nan')))
     .encode()),
    ('record not object', _mutated(lambda d: d.update(record='ok'))),
    ('record unknown field',
     _mutated(lambda d: d['record'].update(colour='red'))),
    ('record bad status',
     _mutated(lambda d: d['record'].update(status='great'))),
    ('record bad type',
     _mutated(lambda d: d['record'].update(os_version_major='10'))),
    ('record of another instance',
     _mutated(lambda d: d['record'].update(instance_id=ID_B))),
    ('pending record',
     _mutated(lambda d: d['record'].update(status='pending'))),
]


@pytest.mark.parametrize('name, data', BAD_FILES,
                         ids=[n for n, _ in BAD_FILES])
def test_decode_rejects(name, data):
    with pytest.raises(ValueError):
        cache_format.decode_entry(data, ID_A)


@pytest.mark.parametrize('times, horizon, expected', [
    # (expires_at, retry_at, last_seen), read at now = 1000
    ((5000.0, 5000.0, 5000.0), 100.0, (1100.0, 1100.0, 1000.0)),
    ((-5.0, -1.0, -3.0), 100.0, (0.0, 0.0, 0.0)),
    ((5000.0, 50.0, 5000.0), None, (5000.0, 50.0, 1000.0)),
    ((1050.0, 900.0, 999.0), 100.0, (1050.0, 900.0, 999.0)),
])
def test_times_read_back_are_clamped(times, horizon, expected):
    expires_at, retry_at, last_seen = times
    read = entry().replace(expires_at=expires_at, retry_at=retry_at,
                           last_seen=last_seen)
    clamped = cache_format.clamp(read, 1000.0, horizon)
    assert (clamped.expires_at, clamped.retry_at,
            clamped.last_seen) == expected


def test_read_back_cleans_the_record_and_dates_it_by_its_file():
    written = entry(last_seen=5.0, os_product_name='Windows\u202e Server')
    read = cache_format.read_back(written, 20.0)
    assert read.record.os_product_name == 'Windows Server'
    assert read.last_seen == 20.0
    assert cache_format.read_back(written, 1.0).last_seen == 5.0


# -- memory mirror ---------------------------------------------------------

def test_construction_touches_nothing(cache_dir, clock):
    cache_mod.RecordCache(cache_dir, clock=clock)
    assert not os.path.exists(cache_dir)


def test_put_then_get_and_reload_in_new_instance(cache_dir, clock):
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    stored = entry(last_seen=clock.now)
    cache.put(stored)
    assert cache.get(ID_A) == stored
    assert os.path.isfile(os.path.join(cache_dir, ID_A + '.json'))
    assert [n for n in os.listdir(cache_dir) if n.endswith('.tmp')] == []
    again = cache_mod.RecordCache(cache_dir, clock=clock)
    assert again.get(ID_A).record == stored.record
    assert again.get(ID_B) is None
    assert len(again) == 1
    assert [e.instance_id for e in again.entries()] == [ID_A]


def test_get_does_no_file_io_after_load(cache_dir, clock):
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    cache.put(entry(last_seen=clock.now))
    cache.load()

    def forbidden(*args, **kwargs):
        raise AssertionError('file I/O on the poll path')

    # Patched by hand and restored at once: os is global, pytest itself
    # needs it between test phases.
    names = ('open', 'stat', 'lstat', 'scandir', 'listdir', 'fstat',
             'read')
    saved = {name: getattr(os, name) for name in names}
    for name in names:
        setattr(os, name, forbidden)
    try:
        hit = cache.get(ID_A)
        miss = cache.get(ID_B)
    finally:
        for name, value in saved.items():
            setattr(os, name, value)
    assert hit.record.os_info == 'win2k22'
    assert miss is None


def test_refresh_rereads_only_changed_files(cache_dir, clock, monkeypatch):
    writer = cache_mod.RecordCache(cache_dir, clock=clock)
    writer.put(entry(ID_A, last_seen=clock.now))
    writer.put(entry(ID_B, last_seen=clock.now))
    reader = cache_mod.RecordCache(cache_dir, clock=clock)
    reader.load()
    read = []
    original = reader._read_file
    monkeypatch.setattr(reader, '_read_file',
                        lambda h, i, s: read.append(i) or original(h, i, s))
    reader.refresh()
    assert read == []
    writer.put(entry(ID_B, last_seen=clock.now, os_edition='Standard'))
    reader.refresh()
    assert read == [ID_B]
    assert reader.get(ID_B).record.os_edition == 'Standard'


def test_refresh_drops_records_deleted_elsewhere(cache_dir, clock):
    writer = cache_mod.RecordCache(cache_dir, clock=clock)
    writer.put(entry(ID_A, last_seen=clock.now))
    reader = cache_mod.RecordCache(cache_dir, clock=clock)
    assert reader.get(ID_A) is not None
    assert writer.forget(ID_A) is True
    reader.refresh()
    assert reader.get(ID_A) is None


@pytest.mark.parametrize('name, data', BAD_FILES[:12],
                         ids=[n for n, _ in BAD_FILES[:12]])
def test_bad_file_is_a_miss_logged_once(cache_dir, clock, caplog, name,
                                        data):
    os.makedirs(cache_dir)
    path = os.path.join(cache_dir, ID_A + '.json')
    with open(path, 'wb') as f:
        f.write(data)
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    assert cache.get(ID_A) is None
    cache.refresh()
    cache.refresh()
    assert cache.reload(ID_A) is None
    logged = [r for r in warnings(caplog) if path in r.getMessage()]
    assert len(logged) == 1
    # Fixed by a later write: visible again.
    cache_mod.RecordCache(cache_dir, clock=clock).put(
        entry(last_seen=clock.now))
    cache.refresh()
    assert cache.get(ID_A).record.os_info == 'win2k22'


def test_unreadable_entries_in_directory_are_ignored(cache_dir, clock):
    os.makedirs(os.path.join(cache_dir, ID_B + '.json'))   # a directory
    os.symlink('/etc/hostname', os.path.join(cache_dir, ID_A + '.json'))
    for name in ('notes.txt', 'bad id.json', '.hidden.json'):
        with open(os.path.join(cache_dir, name), 'w') as f:
            f.write('{}')
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    assert cache.load() == 0
    assert cache.get(ID_A) is None and cache.get(ID_B) is None


def test_stale_temp_files_removed_young_ones_kept(cache_dir, clock):
    os.makedirs(cache_dir)
    old = os.path.join(cache_dir, '.%s.abc.tmp' % ID_A)
    young = os.path.join(cache_dir, '.%s.def.tmp' % ID_B)
    for path in (old, young):
        with open(path, 'w') as f:
            f.write('{"schema": 1, "rec')
    long_ago = time.time() - cache_files.STALE_TEMP_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    assert cache.load() == 0
    assert not os.path.exists(old)
    assert os.path.exists(young)


def test_put_rejects_pending_and_non_entries(cache_dir, clock):
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    with pytest.raises(ValueError):
        cache.put(cache_format.Entry(record=record_mod.OSRecord.pending(ID_A)))
    with pytest.raises(TypeError):
        cache.put(ok_record())


def test_invalid_id_kept_in_memory_only(cache_dir, clock, caplog):
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    bad = entry('../../etc/x', last_seen=clock.now)
    cache.put(bad)
    cache.put(bad)
    assert cache.get('../../etc/x') == bad
    assert os.listdir(cache_dir) == []
    assert len(warnings(caplog)) == 1
    with cache.inspection_lock('../../etc/x') as locked:
        assert locked is True
    assert os.listdir(cache_dir) == []


# -- degradation ----------------------------------------------------------

def test_directory_blocked_by_file_degrades_then_recovers(tmp_path, clock,
                                                          caplog):
    # Root ignores permission bits, so an unwritable directory is
    # simulated by a regular file where the directory should be
    # (a real EEXIST/ENOTDIR from the kernel).
    caplog.set_level(logging.INFO)
    path = tmp_path / 'records'
    path.write_text('not a directory')
    cache = cache_mod.RecordCache(str(path), clock=clock, disk_retry=600)
    cache.put(entry(ID_A, last_seen=clock.now))
    cache.put(entry(ID_B, last_seen=clock.now))
    assert cache.get(ID_A) is not None and cache.get(ID_B) is not None
    assert cache.persistent is False
    logged = errors(caplog)
    assert len(logged) == 1
    assert str(path) in logged[0].getMessage()
    assert '[os_inspection] cache_dir' in logged[0].getMessage()
    with cache.inspection_lock(ID_A) as locked:
        assert locked is True
        with cache.inspection_lock(ID_A) as again:
            assert again is False
    # Fixed, but no retry before disk_retry has passed.
    path.unlink()
    clock.advance(10)
    cache.put(entry(ID_A, last_seen=clock.now, os_edition='Standard'))
    assert not path.exists()
    clock.advance(600)
    cache.put(entry(ID_A, last_seen=clock.now, os_edition='Standard'))
    assert cache.persistent is True
    assert records_in(path) == sorted([ID_A + '.json', ID_B + '.json'])
    assert any('writable again' in r.getMessage() for r in caplog.records)
    assert len(errors(caplog)) == 1
    reread = cache_mod.RecordCache(str(path), clock=clock)
    assert reread.get(ID_A).record.os_edition == 'Standard'
    assert reread.get(ID_B) is not None


@pytest.mark.parametrize('code', [errno.ENOSPC, errno.EROFS, errno.EACCES,
                                  errno.EDQUOT])
def test_write_errors_degrade_with_one_error(cache_dir, clock, caplog,
                                             monkeypatch, code):
    # Injected: the kernel errors themselves are exercised for real in
    # tests/functional/test_cache_processes.py.
    cache = cache_mod.RecordCache(cache_dir, clock=clock, disk_retry=600)
    cache.put(entry(ID_A, last_seen=clock.now))
    real_write = os.write

    def failing_write(fd, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(cache_files.os, 'write', failing_write)
    for _ in range(3):
        cache.put(entry(ID_B, last_seen=clock.now))
    assert cache.get(ID_B) is not None
    assert len(errors(caplog)) == 1
    assert os.strerror(code) in errors(caplog)[0].getMessage()
    assert os.listdir(cache_dir) == [ID_A + '.json']
    clock.advance(601)
    monkeypatch.setattr(cache_files.os, 'write', real_write)
    cache.put(entry(ID_A, last_seen=clock.now))
    assert records_in(cache_dir) == sorted([ID_A + '.json',
                                            ID_B + '.json'])


# -- locks ------------------------------------------------------------------

def test_inspection_lock_is_exclusive_and_released(cache_dir, clock):
    one = cache_mod.RecordCache(cache_dir, clock=clock)
    other = cache_mod.RecordCache(cache_dir, clock=clock)
    with one.inspection_lock(ID_A) as got:
        assert got is True
        with one.inspection_lock(ID_A) as same_cache:
            assert same_cache is False
        # Separate open file descriptions conflict like processes do.
        with other.inspection_lock(ID_A) as other_cache:
            assert other_cache is False
        with other.inspection_lock(ID_B) as other_id:
            assert other_id is True
    with other.inspection_lock(ID_A) as after:
        assert after is True
    assert os.path.exists(os.path.join(cache_dir, '.locks', ID_A + '.lock'))


def test_lock_released_when_body_raises(cache_dir, clock):
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    with pytest.raises(RuntimeError):
        with cache.inspection_lock(ID_A) as got:
            assert got is True
            raise RuntimeError('boom')
    with cache.inspection_lock(ID_A) as again:
        assert again is True


# -- forgetting ---------------------------------------------------------------

def test_forget_and_forget_all(cache_dir, clock):
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    cache.put(entry(ID_A, last_seen=clock.now))
    cache.put(entry(ID_B, last_seen=clock.now))
    with cache.inspection_lock(ID_A):
        pass
    assert cache.forget(ID_A) is True
    assert cache.forget(ID_A) is False
    assert cache.get(ID_A) is None
    assert not os.path.exists(os.path.join(cache_dir, ID_A + '.json'))
    assert not os.path.exists(os.path.join(cache_dir, '.locks',
                                           ID_A + '.lock'))
    # A file written by someone else and not loaded yet is forgotten too.
    cache_mod.RecordCache(cache_dir, clock=clock).put(
        entry(ID_A, last_seen=clock.now))
    assert cache.forget_all() == 2
    assert len(cache) == 0
    assert [n for n in os.listdir(cache_dir) if n.endswith('.json')] == []


def test_forget_keeps_lock_file_of_running_inspection(cache_dir, clock):
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    cache.put(entry(ID_A, last_seen=clock.now))
    other = cache_mod.RecordCache(cache_dir, clock=clock)
    with other.inspection_lock(ID_A) as got:
        assert got is True
        cache.forget(ID_A)
        with cache.inspection_lock(ID_A) as second:
            assert second is False


FORGET = 86400.0


def test_prune_grace_period_and_deletion(cache_dir, clock, caplog):
    caplog.set_level(logging.INFO)
    cache = cache_mod.RecordCache(cache_dir, clock=clock,
                                  forget_after=FORGET)
    cache.put(entry(ID_A, last_seen=clock.now))
    cache.put(entry(ID_B, last_seen=clock.now))
    clock.advance(FORGET - 1)
    assert cache.prune([ID_A]) == 0
    assert cache.get(ID_A).last_seen == clock.now
    assert cache.get(ID_B) is not None
    clock.advance(1)
    assert cache.prune([ID_A]) == 1
    assert cache.get(ID_B) is None
    assert not os.path.exists(os.path.join(cache_dir, ID_B + '.json'))
    assert cache.get(ID_A) is not None
    assert any(ID_B in r.getMessage() and 'Forgetting' in r.getMessage()
               for r in caplog.records)


def test_prune_survives_restart(cache_dir, clock):
    # The agent sees ID_A for days, then restarts: its persisted
    # last_seen must keep the record although the last inspection
    # (the last full write) is older than forget_after.
    cache = cache_mod.RecordCache(cache_dir, clock=clock,
                                  forget_after=FORGET)
    cache.put(entry(ID_A, last_seen=clock.now))
    cache.put(entry(ID_B, last_seen=clock.now))
    for _ in range(12):
        clock.advance(FORGET / 4)
        cache.prune([ID_A])
    restarted = cache_mod.RecordCache(cache_dir, clock=clock,
                                      forget_after=FORGET)
    assert restarted.get(ID_B) is None   # gone for three days
    seen = restarted.get(ID_A).last_seen
    assert clock.now - seen <= FORGET / 4
    # A restart after a long outage: instances not listed yet are only
    # deleted once forget_after has passed since they were last seen.
    clock.advance(FORGET - (clock.now - seen) - 5)
    assert restarted.prune([]) == 0
    assert restarted.get(ID_A) is not None
    clock.advance(10)
    assert restarted.prune([]) == 1


def test_prune_respects_newer_write_by_other_process(cache_dir, clock):
    cache = cache_mod.RecordCache(cache_dir, clock=clock,
                                  forget_after=FORGET)
    cache.put(entry(ID_A, last_seen=clock.now))
    clock.advance(FORGET + 5)
    # The CLI inspected it a moment ago; we have not refreshed yet.
    cache_mod.RecordCache(cache_dir, clock=clock).put(
        entry(ID_A, last_seen=clock.now))
    assert cache.prune([]) == 0
    assert cache.get(ID_A) is not None
    assert os.path.exists(os.path.join(cache_dir, ID_A + '.json'))


def test_prune_spreads_last_seen_writes(cache_dir, clock):
    cache = cache_mod.RecordCache(cache_dir, clock=clock,
                                  forget_after=FORGET)
    ids = ['%08d-0000-4000-8000-000000000000' % n for n in range(20)]
    for instance_id in ids:
        cache.put(entry(instance_id, last_seen=clock.now))
    clock.advance(FORGET / 4)

    def persisted_seen():
        seen = []
        for instance_id in ids:
            path = os.path.join(cache_dir, instance_id + '.json')
            with open(path, 'rb') as f:
                seen.append(cache_format.decode_entry(f.read(), instance_id)
                            .last_seen)
        return seen

    written = []
    for _ in range(3):
        cache.prune(ids)
        written.append(persisted_seen().count(clock.now))
    limit = cache_prune.MAX_SEEN_WRITES
    assert written == [limit, 2 * limit, 20]


needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason='needs root to chown')


@needs_root
def test_root_refuses_an_agent_directory_and_chowns_nothing(cache_dir,
                                                            clock, caplog):
    # Before issue 22 root wrote there and chowned what it made to the
    # agent: a step from the agent's user toward root.
    os.makedirs(cache_dir)
    os.chown(cache_dir, 4242, 4343)
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    cache.put(entry(ID_A, last_seen=clock.now))
    with cache.inspection_lock(ID_A) as got:
        assert got is True          # in-process only
    assert cache.get(ID_A) is not None
    assert cache.persistent is False
    assert os.listdir(cache_dir) == []
    logged = errors(caplog)
    assert len(logged) == 1
    assert '%s is owned by uid 4242, not root' % cache_dir in (
        logged[0].getMessage())
    st = os.stat(cache_dir)
    assert (st.st_uid, st.st_gid) == (4242, 4343)


# -- writes racing other processes ----------------------------------------

def test_put_refuses_to_overwrite_a_file_changed_underneath(cache_dir,
                                                            clock):
    ours = cache_mod.RecordCache(cache_dir, clock=clock)
    other = cache_mod.RecordCache(cache_dir, clock=clock)
    ours.put(entry(ID_A, last_seen=clock.now))
    other.load()
    other.put(entry(ID_A, last_seen=clock.now, os_edition='Standard'))
    # Ours still knows the first file: the write is refused, and the
    # other process's record is what ours sees from now on.
    assert ours.put(entry(ID_A, last_seen=clock.now,
                          os_edition='Web')) is False
    assert ours.get(ID_A).record.os_edition == 'Standard'
    assert cache_mod.RecordCache(cache_dir, clock=clock).get(
        ID_A).record.os_edition == 'Standard'
    assert ours.put(entry(ID_A, last_seen=clock.now,
                          os_edition='Web')) is True


def test_put_refuses_to_resurrect_a_file_removed_underneath(cache_dir,
                                                            clock):
    ours = cache_mod.RecordCache(cache_dir, clock=clock)
    ours.put(entry(ID_A, last_seen=clock.now))
    cache_mod.RecordCache(cache_dir, clock=clock).forget(ID_A)
    assert ours.put(entry(ID_A, last_seen=clock.now)) is False
    assert ours.get(ID_A) is None


def test_last_seen_write_keeps_a_record_written_by_another_process(
        cache_dir, clock):
    ours = cache_mod.RecordCache(cache_dir, clock=clock,
                                 forget_after=FORGET)
    ours.put(entry(ID_A, last_seen=clock.now))
    clock.advance(FORGET / 2)
    cli = cache_mod.RecordCache(cache_dir, clock=clock)
    cli.put(entry(ID_A, last_seen=clock.now - 50, os_edition='Standard'))
    ours.prune([ID_A])                  # rewrites last_seen
    reread = cache_mod.RecordCache(cache_dir, clock=clock).get(ID_A)
    assert reread.record.os_edition == 'Standard'
    assert reread.last_seen == clock.now


def test_prune_writes_nothing_for_an_instance_being_inspected(cache_dir,
                                                              clock):
    ours = cache_mod.RecordCache(cache_dir, clock=clock,
                                 forget_after=FORGET)
    ours.put(entry(ID_A, last_seen=clock.now))
    ours.put(entry(ID_B, last_seen=clock.now))
    path = os.path.join(cache_dir, ID_A + '.json')
    before = os.stat(path).st_ino
    other = cache_mod.RecordCache(cache_dir, clock=clock)
    clock.advance(FORGET + 1)
    with other.inspection_lock(ID_A) as locked, \
            other.inspection_lock(ID_B) as locked_b:
        assert locked and locked_b
        assert ours.prune([ID_A]) == 0          # B is not deleted either
        assert os.stat(path).st_ino == before   # no last_seen rewrite
        assert os.path.exists(os.path.join(cache_dir, ID_B + '.json'))
    assert ours.prune([ID_A]) == 1


def test_forget_removes_its_lock_file(cache_dir, clock):
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    cache.put(entry(ID_A, last_seen=clock.now))
    with cache.inspection_lock(ID_A) as locked:
        assert locked
    lock = os.path.join(cache_dir, cache_format.LOCK_DIR, ID_A + '.lock')
    assert os.path.exists(lock)
    assert cache.forget(ID_A) is True
    assert not os.path.exists(lock)


# -- what comes back from disk ---------------------------------------------

def _write_doc(cache_dir, doc, instance_id=ID_A):
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, instance_id + '.json'), 'w') as f:
        json.dump(doc, f)


@pytest.mark.parametrize('field, value', [
    ('expires_at', 365 * 86400.0),
    ('retry_at', 365 * 86400.0),
    ('expires_at', -5.0),
])
def test_times_read_back_are_clamped_to_the_horizon(cache_dir, clock,
                                                    field, value):
    doc = valid_doc()
    doc[field] = clock.now + value
    _write_doc(cache_dir, doc)
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    cache.set_horizon(1000)
    got = getattr(cache.get(ID_A), field)
    assert 0 <= got <= clock.now + 1000
    if value > 0:
        assert got == clock.now + 1000


def test_last_seen_in_the_future_is_clamped_to_now(cache_dir, clock):
    doc = valid_doc()
    doc['last_seen'] = clock.now + 365 * 86400
    _write_doc(cache_dir, doc)
    cache = cache_mod.RecordCache(cache_dir, clock=clock,
                                  forget_after=FORGET)
    assert cache.get(ID_A).last_seen == clock.now
    clock.advance(FORGET)
    assert cache.prune([]) == 1     # a gone instance is still forgotten


@pytest.mark.parametrize('field, value, expected', [
    ('os_product_name', 'Windows\u202e Server\x1b[31m 2022\n',
     'Windows Server 2022'),
    ('os_edition', 'Data\u200bcenter', 'Datacenter'),
    ('os_distro', 'rhel; rm -rf', 'rhelrm-rf'),
    ('os_family', '', 'unknown'),
    ('reason', 'x' * 1000, 'x' * 200),
    ('os_version_major', 10 ** 9, 0),
    ('inspected_at', 'yesterday', ''),
    ('fingerprint', '../../etc', ''),
])
def test_records_read_back_are_cleaned_like_guest_data(cache_dir, clock,
                                                       field, value,
                                                       expected):
    doc = valid_doc()
    doc['record'][field] = value
    _write_doc(cache_dir, doc)
    got = cache_mod.RecordCache(cache_dir, clock=clock).get(ID_A).record
    assert getattr(got, field) == expected
    assert got.replace(**{field: expected}) == ok_record().replace(
        **{field: expected})


def test_a_clean_record_reads_back_unchanged(cache_dir, clock):
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    stored = entry(last_seen=clock.now,
                   os_product_name='Windows Server 2022 Datacenter',
                   reason='2 operating systems found, reporting /dev/sda2')
    cache.put(stored)
    again = cache_mod.RecordCache(cache_dir, clock=clock).get(ID_A)
    assert again.record == stored.record


# -- what root trusts (issue 22) -----------------------------------------

DIR = stat.S_IFDIR


@pytest.mark.parametrize('uid, mode, sticky_ok, owner, reason', [
    (0, DIR | 0o755, False, None, None),
    (0, DIR | 0o750, False, None, None),
    (0, DIR | 0o700, True, None, None),
    (0, DIR | 0o1777, True, None, None),        # /tmp as a parent
    (0, DIR | 0o1775, True, None, None),
    (0, DIR | 0o1777, False, None,              # ... but not as cache_dir
     'is writable by its group and others (mode 1777)'),
    (0, DIR | 0o775, True, None,                # not sticky
     'is writable by its group (mode 0775)'),
    (0, DIR | 0o757, False, None, 'is writable by others (mode 0757)'),
    (1000, DIR | 0o755, False, None, 'is owned by uid 1000, not root'),
    (65534, DIR | 0o700, True, 'nobody',
     'is owned by nobody (uid 65534), not root'),
    (0, stat.S_IFLNK | 0o777, True, None, 'is not a directory'),
    (0, stat.S_IFREG | 0o644, False, None, 'is not a directory'),
])
def test_root_refusal(uid, mode, sticky_ok, owner, reason):
    assert cache_format.root_refusal(uid, mode, sticky_ok, owner) == reason


def make_dirs(base, *names, mode=0o755, uid=0):
    path = str(base)
    for name in names:
        path = os.path.join(path, name)
        os.mkdir(path)
        os.chmod(path, mode)
        os.chown(path, uid, uid)
    return path


def refusal(path, **kwargs):
    with pytest.raises(cache_dir_mod.Refused) as caught:
        cache_dir_mod.open_dir(path, **kwargs)
    return str(caught.value)


@needs_root
def test_root_walk_refuses_what_another_user_can_change(tmp_path):
    base = make_dirs(tmp_path, 'base')
    owned = make_dirs(base, 'agent', uid=4242)
    assert refusal(os.path.join(owned, 'records'), create=True) == (
        '%s is owned by uid 4242, not root' % owned)
    assert not os.path.exists(os.path.join(owned, 'records'))
    shared = make_dirs(base, 'shared', mode=0o775)
    assert refusal(os.path.join(shared, 'records'), create=True) == (
        '%s is writable by its group (mode 0775)' % shared)
    # A sticky root directory is a fine parent, not a fine cache_dir.
    sticky = make_dirs(base, 'sticky', mode=0o1777)
    good = cache_dir_mod.open_dir(os.path.join(sticky, 'records'),
                                  create=True)
    good.close()
    assert refusal(sticky) == (
        '%s is writable by its group and others (mode 1777)' % sticky)


@needs_root
def test_root_walk_refuses_symbolic_links_anywhere(tmp_path):
    base = make_dirs(tmp_path, 'base')
    real = make_dirs(base, 'real', 'records')
    os.symlink(real, os.path.join(base, 'link'))
    os.symlink(os.path.dirname(real), os.path.join(base, 'parent-link'))
    for path in (os.path.join(base, 'link'),
                 os.path.join(base, 'parent-link', 'records')):
        assert refusal(path, create=True).endswith('is a symbolic link '
                                                   '(give the path of the '
                                                   'directory itself)')
    # Followed when not root (the parents are the user's business), but
    # never as the last component.
    cache_dir_mod.open_dir(os.path.join(base, 'parent-link', 'records'),
                           as_root=False).close()
    assert 'is a symbolic link' in refusal(os.path.join(base, 'link'),
                                           as_root=False)


@needs_root
def test_root_creates_what_is_missing_with_exact_modes(tmp_path):
    base = make_dirs(tmp_path, 'base')
    path = os.path.join(base, 'a', 'b', 'records')
    old = os.umask(0o002)           # would make them group-writable
    try:
        handle = cache_dir_mod.open_dir(path, create=True)
    finally:
        os.umask(old)
    handle.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == cache_format.DIR_MODE
    for parent in (os.path.join(base, 'a'), os.path.join(base, 'a', 'b')):
        assert stat.S_IMODE(os.stat(parent).st_mode) == 0o755
    cache_dir_mod.check(path)       # passes, and again once it exists
    cache_dir_mod.check(os.path.join(base, 'missing', 'records'))


def test_read_only_cache_creates_writes_and_unlinks_nothing(cache_dir,
                                                            clock):
    missing = cache_mod.RecordCache(cache_dir, clock=clock, read_only=True)
    assert missing.load() == 0
    assert not os.path.exists(cache_dir)
    cache_mod.RecordCache(cache_dir, clock=clock).put(
        entry(ID_A, last_seen=clock.now))
    old = os.path.join(cache_dir, '.%s.abc.tmp' % ID_B)
    with open(old, 'w') as f:
        f.write('{')
    long_ago = time.time() - cache_files.STALE_TEMP_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    before = sorted(os.listdir(cache_dir))
    reader = cache_mod.RecordCache(cache_dir, clock=clock, read_only=True)
    assert reader.get(ID_A) is not None
    reader.refresh()
    for writes in (lambda: reader.put(entry(ID_B, last_seen=clock.now)),
                   lambda: reader.forget(ID_A), reader.forget_all,
                   lambda: reader.prune([]),
                   lambda: reader.inspection_lock(ID_A)):
        with pytest.raises(RuntimeError):
            writes()
    assert sorted(os.listdir(cache_dir)) == before
    assert os.path.exists(old)


def test_stale_temp_symlinks_are_left_alone(cache_dir, clock, tmp_path):
    outside = tmp_path / 'outside'
    outside.write_text('keep me')
    os.makedirs(cache_dir)
    link = os.path.join(cache_dir, '.%s.abc.tmp' % ID_A)
    os.symlink(str(outside), link)
    long_ago = time.time() - cache_files.STALE_TEMP_SECONDS - 60
    os.utime(link, (long_ago, long_ago), follow_symlinks=False)
    os.utime(str(outside), (long_ago, long_ago))
    cache_mod.RecordCache(cache_dir, clock=clock).load()
    assert os.path.islink(link)
    assert outside.read_text() == 'keep me'


def test_symlinked_lock_directory_is_not_used(cache_dir, clock, tmp_path,
                                              caplog):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    os.makedirs(cache_dir)
    os.symlink(str(elsewhere), os.path.join(cache_dir, '.locks'))
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    cache.put(entry(ID_A, last_seen=clock.now))
    with cache.inspection_lock(ID_A) as got:
        assert got is True
        with cache.inspection_lock(ID_A) as again:
            assert again is False       # still exclusive in-process
    assert cache.forget(ID_A) is True
    assert list(elsewhere.iterdir()) == []
    assert any('.locks is a symbolic link' in r.getMessage()
               for r in warnings(caplog))


def test_a_fifo_named_like_a_record_does_not_block(cache_dir, clock,
                                                   caplog):
    os.makedirs(cache_dir)
    os.mkfifo(os.path.join(cache_dir, ID_A + '.json'))
    cache = cache_mod.RecordCache(cache_dir, clock=clock)
    assert cache.load() == 0            # not a regular file: skipped
    assert cache.reload(ID_A) is None
    assert any('not a regular file' in r.getMessage()
               for r in warnings(caplog))
