"""The worker side: the inspection worker process, the protocol the
agent supervises it by, its confinement, and the appliance method
(libguestfs) with its reads inside the guest (``guest_files``).  The
direct method's readers are ``direct``.
"""
