"""rbd next to a local file: what reading a guest through Ceph costs.

One real one-node Ceph cluster (tests.rig.ceph: mon + memstore OSD,
cephx) holds an image of a phony Windows Server guest; the same bytes
lie in a raw file.  The real Engine (worker process, pinned overlay,
appliance) inspects both, alternately, ``--reps`` times each (who goes
first alternates), as the operator's read-only user (``ceph_user``,
keyring through ``ceph_conf``).  Reported: seconds per inspection for
each, and the paired ratio rbd / file (same repetition, same machine
state).  Both records are checked against the guest catalog.

Usage: python -m benchmarks.rbd [--reps N]
"""

import argparse
import pathlib
import shutil
import statistics
import tempfile

from ceilometer_os_pollster.agent import engine as engine_mod
from ceilometer_os_pollster.instances import identity
from tests.functional import faults_helpers
from tests.guests import builder
from tests.guests import catalog
from tests.rig import ceph as ceph_mod
from tests.rig import disks as disks_mod

from benchmarks import common

GUEST = 'win2022-standard'
FILE_XML = ("<domain type='qemu'><name>bench-file</name><devices>"
            "<disk type='file' device='disk'><driver name='qemu' "
            "type='raw'/><source file='{path}'/><target dev='vda' "
            "bus='virtio'/></disk></devices></domain>")
RBD_XML = ("<domain type='qemu'><name>bench-rbd</name><devices>"
           "<disk type='network' device='disk'><driver name='qemu' "
           "type='raw'/><auth username='nova'><secret type='ceph' "
           "uuid='00000000-0000-4000-8000-00000000cafe'/></auth>"
           "<source protocol='rbd' name='vms/{image}'><host "
           "name='127.0.0.1' port='{port}'/></source><target dev='vda' "
           "bus='virtio'/></disk></devices></domain>")


def make_engine(tmp, conf_path):
    # force_tcg comes from LIBGUESTFS_BACKEND_SETTINGS (benchmarks/run).
    return engine_mod.Engine(faults_helpers.inspection_conf(
        inspection_deadline=900, tmp_dir=str(tmp),
        ceph_user='reader', ceph_conf=conf_path))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--reps', type=int, default=2)
    args = parser.parse_args(argv)
    work = pathlib.Path(tempfile.mkdtemp(prefix='bench-rbd-',
                                         dir=str(common.RIG_ROOT)
                                         if common.RIG_ROOT.is_dir()
                                         else None))
    cluster = ceph_mod.Cluster(work / 'ceph')
    try:
        cluster.start()
        raw = work / 'guest.raw'
        disks_mod.to_raw(builder.build(GUEST), raw)
        cluster.import_image(raw, 'vms', 'bench_disk')
        conf_path = cluster.client_conf(work / 'ceph.conf',
                                        user=cluster.users['reader'])
        tmp = work / 'tmp'
        tmp.mkdir()
        engine = make_engine(tmp, conf_path)
        jobs = {
            'file': identity.InspectionJob(
                instance_id='bench-file', domain_name='bench-file',
                domain_xml=FILE_XML.format(path=raw)),
            'rbd': identity.InspectionJob(
                instance_id='bench-rbd', domain_name='bench-rbd',
                domain_xml=RBD_XML.format(image='bench_disk',
                                          port=cluster.v1_port)),
        }
        expected = catalog.GUESTS[GUEST].expected
        times = {name: [] for name in jobs}
        correct = {name: 0 for name in jobs}
        for rep in range(args.reps):
            order = ['file', 'rbd'] if rep % 2 == 0 else ['rbd', 'file']
            for name in order:
                rec = engine.inspect(jobs[name])
                times[name].append(rec.duration)
                if catalog.mismatches(expected, rec) == []:
                    correct[name] += 1
        ratios = common.paired_ratios(times, 'rbd', 'file')
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows = [[name, '%.1f' % statistics.median(times[name]),
             '%.1f' % min(times[name]), '%.1f' % max(times[name]),
             '%d/%d' % (correct[name], args.reps)] for name in jobs]
    print(common.table(['disk', 'median s', 'min s', 'max s', 'correct'],
                       rows))
    print('rbd / file, paired median: %.2f' % statistics.median(ratios))
    common.write_result('rbd', {'times': times, 'ratios': ratios,
                                'correct': correct, 'guest': GUEST})
    return 0 if all(c == args.reps for c in correct.values()) else 1


if __name__ == '__main__':
    raise SystemExit(main())
