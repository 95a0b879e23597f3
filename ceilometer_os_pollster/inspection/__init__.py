"""The worker side: the inspection worker process, the protocol the
agent supervises it by, its confinement, and the appliance method
(libguestfs).  The direct method's readers are ``direct``.
"""
