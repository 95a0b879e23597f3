"""The OS record as a Prometheus info metric.

Ceilometer's exporter (``[polling] enable_prometheus_exporter``) publishes
our meter as ``ceilometer_compute_instance_os_metadata`` with its fixed
label set only (resource, project, user, flavor, ...): sample metadata is
not turned into labels.  So that Prometheus users can still see what OS
an instance runs, the pollster also keeps one gauge in Ceilometer's
exporter registry:

    ceilometer_compute_instance_os_info{resource, project, user,
                                        os_family, ..., os_inspection_status}
        = vCPUs

Its label set is fixed (INFO_KEYS), so values may change but the set
never does; instances gone from the host are dropped each cycle.  Labels
are what identifies the OS, nothing that changes by itself: a label value
that changes starts a new series, so the inspection time (new every day)
and the free-text reason (which may carry a date) stay out.  They remain
in the sample metadata.
"""

import threading

from ceilometer_os_pollster import record

METRIC = 'ceilometer_compute_instance_os_info'
# Sample metadata keys that would give an instance a new series on
# every re-inspection.
_VOLATILE = ('os_inspected_at', 'os_inspection_reason',
             'os_inspection_method')
INFO_KEYS = tuple(k for k in record.METADATA_KEYS if k not in _VOLATILE)
LABELS = ('resource', 'project', 'user') + INFO_KEYS

_LOCK = threading.Lock()
_GAUGE = None


def _gauge():
    global _GAUGE
    with _LOCK:
        if _GAUGE is None:
            import prometheus_client
            from ceilometer.polling import prom_exporter
            _GAUGE = prometheus_client.Gauge(
                METRIC, 'Guest operating system of each instance, as '
                'inspected from its disks; value = vCPUs.',
                labelnames=LABELS, registry=prom_exporter.CEILOMETER_REGISTRY)
        return _GAUGE


def label_values(resource_id, project_id, user_id, os_record):
    """The label values for one instance (pure)."""
    md = os_record.metadata()
    return tuple(str(v if v is not None else '') for v in
                 (resource_id, project_id, user_id)) + tuple(
                     str(md[k]) for k in INFO_KEYS)


def publish(rows):
    """Replace the exported series with rows of (labels tuple, vcpus)."""
    gauge = _gauge()
    with _LOCK:
        gauge.clear()
        for labels, vcpus in rows:
            gauge.labels(*labels).set(vcpus)
