"""Engine.inspect with the real libguestfs appliance on phony guest images.

A job is only domain XML (libvirtd is only there to hold the rbd
secret).  One worker process and one appliance per job, as in the
product; each launch costs ~30-60 s under TCG, so every guest is
inspected once (module-scoped cache) and the tests read that.
Launches: 12 guests + 2 deliberately hung ones; the rbd tests never boot
an appliance (qemu-img gives up while opening the disk).
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.functional import faults_helpers as H
from tests.guests import builder
from tests.guests import catalog
from tests.rig import libvirtd

pytestmark = pytest.mark.appliance

GUESTS = ('win2019-sql', 'win11-pro', 'rhel-9.4', 'almalinux-9.4', 'luks',
          'blank', 'windows-bad-cmd', 'sles-sap-15-sp5',
          'sql-instance-flood', 'sles-15-sp5-btrfs') + catalog.ODD_REGISTRY

DISK, RBD_DISK = H.DISK, H.RBD_DISK

SECRET_UUID = '6b6c2f4e-0d57-4c1f-9b7a-3f1d2c4e5a60'
# A well-formed cephx key (type 1, 16 secret bytes): librbd must get far
# enough to use it.
KEY = bytes.fromhex('0100' + '00' * 8 + '1000') + b'not-a-real-key!!'
KEY_B64 = 'AQAAAAAAAAAAABAAbm90LWEtcmVhbC1rZXkhIQ=='


job = H.job


def make_engine(tmp_root, **overrides):
    """The appliance method: this file tests it (the direct method has
    test_direct_catalog)."""
    overrides.setdefault('inspection_method', 'appliance')
    return H.make_engine(tmp_root, **overrides)


def appliance_children():
    """Our descendants that are qemus, probes, wrappers or workers."""
    return sorted(set(H.proc_children(os.getpid(), b'qemu') +
                      H.proc_children(os.getpid(), b'.worker')))


@pytest.fixture(scope='module')
def tmp_root(tmp_path_factory):
    return tmp_path_factory.mktemp('inspection-tmp')


@pytest.fixture(scope='module')
def images():
    paths = builder.build_all(GUESTS)
    return {name: (path, builder.sha256(path)) for name, path in
            paths.items()}


@pytest.fixture(scope='module')
def inspected(images, tmp_root):
    """name -> OSRecord, each guest inspected at most once."""
    engine = make_engine(tmp_root)
    records = {}

    def get(name):
        if name not in records:
            path = images[name][0]
            records[name] = engine.inspect(job(name, DISK.format(
                path=path)))
        return records[name]

    return get


def expected_fields(name):
    return catalog.GUESTS[name].expected.scored()


@pytest.mark.parametrize('name', GUESTS)
def test_record_matches_catalog(name, inspected):
    rec = inspected(name)
    actual = {field: getattr(rec, field) for field in expected_fields(name)}
    assert actual == expected_fields(name), rec.reason
    assert rec.fingerprint and rec.duration > 0 and rec.inspected_at
    for value in rec.metadata().values():
        if isinstance(value, str):
            assert len(value) <= 255 and value.isprintable()


def test_reasons_say_what_was_seen(inspected):
    assert inspected('blank').reason == 'no filesystem found on 1 disk'
    assert inspected('luks').reason == '1 LUKS volume'
    assert inspected('windows-bad-cmd').reason == (
        'inspection failed (inspect_os: unknown architecture: '
        '/Windows/System32/cmd.exe); filesystems scanned one by one')
    assert inspected('rhel-9.4').reason == ''
    assert inspected('sql-instance-flood').reason == (
        'SQL Server instance list not read to its end (too many names, '
        'or unreadable): billed as Enterprise')


def test_btrfs_snapshots_are_roots_the_running_one_billed(inspected):
    # SUSE's snapper snapshots are roots, as libguestfs lists btrfs
    # subvolumes (test_direct_catalog reads the same guest directly).
    assert inspected('sles-15-sp5-btrfs').reason == (
        '4 operating systems on the boot disk (3 of them btrfs snapshots '
        'or other subvolumes), billed the dearest: /dev/sda1')


# Odd registry values: billed as the dearer reading (the catalog's
# Expected), and the reason says which value was not taken at its word.
ODD_REGISTRY_REASONS = {
    'windows-lookalike-edition':
        'EditionID ServerD<U+0430>tacenter not a known edition: billed as '
        'Datacenter',
    'windows-disagreeing-values':
        'InstallationType Client, but EditionID, ProductName, build 20348 '
        'say Server: billed as Windows Server; ProductName says Datacenter, '
        'EditionID ServerStandard: billed as Datacenter',
}


@pytest.mark.parametrize('name', catalog.ODD_REGISTRY)
def test_odd_registry_values_are_said_in_the_reason(name, inspected):
    rec = inspected(name)
    assert (rec.status, rec.os_edition, rec.os_product_variant) == (
        'ok', 'Datacenter', 'Server'), rec.reason
    assert rec.reason == ODD_REGISTRY_REASONS[name]


# --------------------------------------------------------------------------
# A hung appliance


HANG_WRAPPER = '''#!{python}
"""qemu for libguestfs' feature probes; {mode}."""
import os, sys, time
booting = '-kernel' in sys.argv
if {hang_probes} or booting:
    with open({pid_file!r}, 'a') as f:
        f.write('%d\\n' % os.getpid())
    time.sleep(3600)
os.execv({qemu!r}, [{qemu!r}] + sys.argv[1:])
'''


def hung_engine(tmp_path, tmp_root, hang_probes, monkeypatch):
    import guestfs
    pid_file = tmp_path / 'pids'
    wrapper = tmp_path / 'qemu-hang'
    wrapper.write_text(HANG_WRAPPER.format(
        python=sys.executable, qemu=guestfs.GuestFS().get_hv(),
        hang_probes=hang_probes, pid_file=str(pid_file),
        mode='hangs in every probe' if hang_probes else
             'hangs instead of booting the appliance'))
    wrapper.chmod(0o755)
    # libguestfs takes its qemu from LIBGUESTFS_HV; the worker inherits it.
    monkeypatch.setenv('LIBGUESTFS_HV', str(wrapper))
    engine = make_engine(tmp_root, inspection_deadline=30)
    return engine, pid_file


@pytest.mark.parametrize('hang_probes', [False, True],
                         ids=['hung-launch', 'hung-probe'])
def test_hung_appliance_is_killed_at_the_deadline(
        hang_probes, tmp_path, tmp_root, images, inspected, monkeypatch):
    engine, pid_file = hung_engine(tmp_path, tmp_root, hang_probes,
                                   monkeypatch)
    rec = engine.inspect(job('hung', DISK.format(path=images['blank'][0])))
    monkeypatch.delenv('LIBGUESTFS_HV')
    assert (rec.status, rec.reason) == (
        'failed', 'deadline: inspection killed after 30 s while launching '
        'the appliance')
    pids = [int(p) for p in pid_file.read_text().split()]
    assert pids
    for pid in pids:
        assert not H.alive(pid)
    assert appliance_children() == []
    assert list(tmp_root.iterdir()) == []
    # The next inspection works.
    assert inspected('blank').status == 'unknown'


# --------------------------------------------------------------------------
# rbd: no key on any command line, librbd reads our configuration


# Runs in its own process, so that it samples whatever our process does.
MONITOR = r'''
import json, os, sys, time
marker, out = sys.argv[1].encode(), sys.argv[2]
seen = {}
deadline = time.time() + 90
while time.time() < deadline and not seen:
    for pid in filter(str.isdigit, os.listdir('/proc')):
        if int(pid) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmdline = f.read()
            with open('/proc/%s/environ' % pid, 'rb') as f:
                environ = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if b'rbd:' in cmdline and marker in cmdline:
            conf = cmdline.split(b':conf=')[1].split(b':')[0].decode()
            folder = os.path.dirname(conf)
            seen = dict(cmdline=cmdline.decode('latin-1'),
                        environ=environ.decode('latin-1'), conf=conf,
                        conf_text=open(conf).read(),
                        modes=[oct(os.stat(p).st_mode & 0o777) for p in
                               (folder, conf, folder + '/keyring')])
            break
    time.sleep(0.05)
with open(out, 'w') as f:
    json.dump(seen, f)
'''


def watch_processes(tmp_path, marker):
    out = tmp_path / 'seen.json'
    proc = subprocess.Popen([sys.executable, '-c', MONITOR, marker,
                             str(out)])
    return proc, out


@pytest.mark.libvirt
def test_rbd_key_never_on_a_command_line(tmp_path, tmp_root,
                                         libvirt_daemons):
    hole = H.BlackHole()
    hosts = "<host name='127.0.0.1' port='%d'/>" % hole.port
    monitor, out = watch_processes(tmp_path, str(tmp_root))
    try:
        with libvirtd.CephSecret(SECRET_UUID, KEY):
            engine = make_engine(tmp_root, libvirt_secret_uri=libvirtd.URI,
                                 ceph_client_mount_timeout=5)
            rec = engine.inspect(job('rbd', RBD_DISK.format(
                uuid=SECRET_UUID, hosts=hosts)))
        monitor.wait(timeout=120)
    finally:
        monitor.kill()
        hole.close()
    seen = json.loads(out.read_text())
    assert seen, 'no rbd process seen'
    # qemu-img opened the image with our conf, user and mount timeout...
    assert ':conf=%s:' % seen['conf'] in seen['cmdline']
    assert 'client_mount_timeout=5' in seen['cmdline']
    assert 'id=cinder' in seen['cmdline']
    assert seen['conf'].startswith(str(tmp_root))
    assert 'mon_host = 127.0.0.1:%d' % hole.port in seen['conf_text']
    assert seen['modes'] == ['0o700', '0o600', '0o600']
    # ...and the key is in no argument and no environment variable.
    for text in (seen['cmdline'], seen['environ']):
        assert KEY_B64 not in text
        assert 'key=' not in text
    # librbd gave up at our mount timeout (the deadline is 900 s);
    # nothing is left behind.
    assert hole.accepted >= 1
    assert rec.status == 'failed'
    assert rec.reason == ('cannot open disk vda: error connecting: '
                          'Connection timed out (no monitor answered, or the '
                          'cephx key was refused)')
    assert list(tmp_root.iterdir()) == []
    assert appliance_children() == []


def test_rbd_without_secret_reads_the_ceph_conf_option(tmp_path, tmp_root):
    # The monitors are only in this file: a connection to the black hole
    # proves librbd read the file named by conf=.
    hole = H.BlackHole()
    conf = tmp_path / 'ceph.conf'
    conf.write_text('[global]\nmon_host = 127.0.0.1:%d\n' % hole.port)
    engine = make_engine(tmp_root, ceph_conf=str(conf),
                         ceph_client_mount_timeout=5)
    try:
        rec = engine.inspect(job('rbd-conf', RBD_DISK.format(
            uuid=SECRET_UUID, hosts='')))
    finally:
        hole.close()
    assert hole.accepted >= 1
    assert rec.status == 'failed'
    assert appliance_children() == []


# --------------------------------------------------------------------------


def test_images_unchanged(images, inspected):
    """Last: every image still has the bytes it had before (all guests
    were inspected by now; inspect any a -k selection skipped)."""
    for name in GUESTS:
        inspected(name)
    for name, (path, digest) in images.items():
        assert builder.sha256(pathlib.Path(path)) == digest, name
