"""The host's domains as the command sees them: listing them over a
read-only libvirt connection, with the nova metadata libvirt keeps in
each one (``domain_xml.instance_info``), so that the command sees the
same instances, owners and vCPUs as the agent's discovery; and choosing
the ones a command works on (pure)."""

import dataclasses
import logging

from ceilometer_os_pollster.commands import errors
from ceilometer_os_pollster.instances import domain_xml


# -- choosing domains (pure) ------------------------------------------

@dataclasses.dataclass(frozen=True)
class Scanned:
    """One listed domain: its parsed XML and the live facts make_job
    needs."""

    info: domain_xml.DomainInfo
    xml: str
    domain_id: int
    state: int


def select(scanned, names=(), all_domains=False, include_stopped=False):
    """(chosen Scanned list, names matching no domain).

    Names match the libvirt name or the UUID (any case).  --all keeps
    Nova instances only, shut-off ones only with include_stopped; named
    domains are taken as they are.  Order: the listing's, no duplicates.
    """
    if all_domains:
        return [s for s in scanned if s.info.nova and
                (include_stopped or s.state != domain_xml.SHUTOFF)], []
    chosen, unknown = [], []
    for name in names:
        matches = [s for s in scanned
                   if name == s.info.name or
                   name.lower() == s.info.uuid.lower()]
        if not matches:
            unknown.append(name)
        for s in matches:
            if s not in chosen:
                chosen.append(s)
    return chosen, unknown


# -- libvirt (I/O) ----------------------------------------------------

def open_libvirt(conf):
    """A read-only connection to [DEFAULT] libvirt_uri (or the URI the
    libvirt_type implies), like the agent's; CLIError(3) if none."""
    try:
        import libvirt
    except ImportError:
        raise errors.CLIError(
            errors.EXIT_LIBVIRT, 'the libvirt Python binding is not '
            'installed (distribution package python3-libvirt)')
    # libvirt prints every error to stderr by default; we report them.
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    from ceilometer.compute.virt.libvirt import utils as libvirt_utils
    try:
        return libvirt_utils.new_libvirt_connection(conf)
    except libvirt.libvirtError as exc:
        uri = conf.libvirt_uri or libvirt_utils.LIBVIRT_PER_TYPE_URIS.get(
            conf.libvirt_type, 'qemu:///system')
        raise errors.CLIError(errors.EXIT_LIBVIRT,
                              'cannot connect to libvirt at %s: %s'
                              % (uri, exc))


def scan(connection):
    """Every domain of the connection as Scanned, sorted by name."""
    try:
        domains = connection.listAllDomains(0)
    except Exception as exc:
        raise errors.CLIError(errors.EXIT_LIBVIRT,
                              'cannot list libvirt domains: %s' % exc)
    found = []
    for domain in domains:
        try:
            xml = domain.XMLDesc(0)
            state = domain.state()[0]
            domain_id = domain.ID()
        except Exception as exc:
            # Undefined while we were listing: not an instance any more.
            logging.getLogger(__name__).debug(
                'Skipping a domain that vanished: %s', exc)
            continue
        info = domain_xml.instance_info(xml)
        if info is not None:
            found.append(Scanned(info, xml, domain_id, state))
    return sorted(found, key=lambda s: (s.info.name, s.info.uuid))
