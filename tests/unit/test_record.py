"""OSRecord helpers: timestamps (never local time), re-cleaning and the
one-line summary."""

import dataclasses
import datetime
import time

import pytest

from ceilometer_os_pollster import record
from tests.helpers import ok_record

UTC = datetime.timezone.utc
UUID = '6d3f0c2e-0000-4000-8000-000000000001'


@pytest.fixture
def far_from_utc(monkeypatch):
    """The host's local time is UTC+05:30, so a mix-up shows."""
    monkeypatch.setenv('TZ', 'Asia/Kolkata')
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize('moment, expected', [
    # naive: UTC, as oslo.utils' utcnow() makes them
    (datetime.datetime(2026, 11, 30, 12, 0, 0), '2026-11-30T12:00:00Z'),
    (datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC),
     '2026-11-30T12:00:00Z'),
    (datetime.datetime(2026, 11, 30, 17, 30, 0, tzinfo=datetime.timezone(
        datetime.timedelta(hours=5, minutes=30))), '2026-11-30T12:00:00Z'),
    (datetime.datetime(2026, 1, 1, 0, 0, 0, 999999),
     '2026-01-01T00:00:00Z'),
])
def test_utc_timestamp_never_reads_local_time(far_from_utc, moment,
                                              expected):
    assert record.utc_timestamp(moment) == expected


def test_utc_timestamp_now_is_utc(far_from_utc):
    before = datetime.datetime.now(UTC).replace(microsecond=0)
    stamp = record.utc_timestamp()
    after = datetime.datetime.now(UTC)
    parsed = datetime.datetime.fromtimestamp(record.parse_timestamp(stamp),
                                             UTC)
    assert before <= parsed <= after


@pytest.mark.parametrize('text, expected', [
    ('2026-11-30T12:00:00Z', datetime.datetime(
        2026, 11, 30, 12, tzinfo=UTC).timestamp()),
    ('1970-01-01T00:00:00Z', 0.0),
    ('2026-13-30T12:00:00Z', None),
    ('2026-11-30T12:00:00', None),
    ('2026-11-30T12:00:00+05:30', None),
    (' 2026-11-30T12:00:00Z', None),
    ('', None),
    (None, None),
    (12345, None),
])
def test_parse_timestamp(far_from_utc, text, expected):
    assert record.parse_timestamp(text) == expected


def test_cleaned_is_idempotent_on_a_normal_record():
    rec = record.OSRecord(
        instance_id='i-1', status='ok', reason='1 LUKS volume not inspected',
        os_family='windows', os_distro='windows', os_info='win2k22',
        os_version_major=10, os_build='20348',
        os_product_name='Windows Server 2022 Datacenter',
        os_product_variant='Server', os_edition='Datacenter: Azure Edition',
        os_arch='x86_64', sql_server_edition='Enterprise',
        inspected_at='2026-11-30T12:00:00Z',
        fingerprint='0123456789abcdef-0123456789abcdef', duration=41.5)
    assert rec.cleaned() == rec


@pytest.mark.parametrize('field, value, expected', [
    ('duration', float('nan'), 0.0),
    ('duration', -1.0, 0.0),
    ('os_build', '20348\u202e', '20348'),
    ('os_arch', 'x86_64 ', 'x86_64'),
    ('sql_server_edition', 'E' * 100, 'E' * 64),
    ('instance_id', 'i' * 100, 'i' * 64),
    ('reason', 'r' * 1000, 'r' * record.REASON_LIMIT),
    ('os_family', '\x1b[2J', 'unknown'),
    ('os_version_minor', -3, 0),
    ('inspection_method', 'guessed', ''),
    ('inspected_at', '2026-11-30 12:00', ''),
    ('fingerprint', 'f' * 65, ''),
])
def test_cleaned_bounds_every_field(field, value, expected):
    rec = record.OSRecord(**dict({'instance_id': 'i-1'}, **{field: value}))
    assert getattr(rec.cleaned(), field) == expected


def test_metadata_is_every_published_field_in_order():
    rec = record.OSRecord(
        instance_id='i-1', status='failed', reason='deadline',
        os_family='windows', os_build='20348', sql_server_edition='Web',
        inspection_method='direct', inspected_at='2026-11-30T12:00:00Z',
        fingerprint='f-1', duration=3.0)
    metadata = rec.metadata()
    assert tuple(metadata) == record.METADATA_KEYS
    assert (metadata['os_family'], metadata['os_build'],
            metadata['sql_server_edition'], metadata['os_inspection_status'],
            metadata['os_inspection_reason'],
            metadata['os_inspection_method'],
            metadata['os_inspected_at']) == (
        'windows', '20348', 'Web', 'failed', 'deadline', 'direct',
        '2026-11-30T12:00:00Z')
    # What is only for the cache and the logs is never published.
    assert not {'i-1', 'f-1', 3.0} & set(metadata.values())


@pytest.mark.parametrize('keys', [
    ('os_edition',),
    ('os_family', 'os_version_major', 'os_inspection_status'),
    record.METADATA_KEYS,
])
def test_metadata_getter_gives_the_metadata_values_in_order(keys):
    rec = record.OSRecord(
        instance_id='i-1', status='ok', os_family='windows',
        os_version_major=10, os_edition='Datacenter',
        inspected_at='2026-11-30T12:00:00Z')
    metadata = rec.metadata()
    assert record.metadata_getter(keys)(rec) == tuple(
        metadata[k] for k in keys)


def test_metadata_getter_refuses_an_unpublished_key():
    with pytest.raises(KeyError):
        record.metadata_getter(('fingerprint',))


def test_every_field_is_cleaned_and_round_trips():
    # A hostile value in every string field: cleaned() bounds them all,
    # and a cleaned record survives the cache's JSON unchanged.
    hostile = {f.name: '\x1b[31m' + 'x' * 999 + '\u202e'
               for f in dataclasses.fields(record.OSRecord)
               if f.type is str and f.name != 'status'}
    rec = record.OSRecord(**hostile).cleaned()
    for name in hostile:
        value = getattr(rec, name)
        assert '\x1b' not in value and '\u202e' not in value
        assert len(value) <= 255
    assert record.OSRecord.from_dict(rec.to_dict()) == rec
    assert rec.cleaned() == rec


@pytest.mark.parametrize('rec, text', [
    (ok_record(UUID), 'windows win2k22 Datacenter + SQL Server Standard'),
    (record.OSRecord(instance_id=UUID, status='ok', os_family='linux',
                     os_distro='rhel', os_info='rhel9.4'), 'rhel rhel9.4'),
    (record.OSRecord(instance_id=UUID, status='encrypted',
                     reason='1 LUKS volume'), '(1 LUKS volume)'),
    (record.OSRecord(instance_id=UUID, status='failed', reason='deadline'),
     '(deadline)'),
    (record.OSRecord.pending(UUID), ''),
])
def test_summary(rec, text):
    assert rec.summary() == text
