"""The operator side: the ``ceilometer-os-pollster`` command, its
renderings, the host licence report and the cloud-wide monthly
licence report read from Gnocchi.
"""
