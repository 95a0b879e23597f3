"""tests/rig/billing.py's pure parts: which period the billing test rates."""

import pytest

from tests.rig import billing

P = billing.PERIOD


@pytest.mark.parametrize('rules_at, now, want', [
    # rules older than the running period, time left in it: rate it now
    (1000 * P - 10, 1000 * P + 30, (0.0, 1000 * P)),
    (1000 * P, 1000 * P + P - 60, (0.0, 1000 * P)),
    # rules created during the running period: wait for the next one
    (1000 * P + 5, 1000 * P + 30, (P - 30 + 1.0, 1001 * P)),
    # too close to the end of the period to publish safely
    (900 * P, 1000 * P + P - 59, (60.0, 1001 * P)),
])
def test_rating_window(rules_at, now, want):
    assert billing.rating_window(rules_at, now) == want


def test_ini_renders_sections_in_order():
    assert billing._ini({'a': {'x': 1}, 'b': {'y': 'z'}}) == \
        '[a]\nx = 1\n\n[b]\ny = z\n'


@pytest.mark.parametrize('text', [
    '2026-12-06T08:40:00',              # CloudKitty's naive UTC
    '2026-12-06T08:40:00Z',
    '2026-12-06T08:40:00+00:00',        # Gnocchi, Ceilometer
    '2026-12-06T09:40:00+01:00',
])
def test_epoch_reads_utc_times(text):
    assert billing.epoch(text) == 1796546400.0
