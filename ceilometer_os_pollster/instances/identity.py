"""Same instance, same disks, same boot: the job and its identity.

This module owns what decides whether a record still describes an
instance: the ``InspectionJob`` (a snapshot of one instance taken on the
poll path), the boot identity (one qemu run of a domain), and the
fingerprint of what a record was made from, whose two halves say
whether the boot disks or only the qemu run changed (``same_disks``).
The policy (``agent/policy.py``) decides what a change costs; this
module decides what counts as one.  Pure: plain values in and out.
"""

import dataclasses
import functools
import hashlib
import json

from ceilometer_os_pollster.instances import drives

_FINGERPRINT_VERSION = 2


@dataclasses.dataclass(frozen=True)
class InspectionJob:
    """A snapshot of what is needed to inspect one instance.

    Taken on the poll path (cheap libvirt calls only) and handed to a
    background worker, so the worker never touches the agent's libvirt
    connection.
    """

    instance_id: str
    domain_name: str
    domain_xml: str       # live XML at poll time
    image_id: str = ''    # nova image id, '' when booted from a volume
    boot_identity: str = ''   # changes whenever the domain's qemu restarts
    fingerprint: str = ''     # fingerprint(...) of the above


def boot_identity(host_boot_id, domain_id):
    """One qemu run of a domain: the host's boot id and the libvirt
    domain id.  The id changes on every qemu start but restarts from 1
    after a host reboot, so the host's boot id comes with it."""
    return '%s/%s' % (host_boot_id, domain_id)


def fingerprint(specs, image_id, boot_identity, all_disks=False):
    """A short stable digest of what an inspection record was made from.

    Two halves, ``<disks>-<run>`` (16 hex characters each, 64 bits of
    sha256): the disks half covers the drives the boot-disk policy
    inspects (``drives.boot_drives(specs, all_disks)``: kind, protocol,
    path, hosts, socket, format and target) and the nova image id; the
    run half covers the boot identity (one qemu run).  The disks half
    changes on a rebuild, a rescue, a swap of the boot volume or a new
    boot disk; the run half on every qemu restart.  Attaching or
    detaching a data volume changes neither (unless ``all_disks``), so
    it costs no inspection.  Auth, labels and read-only flags are left
    out: they do not change what is on the disk.
    """
    disks = [[spec.kind, spec.protocol, spec.path,
              [list(host) for host in spec.hosts], spec.socket,
              spec.format, spec.target]
             for spec in drives.boot_drives(specs, all_disks)]
    return '%s-%s' % (
        _digest([_FINGERPRINT_VERSION, disks,
                 '' if image_id is None else str(image_id)]),
        _digest([_FINGERPRINT_VERSION,
                 '' if boot_identity is None else str(boot_identity)]))


def _digest(value):
    payload = json.dumps(value, ensure_ascii=True, separators=(',', ':'))
    return hashlib.sha256(payload.encode('ascii')).hexdigest()[:16]


def same_disks(old, new):
    """Whether two fingerprints were taken of the same boot disks and
    image (only the qemu run may differ).

    A fingerprint written before the halves existed (32 hex digits, no
    dash) cannot say: it counts as the same disks, so upgrading never
    turns a transient failure into a lost record.
    """
    if not (isinstance(old, str) and isinstance(new, str)):
        return False
    if '-' not in old:
        return bool(old)
    return old.split('-', 1)[0] == new.split('-', 1)[0]


@functools.lru_cache(maxsize=4096)
def _drive_specs(domain_xml):
    # The poll path sees the same XML for an instance cycle after cycle;
    # parsing it again was half the pollster's cost (benchmarks/).
    try:
        return tuple(drives.drive_specs(domain_xml))
    except drives.DomainXMLError:
        return ()


def make_job(instance_id, domain_name, domain_xml, domain_id, image_id,
             host_boot_id, all_disks=False):
    """The InspectionJob for one instance, fingerprinted as the agent
    does it (the CLI uses the same, or each would re-inspect what the
    other inspected).  Unusable XML gives the fingerprint of no disks;
    the engine then says why."""
    identity = boot_identity(host_boot_id, domain_id)
    return InspectionJob(
        instance_id=instance_id,
        domain_name=domain_name,
        domain_xml=domain_xml,
        image_id=image_id or '',
        boot_identity=identity,
        fingerprint=fingerprint(list(_drive_specs(domain_xml)),
                                image_id or '', identity, all_disks),
    )


def with_fingerprint(job, all_disks=False):
    """The job with its fingerprint, computed from the job's own XML when
    it came without one.  Raises drives.DomainXMLError when that XML is
    not a usable domain."""
    if job.fingerprint:
        return job
    return dataclasses.replace(job, fingerprint=fingerprint(
        drives.drive_specs(job.domain_xml), job.image_id, job.boot_identity,
        all_disks))
