"""Appliance facts as libguestfs reports them, and the record the billing
policy makes of them (for the tests of families/)."""

import datetime

from ceilometer_os_pollster.families import facts as F
from ceilometer_os_pollster.families import raw_facts as R

NOW = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)


def windows_root(build=None, edition=None, installation=None, product=None,
                 device='/dev/sda2', disk_index=0, major=10, minor=0,
                 lg_major=10, lg_minor=0, lg_osinfo='unknown',
                 lg_product='', lg_variant='', sql=(), **registry):
    """A Windows root as the appliance reports it; None = value absent."""
    values = {'CurrentBuildNumber': build, 'EditionID': edition,
              'InstallationType': installation, 'ProductName': product,
              'CurrentMajorVersionNumber': major,
              'CurrentMinorVersionNumber': minor}
    values.update(registry)
    return R.RootFacts(
        device=device, disk_index=disk_index, type='windows',
        distro='windows', osinfo=lg_osinfo,
        product_name=lg_product or product or '',
        product_variant=lg_variant or installation or '', arch='x86_64',
        major=lg_major, minor=lg_minor,
        windows={k: v for k, v in values.items() if v is not None},
        sql_editions=list(sql))


def linux_root(distro, major=0, minor=0, osinfo='unknown', product='',
               device='/dev/sda1', disk_index=0, **os_release):
    return R.RootFacts(device=device, disk_index=disk_index, type='linux',
                       distro=distro, osinfo=osinfo, product_name=product,
                       product_variant='unknown', arch='x86_64',
                       major=major, minor=minor, os_release=os_release)


def normalise(*roots, **kwargs):
    return F.normalise(R.ApplianceFacts(roots=list(roots), drives=1,
                                        filesystems=len(roots), **kwargs),
                       'inst-1', fingerprint='fp', duration=1.5, now=NOW)
