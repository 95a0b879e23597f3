"""The appliance (appliance.py, with the roots it gathers:
appliance_roots.py) against a fake guestfs handle (no qemu, no
libguestfs).

``FakeGuestfs`` is a module stand-in whose handles serve a small disk
model (devices, filesystems, roots, files, registry hives) and record
every call, so the tests can check what the appliance asked for (drive
options, bounded reads) as well as what it made of the answers.
"""

import types

import pytest

from ceilometer_os_pollster.inspection import appliance as A
from ceilometer_os_pollster.inspection import confinement as C
from ceilometer_os_pollster.inspection import worker as W
from ceilometer_os_pollster import options
from ceilometer_os_pollster.inspection import appliance_roots as R
from ceilometer_os_pollster.instances import drives
from ceilometer_os_pollster.families import facts as F
from ceilometer_os_pollster.families import linux as LX
from ceilometer_os_pollster.families import sqlserver as SQ
from ceilometer_os_pollster.inspection import guest_files as G
from ceilometer_os_pollster.families import guest_formats as GF
from ceilometer_os_pollster.storage import overlay as OV


# --------------------------------------------------------------------------
# The fake


def utf16(text):
    return text.encode('utf-16-le') + b'\x00\x00'


def dword(number):
    return number.to_bytes(4, 'little')


class Hive:
    """A registry tree: {'Key': Hive-or-dict} plus values {name: (type,
    bytes)}; node and value handles are ids into one table."""

    def __init__(self, values=None, **children):
        self.values = dict(values or {})
        self.children = {name: (child if isinstance(child, Hive)
                                else Hive(**child))
                         for name, child in children.items()}


def hive_path(*names, values=None):
    """A Hive holding ``values`` at the key path ``names``."""
    node = Hive(values=values)
    for name in reversed(names):
        node = Hive(**{name: node})
    return node


def merge(*hives):
    result = Hive()
    for hive in hives:
        _merge_into(result, hive)
    return result


def _merge_into(into, hive):
    into.values.update(hive.values)
    for name, child in hive.children.items():
        if name in into.children:
            _merge_into(into.children[name], child)
        else:
            into.children[name] = child


class Disk:
    """What the fake appliance sees once launched."""

    def __init__(self, devices=('/dev/sda',), filesystems=None, roots=None,
                 files=None, hives=None, inspect_error=None, fail=None,
                 unmountable=(), hidden=None, lvs=()):
        self.devices = list(devices)
        self.filesystems = dict(filesystems or {})
        # root device -> {'type':..., 'distro':..., 'mountpoints': {...}}
        self.roots = dict(roots or {})
        # filesystem device -> {path: bytes}
        self.files = dict(files or {})
        # (filesystem device, path) -> Hive
        self.hives = dict(hives or {})
        self.inspect_error = inspect_error
        # method name -> exception raised when it is called
        self.fail = dict(fail or {})
        self.unmountable = set(unmountable)
        # Block devices list_filesystems leaves out -> vfs_type (LUKS...).
        self.hidden = dict(hidden or {})
        self.lvs = list(lvs)


class FakeHandle:
    def __init__(self, module, **kwargs):
        self.module = module
        self.disk = module.disk
        self.kwargs = kwargs
        self.calls = []
        self.drives = []
        self.closed = False
        self.launched = False
        self.mounted = {}
        self.settings = {}
        self.callback = None
        self.hive = None
        self._nodes = []
        self._values = []

    def _call(self, name, *args):
        self.calls.append((name,) + args)
        if self.module.killed and self.launched:
            raise RuntimeError('appliance closed the connection '
                               'unexpectedly')
        if name in self.disk.fail:
            raise self.disk.fail[name]

    def __getattr__(self, name):
        if name.startswith('set_'):
            def setter(*args):
                self._call(name, *args)
                self.settings[name[4:]] = args[0] if args else None
            return setter
        raise AttributeError(name)

    # -- life cycle
    def ping_daemon(self):
        self._call('ping_daemon')

    def get_hv(self):
        return self.settings.get('hv', '/usr/bin/qemu-system-x86_64')

    def set_event_callback(self, callback, mask):
        self._call('set_event_callback', mask)
        self.callback = callback
        return 1

    def add_drive_opts(self, filename, **kwargs):
        self._call('add_drive_opts', filename, kwargs)
        self.drives.append((filename, kwargs))
        hook = self.module.on_add_drive
        if hook:
            hook(filename, kwargs)

    def launch(self):
        self._call('launch')
        if self.callback:
            self.callback(0x10, 1, b'appliance says \x1b[31mhello\n', [])
        if self.module.on_launch:
            self.module.on_launch()
        self.launched = True
        if self.module.killed:
            raise RuntimeError('guestfs launch failed: qemu killed')

    def get_pid(self):
        self._call('get_pid')
        return 4242

    def close(self):
        self.calls.append(('close',))
        self.closed = True

    # -- inspection
    def list_devices(self):
        self._call('list_devices')
        return list(self.disk.devices)

    def list_filesystems(self):
        self._call('list_filesystems')
        return dict(self.disk.filesystems)

    def list_partitions(self):
        self._call('list_partitions')
        return sorted(d for d in list(self.disk.filesystems) +
                      list(self.disk.hidden)
                      if d.startswith('/dev/sd') and d[-1].isdigit())

    def lvs(self):
        self._call('lvs')
        return list(self.disk.lvs)

    def vfs_type(self, device):
        self._call('vfs_type', device)
        if device in self.disk.hidden:
            return self.disk.hidden[device]
        return self.disk.filesystems.get(device, '')

    def inspect_os(self):
        self._call('inspect_os')
        if self.module.on_inspect:
            self.module.on_inspect()
            self._call('inspect_os')
        if self.disk.inspect_error:
            raise RuntimeError(self.disk.inspect_error)
        return list(self.disk.roots)

    def _root(self, name, root, default):
        self._call(name, root)
        return self.disk.roots[root].get(name[len('inspect_get_'):],
                                         default)

    def inspect_get_type(self, root):
        return self._root('inspect_get_type', root, 'unknown')

    def inspect_get_distro(self, root):
        return self._root('inspect_get_distro', root, 'unknown')

    def inspect_get_osinfo(self, root):
        return self._root('inspect_get_osinfo', root, 'unknown')

    def inspect_get_product_name(self, root):
        return self._root('inspect_get_product_name', root, 'unknown')

    def inspect_get_product_variant(self, root):
        return self._root('inspect_get_product_variant', root, 'unknown')

    def inspect_get_arch(self, root):
        return self._root('inspect_get_arch', root, 'unknown')

    def inspect_get_major_version(self, root):
        return self._root('inspect_get_major_version', root, 0)

    def inspect_get_minor_version(self, root):
        return self._root('inspect_get_minor_version', root, 0)

    def inspect_get_mountpoints(self, root):
        return self._root('inspect_get_mountpoints', root, {'/': root})

    def inspect_get_windows_software_hive(self, root):
        return self._root('inspect_get_windows_software_hive', root,
                          '/Windows/System32/config/SOFTWARE')

    def part_to_dev(self, device):
        self._call('part_to_dev', device)
        base = device.rstrip('0123456789')
        if base == device or not base.startswith('/dev/sd'):
            raise RuntimeError('part_to_dev: not a partition')
        return base

    def vgpvuuids(self, vg):
        self._call('vgpvuuids', vg)
        return ['uuid-' + pv for pv in self.module.lvm.get(vg, ())]

    def pvs(self):
        self._call('pvs')
        return [pv for pvs in self.module.lvm.values() for pv in pvs]

    def pvuuid(self, pv):
        self._call('pvuuid', pv)
        return 'uuid-' + pv

    # -- files
    def mount_ro(self, device, mountpoint):
        self._call('mount_ro', device, mountpoint)
        if device not in self.disk.filesystems:
            raise RuntimeError('mount_ro: %s: no such device' % device)
        if device in self.disk.unmountable:
            raise RuntimeError('mount_ro: %s: wrong fs type' % device)
        self.mounted[mountpoint] = device

    def umount_all(self):
        self._call('umount_all')
        self.mounted = {}

    def _lookup(self, path):
        for mountpoint in sorted(self.mounted, key=len, reverse=True):
            prefix = mountpoint.rstrip('/') + '/'
            if path == mountpoint or path.startswith(prefix):
                files = self.disk.files.get(self.mounted[mountpoint], {})
                rest = '/' + path[len(prefix):] if mountpoint != '/' \
                    else path
                return files.get(rest)
        raise RuntimeError('%s: nothing mounted' % path)

    def is_file(self, path, followsymlinks=None):
        self._call('is_file', path)
        return self._lookup(path) is not None

    def filesize(self, path):
        self._call('filesize', path)
        return len(self._lookup(path))

    def read_file(self, path):
        self._call('read_file', path)
        return self._lookup(path)

    def pread(self, path, count, offset):
        self._call('pread', path, count, offset)
        return self._lookup(path)[offset:offset + count]

    def case_sensitive_path(self, path):
        self._call('case_sensitive_path', path)
        device = self.mounted.get('/')
        for real in self.disk.files.get(device, {}):
            if real.lower() == path.lower():
                return real
        return path

    # -- hivex
    def hivex_open(self, path, write=None):
        self._call('hivex_open', path, write)
        device = self.mounted.get('/')
        if (device, path) not in self.disk.hives:
            raise RuntimeError('hivex_open: %s: no such file' % path)
        self.hive = self.disk.hives[(device, path)]
        self._nodes = [None, self.hive]
        self._values = [None]

    def hivex_close(self):
        self._call('hivex_close')
        self.hive = None

    def hivex_root(self):
        self._call('hivex_root')
        return 1

    def hivex_node_get_child(self, node, name):
        self._call('hivex_node_get_child', node, name)
        for key, child in self._nodes[node].children.items():
            if key.lower() == name.lower():
                self._nodes.append(child)
                return len(self._nodes) - 1
        return 0

    def hivex_node_get_value(self, node, name):
        self._call('hivex_node_get_value', node, name)
        for key, value in self._nodes[node].values.items():
            if key.lower() == name.lower():
                self._values.append(value)
                return len(self._values) - 1
        return 0

    def hivex_node_values(self, node):
        self._call('hivex_node_values', node)
        result = []
        for value in self._nodes[node].values.values():
            self._values.append(value)
            result.append({'hivex_value_h': len(self._values) - 1})
        return result

    def hivex_value_type(self, valueh):
        self._call('hivex_value_type', valueh)
        return self._values[valueh][0]

    def hivex_value_value(self, valueh):
        self._call('hivex_value_value', valueh)
        return self._values[valueh][1]


class FakeGuestfs:
    """Stands in for the guestfs module."""

    EVENT_APPLIANCE = 0x10
    EVENT_WARNING = 0x80

    def __init__(self, disk=None):
        self.disk = disk or Disk()
        self.handles = []
        self.killed = False
        self.lvm = {}
        self.on_add_drive = None
        self.on_launch = None
        self.on_inspect = None

    def GuestFS(self, **kwargs):
        handle = FakeHandle(self, **kwargs)
        self.handles.append(handle)
        return handle

    @property
    def handle(self):
        return self.handles[-1]


OPTS = dict(appliance_memory_mb=768, inspection_deadline=300,
            libguestfs_backend='direct', libguestfs_backend_settings=[],
            appliance_cache_dir='', tmp_dir='', inspect_all_disks=False,
            libvirt_secret_uri='', ceph_conf='/etc/ceph/ceph.conf',
            ceph_client_mount_timeout=20, ceph_user='', max_filesystems=512)


def opts(**changes):
    values = dict(OPTS)
    values.update(changes)
    return types.SimpleNamespace(**values)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'disk.raw'
    path.write_bytes(b'\0' * 4096)
    return str(path)


def spec(path, target='vda', label='vda', **kwargs):
    kwargs.setdefault('kind', drives.KIND_FILE)
    return drives.DriveSpec(target=target, path=path, label=label, **kwargs)


class FakeOverlays:
    """overlay.Overlays without qemu-img: one path per drive, or the
    error ``fail`` says for a target."""

    def __init__(self, fail=None):
        self.fail = dict(fail or {})
        self.paths = []
        self.forgotten = 0

    def add(self, spec):
        if spec.target in self.fail:
            raise self.fail[spec.target]
        path = '/private/%s.qcow2' % spec.label
        self.paths.append(path)
        return path

    def forget_secrets(self):
        self.forgotten += 1


def good_cmdline(overlays):
    def read(pid):
        argv = ['/usr/bin/qemu-system-x86_64', '-kernel', 'k']
        for n, path in enumerate(overlays.paths):
            argv += ['-drive', 'file=%s,cache=writeback,format=qcow2,'
                     'id=hd%d,if=none' % (path, n)]
        return argv + ['-drive', 'file=/var/tmp/appliance.d/root,'
                       'snapshot=on,id=appliance,cache=unsafe,if=none,'
                       'format=raw']
    return read


def run(module, specs, **kwargs):
    """Appliance.inspect() with fakes everywhere; returns the facts."""
    overlays = kwargs.setdefault('overlays', FakeOverlays())
    kwargs.setdefault('read_cmdline', good_cmdline(overlays))
    app = A.Appliance(kwargs.pop('opts', None) or opts(), specs,
                      kwargs.pop('private_dir', '/private'),
                      guestfs_module=module, **kwargs)
    return app.inspect()


def calls(handle, name):
    return [c for c in handle.calls if c[0] == name]


# --------------------------------------------------------------------------
# Configuration and drives


def test_handle_configured_from_options(image):
    module = FakeGuestfs()
    stages = []
    run(module, [spec(image)], stage=stages.append,
        opts=opts(appliance_memory_mb=1024, libguestfs_backend='direct',
                  libguestfs_backend_settings=['force_tcg'],
                  appliance_cache_dir='/var/cache/x'),
        private_dir='/run/p1')
    handle = module.handle
    assert handle.kwargs == {'python_return_dict': True,
                             'close_on_exit': False}
    assert handle.settings['memsize'] == 1024
    assert handle.settings['backend'] == 'direct'
    assert handle.settings['backend_settings'] == ['force_tcg']
    assert handle.settings['cachedir'] == '/var/cache/x'
    assert handle.settings['network'] is False
    assert handle.settings['autosync'] is False
    assert handle.settings['tmpdir'] == '/run/p1'
    # qemu must stay in the worker's process group (killed as a whole).
    assert 'pgroup' not in handle.settings
    assert stages == ['opening disks', 'launching the appliance',
                      'inspecting']
    assert handle.closed


def test_backend_settings_left_alone_when_option_empty(image):
    module = FakeGuestfs()
    run(module, [spec(image)])
    assert 'backend_settings' not in module.handle.settings
    assert 'cachedir' not in module.handle.settings


def test_only_the_direct_backend_is_accepted(image):
    module = FakeGuestfs()
    with pytest.raises(A.ApplianceError) as err:
        run(module, [spec(image)], opts=opts(libguestfs_backend='libvirt'))
    assert 'only "direct"' in err.value.reason
    assert module.handles == []


def test_every_drive_is_our_overlay_with_an_explicit_format(image):
    module = FakeGuestfs(Disk(devices=['/dev/sda', '/dev/sdb']))
    facts = run(module, [spec(image, format='raw'),
                         spec(image, target='vdb', label='vdb',
                              format='qcow2')])
    # Read-write on our own overlay: a read-only drive would get a
    # libguestfs overlay that qemu opens without a format.
    assert module.handle.drives == [
        ('/private/vda.qcow2', {'readonly': False, 'format': 'qcow2',
                                'label': 'vda'}),
        ('/private/vdb.qcow2', {'readonly': False, 'format': 'qcow2',
                                'label': 'vdb'}),
    ]
    assert facts.drives == 2


def test_keys_are_forgotten_once_the_appliance_has_opened_the_disks(image):
    module = FakeGuestfs()
    overlays = FakeOverlays()
    seen = []
    module.on_launch = lambda: seen.append(overlays.forgotten)
    run(module, [spec(image)], overlays=overlays)
    assert seen == [0]                  # still there for qemu's open
    assert overlays.forgotten >= 1      # and gone right after launch


@pytest.mark.parametrize('argv_change,problem', [
    (lambda a: [x.replace(',format=qcow2', '') for x in a],
     'a -drive without format= (qemu would probe it)'),
    (lambda a: [x.replace('/private/vda.qcow2', '/var/lib/x') for x in a],
     'a -drive that is not one of our overlays'),
    (lambda a: a + ['-blockdev', 'driver=file'],
     'unexpected -blockdev option'),
])
def test_a_qemu_that_would_open_unpinned_nodes_is_refused(
        image, argv_change, problem, caplog):
    module = FakeGuestfs()
    overlays = FakeOverlays()
    good = good_cmdline(overlays)
    with pytest.raises(A.ApplianceError) as err:
        run(module, [spec(image)], overlays=overlays,
            read_cmdline=lambda pid: argv_change(good(pid)))
    assert err.value.reason.startswith('refused: appliance qemu would '
                                       'probe a disk format')
    assert problem in err.value.reason
    assert calls(module.handle, 'inspect_os') == []
    assert module.handle.closed
    warnings = [r for r in caplog.records if r.levelname == 'WARNING'
                and 'refusing to inspect' in r.getMessage()]
    assert len(warnings) == 1


def test_unreadable_boot_disk_gives_a_clear_reason(image):
    module = FakeGuestfs()
    overlays = FakeOverlays(fail={'vda': OV.OverlayError(
        'cannot open disk: /d/gone: No such file or directory')})
    with pytest.raises(A.ApplianceError) as err:
        run(module, [spec(image)], overlays=overlays)
    assert err.value.reason == ('cannot open disk: /d/gone: No such file '
                                'or directory')
    assert calls(module.handle, 'launch') == []
    assert module.handle.closed


def test_unreadable_data_disk_is_skipped_with_a_warning(image):
    module = FakeGuestfs()
    overlays = FakeOverlays(fail={'vdb': OV.OverlayError(
        'cannot open disk: /d/gone: No such file or directory')})
    facts = run(module, [spec(image), spec(image, target='vdb',
                                           label='vdb')],
                overlays=overlays)
    assert [d[0] for d in module.handle.drives] == ['/private/vda.qcow2']
    assert facts.drives == 1
    assert facts.warnings == ['vdb skipped: cannot open disk: /d/gone: No '
                              'such file or directory']


def test_qcow2_encrypted_image_is_reported_not_opened(image):
    module = FakeGuestfs()
    overlays = FakeOverlays(fail={'vda': OV.EncryptedImage(
        'qcow2 image is encrypted')})
    facts = run(module, [spec(image, format='qcow2')], overlays=overlays)
    assert calls(module.handle, 'launch') == []
    assert facts.encrypted_devices == ['vda']


def test_disk_index_follows_specs_when_drives_are_left_out(image):
    # vdb is encrypted by qemu (not added), vdc unreadable (skipped): the
    # appliance's /dev/sdb is vdd, the fourth spec.
    module = FakeGuestfs(Disk(
        devices=['/dev/sda', '/dev/sdb'],
        filesystems={'/dev/sda1': 'ext4', '/dev/sdb1': 'ext4'},
        roots={'/dev/sda1': {'type': 'linux'},
               '/dev/sdb1': {'type': 'windows'}}))
    overlays = FakeOverlays(fail={'vdc': OV.OverlayError('gone')})
    facts = run(module, [
        spec(image),
        spec(image, target='vdb', label='vdb', encryption='luks'),
        spec(image, target='vdc', label='vdc'),
        spec(image, target='vdd', label='vdd')], overlays=overlays)
    assert [(r.device, r.disk_index) for r in facts.roots] == [
        ('/dev/sda1', 0), ('/dev/sdb1', 3)]
    assert [d[1]['label'] for d in module.handle.drives] == ['vda', 'vdd']
    assert facts.drives == 3


def test_qemu_encrypted_disks_are_reported_not_opened(image):
    module = FakeGuestfs()
    facts = run(module, [spec(image, encryption='luks')])
    assert module.handles == []          # no appliance at all
    assert facts.encrypted_devices == ['vda']
    assert facts.encrypted_types == {'vda': 'crypto_LUKS'}


def test_appliance_log_lines_are_kept_clean_and_bounded(image):
    module = FakeGuestfs(Disk(fail={'list_devices': RuntimeError('boom')}))
    overlays = FakeOverlays()
    app = A.Appliance(opts(), [spec(image)], '/private',
                      guestfs_module=module, overlays=overlays,
                      read_cmdline=good_cmdline(overlays))
    with pytest.raises(A.ApplianceError):
        app.inspect()
    assert list(app.log_lines) == ['appliance says hello']
    for n in range(A.MAX_LOG_LINES + 5):
        app._on_event(0x10, 1, ('line %d\n' % n).encode(), [])
    assert len(app.log_lines) == A.MAX_LOG_LINES


# --------------------------------------------------------------------------
# Close always, errors


@pytest.mark.parametrize('failing', ['add_drive_opts', 'launch',
                                     'list_devices'])
def test_handle_closed_and_reason_safe_on_failure(image, failing):
    error = RuntimeError('%s: /private/x key=AQBzZWNyZXQ= failed\nTo see '
                         'full error messages you may need to enable '
                         'debugging' % failing)
    module = FakeGuestfs(Disk(fail={failing: error}))
    with pytest.raises(A.ApplianceError) as err:
        run(module, [spec(image)])
    assert module.handle.closed
    prefix = 'cannot open disk vda: ' if failing == 'add_drive_opts' else ''
    assert err.value.reason == prefix + '%s: .../x key=*** failed' % failing


def test_handle_closed_on_unexpected_exception(image):
    module = FakeGuestfs(Disk(fail={'list_devices': KeyError('bug')}))
    with pytest.raises(KeyError):
        run(module, [spec(image)])
    assert module.handle.closed


def test_missing_guestfs_module_is_a_reason(image, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == 'guestfs':
            raise ImportError('No module named guestfs')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', fake_import)
    assert A.guestfs_available() == (False, 'No module named guestfs')
    with pytest.raises(A.ApplianceError) as err:
        A.Appliance(opts(), [spec(image)], '/private',
                    overlays=FakeOverlays()).inspect()
    assert err.value.reason == ('libguestfs Python module missing: No '
                                'module named guestfs')


def test_short_error_hides_private_dir_and_keeps_first_line():
    exc = RuntimeError('qemu-img: /tmp/os-inspection-abc/libguestfsX/'
                       'overlay1.qcow2: exited with error status 1.\n'
                       'To see full error messages...')
    assert A.short_error(exc, '/tmp/os-inspection-abc') == (
        'qemu-img: .../libguestfsX/overlay1.qcow2: exited with error '
        'status 1.')
    assert A.short_error(RuntimeError('')) == 'RuntimeError'
    assert len(A.short_error(RuntimeError('x' * 5000))) == A.MAX_REASON


def test_read_cmdline_splits_argv(tmp_path):
    (tmp_path / '42').mkdir()
    (tmp_path / '42' / 'cmdline').write_bytes(b'qemu\0-drive\0file=x\0')
    argv = A._read_cmdline(42, str(tmp_path))
    assert argv == ['qemu', '-drive', 'file=x']


# --------------------------------------------------------------------------
# Facts


# ------------------------------------- the check of qemu's sandbox flags

def test_appliance_refuses_a_qemu_without_its_sandbox(tmp_path):
    module = FakeGuestfs()
    wrapped = []

    def hv(qemu):
        wrapped.append(qemu)
        return C.write_wrapper(
            str(tmp_path), qemu,
            W.options_namespace(dict(options.DEFAULTS)))

    # The fake's qemu command line is libguestfs' own, without -sandbox.
    with pytest.raises(A.ApplianceError, match='without its sandbox'):
        run(module, [spec('/d/disk')], hv=hv, private_dir=str(tmp_path))
    assert wrapped == ['/usr/bin/qemu-system-x86_64']
    assert module.handle.settings['hv'] == str(tmp_path / C.WRAPPER_NAME)


WINDOWS_HIVE = merge(
    hive_path('Microsoft', 'Windows NT', 'CurrentVersion', values={
        'ProductName': (1, utf16('Windows Server 2022 Datacenter')),
        'EditionID': (1, utf16('ServerDatacenter')),
        'InstallationType': (1, utf16('Server')),
        'CurrentBuildNumber': (1, utf16('20348')),
        'CurrentBuild': (2, utf16('20348')),
        'DisplayVersion': (1, utf16('21H2')),
        'CurrentMajorVersionNumber': (4, dword(10)),
        'CurrentMinorVersionNumber': (4, dword(0)),
        'DigitalProductId': (3, b'\x01' * 164),
    }),
    hive_path('Microsoft', 'Microsoft SQL Server', 'Instance Names',
              'SQL', values={'MSSQLSERVER': (1, utf16('MSSQL16.MSSQLSERVER')),
                             'SQLEXPRESS': (1, utf16('MSSQL16.SQLEXPRESS'))}),
    hive_path('Microsoft', 'Microsoft SQL Server',
              'MSSQL16.MSSQLSERVER', 'Setup', values={
                  'Edition': (1, utf16('Enterprise Edition: Core-based '
                                       'Licensing (64-bit)'))}),
    hive_path('Microsoft', 'Microsoft SQL Server',
              'MSSQL16.SQLEXPRESS', 'Setup', values={
                  'Edition': (1, utf16('Express Edition (64-bit)'))}),
    hive_path('WOW6432Node', 'Microsoft', 'Microsoft SQL Server',
              'Instance Names', 'SQL',
              values={'OLD': (1, utf16('MSSQL10.OLD'))}),
    hive_path('WOW6432Node', 'Microsoft', 'Microsoft SQL Server',
              'MSSQL10.OLD', 'Setup',
              values={'Edition': (1, utf16('Standard Edition'))}),
)
HIVE_PATH = '/Windows/System32/config/SOFTWARE'


def windows_disk(**kwargs):
    kwargs.setdefault('hives', {('/dev/sda2', HIVE_PATH): WINDOWS_HIVE})
    return Disk(
        filesystems={'/dev/sda1': 'ntfs', '/dev/sda2': 'ntfs'},
        roots={'/dev/sda2': {'type': 'windows', 'distro': 'windows',
                             'osinfo': 'win2k22', 'arch': 'x86_64',
                             'product_name': 'Windows Server 2022 '
                                             'Datacenter',
                             'product_variant': 'Server',
                             'major_version': 10, 'minor_version': 0,
                             'windows_software_hive': HIVE_PATH}},
        files={'/dev/sda2': {HIVE_PATH: b'regf'}}, **kwargs)


def test_windows_root_registry_values_and_sql_editions(image):
    module = FakeGuestfs(windows_disk())
    facts = run(module, [spec(image)])
    root, = facts.roots
    assert (root.device, root.disk_index, root.type, root.distro,
            root.osinfo, root.arch, root.major, root.minor) == (
        '/dev/sda2', 0, 'windows', 'windows', 'win2k22', 'x86_64', 10, 0)
    assert root.windows == {
        'ProductName': 'Windows Server 2022 Datacenter',
        'EditionID': 'ServerDatacenter', 'InstallationType': 'Server',
        'CurrentBuildNumber': '20348', 'CurrentBuild': '20348',
        'DisplayVersion': '21H2', 'CurrentMajorVersionNumber': 10,
        'CurrentMinorVersionNumber': 0}
    assert root.sql_editions == [
        'Enterprise Edition: Core-based Licensing (64-bit)',
        'Express Edition (64-bit)', 'Standard Edition']
    handle = module.handle
    assert calls(handle, 'mount_ro') == [('mount_ro', '/dev/sda2', '/')]
    assert calls(handle, 'hivex_open') == [('hivex_open', HIVE_PATH, False)]
    assert len(calls(handle, 'hivex_close')) == 1
    assert calls(handle, 'umount_all')
    assert facts.filesystems == 2 and facts.warnings == []
    rec = F.normalise(facts, 'i')
    assert (rec.os_info, rec.os_edition, rec.sql_server_edition) == (
        'win2k22', 'Datacenter', 'Enterprise')


def sql_hive(editions):
    names = {'I%d' % n: (1, utf16('MSSQL.I%d' % n))
             for n in range(len(editions))}
    setups = [hive_path('Microsoft', 'Microsoft SQL Server',
                        'MSSQL.I%d' % n, 'Setup',
                        values={'Edition': (1, utf16(edition))})
              for n, edition in enumerate(editions)]
    return merge(hive_path('Microsoft', 'Microsoft SQL Server',
                           'Instance Names', 'SQL', values=names), *setups)


def sql_facts(image, editions):
    module = FakeGuestfs(windows_disk(hives={('/dev/sda2', HIVE_PATH):
                                             sql_hive(editions)}))
    return run(module, [spec(image)]), module


EXPRESS = 'Express Edition (64-bit)'
ENTERPRISE = 'Enterprise Edition: Core-based Licensing (64-bit)'


@pytest.mark.parametrize('name, editions, billed', [
    # The licensed instance comes after many free ones: still billed.
    ('enterprise last of 40', [EXPRESS] * 39 + [ENTERPRISE], 'Enterprise'),
    ('enterprise first of 40', [ENTERPRISE] + [EXPRESS] * 39, 'Enterprise'),
    ('standard among developers',
     ['Developer Edition'] * 20 + ['Standard Edition'] + ['Web Edition'],
     'Standard'),
    ('only free', ['Developer Edition', EXPRESS], 'Developer'),
])
def test_sql_billed_edition_ranks_every_instance(image, name, editions,
                                                 billed):
    facts, _ = sql_facts(image, editions)
    assert F.normalise(facts, 'i').sql_server_edition == billed


def test_sql_reading_stops_at_an_edition_nothing_outranks(image):
    editions = ['Data Center Edition'] + ['Edition %d' % n
                                          for n in range(50)]
    facts, module = sql_facts(image, editions)
    assert facts.roots[0].sql_editions == ['Data Center Edition']
    assert len(calls(module.handle, 'hivex_value_value')) < 20


@pytest.mark.parametrize('names, last, billed, complete', [
    # Within the bound: every name is read, the last one decides.
    (SQ.MAX_SQL_INSTANCE_NAMES, ENTERPRISE, 'Enterprise', True),
    (SQ.MAX_SQL_INSTANCE_NAMES, EXPRESS, 'Express', True),
    # Beyond it: the unread rest may hold anything, billed as the
    # highest edition sold (a free last one changes nothing).
    (SQ.MAX_SQL_INSTANCE_NAMES + 10, ENTERPRISE, 'Enterprise', False),
    (SQ.MAX_SQL_INSTANCE_NAMES + 10, EXPRESS, 'Enterprise', False),
])
def test_sql_instance_names_are_bounded_and_fail_safe(image, caplog, names,
                                                      last, billed,
                                                      complete):
    facts, module = sql_facts(image, ['Express Edition %d' % n
                                      for n in range(names - 1)] + [last])
    root, = facts.roots
    assert root.sql_complete is complete
    assert len(root.sql_editions) == min(names, SQ.MAX_SQL_INSTANCE_NAMES)
    # Seven appliance calls per name at most: the work is bounded.
    assert len(module.handle.calls) < 7 * SQ.MAX_SQL_INSTANCE_NAMES + 100
    rec = F.normalise(facts, 'i')
    assert (rec.status, rec.sql_server_edition) == ('ok', billed)
    said = 'SQL Server instance list not read to its end' in rec.reason
    assert said is not complete
    assert any('SQL Server instance names' in r.getMessage()
               for r in caplog.records) is not complete


def test_unreadable_sql_instance_list_is_billed_as_the_highest(
        image, caplog):
    # A listing too large for the appliance's protocol (or a corrupt
    # one) must not hide SQL Server, nor the Windows edition read first.
    module = FakeGuestfs(windows_disk(fail={
        'hivex_node_values': RuntimeError('message too large')}))
    facts = run(module, [spec(image)])
    root, = facts.roots
    assert root.sql_complete is False and root.sql_editions == []
    assert root.windows['EditionID'] == 'ServerDatacenter'
    rec = F.normalise(facts, 'i')
    assert (rec.status, rec.os_edition, rec.sql_server_edition) == (
        'ok', 'Datacenter', 'Enterprise')
    assert 'billed as Enterprise' in rec.reason
    assert any('unreadable (message too large)' in r.getMessage()
               for r in caplog.records)


SLES_SAP_PROD = (b'<?xml version="1.0" encoding="UTF-8"?>\n<product '
                 b'schemeversion="0"><vendor>SUSE</vendor><name>SLES_SAP'
                 b'</name><version>15.5</version><summary>SUSE Linux '
                 b'Enterprise Server for SAP Applications 15 SP5</summary>'
                 b'</product>\n')


def suse_disk(baseproduct):
    disk = linux_disk(os_release=b'ID=sles\nVERSION_ID="15.5"\n')
    disk.roots['/dev/sda2'].update(distro='sles', osinfo='sles15sp5',
                                   major_version=15, minor_version=5)
    disk.files['/dev/sda2'][LX.SUSE_BASEPRODUCT] = baseproduct
    return disk


def test_suse_base_product_is_read_and_decides_the_edition(image):
    module = FakeGuestfs(suse_disk(SLES_SAP_PROD))
    facts = run(module, [spec(image)])
    assert facts.roots[0].suse_baseproduct == SLES_SAP_PROD
    rec = F.normalise(facts, 'i')
    assert (rec.os_distro, rec.os_info, rec.os_edition) == (
        'sles', 'sle15sp5', 'SAP')


def test_large_suse_base_product_is_read_bounded(image):
    module = FakeGuestfs(suse_disk(SLES_SAP_PROD + b' ' * (200 * 1024)))
    facts = run(module, [spec(image)])
    assert calls(module.handle, 'pread') == [
        ('pread', LX.SUSE_BASEPRODUCT, GF.MAX_FILE_BYTES, 0)]
    assert len(facts.roots[0].suse_baseproduct) == GF.MAX_FILE_BYTES


def test_no_suse_base_product_is_empty(image):
    facts = run(FakeGuestfs(linux_disk()), [spec(image)])
    assert facts.roots[0].suse_baseproduct == b''


def test_unreadable_hive_keeps_the_root_with_a_warning(image):
    module = FakeGuestfs(windows_disk(hives={}))
    facts = run(module, [spec(image)])
    root, = facts.roots
    assert root.type == 'windows' and root.windows == {}
    assert facts.warnings == ['/dev/sda2 windows details unreadable: '
                              'hivex_open: %s: no such file' % HIVE_PATH]
    assert calls(module.handle, 'umount_all')


OS_RELEASE = (b'NAME="Red Hat Enterprise Linux"\nVERSION_ID="9.4"\n'
              b'ID=rhel\n')


def linux_disk(os_release=OS_RELEASE, path='/etc/os-release', **kwargs):
    return Disk(
        devices=['/dev/sda'],
        filesystems={'/dev/sda1': 'xfs', '/dev/sda2': 'xfs',
                     '/dev/sda3': 'swap'},
        roots={'/dev/sda2': {'type': 'linux', 'distro': 'rhel',
                             'osinfo': 'rhel9.4', 'major_version': 9,
                             'minor_version': 4, 'arch': 'x86_64',
                             'mountpoints': {'/': '/dev/sda2',
                                             '/boot': '/dev/sda1'}}},
        files={'/dev/sda2': {path: os_release}, '/dev/sda1': {}},
        **kwargs)


def test_linux_root_mounts_read_only_and_reads_os_release(image):
    module = FakeGuestfs(linux_disk())
    facts = run(module, [spec(image)])
    root, = facts.roots
    assert root.os_release == {'NAME': 'Red Hat Enterprise Linux',
                               'VERSION_ID': '9.4', 'ID': 'rhel'}
    assert (root.distro, root.major, root.minor) == ('rhel', 9, 4)
    # '/' before '/boot', read-only only.
    assert calls(module.handle, 'mount_ro') == [
        ('mount_ro', '/dev/sda2', '/'), ('mount_ro', '/dev/sda1', '/boot')]
    assert not [c for c in module.handle.calls if c[0] == 'mount']
    assert facts.filesystems == 3
    assert F.normalise(facts, 'i').os_info == 'rhel9.4'


def test_os_release_falls_back_to_usr_lib(image):
    module = FakeGuestfs(linux_disk(path='/usr/lib/os-release'))
    facts = run(module, [spec(image)])
    assert facts.roots[0].os_release['ID'] == 'rhel'


def test_large_os_release_is_read_with_a_bounded_pread(image):
    big = OS_RELEASE + b'PRETTY_NAME="' + b'A' * (200 * 1024) + b'"\n'
    module = FakeGuestfs(linux_disk(os_release=big))
    facts = run(module, [spec(image)])
    handle = module.handle
    assert calls(handle, 'read_file') == []
    assert calls(handle, 'pread') == [('pread', '/etc/os-release',
                                       GF.MAX_FILE_BYTES, 0)]
    assert facts.roots[0].os_release['ID'] == 'rhel'


def test_small_os_release_is_read_whole(image):
    module = FakeGuestfs(linux_disk())
    run(module, [spec(image)])
    assert calls(module.handle, 'read_file') == [('read_file',
                                                  '/etc/os-release')]
    assert calls(module.handle, 'pread') == []


def test_encrypted_devices_and_filesystem_count(image):
    # libguestfs 1.48's list_filesystems leaves encrypted devices out:
    # they are found with vfs_type on the devices it did not list.
    module = FakeGuestfs(Disk(
        devices=['/dev/sda', '/dev/sdb', '/dev/sdc'],
        filesystems={'/dev/sda1': 'ext4', '/dev/sdc': 'unknown'},
        hidden={'/dev/sda2': 'crypto_LUKS', '/dev/sdb1': 'BitLocker',
                '/dev/sdb2': ''},
        lvs=['/dev/vg/secret', '/dev/vg/plain']))
    module.disk.hidden.update({'/dev/vg/secret': 'crypto_LUKS',
                               '/dev/vg/plain': 'xfs'})
    facts = run(module, [spec(image)])
    assert facts.encrypted_devices == ['/dev/sda2', '/dev/sdb1',
                                       '/dev/vg/secret']
    assert facts.encrypted_types == {'/dev/sda2': 'crypto_LUKS',
                                     '/dev/sdb1': 'BitLocker',
                                     '/dev/vg/secret': 'crypto_LUKS'}
    assert facts.filesystems == 1
    probed = [c[1] for c in calls(module.handle, 'vfs_type')]
    assert '/dev/sda1' not in probed and '/dev/sdc' not in probed
    rec = F.normalise(facts, 'i')
    assert (rec.status, rec.reason) == (
        'encrypted', '2 LUKS volumes, 1 BitLocker volume')


def test_encrypted_devices_listed_as_filesystems_count_too(image):
    module = FakeGuestfs(Disk(filesystems={'/dev/sda1': 'crypto_LUKS'}))
    facts = run(module, [spec(image)])
    assert facts.encrypted_devices == ['/dev/sda1']


def test_encrypted_device_probing_is_bounded(image):
    hidden = {'/dev/sda%d' % n: 'crypto_LUKS' for n in range(1, 200)}
    module = FakeGuestfs(Disk(hidden=hidden))
    facts = run(module, [spec(image)])
    assert len(calls(module.handle, 'vfs_type')) == G.MAX_PROBED_DEVICES
    assert len(facts.encrypted_devices) == G.MAX_PROBED_DEVICES - 1


def test_inspect_os_failure_falls_back_to_a_filesystem_scan(image):
    hive_real = '/WINDOWS/system32/CONFIG/software'
    module = FakeGuestfs(Disk(
        devices=['/dev/sda', '/dev/sdb'],
        filesystems={'/dev/sda1': 'ntfs', '/dev/sda2': 'ntfs',
                     '/dev/sdb1': 'ext4', '/dev/sdb2': 'swap',
                     '/dev/sdb3': 'crypto_LUKS', '/dev/sdb4': 'ext4'},
        files={'/dev/sda1': {'/bootmgr': b'x'},
               '/dev/sda2': {hive_real: b'regf'},
               '/dev/sdb1': {'/etc/os-release': OS_RELEASE}},
        hives={('/dev/sda2', hive_real): WINDOWS_HIVE},
        inspect_error='inspect_os: unknown architecture: '
                      '/Windows/System32/cmd.exe',
        unmountable={'/dev/sdb4'}))
    facts = run(module, [spec(image),
                         spec(image, target='vdb', label='vdb')])
    windows, linux = facts.roots
    assert (windows.device, windows.type, windows.distro,
            windows.disk_index) == ('/dev/sda2', 'windows', 'windows', 0)
    assert windows.windows['EditionID'] == 'ServerDatacenter'
    assert windows.sql_editions[0].startswith('Enterprise')
    assert (linux.device, linux.type, linux.disk_index) == (
        '/dev/sdb1', 'linux', 1)
    assert linux.os_release['ID'] == 'rhel'
    assert facts.encrypted_devices == ['/dev/sdb3']
    assert facts.warnings == [
        'inspection failed (inspect_os: unknown architecture: '
        '/Windows/System32/cmd.exe); filesystems scanned one by one']
    handle = module.handle
    mounted = [c[1] for c in calls(handle, 'mount_ro')]
    assert mounted == ['/dev/sda1', '/dev/sda2', '/dev/sdb1', '/dev/sdb4']
    # Every mount is undone before the next one.
    assert len(calls(handle, 'umount_all')) >= len(mounted)
    rec = F.normalise(facts, 'i')
    assert (rec.status, rec.os_family, rec.os_info) == (
        'ok', 'windows', 'win2k22')
    assert 'scanned one by one' in rec.reason


def test_roots_read_are_bounded_and_the_bound_is_a_limit(image):
    roots = {'/dev/sda%d' % n: {'type': 'linux'} for n in range(1, 30)}
    roots['/dev/sda30'] = {'type': 'windows'}
    roots.update({'/dev/sda%d' % n: {'type': 'windows'}
                  for n in range(31, 47)})
    module = FakeGuestfs(Disk(filesystems={d: 'ext4' for d in roots},
                              roots=roots))
    facts = run(module, [spec(image)])
    assert len(facts.roots) == R.MAX_ROOTS
    # The likely billed roots are read first, whatever their device name.
    assert {r.type for r in facts.roots} == {'windows'}
    assert facts.limits == ['46 roots, more than 16 read']
    rec = F.normalise(facts, 'i')
    assert (rec.os_edition, rec.sql_server_edition) == (
        'Datacenter', 'Enterprise')
    assert rec.reason.startswith('bound reached (46 roots, more than 16 '
                                 'read)')


def _snapshots_disk(distro_release, count=20):
    """A btrfs root and ``count`` snapshots of it, as inspect_os lists
    them."""
    roots = {'/dev/sda2': {'type': 'linux'}}
    roots.update({'btrfsvol:/dev/sda2/@/.snapshots/%d/snapshot' % n:
                  {'type': 'linux'} for n in range(2, count + 2)})
    return Disk(filesystems={d: 'btrfs' for d in roots}, roots=roots,
                files={d: {'/etc/os-release': distro_release}
                       for d in roots})


def test_unread_snapshots_of_a_licensed_linux_are_not_a_limit(image):
    facts = run(FakeGuestfs(_snapshots_disk(OS_RELEASE)), [spec(image)])
    assert len(facts.roots) == R.MAX_ROOTS
    assert facts.roots[0].device == '/dev/sda2'
    assert facts.limits == []
    rec = F.normalise(facts, 'i')
    assert (rec.status, rec.os_distro) == ('ok', 'rhel')
    # Unread Linux roots beside a Windows root read: not a limit either.
    roots = {'/dev/sda%d' % n: {'type': 'linux'} for n in range(1, 30)}
    roots['/dev/sda30'] = {'type': 'windows'}
    facts = run(FakeGuestfs(Disk(filesystems={d: 'ext4' for d in roots},
                                 roots=roots)), [spec(image)])
    assert facts.roots[0].device == '/dev/sda30'
    assert facts.limits == []


def test_snapshot_roots_are_read_beyond_max_roots(image):
    # 21 roots: 16 read, and the 5 other snapshots too (each may name
    # any product); none left unread, so no limit.
    debian = b'ID=debian\nVERSION_ID="12"\n'
    facts = run(FakeGuestfs(_snapshots_disk(debian)), [spec(image)])
    assert facts.limits == []
    assert all(r.os_release for r in facts.roots)


def test_unread_roots_that_could_be_dearer_are_a_limit(image):
    debian = b'ID=debian\nVERSION_ID="12"\n'
    count = R.MAX_ROOTS + R.MAX_SUBVOLUME_ROOTS + 1
    facts = run(FakeGuestfs(_snapshots_disk(debian, count)), [spec(image)])
    # An unread snapshot could say RHEL: dearer than Debian.
    assert facts.limits == ['%d roots, more than %d read'
                            % (count + 1, count - 1)]


def test_a_dearer_snapshot_is_billed(image):
    disk = _snapshots_disk(b'ID=sles\nVERSION_ID="15.5"\n')
    disk.files['btrfsvol:/dev/sda2/@/.snapshots/21/snapshot'] = {
        '/etc/os-release': b'ID=sles_sap\nVERSION_ID="15.5"\n'}
    facts = run(FakeGuestfs(disk), [spec(image)])
    rec = F.normalise(facts, 'i')
    assert facts.limits == []
    assert (rec.os_distro, rec.os_edition) == ('sles', 'SAP')


def test_unread_roots_on_a_data_disk_are_not_a_limit(image):
    roots = {'/dev/sdb%d' % n: {'type': 'linux'} for n in range(1, 30)}
    roots['/dev/sda1'] = {'type': 'linux'}
    module = FakeGuestfs(Disk(devices=['/dev/sda', '/dev/sdb'],
                              filesystems={d: 'ext4' for d in roots},
                              roots=roots))
    facts = run(module, [spec(image), spec(image, target='vdb',
                                           label='vdb')])
    assert facts.roots[0].device == '/dev/sda1'
    assert facts.limits == []


def test_listed_roots_are_bounded(image):
    count = R.MAX_LISTED_ROOTS + 4
    roots = {'/dev/sda%d' % n: {'type': 'linux'} for n in range(count)}
    module = FakeGuestfs(Disk(filesystems={d: 'ext4' for d in roots},
                              roots=roots))
    facts = run(module, [spec(image)])
    assert '%d roots, more than %d' % (count, R.MAX_LISTED_ROOTS) in (
        facts.limits)
    assert len(calls(module.handle, 'inspect_get_type')) == (
        R.MAX_LISTED_ROOTS)


def flood_disk(subvolumes):
    filesystems = {'/dev/sda2': 'btrfs', '/dev/sda1': 'ntfs'}
    filesystems.update({'btrfsvol:/dev/sda2/s%04d' % n: 'btrfs'
                        for n in range(subvolumes)})
    hive = '/Windows/System32/config/SOFTWARE'
    return Disk(filesystems=filesystems,
                files={'/dev/sda1': {hive: b'regf'}},
                hives={('/dev/sda1', hive): WINDOWS_HIVE},
                roots={'/dev/sda1': {'type': 'windows'}})


def test_a_subvolume_flood_is_not_walked_by_inspect_os(image):
    module = FakeGuestfs(flood_disk(5000))
    facts = run(module, [spec(image)], opts=opts(max_filesystems=512))
    handle = module.handle
    assert not calls(handle, 'inspect_os')
    mounted = [c[1] for c in calls(handle, 'mount_ro')]
    # Windows first, then the filesystem, then subvolumes, bounded.
    assert mounted[:2] == ['/dev/sda1', '/dev/sda2']
    assert len(mounted) == R.MAX_SCANNED_FILESYSTEMS
    # One disk lookup for the whole flood.
    assert len(calls(handle, 'part_to_dev')) < 10
    assert facts.roots[0].type == 'windows'
    assert facts.limits == [
        '5002 filesystems and subvolumes, more than max_filesystems 512; '
        '32 scanned by hand, Windows first']
    rec = F.normalise(facts, 'i')
    assert (rec.os_family, rec.os_edition, rec.sql_server_edition) == (
        'windows', 'Datacenter', 'Enterprise')
    # The whole bound is said, within the reason's 255 characters.
    assert rec.reason == (
        'bound reached (5002 filesystems and subvolumes, more than '
        'max_filesystems 512; 32 scanned by hand, Windows first): billed '
        'as Windows Server Datacenter with SQL Server Enterprise; dearest '
        'root seen: /dev/sda1')


def test_a_small_flood_scanned_to_its_end_is_billed_as_found(image):
    module = FakeGuestfs(flood_disk(10))
    facts = run(module, [spec(image)], opts=opts(max_filesystems=8))
    assert not calls(module.handle, 'inspect_os')
    assert facts.limits == []
    assert facts.warnings == ['12 filesystems and subvolumes, more than '
                              'max_filesystems 8: scanned by hand']
    rec = F.normalise(facts, 'i')
    assert rec.os_family == 'windows'
    assert 'scanned by hand' in rec.reason


@pytest.mark.parametrize('device,expected', [
    ('/dev/sda2', 0), ('/dev/sdb1', 1), ('/dev/sdc', 2),
    ('/dev/vg1/root', 1), ('/dev/vgx/root', 0), ('/dev/md127', 0),
])
def test_disk_index(device, expected):
    module = FakeGuestfs()
    module.lvm = {'vg1': ['/dev/sdc1', '/dev/sdb2']}
    g = module.GuestFS()
    assert G.disk_index(g, device,
                        ['/dev/sda', '/dev/sdb', '/dev/sdc']) == expected


def test_appliance_gone_while_reading_sql_is_not_a_hostile_registry(image):
    # The appliance dying says nothing about the registry: no SQL Server
    # edition is assumed, the root's details are reported unreadable.
    module = FakeGuestfs(windows_disk(fail={
        'hivex_node_values': RuntimeError('connection closed'),
        'ping_daemon': RuntimeError('connection closed')}))
    facts = run(module, [spec(image)])
    root, = facts.roots
    assert root.sql_complete is True and root.sql_editions == []
    assert facts.warnings == [
        '/dev/sda2 windows details unreadable: connection closed']
    rec = F.normalise(facts, 'i')
    assert rec.sql_server_edition == ''
