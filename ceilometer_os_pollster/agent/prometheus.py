"""The OS record as Prometheus gauges: what OS, and how long unverified.

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

Instances whose OS is not verified (the statuses of UNVERIFIED: not
inspected yet, no OS found, disks encrypted, inspection failed) also
have

    ceilometer_compute_instance_os_unverified_seconds{resource, project,
                                                      user,
                                                      os_inspection_status}
        = seconds since this agent first published the instance unverified

so that an operator can alert on an instance that stays so (billed at
the "unverified OS" rate, or not at all while pending).  The time runs
on across the unverified statuses (pending, then failed, ...) and ends
with a verified (or carried-over) record.  It is kept in memory: after
an agent restart it starts again from the inspection that found the
status (a lower bound), or from the first poll for a pending instance.
"""

import threading
import time

from ceilometer_os_pollster import record

METRIC = 'ceilometer_compute_instance_os_info'
# Sample metadata keys that would give an instance a new series on
# every re-inspection.
_VOLATILE = ('os_inspected_at', 'os_inspection_reason',
             'os_inspection_method')
INFO_KEYS = tuple(k for k in record.METADATA_KEYS if k not in _VOLATILE)
LABELS = ('resource', 'project', 'user') + INFO_KEYS
_info_values = record.metadata_getter(INFO_KEYS)

UNVERIFIED_METRIC = 'ceilometer_compute_instance_os_unverified_seconds'
UNVERIFIED_LABELS = ('resource', 'project', 'user', 'os_inspection_status')
UNVERIFIED = (record.STATUS_PENDING, record.STATUS_UNKNOWN,
              record.STATUS_ENCRYPTED, record.STATUS_FAILED)

_LOCK = threading.Lock()
_GAUGES = {}
# resource id -> when this agent first published it unverified
_SINCE = {}


def _gauge(name=METRIC):
    with _LOCK:
        if name not in _GAUGES:
            import prometheus_client
            from ceilometer.polling import prom_exporter
            if name == METRIC:
                text = ('Guest operating system of each instance, as '
                        'inspected from its disks; value = vCPUs.')
                labels = LABELS
            else:
                text = ('Seconds since each instance whose guest OS is not '
                        'verified (status pending, unknown, encrypted or '
                        'failed) was first published so by this agent.')
                labels = UNVERIFIED_LABELS
            _GAUGES[name] = prometheus_client.Gauge(
                name, text, labelnames=labels,
                registry=prom_exporter.CEILOMETER_REGISTRY)
        return _GAUGES[name]


def label_values(resource_id, project_id, user_id, os_record):
    """The label values for one instance (pure)."""
    return tuple(str(v if v is not None else '') for v in
                 (resource_id, project_id, user_id)) + tuple(
                     map(str, _info_values(os_record)))


def unverified_since(since, os_record, now):
    """When the instance became unverified, or None if it is verified
    (pure).  ``since``: what the previous poll said (None: verified or
    not seen)."""
    if os_record.status not in UNVERIFIED:
        return None
    if since is not None:
        return since
    found = record.parse_timestamp(os_record.inspected_at)
    # A pending record has no inspection time; one in the future (a
    # clock that was wrong) must not count as negative time.
    return now if found is None else min(found, now)


def unverified_rows(since_by_id, observed, now):
    """(new since_by_id, [(labels tuple, seconds)]) for ``observed``:
    (resource id, project id, user id, OS record) of this poll (pure).
    Instances not observed are forgotten."""
    since_now, rows = {}, []
    for resource_id, project_id, user_id, os_record in observed:
        since = unverified_since(since_by_id.get(resource_id), os_record,
                                 now)
        if since is None:
            continue
        since_now[resource_id] = since
        labels = tuple(str(v if v is not None else '') for v in
                       (resource_id, project_id, user_id, os_record.status))
        rows.append((labels, now - since))
    return since_now, rows


def publish(rows, observed=(), now=None):
    """Replace the exported series: ``rows`` of (labels tuple, vcpus) for
    the info gauge, ``observed`` as unverified_rows() takes it."""
    global _SINCE
    now = time.time() if now is None else now
    info = _gauge()
    unverified = _gauge(UNVERIFIED_METRIC)
    with _LOCK:
        info.clear()
        for labels, vcpus in rows:
            info.labels(*labels).set(vcpus)
        _SINCE, seconds = unverified_rows(_SINCE, observed, now)
        unverified.clear()
        for labels, value in seconds:
            unverified.labels(*labels).set(value)
