"""Engine.inspect: domain XML -> drives -> appliance -> record, never
raising (fake guestfs handle, fake clock; no appliance)."""

import functools

import pytest
from oslo_config import cfg

from ceilometer_os_pollster import appliance as A
from ceilometer_os_pollster import engine as E
from ceilometer_os_pollster import facts as F
from ceilometer_os_pollster import options
from ceilometer_os_pollster import record
from tests.unit import test_appliance as fakes


class Clock:
    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def make_conf(**overrides):
    conf = cfg.ConfigOpts()
    options.register_opts(conf)
    conf([])
    for name, value in overrides.items():
        conf.set_override(name, value, options.GROUP)
    return conf


DISK = ("<disk type='file' device='disk'><driver name='qemu' type='%s'/>"
        "<source file='%s'/><target dev='%s' bus='virtio'/></disk>")


def domain(*disks):
    return ("<domain type='kvm'><name>instance-1</name><devices>%s"
            "<disk type='file' device='cdrom'><source file='/x.iso'/>"
            "<target dev='hda' bus='ide'/></disk></devices></domain>"
            % ''.join(disks))


def job(xml, fingerprint='fp-1'):
    return E.InspectionJob(instance_id='inst-1', domain_name='instance-1',
                           domain_xml=xml, image_id='img',
                           boot_identity='boot', fingerprint=fingerprint)


class Recorder:
    """An appliance factory that records what it was given."""

    def __init__(self, result=None, error=None):
        self.result = result
        self.error = error
        self.specs = None
        self.opts = None

    def __call__(self, opts, specs):
        self.opts, self.specs = opts, specs
        return self

    def inspect(self):
        if self.error:
            raise self.error
        return self.result


def rhel_facts():
    return F.ApplianceFacts(drives=1, filesystems=2, roots=[F.RootFacts(
        device='/dev/sda2', type='linux', distro='rhel', osinfo='rhel9.4',
        product_name='Red Hat Enterprise Linux 9.4 (Plow)', arch='x86_64',
        major=9, minor=4, os_release={'ID': 'rhel', 'VERSION_ID': '9.4'})])


def test_success_is_the_normalised_record(tmp_path):
    factory = Recorder(result=rhel_facts())
    eng = E.Engine(make_conf(), appliance_factory=factory,
                   clock=Clock(100.0, 142.5))
    rec = eng.inspect(job(domain(DISK % ('qcow2', '/d/disk', 'vda'))))
    assert (rec.status, rec.os_family, rec.os_distro, rec.os_info) == (
        'ok', 'linux', 'rhel', 'rhel9.4')
    assert rec.fingerprint == 'fp-1'
    assert rec.duration == 42.5
    assert rec.instance_id == 'inst-1'
    assert [(s.target, s.path, s.format) for s in factory.specs] == [
        ('vda', '/d/disk', 'qcow2')]
    assert factory.opts.inspection_deadline == 300


def test_boot_disk_only_unless_all_disks_asked(tmp_path):
    xml = domain(DISK % ('raw', '/d/data', 'vdb'),
                 DISK % ('raw', '/d/root', 'vda'))
    factory = Recorder(result=rhel_facts())
    E.Engine(make_conf(), appliance_factory=factory).inspect(job(xml))
    assert [s.path for s in factory.specs] == ['/d/root']
    E.Engine(make_conf(inspect_all_disks=True),
             appliance_factory=factory).inspect(job(xml))
    assert [s.path for s in factory.specs] == ['/d/root', '/d/data']


def test_no_disk_is_unknown_without_an_appliance():
    factory = Recorder(error=AssertionError('no appliance expected'))
    rec = E.Engine(make_conf(), appliance_factory=factory,
                   clock=Clock(5.0, 5.25)).inspect(job(domain()))
    assert (rec.status, rec.reason) == ('unknown', 'no disk to inspect')
    assert factory.specs is None
    assert rec.fingerprint == 'fp-1' and rec.duration == 0.25
    assert rec.inspected_at


def test_fingerprint_computed_when_the_job_has_none():
    rec = E.Engine(make_conf(), appliance_factory=Recorder()).inspect(
        job(domain(), fingerprint=''))
    assert len(rec.fingerprint) == 33 and rec.fingerprint[16] == '-'


@pytest.mark.parametrize('xml,reason', [
    ('<not-xml', 'unusable domain XML: domain XML cannot be parsed'),
    ('<network/>', 'unusable domain XML: domain XML has root <network>, '
                   'not <domain>'),
])
def test_bad_domain_xml_is_a_failed_record(xml, reason):
    rec = E.Engine(make_conf(), appliance_factory=Recorder()).inspect(
        job(xml))
    assert rec.status == 'failed'
    assert rec.reason.startswith(reason)


@pytest.mark.parametrize('error,reason', [
    (A.DeadlineExceeded('deadline: appliance killed after 300 s'),
     'deadline: appliance killed after 300 s'),
    (A.ApplianceError('cannot open disk: /d/disk: Permission denied'),
     'cannot open disk: /d/disk: Permission denied'),
    (A.ApplianceError('guest said \x1b[2J\x00' + 'x' * 1000),
     'guest said ' + 'x' * 189),
    (KeyError('bug'), 'internal error: KeyError'),
    (MemoryError(), 'internal error: MemoryError'),
])
def test_failures_become_failed_records(error, reason):
    eng = E.Engine(make_conf(), appliance_factory=Recorder(error=error),
                   clock=Clock(1.0, 4.0))
    rec = eng.inspect(job(domain(DISK % ('raw', '/d/disk', 'vda'))))
    assert (rec.status, rec.reason, rec.duration) == ('failed', reason, 3.0)
    assert rec.fingerprint == 'fp-1'
    assert len(rec.reason) <= 200


def test_normalise_bug_is_contained(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError('bad facts')
    monkeypatch.setattr(F, 'normalise', broken)
    rec = E.Engine(make_conf(), appliance_factory=Recorder(
        result=rhel_facts())).inspect(job(domain(DISK % ('raw', '/d', 'vda'))))
    assert (rec.status, rec.reason) == ('failed', 'internal error: '
                                        'ValueError')


# --- through the real Appliance class with a fake guestfs handle


def fake_factory(module, **kwargs):
    kwargs.setdefault('timer', fakes.FakeTimer)
    kwargs.setdefault('find_processes', fakes.no_processes)
    return functools.partial(A.Appliance, guestfs_module=module, **kwargs)


def test_end_to_end_with_fake_handle(tmp_path):
    image = tmp_path / 'disk'
    image.write_bytes(b'\0' * 512)
    module = fakes.FakeGuestfs(fakes.windows_disk())
    eng = E.Engine(make_conf(tmp_dir=str(tmp_path / 'tmp'),
                             libguestfs_backend_settings=['force_tcg']),
                   appliance_factory=fake_factory(module))
    (tmp_path / 'tmp').mkdir()
    rec = eng.inspect(job(domain(DISK % ('qcow2', image, 'vda'))))
    assert (rec.status, rec.os_info, rec.os_edition, rec.os_build,
            rec.sql_server_edition) == ('ok', 'win2k22', 'Datacenter',
                                        '20348', 'Enterprise')
    handle = module.handle
    assert handle.drives == [(str(image), {'readonly': True,
                                           'format': 'qcow2',
                                           'label': 'vda'})]
    assert handle.settings['backend_settings'] == ['force_tcg']
    assert handle.closed
    assert list((tmp_path / 'tmp').iterdir()) == []


def test_deadline_end_to_end_is_a_failed_record(tmp_path):
    image = tmp_path / 'disk'
    image.write_bytes(b'\0' * 512)
    module = fakes.FakeGuestfs()
    deadline = fakes.Deadline(module, 'launch')
    eng = E.Engine(make_conf(inspection_deadline=120),
                   appliance_factory=fake_factory(
                       module, timer=deadline.timer, killer=deadline.killer,
                       find_processes=lambda predicate: [999]),
                   clock=Clock(0.0, 120.5))
    rec = eng.inspect(job(domain(DISK % ('raw', image, 'vda'))))
    assert (rec.status, rec.reason) == (
        'failed', 'deadline: appliance killed after 120 s')
    assert rec.duration == 120.5
    assert deadline.killed[0] == 999
    assert module.handle.closed


def test_missing_disk_end_to_end(tmp_path):
    module = fakes.FakeGuestfs()
    missing = tmp_path / 'gone'
    rec = E.Engine(make_conf(), appliance_factory=fake_factory(
        module)).inspect(job(domain(DISK % ('raw', missing, 'vda'))))
    assert (rec.status, rec.reason) == (
        'failed', 'cannot open disk: %s: No such file or directory'
        % missing)


def test_blank_disk_end_to_end_is_unknown(tmp_path):
    image = tmp_path / 'disk'
    image.write_bytes(b'\0' * 512)
    module = fakes.FakeGuestfs(fakes.Disk(filesystems={'/dev/sda':
                                                       'unknown'}))
    rec = E.Engine(make_conf(), appliance_factory=fake_factory(
        module)).inspect(job(domain(DISK % ('raw', image, 'vda'))))
    assert (rec.status, rec.reason) == ('unknown',
                                        'no filesystem found on 1 disk')


def test_inspect_never_raises_on_garbage_job():
    rec = E.Engine(make_conf(), appliance_factory=Recorder()).inspect(
        E.InspectionJob('inst-1', 'x', None))
    assert rec.status == 'failed'
    assert isinstance(rec, record.OSRecord)


# --- preflight


def test_kvm_problem(tmp_path):
    device = tmp_path / 'kvm'
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\nflags\t\t: fpu vme sse2\n')
    assert E.kvm_problem(str(device), str(cpuinfo)) == (
        '%s cannot be opened (No such file or directory)' % device)
    device.write_bytes(b'')
    assert E.kvm_problem(str(device), str(cpuinfo)) == ''
    cpuinfo.write_text('flags\t\t: fpu vme hypervisor sse2\n')
    assert 'nested KVM' in E.kvm_problem(str(device), str(cpuinfo))


def test_preflight_names_the_force_tcg_option(monkeypatch):
    monkeypatch.setattr(E, 'kvm_problem', lambda: '/dev/kvm cannot be '
                        'opened (Permission denied)')
    problems = E.Engine(make_conf()).preflight()
    assert problems == [
        'KVM is unusable for the libguestfs appliance: /dev/kvm cannot be '
        'opened (Permission denied); set [os_inspection] '
        'libguestfs_backend_settings = force_tcg']


def test_preflight_quiet_with_force_tcg(monkeypatch):
    monkeypatch.setattr(E, 'kvm_problem', lambda: pytest.fail('checked'))
    assert E.Engine(make_conf(
        libguestfs_backend_settings=['force_tcg'])).preflight() == []


def test_preflight_other_problems(monkeypatch, tmp_path):
    monkeypatch.setattr(A, 'guestfs_available',
                        lambda: (False, 'No module named guestfs'))
    problems = E.Engine(make_conf(
        libguestfs_backend='libvirt',
        tmp_dir=str(tmp_path / 'missing'))).preflight()
    assert problems == [
        'the libguestfs Python module cannot be imported (No module named '
        'guestfs): install python3-guestfs',
        'libguestfs backend \'libvirt\': the inspection deadline cannot '
        'kill an appliance started by libvirtd; the "direct" backend is '
        'recommended',
        '[os_inspection] tmp_dir = %s is not a writable directory'
        % (tmp_path / 'missing'),
    ]
