"""worker (the inspection child): the one-way flow with a fake
appliance, its protocol as a real process.  Its priority and its guard:
test_worker_process.py, tests/unit/agent/test_stop.py."""

import json
import os
import subprocess
import sys
import types

import struct

import pytest

from ceilometer_os_pollster.inspection import appliance as A
from ceilometer_os_pollster.direct import errors as DE
from ceilometer_os_pollster.inspection import confinement as C
from ceilometer_os_pollster.families import raw_facts as RF
from ceilometer_os_pollster import options
from ceilometer_os_pollster.inspection import worker as W
from tests import helpers
from tests.helpers import disk

OPTS = {opt.dest: opt.default for opt in options.OPTS}


def domain(*disks):
    # Each domain has a CD-ROM too: never inspected.
    return helpers.domain_xml(*disks, helpers.cdrom())


def job(xml, fingerprint='fp-1'):
    return helpers.job_request(instance_id='inst-1', domain_name='instance-1',
                               xml=xml, fingerprint=fingerprint)


def opts(**changes):
    # The appliance path unless a test says otherwise (the direct
    # readers have tests of their own below).
    changes.setdefault('inspection_method', 'appliance')
    return W.options_namespace(dict(OPTS, **changes))


@pytest.fixture(autouse=True)
def roomy(monkeypatch):
    """The private directories here ('/p') are not real: plenty of room
    (the space check has tests of its own below)."""
    monkeypatch.setattr(C, 'space_problem', lambda path, opts, drives: '')


class Recorder:
    """An appliance factory that records what it was given."""

    def __init__(self, result=None, error=None):
        self.result = result
        self.error = error
        self.specs = None

    def __call__(self, opts, specs, private_dir, stage, hv=None):
        self.opts, self.specs, self.private_dir = opts, specs, private_dir
        self.hv = hv
        stage('opening disks')
        return self

    def inspect(self):
        if self.error:
            raise self.error
        return self.result


def rhel_facts():
    return RF.ApplianceFacts(drives=1, filesystems=2, roots=[RF.RootFacts(
        device='/dev/sda2', type='linux', distro='rhel', osinfo='rhel9.4',
        product_name='Red Hat Enterprise Linux 9.4 (Plow)', arch='x86_64',
        major=9, minor=4, os_release={'ID': 'rhel', 'VERSION_ID': '9.4'})])


def test_success_is_the_normalised_record():
    factory = Recorder(result=rhel_facts())
    stages = []
    rec = W.inspect(opts(), job(domain(disk('/d/disk', 'vda', 'qcow2'))),
                    '/p', stages.append, appliance_factory=factory)
    assert (rec.status, rec.os_family, rec.os_distro, rec.os_info) == (
        'ok', 'linux', 'rhel', 'rhel9.4')
    assert rec.fingerprint == 'fp-1' and rec.instance_id == 'inst-1'
    assert rec.inspection_method == 'appliance'
    assert rec.metadata()['os_inspection_method'] == 'appliance'
    assert [(s.target, s.path, s.format) for s in factory.specs] == [
        ('vda', '/d/disk', 'qcow2')]
    assert factory.private_dir == '/p'
    assert stages == ['reading the domain XML', 'opening disks']


def test_boot_disk_only_unless_all_disks_asked():
    xml = domain(disk('/d/data', 'vdb'),
                 disk('/d/root', 'vda'))
    factory = Recorder(result=rhel_facts())
    W.inspect(opts(), job(xml), '/p', print, appliance_factory=factory)
    assert [s.path for s in factory.specs] == ['/d/root']
    W.inspect(opts(inspect_all_disks=True), job(xml), '/p', print,
              appliance_factory=factory)
    assert [s.path for s in factory.specs] == ['/d/root', '/d/data']


class PerDisks:
    """An appliance factory answering by the disks it is given."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, opts, specs, private_dir, stage):
        paths = tuple(s.path for s in specs)
        self.calls.append(paths)
        return types.SimpleNamespace(inspect=lambda: self.answers[paths])


def windows_on(device, disk_index):
    return RF.ApplianceFacts(drives=2, filesystems=2, roots=[RF.RootFacts(
        device=device, disk_index=disk_index, type='windows',
        distro='windows', product_variant='Server',
        windows={'EditionID': 'ServerDatacenter',
                 'InstallationType': 'Server',
                 'ProductName': 'Windows Server 2022 Datacenter',
                 'CurrentBuildNumber': '20348',
                 'CurrentMajorVersionNumber': 10,
                 'CurrentMinorVersionNumber': 0})])


def test_no_os_on_the_boot_disk_inspects_every_disk():
    # A boot disk holding only a bootloader that starts Windows on vdb.
    xml = domain(disk('/d/data', 'vdb'),
                 disk('/d/root', 'vda'))
    factory = PerDisks({
        ('/d/root',): RF.ApplianceFacts(drives=1, filesystems=1),
        ('/d/root', '/d/data'): windows_on('/dev/sdb2', 1)})
    stages = []
    rec = W.inspect(opts(), job(xml), '/p', stages.append,
                    appliance_factory=factory)
    assert factory.calls == [('/d/root',), ('/d/root', '/d/data')]
    assert (rec.status, rec.os_family, rec.os_edition) == (
        'ok', 'windows', 'Datacenter')
    assert rec.reason == ('no operating system on the boot disk: billed '
                          'the dearest on another disk (/dev/sdb2)')
    assert 'inspecting every disk (no OS on the boot disk)' in stages


def test_an_os_on_the_boot_disk_costs_one_appliance():
    xml = domain(disk('/d/data', 'vdb'),
                 disk('/d/root', 'vda'))
    factory = PerDisks({('/d/root',): rhel_facts()})
    rec = W.inspect(opts(), job(xml), '/p', print,
                    appliance_factory=factory)
    assert factory.calls == [('/d/root',)]
    assert rec.os_distro == 'rhel'


def test_no_disk_is_unknown_without_an_appliance():
    factory = Recorder(error=AssertionError('no appliance expected'))
    rec = W.inspect(opts(), job(domain()), '/p', print,
                    appliance_factory=factory)
    assert (rec.status, rec.reason) == ('unknown', 'no disk to inspect')
    assert factory.specs is None and rec.inspected_at


@pytest.mark.parametrize('xml,reason', [
    ('<not-xml', 'unusable domain XML: domain XML cannot be parsed'),
    ('<network/>', 'unusable domain XML: domain XML has root <network>, '
                   'not <domain>'),
])
def test_bad_domain_xml_is_a_failed_record(xml, reason):
    rec = W.inspect(opts(), job(xml), '/p', print,
                    appliance_factory=Recorder())
    assert rec.status == 'failed' and rec.reason.startswith(reason)


@pytest.mark.parametrize('error,reason', [
    (A.ApplianceError('cannot open disk: /d/disk: Permission denied'),
     'cannot open disk: /d/disk: Permission denied'),
    (A.ApplianceError('guest said \x1b[2J\x00' + 'x' * 1000),
     'guest said ' + 'x' * 189),
])
def test_appliance_errors_become_failed_records(error, reason):
    rec = W.inspect(opts(), job(domain(disk('/d', 'vda'))), '/p',
                    print, appliance_factory=Recorder(error=error))
    assert (rec.status, rec.reason) == ('failed', reason)


def test_a_bug_is_not_hidden_as_a_record():
    # The agent turns the worker's crash into a failed record (and logs
    # the traceback's last line); the worker must not swallow it.
    with pytest.raises(KeyError):
        W.inspect(opts(), job(domain(disk('/d', 'vda'))), '/p',
                  print, appliance_factory=Recorder(error=KeyError('x')))


def run_worker(request, allow_root=True):
    # The tests run as root with no worker_user: root inspections are
    # allowed unless a test says otherwise (the refusal's test below).
    request = dict(request, options=dict(
        request['options'], allow_root_inspection=allow_root))
    return subprocess.run(
        [sys.executable, '-m', 'ceilometer_os_pollster.inspection.worker'],
        input=json.dumps(request).encode(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, timeout=60, check=False)


def test_worker_process_speaks_the_protocol(tmp_path):
    result = run_worker({'job': job(domain()), 'options': OPTS,
                         'private_dir': str(tmp_path),
                         'parent_pid': os.getpid()})
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    assert messages[0] == {'stage': 'reading the domain XML'}
    assert messages[-1]['record']['status'] == 'unknown'
    assert messages[-1]['record']['reason'] == 'no disk to inspect'


@pytest.mark.skipif(os.geteuid() != 0, reason='the refusal is for root')
def test_worker_process_refuses_an_unconfined_root_inspection(tmp_path):
    # Checked by the worker itself too (an agent of another version may
    # not check): it answers at once, having read nothing.
    result = run_worker({'job': job(domain(disk('/d/x', 'vda'))),
                         'options': OPTS, 'private_dir': str(tmp_path),
                         'parent_pid': os.getpid()}, allow_root=False)
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    assert [list(m) for m in messages] == [['record']]
    rec = messages[0]['record']
    assert (rec['status'], rec['reason']) == (
        'failed', 'inspection not confined: ' + C.UNCONFINED)
    assert os.listdir(tmp_path) == []


def test_worker_exits_when_its_agent_is_gone(tmp_path):
    result = run_worker({'job': job(domain()), 'options': OPTS,
                         'private_dir': str(tmp_path), 'parent_pid': 1})
    assert result.returncode == 3
    assert result.stdout == b''


def test_options_namespace_has_every_option():
    ns = W.options_namespace(dict(OPTS, worker_nice=3))
    assert isinstance(ns, types.SimpleNamespace)
    assert ns.worker_io_class == 'idle' and ns.worker_nice == 3


def test_options_missing_from_an_older_agent_take_their_defaults():
    older = {k: v for k, v in OPTS.items() if k != 'ceph_user'}
    assert W.options_namespace(older).ceph_user == ''


# --------------------------------------------------------------------------
# inspection_method: direct first, the appliance for what it cannot read


class Direct:
    """A direct reader: raises each error of ``errors`` in turn, then
    returns ``result``."""

    def __init__(self, result=None, errors=()):
        self.result = result
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, specs, stage):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


ONE_DISK = domain(disk('/d/root', 'vda'))


def test_auto_uses_the_direct_readers_and_no_appliance():
    direct = Direct(result=rhel_facts())
    rec = W.inspect(opts(inspection_method='auto'), job(ONE_DISK), '/p',
                    print, appliance_factory=Recorder(
                        error=AssertionError('no appliance expected')),
                    direct_reader=direct)
    assert (rec.status, rec.os_distro, rec.inspection_method) == (
        'ok', 'rhel', 'direct')
    assert rec.reason == '' and direct.calls == 1


@pytest.mark.parametrize('error,why', [
    (DE.Unsupported('/dev/sda2: NTFS (Windows) is read by the appliance'),
     '/dev/sda2: NTFS (Windows) is read by the appliance'),
    (DE.LimitReached('read more than 64 MiB of the disks'),
     'read more than 64 MiB of the disks'),
    (struct.error('unpack requires a buffer of 4 bytes'),
     'internal error of the direct readers (error)'),
])
def test_auto_falls_back_to_the_appliance_and_says_why(error, why):
    factory = Recorder(result=rhel_facts())
    rec = W.inspect(opts(inspection_method='auto'), job(ONE_DISK), '/p',
                    print, appliance_factory=factory,
                    direct_reader=Direct(errors=[error]))
    assert (rec.status, rec.os_distro, rec.inspection_method) == (
        'ok', 'rhel', 'appliance')
    assert rec.reason == 'direct reading fell back: ' + why
    assert factory.specs is not None


def test_a_torn_read_is_retried_once():
    torn = DE.TornRead('lvm: metadata text checksum mismatch')
    direct = Direct(result=rhel_facts(), errors=[torn])
    rec = W.inspect(opts(inspection_method='direct'), job(ONE_DISK), '/p',
                    print, direct_reader=direct,
                    appliance_factory=Recorder(error=AssertionError('x')))
    assert (rec.inspection_method, direct.calls) == ('direct', 2)
    direct = Direct(errors=[torn, torn])
    factory = Recorder(result=rhel_facts())
    rec = W.inspect(opts(inspection_method='auto'), job(ONE_DISK), '/p',
                    print, appliance_factory=factory, direct_reader=direct)
    assert (rec.inspection_method, direct.calls) == ('appliance', 2)
    assert rec.reason == ('direct reading fell back: lvm: metadata text '
                          'checksum mismatch')


def test_direct_only_never_starts_an_appliance():
    rec = W.inspect(opts(inspection_method='direct'), job(ONE_DISK), '/p',
                    print, appliance_factory=Recorder(
                        error=AssertionError('no appliance expected')),
                    direct_reader=Direct(errors=[DE.Unsupported(
                        'vda: rbd disks are read by the appliance')]))
    assert (rec.status, rec.inspection_method) == ('failed', '')
    assert rec.reason == ('not read directly, and inspection_method is '
                          'direct: vda: rbd disks are read by the appliance')


def test_appliance_method_never_reads_directly():
    rec = W.inspect(opts(inspection_method='appliance'), job(ONE_DISK),
                    '/p', print, appliance_factory=Recorder(
                        result=rhel_facts()),
                    direct_reader=Direct(errors=[AssertionError('no')]))
    assert (rec.inspection_method, rec.reason) == ('appliance', '')


# ------------------------------------------------- bounds on disk writes

class Filler(Recorder):
    """An appliance whose overlay ends at the given size."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def inspect(self):
        with open(os.path.join(self.private_dir, 'vda.qcow2'), 'wb') as f:
            f.truncate(self.size)
        return super().inspect()


@pytest.mark.parametrize('error', [None, A.ApplianceError(
    'appliance closed the connection unexpectedly')])
def test_an_overlay_at_its_limit_fails_the_inspection(tmp_path, error):
    # A guest whose replay hit the limit may look like no OS at all, or
    # kill the appliance: either way the record says why, never cheaper.
    factory = Filler(64 << 20, result=RF.ApplianceFacts(drives=1),
                     error=error)
    rec = W.inspect(opts(overlay_max_mb=64),
                    job(domain(disk('/d', 'vda'))), str(tmp_path),
                    print, appliance_factory=factory)
    assert (rec.status, rec.reason) == ('failed', (
        'overlay write limit reached: the appliance wrote 64 MiB into the '
        'overlay of vda (e.g. replaying a journal); [os_inspection] '
        'overlay_max_mb'))


def test_an_overlay_below_its_limit_is_an_ordinary_result(tmp_path):
    factory = Filler(32 << 20, result=rhel_facts())
    rec = W.inspect(opts(overlay_max_mb=64),
                    job(domain(disk('/d', 'vda'))), str(tmp_path),
                    print, appliance_factory=factory)
    assert (rec.status, rec.os_distro) == ('ok', 'rhel')


def test_no_appliance_without_room_for_its_overlays():
    factory = Recorder(error=AssertionError('no appliance expected'))
    seen = []

    def no_room(path, o, drives):
        seen.append((path, drives))
        return 'not enough free space for the overlays: ...'
    rec = W.inspect(opts(inspect_all_disks=True), job(domain(
        disk('/d/a', 'vda'), disk('/d/b', 'vdb'))),
        '/p', print, appliance_factory=factory, space_problem=no_room)
    assert (rec.status, rec.reason) == (
        'failed', 'not enough free space for the overlays: ...')
    assert seen == [('/p', 2)] and factory.specs is None


def test_the_wrapper_reaches_the_appliance():
    factory = Recorder(result=rhel_facts())
    W.inspect(opts(), job(domain(disk('/d', 'vda'))), '/p', print,
              appliance_factory=factory, hv='/p/qemu-confined')
    assert factory.hv == '/p/qemu-confined'
