"""pytest fixtures for tests that need running libvirt domains.

Use them from a conftest.py (``from tests.rig.fixtures import *``), or
in one test module by assignment (``libvirt_daemons =
fixtures.libvirt_daemons``), which flake8 accepts where an import of a
name used as a test argument would be flagged F811.
"""

import pytest

from tests.rig import ceph as ceph_mod
from tests.rig import libvirtd
from tests.rig import rig as rig_mod

__all__ = ['billing_rules', 'billing_services', 'ceph_cluster',
           'libvirt_daemons', 'rig']


def _no_domains_left():
    import libvirt
    conn = libvirt.open(libvirtd.URI)
    try:
        return not conn.listAllDomains()
    finally:
        conn.close()


@pytest.fixture(scope='session')
def libvirt_daemons():
    """virtlogd + libvirtd running; True if this session started them.

    Stopped again at the end only if this session started them and no
    domain is left (another process may still be using them).
    """
    started = libvirtd.ensure_daemons()
    yield started
    if started and _no_domains_left():
        assert libvirtd.stop_started_daemons() == []


@pytest.fixture
def rig(libvirt_daemons, tmp_path):
    """An empty Rig in ``tmp_path/rig``; everything it made is removed."""
    with rig_mod.Rig(tmp_path / 'rig') as the_rig:
        yield the_rig
        assert the_rig.teardown() == []


@pytest.fixture(scope='session')
def ceph_cluster(tmp_path_factory):
    """One real Ceph cluster (mon + memstore OSD, cephx) per session.

    A machine where Ceph cannot start fails the tests that need it,
    loudly: tools/bootstrap.sh installs what it needs.
    """
    cluster = ceph_mod.Cluster(tmp_path_factory.mktemp('ceph'))
    try:
        cluster.start()
    except (ceph_mod.CephError, OSError) as exc:
        problems = cluster.stop()
        pytest.fail('a Ceph cluster cannot start here (tools/bootstrap.sh '
                    'installs ceph-mon, ceph-osd, ceph-common, ceph-base): '
                    '%s %s' % (exc, '; '.join(problems)), pytrace=False)
    yield cluster
    assert cluster.destroy() == []


@pytest.fixture(scope='session')
def billing_services(tmp_path_factory):
    """PostgreSQL, Gnocchi and CloudKitty for billing.PROJECTS, started
    once per session (tests/rig/billing.py) and stopped by pid.

    A machine where they cannot start fails the tests that need them,
    loudly: tools/bootstrap.sh installs what they need.
    """
    from tests.rig import billing
    services = billing.Services(tmp_path_factory.mktemp('billing'),
                                billing.PROJECTS)
    try:
        services.start()
    except (billing.BillingError, OSError) as exc:
        problems = services.stop()
        pytest.fail('the billing services cannot start here '
                    '(tools/bootstrap.sh installs them): %s %s'
                    % (exc, '; '.join(problems)), pytrace=False)
    yield services
    assert services.stop() == []


@pytest.fixture(scope='session')
def billing_rules(billing_services):
    """What an operator runs once against billing_services (resource
    types, hashmap rules, the minimums script), once per session for
    every billing test: ``outputs`` {step: printed text} and
    ``created_at`` (epoch seconds; rules rate only later periods)."""
    import time
    import types
    from tests.rig import billing
    outputs = billing_services.operator_steps(billing.agent_bin())
    return types.SimpleNamespace(outputs=outputs, created_at=time.time())
