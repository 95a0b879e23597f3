"""tests/guests/builder.py: its cache and images (Linux/blank guests
only: no FUSE mount), qcow2 helpers.  No appliance."""

import json
import os
import subprocess

from tests.guests import builder
from tests.guests import catalog
from tests.guests import layout

ALL = sorted(catalog.GUESTS)


def test_cache_key_stable_and_distinct():
    keys = {name: builder.cache_key(name) for name in ALL}
    assert keys == {name: builder.cache_key(name) for name in ALL}
    assert len(set(keys.values())) == len(ALL)
    assert all(len(k) == 16 for k in keys.values())


def test_cache_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(builder.CACHE_ENV, str(tmp_path / 'c'))
    assert builder.cache_root() == tmp_path / 'c'
    assert builder.image_path('blank').parent == tmp_path / 'c'
    assert builder.cache_root(tmp_path / 'd') == tmp_path / 'd'


def test_build_is_cached_and_atomic(tmp_path):
    path = builder.build('data-only', tmp_path)
    assert path == builder.image_path('data-only', tmp_path)
    stamp = path.stat().st_mtime_ns
    assert builder.build('data-only', tmp_path) == path
    assert path.stat().st_mtime_ns == stamp
    assert os.listdir(tmp_path) == [path.name]    # no temporary left over
    stale = tmp_path / ('data-only-%s.raw' % ('0' * 16))
    stale.write_bytes(b'')
    path.unlink()
    builder.build('data-only', tmp_path)
    assert os.listdir(tmp_path) == [path.name]


def test_build_linux_image(tmp_path):
    path = builder.build('debian-12', tmp_path)
    table = json.loads(subprocess.run(
        ['sfdisk', '--json', str(path)], check=True, capture_output=True,
        text=True).stdout)['partitiontable']
    disk = layout.plan(catalog.GUESTS['debian-12'])
    assert table['label'] == 'dos'
    assert int(table['id'], 16) == int(disk.label_id, 16)
    assert [(p['start'] * 512, p['type']) for p in table['partitions']] == [
        (p.offset, p.type) for p in disk.partitions]
    root = disk.partitions[0]
    fs = tmp_path / 'root.img'
    with open(path, 'rb') as src:
        src.seek(root.offset)
        fs.write_bytes(src.read(root.size))
    release = subprocess.run(
        ['debugfs', '-R', 'cat /usr/lib/os-release', str(fs)],
        check=True, capture_output=True).stdout
    assert release == catalog.GUESTS['debian-12'].linux.os_release
    # ext4 guests are byte-for-byte reproducible (NTFS and LUKS are not:
    # ntfs-3g stamps the current time, cryptsetup draws random salts).
    again = builder.build('debian-12', tmp_path / 'again')
    assert builder.sha256(again) == builder.sha256(path)


def test_blank_image_is_zero_and_sparse(tmp_path):
    path = builder.build('blank', tmp_path)
    assert path.stat().st_size == 64 << 20
    assert path.stat().st_blocks == 0
    assert path.stat().st_mode & 0o222 == 0      # cached images: read-only


def _qemu_info(path):
    return json.loads(subprocess.run(
        ['qemu-img', 'info', '--output=json', str(path)], check=True,
        capture_output=True, text=True).stdout)


def test_qcow2_helpers(tmp_path):
    base = builder.build('rocky-9.3', tmp_path / 'cache')
    overlay = builder.qcow2_overlay(base, tmp_path / 'o.qcow2')
    info = _qemu_info(overlay)
    assert (info['format'], info['backing-filename-format'],
            info['full-backing-filename']) == ('qcow2', 'raw', str(base))
    standalone = builder.standalone_qcow2(base, tmp_path / 's.qcow2')
    info = _qemu_info(standalone)
    assert info['format'] == 'qcow2' and 'backing-filename' not in info
    subprocess.run(['qemu-img', 'compare', '-q', '-f', 'qcow2', '-F', 'raw',
                    str(standalone), str(base)], check=True)


def test_os_only_in_overlay(tmp_path):
    blank, overlay = builder.os_only_in_overlay(
        'ubuntu-22.04', tmp_path / 'out', tmp_path / 'cache')
    source = builder.image_path('ubuntu-22.04', tmp_path / 'cache')
    assert blank.stat().st_size == source.stat().st_size
    assert blank.stat().st_blocks == 0                  # all zeros
    info = _qemu_info(overlay)
    assert info['backing-filename-format'] == 'raw'
    assert info['full-backing-filename'] == str(blank.resolve())
    subprocess.run(['qemu-img', 'compare', '-q', '-f', 'qcow2', '-F', 'raw',
                    str(overlay), str(source)], check=True)
    # The OS is really in the overlay: without its base it still differs
    # from an empty disk wherever the guest wrote.
    allocated = json.loads(subprocess.run(
        ['qemu-img', 'map', '--output=json', str(overlay)], check=True,
        capture_output=True, text=True).stdout)
    assert any(e['data'] and e['depth'] == 0 for e in allocated)
