"""Shared pytest fixtures: the libvirt rig (daemons started once)."""

from tests.rig.fixtures import *  # noqa: F401,F403
