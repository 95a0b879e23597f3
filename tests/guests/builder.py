"""Builds the catalog's phony guest disks, and caches them.

Owns the I/O half of tests/guests: carrying out a layout.Disk plan with
host tools (sfdisk, mkfs.ext4 -d, mkntfs + ntfs-3g, mkfs.vfat + mtools,
mkswap, cryptsetup, hivexregedit, mkfs.btrfs + a loop mount for its
subvolumes, mkfs.xfs + a loop mount; LVM PVs are written byte by byte
from layout.lvm_pv_areas, each LV's filesystem made as a partition's
is), the image cache, and qcow2 helpers built on qemu-img.  No
libguestfs appliance is needed to build.

Cache: one raw image per guest, ``<name>-<key>.raw`` in ``cache_root()``
(env OS_POLLSTER_GUEST_CACHE, else tests/.guest-cache), where the key
hashes the catalog entry and this package's builder sources; a cached
image costs nothing.  Images are written to a temporary directory in
the cache and renamed into place, so readers never see half an image.
Treat cached images as read-only: derive writable copies with
``qcow2_overlay``/``standalone_qcow2``.
"""

import concurrent.futures
import contextlib
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import uuid

from tests.guests import catalog
from tests.guests import hive
from tests.guests import layout

CACHE_ENV = 'OS_POLLSTER_GUEST_CACHE'
HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_CACHE = HERE.parent / '.guest-cache'
# Changing any of these changes every image's key.
SOURCES = ('builder.py', 'hive.py', 'layout.py')

# 2024-01-01T00:00:00Z: every staged file gets this mtime.
FIXED_TIME = 1704067200

_CHUNK = 1 << 20


class BuildError(RuntimeError):
    """A host tool failed while building a guest image."""


def cache_root(path=None):
    """The image cache directory (created if missing)."""
    path = pathlib.Path(path or os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sources_digest():
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b'\0')
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()


def cache_key(name):
    """16 hex digits naming one build of guest ``name``."""
    guest = catalog.GUESTS[name]
    digest = hashlib.sha256(repr(guest).encode())
    digest.update(_sources_digest().encode())
    return digest.hexdigest()[:16]


def image_path(name, cache_dir=None):
    """Where guest ``name``'s raw image is (or will be) cached."""
    return cache_root(cache_dir) / ('%s-%s.raw' % (name, cache_key(name)))


def sha256(path):
    """Hex SHA-256 of a file's bytes (e.g. to prove a read-only use)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def build(name, cache_dir=None):
    """The raw image of catalog guest ``name``; built on a cache miss."""
    if name not in catalog.GUESTS:
        raise KeyError('no guest %r in the catalog' % name)
    dest = image_path(name, cache_dir)
    if dest.exists():
        return dest
    guest = catalog.GUESTS[name]
    with tempfile.TemporaryDirectory(prefix='.build-%s-' % name,
                                     dir=dest.parent) as work:
        work = pathlib.Path(work)
        image = work / 'disk.raw'
        _build_disk(guest, layout.plan(guest), image, work)
        os.chmod(image, 0o444)
        os.replace(image, dest)
    _drop_stale(name, dest)
    return dest


def disk_images(name, cache_dir=None):
    """[raw image path] of every disk of guest ``name``, boot disk first
    (a guest with a ``second_disk`` has two)."""
    paths = [build(name, cache_dir)]
    second = catalog.GUESTS[name].second_disk
    if second:
        paths.append(build(second, cache_dir))
    return paths


def build_all(names=None, cache_dir=None, jobs=None):
    """{name: raw image path} for ``names`` (default: every guest),
    built in parallel."""
    names = list(names or catalog.GUESTS)
    unknown = [n for n in names if n not in catalog.GUESTS]
    if unknown:
        raise KeyError('no guest %s in the catalog' % ', '.join(unknown))
    jobs = jobs or os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        paths = pool.map(lambda n: build(n, cache_dir), names)
        return dict(zip(names, paths))


def _drop_stale(name, current):
    """Remove images of the same guest built from other inputs."""
    for path in current.parent.glob('%s-*.raw' % name):
        key = path.name[len(name) + 1:-len('.raw')]
        # 'win2022-standard-eval-<key>' also matches 'win2022-standard-*'.
        if path != current and len(key) == 16 and '-' not in key:
            with contextlib.suppress(OSError):
                path.unlink()


# ---------------------------------------------------------------------------
# qcow2 helpers

def qcow2_overlay(base, dest, base_format='raw'):
    """A qcow2 overlay ``dest`` backed by ``base`` (absolute path, with an
    explicit backing format so nothing is probed)."""
    dest = pathlib.Path(dest)
    _run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', base_format,
          '-b', str(pathlib.Path(base).resolve()), str(dest)])
    return dest


def standalone_qcow2(src, dest, src_format='raw'):
    """A self-contained qcow2 copy of ``src``."""
    dest = pathlib.Path(dest)
    tmp = dest.with_name('.%s.tmp' % dest.name)
    _run(['qemu-img', 'convert', '-q', '-f', src_format, '-O', 'qcow2',
          str(src), str(tmp)])
    os.replace(tmp, dest)
    return dest


def os_only_in_overlay(name, dest_dir, cache_dir=None):
    """(blank raw base, qcow2 overlay) where the guest's OS exists only
    in the overlay: the base is all zeros, and the overlay holds every
    cluster of the guest image that differs from it."""
    source = build(name, cache_dir)
    dest_dir = pathlib.Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    base = dest_dir / ('%s-blank-base.raw' % name)
    overlay = dest_dir / ('%s-os-overlay.qcow2' % name)
    with open(base, 'wb') as stream:
        stream.truncate(source.stat().st_size)
    tmp = overlay.with_name('.%s.tmp' % overlay.name)
    _run(['qemu-img', 'convert', '-q', '-f', 'raw', '-O', 'qcow2',
          '-B', str(base.resolve()), '-F', 'raw', str(source), str(tmp)])
    os.replace(tmp, overlay)
    return base, overlay


# ---------------------------------------------------------------------------
# Carrying out a plan

def _run(argv, stdin=None, env=None, cwd=None):
    full_env = dict(os.environ, LC_ALL='C', **(env or {}))
    try:
        result = subprocess.run(argv, input=stdin, capture_output=True,
                                env=full_env, cwd=cwd, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError('%s: %s' % (argv[0], exc)) from exc
    if result.returncode:
        raise BuildError('%s failed (%d): %s' % (
            ' '.join(map(str, argv)), result.returncode,
            result.stderr.decode(errors='replace').strip()[-2000:]))
    return result.stdout


def _build_disk(guest, disk, image, work):
    with open(image, 'wb') as stream:
        stream.truncate(disk.size_mib * layout.MIB)
    if disk.table:
        _run(['sfdisk', '--quiet', '--no-reread', '--no-tell-kernel',
              '--wipe', 'never', str(image)],
             stdin=layout.sfdisk_script(disk).encode())
    for index, part in enumerate(disk.partitions, 1):
        if part.fs is None:
            continue
        fs_image = work / ('part%d.img' % index)
        with open(fs_image, 'wb') as stream:
            stream.truncate(part.size)
        stage = work / ('part%d-files' % index)
        _make_filesystem(part, fs_image, stage, work)
        _copy_into(fs_image, image, part.offset)
        fs_image.unlink()
        shutil.rmtree(stage, ignore_errors=True)


def _make_filesystem(part, fs_image, stage, work):
    fs = part.fs
    if fs.kind in ('ext4', 'corrupt-ext4'):
        _stage(fs.files, stage, work)
        _mkfs_ext4(fs, fs_image, stage)
        if fs.kind == 'corrupt-ext4':
            _garble_superblock(fs_image, fs.uuid)
    elif fs.kind == 'ntfs':
        _stage(fs.files, stage, work)
        _mkfs_ntfs(part, fs_image, stage, work)
    elif fs.kind == 'vfat':
        _stage(fs.files, stage, work)
        _mkfs_vfat(fs, fs_image, stage)
    elif fs.kind == 'btrfs':
        _mkfs_btrfs(fs, fs_image, work)
    elif fs.kind == 'xfs':
        _mkfs_xfs(fs, fs_image, stage, work)
    elif fs.kind == 'lvm-pv':
        _make_pv(part, fs_image, stage, work)
    elif fs.kind == 'swap':
        _run(['mkswap', '-q', '-L', fs.label, '-U', fs.uuid, str(fs_image)])
    elif fs.kind == 'luks':
        _run(['cryptsetup', 'luksFormat', '--batch-mode', '--type', 'luks2',
              '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000',
              '--hash', 'sha256', '--uuid', fs.uuid,
              # Small header areas keep the image small (one keyslot).
              '--luks2-metadata-size', '16k', '--luks2-keyslots-size', '1m',
              '--key-file', '-',
              str(fs_image)], stdin=catalog.LUKS_PASSPHRASE.encode())
    else:
        raise BuildError('unknown filesystem kind %r' % fs.kind)


def _stage(files, stage, work):
    """Write a plan's files under ``stage``, with fixed times."""
    stage.mkdir()
    for path, content in files:
        target = stage / path.lstrip('/')
        if content is layout.DIRECTORY:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, layout.Symlink):
            os.symlink(content.target, target)
        elif content is layout.HOST_ELF:
            shutil.copyfile(os.path.realpath('/bin/ls'), target)
            os.chmod(target, 0o755)
        elif isinstance(content, layout.Hive):
            _make_hive(content, target, work)
        else:
            target.write_bytes(content)
    for root, dirs, names in os.walk(stage, topdown=False):
        for entry in dirs + names:
            os.utime(os.path.join(root, entry), (FIXED_TIME, FIXED_TIME),
                     follow_symlinks=False)
    os.utime(stage, (FIXED_TIME, FIXED_TIME))


def _make_hive(spec, target, work):
    target.write_bytes(hive.empty_hive(spec.root_name, spec.file_name))
    keys = spec.as_dict()
    if not keys:
        return
    with tempfile.NamedTemporaryFile('w', suffix='.reg', dir=work,
                                     encoding='ascii') as reg:
        reg.write(hive.reg_text(keys))
        reg.flush()
        _run(['hivexregedit', '--merge', str(target), reg.name])


def _mkfs_ext4(fs, fs_image, stage):
    _run(['mkfs.ext4', '-q', '-F', '-L', fs.label, '-U', fs.uuid,
          '-E', 'hash_seed=%s,root_owner=0:0' % fs.uuid,
          '-d', str(stage), str(fs_image)],
         env={'E2FSPROGS_FAKE_TIME': str(FIXED_TIME)})
    # mkfs -d copies each file's ctime, which no one can set on the
    # staged copy: pin it afterwards so the image is reproducible.
    commands = []
    for root, dirs, names in os.walk(stage):
        for entry in [''] + dirs + names:
            path = '/' + os.path.relpath(os.path.join(root, entry), stage)
            path = os.path.normpath(path)
            for field in ('ctime', 'ctime_extra', 'atime_extra',
                          'mtime_extra'):
                value = '@%d' % FIXED_TIME if field == 'ctime' else '0'
                commands.append('sif "%s" %s %s' % (path, field, value))
    _run(['debugfs', '-w', '-f', '-', str(fs_image)],
         stdin=('\n'.join(sorted(set(commands))) + '\n').encode(),
         env={'E2FSPROGS_FAKE_TIME': str(FIXED_TIME)})


def _garble_superblock(fs_image, seed):
    """Fill the primary superblock with noise, keeping only the ext
    magic: blkid may still say ext4, but nothing can mount it."""
    noise = b''
    block = seed.encode()
    while len(noise) < 1024:
        block = hashlib.sha256(block).digest()
        noise += block
    noise = bytearray(noise[:1024])
    noise[0x38:0x3a] = b'\x53\xef'
    with open(fs_image, 'r+b') as stream:
        stream.seek(1024)
        stream.write(noise)


def _mkfs_ntfs(part, fs_image, stage, work):
    _run(['mkntfs', '-F', '-Q', '-q', '-L', part.fs.label, '-s', '512',
          '-p', str(part.offset // layout.SECTOR), '-H', '255', '-S', '63',
          str(fs_image)])
    _set_ntfs_serial(fs_image, part.fs.uuid)
    mountpoint = work / ('mnt-%s' % fs_image.stem)
    mountpoint.mkdir()
    with _ntfs_mounted(fs_image, mountpoint):
        for root, dirs, names in os.walk(stage):
            rel = pathlib.Path(root).relative_to(stage)
            for name in dirs:
                (mountpoint / rel / name).mkdir()
            for name in names:
                shutil.copyfile(os.path.join(root, name),
                                mountpoint / rel / name)
                os.utime(mountpoint / rel / name, (FIXED_TIME, FIXED_TIME))


def _set_ntfs_serial(fs_image, fs_uuid):
    """mkntfs picks a random volume serial; make it stable, in the boot
    sector and in its backup (the volume's last sector)."""
    serial = uuid.UUID(fs_uuid).bytes[:8]
    size = fs_image.stat().st_size
    with open(fs_image, 'r+b') as stream:
        for offset in (0, size - layout.SECTOR):
            stream.seek(offset)
            sector = stream.read(layout.SECTOR)
            if sector[3:11] == b'NTFS    ':
                stream.seek(offset + 0x48)
                stream.write(serial)


@contextlib.contextmanager
def _ntfs_mounted(fs_image, mountpoint):
    """Mount with ntfs-3g (FUSE) in the foreground, so that after the
    unmount, waiting for the process means every byte is written."""
    proc = subprocess.Popen(['ntfs-3g', '-o', 'no_detach', str(fs_image),
                             str(mountpoint)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None:
                raise BuildError('ntfs-3g could not mount %s: %s' % (
                    fs_image, proc.stderr.read().decode(errors='replace')))
            if time.monotonic() > deadline:
                raise BuildError('ntfs-3g did not mount %s' % fs_image)
            time.sleep(0.02)
        yield mountpoint
    finally:
        if os.path.ismount(mountpoint):
            _run(['umount', str(mountpoint)])
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BuildError('ntfs-3g did not exit after unmounting')
        finally:
            proc.stderr.close()


def _mkfs_btrfs(fs, fs_image, work):
    """btrfs with ``fs.subvolumes`` empty subvolumes, or the subvolumes,
    snapshots and files of ``fs.subvolume_plan``.  mkfs.btrfs 6.2
    cannot make subvolumes, so the image is loop-mounted (root, and a
    kernel with btrfs) to create them."""
    # Mixed block groups: a btrfs this small (24 MiB) needs them.
    _run(['mkfs.btrfs', '-q', '-f', '--mixed', '-L', fs.label, '-U',
          fs.uuid, str(fs_image)])
    if not fs.subvolumes and not fs.subvolume_plan:
        return
    mountpoint = work / ('mnt-%s' % fs_image.stem)
    mountpoint.mkdir()
    # -o loop: the loop device goes away with the unmount (autoclear).
    _run(['mount', '-t', 'btrfs', '-o', 'loop', str(fs_image),
          str(mountpoint)])
    try:
        for number in range(1, fs.subvolumes + 1):
            _run(['btrfs', '-q', 'subvolume', 'create',
                  str(mountpoint / ('sv%04d' % number))])
        for index, sub in enumerate(fs.subvolume_plan):
            _btrfs_subvolume(sub, mountpoint, work / (
                'sub-%s-%d' % (fs_image.stem, index)), work)
    finally:
        _run(['umount', str(mountpoint)])


def _btrfs_subvolume(sub, mountpoint, stage, work):
    target = mountpoint / sub.path if sub.path else mountpoint
    if sub.path:
        target.parent.mkdir(parents=True, exist_ok=True)
        if sub.snapshot_of:
            _run(['btrfs', '-q', 'subvolume', 'snapshot',
                  str(mountpoint / sub.snapshot_of), str(target)])
        else:
            _run(['btrfs', '-q', 'subvolume', 'create', str(target)])
    if sub.files:
        _stage(sub.files, stage, work)
        _run(['cp', '-a', '--remove-destination', str(stage) + '/.',
              str(target)])
        shutil.rmtree(stage)
    if sub.readonly:
        _run(['btrfs', 'property', 'set', '-ts', str(target), 'ro', 'true'])
    if sub.default:
        _run(['btrfs', 'subvolume', 'set-default', str(target)])


def _mkfs_xfs(fs, fs_image, stage, work):
    """XFS filled through a loop mount (root, a kernel with xfs).  Not
    byte-reproducible: the kernel stamps ctimes and inode generations."""
    # mkfs.xfs refuses filesystems under 300 MB unless it believes it
    # runs under xfstests.
    _run(['mkfs.xfs', '-q', '-f', '-L', fs.label, '-m', 'uuid=%s' % fs.uuid,
          str(fs_image)],
         env={'TEST_DEV': '1', 'TEST_DIR': '1', 'QA_CHECK_FS': '1'})
    if not fs.files:
        return
    _stage(fs.files, stage, work)
    mountpoint = work / ('mnt-%s' % fs_image.stem)
    mountpoint.mkdir()
    _run(['mount', '-t', 'xfs', '-o', 'loop', str(fs_image),
          str(mountpoint)])
    try:
        _run(['cp', '-a', str(stage) + '/.', str(mountpoint)])
    finally:
        _run(['umount', str(mountpoint)])
    shutil.rmtree(stage, ignore_errors=True)


def _make_pv(part, fs_image, stage, work):
    """An LVM PV: each LV's filesystem made on its own, copied in at
    the LV's extents, then the PV label and VG metadata written."""
    placed, _ = layout.lvm_extents(part.fs, part.size)
    for lv, offset in placed:
        lv_image = work / ('%s-lv-%s.img' % (fs_image.stem, lv.name))
        with open(lv_image, 'wb') as stream:
            stream.truncate(lv.size_mib * layout.MIB)
        lv_part = layout.Partition(part.start_mib, lv.size_mib, '', lv.fs)
        _make_filesystem(lv_part, lv_image,
                         work / ('%s-lv-%s-files' % (fs_image.stem,
                                                     lv.name)), work)
        _copy_into(lv_image, fs_image, offset)
        lv_image.unlink()
    with open(fs_image, 'r+b') as stream:
        for offset, data in layout.lvm_pv_areas(part.fs, part.size):
            stream.seek(offset)
            stream.write(data)


def _mkfs_vfat(fs, fs_image, stage):
    volume_id = uuid.UUID(fs.uuid).hex[:8]
    _run(['mkfs.vfat', '--invariant', '-n', fs.label, '-i', volume_id,
          str(fs_image)])
    env = {'MTOOLS_SKIP_CHECK': '1'}
    for entry in sorted(os.listdir(stage)):
        _run(['mcopy', '-s', '-p', '-m', '-Q', '-i', str(fs_image),
              str(stage / entry), '::/'], env=env)


def _copy_into(fs_image, image, offset):
    """Copy a filesystem image into the disk at ``offset``, keeping
    holes (only data extents are read and written)."""
    with open(fs_image, 'rb') as src, open(image, 'r+b') as dst:
        size = os.fstat(src.fileno()).st_size
        position = 0
        while position < size:
            try:
                start = os.lseek(src.fileno(), position, os.SEEK_DATA)
            except OSError:
                break                       # only a hole remains
            end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            while start < end:
                length = min(_CHUNK, end - start)
                chunk = os.pread(src.fileno(), length, start)
                if chunk.count(0) != len(chunk):
                    os.pwrite(dst.fileno(), chunk, offset + start)
                start += length
            position = end
