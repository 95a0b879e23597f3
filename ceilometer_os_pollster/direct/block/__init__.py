"""Block sources: bounded, read-only byte ranges of a disk (a budget of
bytes read), and the formats and protocols under a filesystem: qcow2
chains, our own NBD client, rbd through librbd.
"""
