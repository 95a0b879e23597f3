"""A hostile SQL Server registry next to an ordinary one: what reading
every listed instance costs.

Two phony Windows Server guests from the catalog, inspected by the real
Engine (worker process, pinned overlay, appliance), alternately,
``--reps`` times each (who goes first alternates): ``win2019-sql``
lists its two SQL Server instances; ``sql-instance-flood`` lists 5000
made-up instance names before its real ones, more than the inspector
reads (sqlserver.MAX_SQL_INSTANCE_NAMES), so the bound is reached.
Reported: seconds per inspection for each and the paired ratio flood /
ordinary.  Both records are checked against the catalog (the flood is
billed as Enterprise, the documented fail-safe).

Usage: python -m benchmarks.registry [--reps N]
"""

import argparse
import pathlib
import shutil
import statistics
import tempfile

from ceilometer_os_pollster.agent import engine as engine_mod
from ceilometer_os_pollster.instances import identity
from ceilometer_os_pollster.families import sqlserver
from tests.functional import faults_helpers
from tests.guests import builder
from tests.guests import catalog

from benchmarks import common

GUESTS = {'ordinary': 'win2019-sql', 'flood': 'sql-instance-flood'}
DOMAIN_XML = ("<domain type='qemu'><name>bench-{name}</name><devices>"
              "<disk type='file' device='disk'><driver name='qemu' "
              "type='raw'/><source file='{path}'/><target dev='vda' "
              "bus='virtio'/></disk></devices></domain>")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--reps', type=int, default=2)
    args = parser.parse_args(argv)
    work = pathlib.Path(tempfile.mkdtemp(prefix='bench-registry-'))
    try:
        # force_tcg comes from LIBGUESTFS_BACKEND_SETTINGS (benchmarks/run).
        engine = engine_mod.Engine(faults_helpers.inspection_conf(
            inspection_deadline=900, tmp_dir=str(work)))
        jobs = {
            name: identity.InspectionJob(
                instance_id='bench-' + name, domain_name='bench-' + name,
                domain_xml=DOMAIN_XML.format(name=name,
                                             path=builder.build(guest)))
            for name, guest in GUESTS.items()}
        times = {name: [] for name in jobs}
        correct = {name: 0 for name in jobs}
        for rep in range(args.reps):
            order = list(jobs) if rep % 2 == 0 else list(jobs)[::-1]
            for name in order:
                rec = engine.inspect(jobs[name])
                times[name].append(rec.duration)
                expected = catalog.GUESTS[GUESTS[name]].expected
                if catalog.mismatches(expected, rec) == []:
                    correct[name] += 1
        ratios = common.paired_ratios(times, 'flood', 'ordinary')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [[name, GUESTS[name], '%.1f' % statistics.median(times[name]),
             '%.1f' % min(times[name]), '%.1f' % max(times[name]),
             '%d/%d' % (correct[name], args.reps)] for name in jobs]
    print(common.table(['registry', 'guest', 'median s', 'min s', 'max s',
                        'correct'], rows))
    print('flood (%d names read) / ordinary, paired median: %.2f'
          % (sqlserver.MAX_SQL_INSTANCE_NAMES, statistics.median(ratios)))
    common.write_result('registry', {
        'times': times, 'ratios': ratios, 'correct': correct,
        'guests': GUESTS,
        'names_read': sqlserver.MAX_SQL_INSTANCE_NAMES})
    return 0 if all(c == args.reps for c in correct.values()) else 1


if __name__ == '__main__':
    raise SystemExit(main())
