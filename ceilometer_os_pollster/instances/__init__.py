"""What libvirt says about an instance: its domain XML (nova's
metadata, the billed vCPUs), the drives worth inspecting, and the job
and fingerprint that say whether a record still describes the instance
(``identity``).  Pure code, shared by the agent and the worker.
"""
