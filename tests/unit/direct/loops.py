"""Loop devices and LVM volume groups for the direct reader tests
(detached and removed however a test ends)."""

import contextlib
import json
import os
import random
import subprocess

MiB = 1 << 20


@contextlib.contextmanager
def loop_device(path, *args):
    """``losetup -f --show`` on ``path``; detached at the end."""
    dev = subprocess.run(('losetup', '-f', '--show', *args, str(path)),
                         check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(('losetup', '-d', dev), check=False,
                       capture_output=True)


def lvm_cmd(devices, *args):
    cmd = ('lvm', args[0], '--devices', ','.join(devices), '--config',
           'backup{backup=0 archive=0}', '--driverloaded', 'n') + args[1:]
    env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS='1')
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          env=env).stdout


def report(devices, *args):
    out = lvm_cmd(devices, *args, '--reportformat', 'json', '--units', 'b',
                  '--nosuffix')
    return next(iter(json.loads(out)['report'][0].values()))


@contextlib.contextmanager
def built_vg(d):
    """Two PVs (random bytes underneath) with linear, multi-segment and
    striped LVs; the loop devices and the VG are removed at the end."""
    rng = random.Random(23)
    files = []
    for i in range(2):
        path = d / ('pv%d.img' % i)
        path.write_bytes(rng.randbytes(48 * MiB))
        files.append(path)
    name = 'directtest%d' % os.getpid()
    with loop_device(files[0]) as a, loop_device(files[1]) as b:
        devs = (a, b)
        try:
            lvm_cmd(devs, 'pvcreate', '-q', a, b)
            lvm_cmd(devs, 'vgcreate', '-q', '-s', '1m', name, a, b)
            for args in (('-L', '6m', '-n', 'lin'),
                         ('-i2', '-I', '64k', '-L', '8m', '-n', 'str'),
                         ('-i2', '-I', '4k', '-L', '4m', '-n', 'odd.name+1'),
                         ('-L', '3m', '-n', 'root-lv')):
                lvm_cmd(devs, 'lvcreate', '-q', '-an', '-Zn', *args, name)
            lvm_cmd(devs, 'lvextend', '-q', '-L', '+5m', '%s/lin' % name)
            lvm_cmd(devs, 'lvextend', '-q', '-i2', '-I', '128k', '-L',
                    '+4m', '%s/root-lv' % name)
            info = {
                'name': name,
                'files': dict(zip(devs, files)),
                'segments': report(devs, 'lvs', '--segments', '-o',
                                   'lv_name,seg_start_pe,seg_size_pe,'
                                   'seg_pe_ranges,stripes,stripe_size',
                                   name),
                'pvs': report(devs, 'pvs', '-o', 'pv_name,pe_start,pv_uuid'),
                'extent': int(report(devs, 'vgs', '-o', 'vg_extent_size',
                                     name)[0]['vg_extent_size']),
            }
            yield info
        finally:
            subprocess.run(('lvm', 'vgremove', '-q', '-f', '--devices',
                            '%s,%s' % devs, '--config',
                            'backup{backup=0 archive=0}', '--driverloaded',
                            'n', name), capture_output=True,
                           env=dict(os.environ,
                                    LVM_SUPPRESS_FD_WARNINGS='1'))
