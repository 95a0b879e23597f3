"""The agent side: what runs in ceilometer-polling (and in the CLI
that shares its cache): the pollster, the service that wires the
scheduler, policy and engine, the persistent cache, and the exporter
gauges.  Nothing here reads a guest disk; the engine starts a worker
process (``inspection``) for that.
"""
