"""Inspection engine: one libvirt domain in, one OSRecord out.

(Stub: the InspectionJob contract; the Engine is being written.)
"""

import dataclasses


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
    fingerprint: str = ''     # drives.fingerprint(...) of the above
