"""Engine (agent side): a worker process per job, under a deadline,
every outcome a record.  The workers here are small real processes
speaking the worker protocol (or failing to); no appliance."""

import functools
import json
import os
import signal
import sys
import textwrap

import pytest

from ceilometer_os_pollster.inspection import appliance as A
from ceilometer_os_pollster.commands import cli
from ceilometer_os_pollster.agent import engine as E
from ceilometer_os_pollster import record
from ceilometer_os_pollster.agent import service as service_mod
from ceilometer_os_pollster.inspection import supervisor
from ceilometer_os_pollster.agent import workdir
from tests.helpers import inspection_conf as make_conf
from tests import helpers


XML = helpers.domain_xml(helpers.disk('/d/disk'))
job = functools.partial(helpers.job, instance_id='inst-1',
                        domain_name='instance-1', xml=XML,
                        fingerprint='fp-1')


GOOD = record.OSRecord(instance_id='inst-1', status='ok', os_family='linux',
                       os_distro='rhel', os_info='rhel9.4',
                       inspected_at='2026-01-01T00:00:00Z')


def fake_worker(body):
    """argv of a worker whose main is ``body`` (python), with ``req``
    (the request) and ``send(**message)`` defined."""
    code = textwrap.dedent("""
        import json, os, signal, sys, time
        req = json.loads(sys.stdin.read())
        def send(**message):
            sys.stdout.write(json.dumps(message) + '\\n')
            sys.stdout.flush()
        """) + textwrap.dedent(body)
    return [sys.executable, '-c', code]


def engine(body, tmp_path, **overrides):
    overrides.setdefault('tmp_dir', str(tmp_path))
    return E.Engine(make_conf(**overrides), worker_argv=fake_worker(body))


def test_worker_record_is_published(tmp_path):
    rec = engine("""
        send(stage='inspecting')
        send(record=%r)
        """ % (GOOD.to_dict(),), tmp_path).inspect(job())
    assert (rec.status, rec.os_distro, rec.os_info) == ('ok', 'rhel',
                                                        'rhel9.4')
    assert rec.fingerprint == 'fp-1'
    assert os.listdir(tmp_path) == []       # private dir removed


def test_request_carries_job_options_and_a_private_dir(tmp_path):
    out = tmp_path / 'request.json'
    (tmp_path / 'tmp').mkdir()
    rec = engine("""
        open(%r, 'w').write(json.dumps(dict(req, cwd=os.getcwd(),
            private_exists=os.path.isdir(req['private_dir']))))
        send(record=%r)
        """ % (str(out), GOOD.to_dict()), tmp_path / 'tmp').inspect(job())
    assert rec.status == 'ok'
    request = json.loads(out.read_text())
    assert request['job']['instance_id'] == 'inst-1'
    assert request['job']['domain_xml'] == XML
    assert request['options']['inspection_deadline'] == 300
    assert request['options']['worker_io_class'] == 'idle'
    assert request['private_exists'] is True
    assert request['cwd'] == request['private_dir']
    assert os.path.dirname(request['private_dir']) == str(tmp_path / 'tmp')
    assert request['parent_pid'] == os.getpid()
    assert not os.path.exists(request['private_dir'])


def test_deadline_kills_the_whole_process_group(tmp_path):
    pids = tmp_path / 'pids'
    eng = engine("""
        import subprocess
        child = subprocess.Popen(['sleep', '600'])
        open(%r, 'w').write('%%d %%d' %% (os.getpid(), child.pid))
        send(stage='launching the appliance')
        time.sleep(600)
        """ % str(pids), tmp_path)
    eng.deadline = 2
    rec = eng.inspect(job())
    assert (rec.status, rec.reason) == (
        'failed', 'deadline: inspection killed after 2 s while launching '
        'the appliance')
    worker, grandchild = map(int, pids.read_text().split())
    assert _dies(worker) and _dies(grandchild)
    assert os.listdir(tmp_path) == [pids.name]


def _dies(pid):
    # A SIGKILLed process needs a moment to exit.
    return helpers.until(lambda: not helpers.alive(pid), 10)


@pytest.mark.parametrize('body,reason', [
    ("raise KeyError('bug in the worker')",
     "inspection worker failed (exit 1): KeyError: 'bug in the worker'"),
    ("send(stage='inspecting'); os.kill(os.getpid(), signal.SIGKILL)",
     'inspection worker killed by SIGKILL while inspecting (out of '
     'memory?)'),
    ("os.kill(os.getpid(), signal.SIGSEGV)",
     'inspection worker killed by SIGSEGV'),
    ("print('hello'); print('{not json')",
     'inspection worker returned unreadable output'),
    ("sys.exit(0)", 'inspection worker failed (exit 0)'),
    ("send(record={'instance_id': 'inst-1', 'status': 'bogus'})",
     'inspection worker returned an invalid record: unknown inspection '
     "status 'bogus'"),
    ("send(record={'instance_id': 'other', 'status': 'ok'})",
     'inspection worker returned a record for another job'),
    ("sys.stdout.write('x' * (2 << 20)); sys.stdout.flush(); "
     "time.sleep(60)", 'inspection worker output too large'),
])
def test_every_worker_failure_is_a_failed_record(tmp_path, body, reason,
                                                 caplog):
    rec = engine(body, tmp_path).inspect(job())
    assert rec.status == 'failed'
    assert rec.reason == reason
    assert rec.fingerprint == 'fp-1'
    assert os.listdir(tmp_path) == []
    warnings = [r for r in caplog.records if r.levelname == 'WARNING'
                and 'inst-1' in r.getMessage()]
    assert len(warnings) == 1


def test_worker_that_cannot_start(tmp_path):
    eng = E.Engine(make_conf(tmp_dir=str(tmp_path)),
                   worker_argv=[str(tmp_path / 'no-such-python')])
    rec = eng.inspect(job())
    assert rec.status == 'failed'
    assert rec.reason.startswith('cannot start the inspection worker: ')


def test_worker_strings_are_cleaned_again(tmp_path):
    dirty = dict(GOOD.to_dict(), os_product_name='Evil\x1b[2J\x00' + 'x' * 999)
    rec = engine("send(record=%r)" % (dirty,), tmp_path).inspect(job())
    assert rec.status == 'ok'
    assert rec.os_product_name.startswith('Evil')
    assert '\x1b' not in rec.os_product_name
    assert len(rec.os_product_name) <= 255


def test_worker_log_messages_are_relayed(tmp_path, caplog):
    caplog.set_level('DEBUG')
    engine("""
        send(log=['WARNING', 'disk vdb skipped\x1b[2J'])
        send(log=['NOTALEVEL', 'odd'])
        send(record=%r)
        """ % (GOOD.to_dict(),), tmp_path).inspect(job())
    relayed = [(r.levelname, r.getMessage()) for r in caplog.records
               if 'inspection worker for instance inst-1' in r.getMessage()]
    assert relayed == [
        ('WARNING', 'inspection worker for instance inst-1: disk vdb '
                    'skipped'),
        ('WARNING', 'inspection worker for instance inst-1: odd')]


def test_unusable_tmp_dir_is_a_failed_record(tmp_path):
    rec = E.Engine(make_conf(tmp_dir=str(tmp_path / 'missing')),
                   worker_argv=['false']).inspect(job())
    assert (rec.status, rec.reason) == (
        'failed', 'cannot create a temporary directory in %s: No such file '
        'or directory' % (tmp_path / 'missing'))


def test_fingerprint_computed_when_the_job_has_none(tmp_path):
    rec = engine("send(record=%r)" % (GOOD.to_dict(),), tmp_path).inspect(
        job(fingerprint=''))
    assert len(rec.fingerprint) == 33 and rec.fingerprint[16] == '-'


def test_garbage_domain_xml_is_a_failed_record_without_a_worker(tmp_path):
    rec = E.Engine(make_conf(tmp_dir=str(tmp_path)),
                   worker_argv=['false']).inspect(job(xml=None,
                                                      fingerprint=''))
    assert rec.status == 'failed'
    assert rec.reason.startswith('unusable domain XML')


@pytest.mark.parametrize('outcome,reason', [
    (supervisor.Outcome(timed_out=True), 'deadline: inspection killed '
     'after 300 s'),
    (supervisor.Outcome(timed_out=True, stage='opening disks'),
     'deadline: inspection killed after 300 s while opening disks'),
    (supervisor.Outcome(returncode=-signal.SIGABRT),
     'inspection worker killed by SIGABRT'),
    (supervisor.Outcome(returncode=-77), 'inspection worker killed by '
     'signal 77'),
    (supervisor.Outcome(returncode=1, stderr_tail='Traceback\n  x\n'
                        'MemoryError\n\n'),
     'inspection worker failed (exit 1): MemoryError'),
    (supervisor.Outcome(start_error='python: Permission denied'),
     'cannot start the inspection worker: python: Permission denied'),
    (supervisor.Outcome(returncode=0, record={'instance_id': 'inst-1',
                                              'status': 'pending'}),
     'inspection worker returned a record for another job'),
    (supervisor.Outcome(returncode=0, record={'instance_id': 'inst-1',
                                              'status': 'ok', 'x': 1}),
     'inspection worker returned an invalid record: unknown record '
     'fields: x'),
])
def test_outcome_reasons(outcome, reason):
    assert E.outcome_record(job(), outcome, 300) == (None, reason)


def test_outcome_with_a_record():
    rec, reason = E.outcome_record(
        job(), supervisor.Outcome(returncode=0, record=GOOD.to_dict()), 300)
    assert reason == '' and rec == GOOD


def test_a_worker_record_is_cleaned_like_one_read_from_the_cache():
    # One rule (OSRecord.cleaned) at both boundaries, with the stricter
    # bounds of the two former copies: reasons of at most 200
    # characters, identifier fields reduced to tokens.
    sent = GOOD.replace(reason='r' * 300, os_distro='rhel; rm -rf /',
                        os_edition='E' * 100, inspected_at='yesterday')
    rec, reason = E.outcome_record(
        job(), supervisor.Outcome(returncode=0, record=sent.to_dict()), 300)
    assert reason == ''
    assert rec == sent.cleaned()
    assert (rec.reason, rec.os_distro, rec.os_edition, rec.inspected_at) == (
        'r' * 200, 'rhelrm-rf', 'E' * 64, '')


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


def test_start_removes_what_killed_inspections_left(monkeypatch, tmp_path):
    monkeypatch.setattr(E.Engine, 'preflight', lambda self: ['problem'])
    dead = tmp_path / 'os-inspection-dead'
    dead.mkdir()
    (dead / 'keyring').write_text('[client.nova]\n')
    os.close(workdir._hold_owner_lock(str(dead)))      # its owner died
    assert E.Engine(make_conf(tmp_dir=str(tmp_path))).start() == ['problem']
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('build', [
    # the agent's service, building its own engine on first use
    service_mod.InspectionService,
    # the CLI's
    cli._default_service_factory,
])
def test_agent_and_cli_start_the_engine_once(monkeypatch, tmp_path, build):
    started = []
    monkeypatch.setattr(E.Engine, 'start', lambda self: started.append(1))
    conf = make_conf(tmp_dir=str(tmp_path), cache_dir=str(tmp_path / 'c'))
    svc = build(conf)
    try:
        assert svc.scheduler is svc.scheduler
    finally:
        svc.stop()
    assert started == [1]


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
        'libguestfs backend \'libvirt\' is not supported: only "direct" '
        'lets the inspector check what qemu opens and kill it at the '
        'deadline; every inspection will fail',
        '[os_inspection] tmp_dir = %s is not a writable directory'
        % (tmp_path / 'missing'),
    ]
