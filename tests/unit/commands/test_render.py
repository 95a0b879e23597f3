"""render: the command's renderings of records and cache entries
(JSON items, progress lines, tables, cache rows and documents)."""

import pytest

from ceilometer_os_pollster.agent import cache_format
from ceilometer_os_pollster.commands import render
from ceilometer_os_pollster.instances import domain_xml as domain_xml_mod
from ceilometer_os_pollster import record
from tests import helpers
from tests.helpers import ok_record

UUID = '6d3f0c2e-0000-4000-8000-000000000001'
FULL = domain_xml_mod.DomainInfo(
    uuid=UUID, name='instance-0000002a', nova=True, project_id='p-1',
    user_id='u-1', vcpus=8, image_id='img-1')


def test_json_item_is_ids_then_every_metadata_key():
    item = render.json_item(FULL, ok_record(UUID))
    assert tuple(item) == render.JSON_ID_KEYS + record.METADATA_KEYS
    assert item['resource_id'] == UUID
    assert (item['project_id'], item['user_id'], item['vcpus']) == \
        ('p-1', 'u-1', 8)
    assert item['os_edition'] == 'Datacenter'
    assert item['os_inspection_status'] == 'ok'
    assert 'os_type' not in item


@pytest.mark.parametrize('rec, inspected, line', [
    (ok_record(UUID), True, '[2/5] instance-2 ... ok (41 s)'),
    (ok_record(UUID), False, '[2/5] instance-2 ... ok (cached)'),
    (record.OSRecord(instance_id=UUID, status='failed', reason='deadline',
                     duration=300), True,
     '[2/5] instance-2 ... failed (300 s): deadline'),
    (record.OSRecord(instance_id=UUID, status='encrypted',
                     reason='1 LUKS volume', duration=12.6), False,
     '[2/5] instance-2 ... encrypted (cached): 1 LUKS volume'),
])
def test_progress_line(rec, inspected, line):
    assert render.progress_line(2, 5, 'instance-2', rec, inspected) == line


def test_format_table_aligns_columns():
    text = render.format_table(('A', 'LONGER'), [('xx', 1), ('y', 22)])
    assert text.splitlines() == ['A   LONGER', 'xx  1', 'y   22']


def test_cache_rows_and_document():
    entry = helpers.entry(UUID, last_seen=1699990000.0,
                          expires_at=1700000000.0,
                          inspected_at='2025-01-02T03:04:05Z')
    failed = cache_format.Entry(
        record=record.OSRecord.failed('x-2', 'deadline'),
        expires_at=1800000000.0, failures=2, retry_at=1800000000.0)
    rows = render.cache_rows([entry, failed], now=1750000000.0)
    assert rows[0] == (UUID, 'ok', 'windows', 'windows', 'win2k22',
                       'Datacenter', '2025-01-02T03:04:05Z',
                       '2023-11-14T22:13:20Z (due)')
    assert rows[1][:6] == ('x-2', 'failed', 'unknown', 'unknown', 'unknown',
                           '-')
    assert rows[1][7] == '2027-01-15T08:00:00Z'
    doc = render.entry_document(failed)
    assert doc['failures'] == 2
    assert doc['retry_at'] == '2027-01-15T08:00:00Z'
    assert doc['last_seen'] is None
    assert doc['record'] == failed.record.to_dict()
    assert doc['metadata']['os_inspection_reason'] == 'deadline'
