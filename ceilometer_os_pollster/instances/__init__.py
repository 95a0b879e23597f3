"""What libvirt says about an instance: its domain XML (the one hardened
parser, nova's metadata) and the drives worth inspecting.  Pure code,
shared by the agent and the worker.
"""
