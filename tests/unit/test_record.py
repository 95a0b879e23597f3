"""OSRecord helpers: timestamps (never local time), re-cleaning and the
one-line summary."""

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
])
def test_cleaned_bounds_every_field(field, value, expected):
    rec = record.OSRecord(instance_id='i-1', **{field: value})
    assert getattr(rec.cleaned(), field) == expected


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
