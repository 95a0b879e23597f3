"""Ceilometer glue: the ``compute.instance.os.metadata`` pollster.

Loaded by the stock ``ceilometer-polling`` compute agent through the
``ceilometer.poll.compute`` entry point.  For every discovered instance it
looks up the libvirt domain through the agent's shared (read-only)
inspector connection, asks the inspection service for the record to
publish (never waiting for an appliance) and yields one sample: volume =
vCPUs, metadata = the OS record.  No guestfs in here.
"""

import dataclasses
import glob
import os
import time

from oslo_log import log
import yaml

from ceilometer.compute import pollsters as compute_pollsters
from ceilometer.compute.pollsters import util
from ceilometer.compute.virt.libvirt import inspector as libvirt_inspector
from ceilometer.compute.virt.libvirt import utils as libvirt_utils
from ceilometer.polling import plugin_base
from ceilometer import sample

from ceilometer_os_pollster import options
from ceilometer_os_pollster.agent import prometheus
from ceilometer_os_pollster.agent import service as service_mod
from ceilometer_os_pollster.instances import domain_xml

LOG = log.getLogger(__name__)

# A libvirt constant, so that importing this module needs no libvirt.
_NO_DOMAIN = 42   # VIR_ERR_NO_DOMAIN

GUESTFS_HINT = ('install the distribution package providing the libguestfs '
                'Python binding (Debian/Ubuntu: python3-guestfs, RHEL '
                'family: python3-libguestfs) and make it visible to the '
                'agent\'s Python (a venv needs --system-site-packages)')


def vcpus_of(instance, domain):
    """vCPUs to bill (domain_xml.billed_vcpus): the flavor's, else the
    domain's current count."""
    flavor = getattr(instance, 'flavor', None) or {}
    vcpus = flavor.get('vcpus') if isinstance(flavor, dict) else None
    return domain_xml.billed_vcpus(vcpus, lambda: domain.info()[3])


# Flavor fields Ceilometer's sample helper indexes (and int()s), with
# what they read as when nova's metadata lacks them.
_FLAVOR_NUMBERS = ('ram', 'disk', 'ephemeral')


def complete_flavor(flavor, vcpus):
    """The flavor with every field Ceilometer's helper reads (pure).

    A flavor that is None, not a dict, or lacks fields (or holds
    non-numbers) must not cost the instance its sample: missing numbers
    read 0, a missing name '', vcpus the count actually billed.
    """
    flavor = dict(flavor) if isinstance(flavor, dict) else {}
    if not isinstance(flavor.get('name'), str):
        flavor['name'] = ''
    for key in _FLAVOR_NUMBERS:
        value = flavor.get(key)
        try:
            if isinstance(value, bool):
                raise TypeError
            int(value)
        except (TypeError, ValueError):
            flavor[key] = 0
    flavor['vcpus'] = vcpus
    return flavor


class _WithFlavor:
    """The instance seen with a completed flavor (see complete_flavor)."""

    def __init__(self, instance, flavor):
        self._instance = instance
        self.flavor = flavor

    def __getattr__(self, name):
        return getattr(self._instance, name)


def _vanished(err):
    """True for libvirt's "no such domain" (deleted during the cycle)."""
    code = getattr(err, 'get_error_code', None)
    return callable(code) and code() == _NO_DOMAIN


# A pollster definition file is a few KiB; read no more of a stray one.
_MAX_DEFINITION_BYTES = 1024 * 1024


def _definitions(path):
    """The pollster definitions of one YAML file ([] when unreadable)."""
    try:
        with open(path, 'rb') as f:
            data = f.read(_MAX_DEFINITION_BYTES + 1)
        if len(data) > _MAX_DEFINITION_BYTES:
            return []
        loaded = yaml.safe_load(data)
    except (OSError, yaml.YAMLError, RecursionError):
        return []       # Ceilometer reports its own files' problems
    return [d for d in loaded or () if isinstance(d, dict)] \
        if isinstance(loaded, list) else []


def dynamic_duplicates(meter, directories, namespace='compute'):
    """Files that define a dynamic pollster of ``meter`` for ``namespace``.

    Read as Ceilometer's AgentManager reads [DEFAULT]
    pollsters_definitions_dirs: every *.yaml file of each directory, a
    list of definitions, ``namespaces`` defaulting to central.
    """
    found = []
    for directory in directories or ():
        for path in sorted(glob.glob(os.path.join(directory, '*.yaml'))):
            for definition in _definitions(path):
                namespaces = definition.get('namespaces', ['central'])
                if not isinstance(namespaces, list):
                    namespaces = [namespaces]
                if (definition.get('name') == meter
                        and namespace in namespaces):
                    found.append(path)
                    break
    return found


def image_id_of(instance):
    image = getattr(instance, 'image', None)
    if isinstance(image, dict):
        return image.get('id') or ''
    return ''


@dataclasses.dataclass(frozen=True)
class Observed:
    """What one poll learned about one instance (the "stats" of
    Ceilometer's compute pollsters)."""

    record: object      # the record.OSRecord to publish
    vcpus: int          # what the instance is billed for


class OSMetadataPollster(plugin_base.PollsterBase):
    """Guest OS facts per instance, for licence billing.

    Shaped like Ceilometer's own instance pollsters: declarative sample
    attributes, ``get_resource_id``/``get_volume``/
    ``get_additional_metadata`` hooks over what one poll observed, and a
    loop in which one instance's failure costs only its own sample.
    """

    sample_name = 'compute.instance.os.metadata'
    sample_unit = 'vcpu'
    sample_type = sample.TYPE_GAUGE

    @property
    def default_discovery(self):
        return 'local_instances'

    def setup_environment(self):
        super().setup_environment()
        options.register_opts(self.conf)
        # Ceilometer logs a refused load only at DEBUG: each refusal
        # below says why itself, once, at ERROR.
        duplicates = dynamic_duplicates(
            self.sample_name,
            getattr(self.conf, 'pollsters_definitions_dirs', None))
        if duplicates:
            # Both would load and every instance be metered twice.
            LOG.error('%(name)s: the native pollster is not loaded because '
                      'a dynamic pollster of the same meter is configured '
                      'in %(files)s ([DEFAULT] pollsters_definitions_dirs): '
                      'every instance would be metered twice. Use one mode: '
                      'remove %(files)s to keep the native pollster, or '
                      'uninstall ceilometer-os-pollster from the agent\'s '
                      'Python environment to keep the privilege-separated '
                      'mode.', {'name': self.sample_name,
                                'files': ', '.join(duplicates)})
            raise plugin_base.ExtensionLoadError(
                'dynamic pollster of the same meter configured')
        from ceilometer_os_pollster.inspection import appliance
        ok, why = appliance.guestfs_available()
        if not ok:
            LOG.error('%s disabled: the libguestfs Python module cannot be '
                      'imported (%s); %s.', self.sample_name, why,
                      GUESTFS_HINT)
            raise plugin_base.ExtensionLoadError(why)
        # One shared read-only libvirt connection for all compute pollsters.
        inspector = compute_pollsters.GenericComputePollster._get_inspector(
            self.conf)
        if not isinstance(inspector, libvirt_inspector.LibvirtInspector):
            # Ceilometer falls back to a do-nothing inspector when the
            # libvirt one cannot load (python3-libvirt missing); every
            # instance would fail on every cycle.
            LOG.error('%(name)s disabled: it needs the libvirt hypervisor '
                      'inspector, but the agent\'s inspector is %(kind)s '
                      '([compute] hypervisor_inspector, or the libvirt '
                      'Python binding could not be loaded: see the error '
                      'above). Install python3-libvirt where the agent\'s '
                      'Python sees it and restart the agent.',
                      {'name': self.sample_name,
                       'kind': type(inspector).__name__})
            raise plugin_base.ExtensionLoadError(
                'hypervisor inspector is not libvirt')
        self.inspector = inspector

    # -- hooks, as in Ceilometer's instance pollsters -------------------

    @staticmethod
    def get_resource_id(instance, observed):
        return instance.id

    @staticmethod
    def get_volume(instance, observed):
        return observed.vcpus

    @staticmethod
    def get_additional_metadata(instance, observed):
        return observed.record.metadata()

    # -- one instance ---------------------------------------------------

    def _observe(self, service, instance):
        """What this poll publishes for an instance, or None when it is
        not metered now (shut off).  Never waits for an inspection."""
        domain = self.inspector.connection.lookupByUUIDString(instance.id)
        state = domain.state()[0]
        if (state == domain_xml.SHUTOFF and
                not self.conf.compute.report_stopped_instance_metrics):
            return None
        job = service.job_for_domain(instance.id, domain,
                                     image_id_of(instance))
        return Observed(service.lookup(job), vcpus_of(instance, domain))

    def _observe_reconnecting(self, service, instance):
        try:
            return self._observe(service, instance)
        except Exception as err:
            if not libvirt_utils.is_disconnection_exception(err):
                raise
        # libvirtd restarted since the last call: the shared connection
        # reconnects on its next use, so one more try is enough.
        LOG.info('libvirt connection lost; reconnecting')
        return self._observe(service, instance)

    def _make_sample(self, instance, observed, polled_time):
        volume = self.get_volume(instance, observed)
        flavor = getattr(instance, 'flavor', None)
        completed = complete_flavor(flavor, volume)
        if completed != flavor:
            instance = _WithFlavor(instance, completed)
        return util.make_sample_from_instance(
            self.conf,
            instance,
            name=self.sample_name,
            type=self.sample_type,
            unit=self.sample_unit,
            resource_id=self.get_resource_id(instance, observed),
            volume=volume,
            additional_metadata=self.get_additional_metadata(instance,
                                                             observed),
            monotonic_time=polled_time,
        )

    # -- the poll -------------------------------------------------------

    def get_samples(self, manager, cache, resources):
        service = service_mod.get_service(self.conf)
        alive = []
        exported = []
        published = []      # (ids, record) for the unverified gauge
        for instance in resources:
            alive.append(instance.id)
            try:
                observed = self._observe_reconnecting(service, instance)
                if observed is None:
                    continue
                # Like Ceilometer's: when the values were polled.
                sample_ = self._make_sample(instance, observed,
                                            time.monotonic())
                labels = prometheus.label_values(
                    instance.id, instance.tenant_id, instance.user_id,
                    observed.record)
                seen = (instance.id, instance.tenant_id, instance.user_id,
                        observed.record)
            except Exception as err:
                if _vanished(err):
                    LOG.debug('Instance %s vanished while polling',
                              instance.id)
                    continue
                # One broken instance never costs another its sample.
                LOG.error('Could not build %(name)s sample for instance '
                          '%(id)s: %(err)s',
                          {'name': self.sample_name, 'id': instance.id,
                           'err': err})
                continue
            exported.append((labels, sample_.volume))
            published.append(seen)
            yield sample_
        try:
            service.end_cycle(alive)
            if self.conf.polling.enable_prometheus_exporter:
                prometheus.publish(exported, published)
        except Exception:
            LOG.exception('OS inspection bookkeeping failed')
