"""Benchmarks of ceilometer-os-pollster (see benchmarks/README.rst).

Run them all with ``benchmarks/run`` (``--quick`` skips the ones that
launch libguestfs appliances), or one with ``python -m benchmarks.NAME``.
"""
