"""A libvirt domain's XML: its parsing, and nova's metadata.

Owns reading the text libvirt returns for a domain: ``parse`` (through
the one hardened parser, ``sanitize.parse_xml``) refuses DTDs and
entities, never touches the network and keeps lxml's size limits (the
XML embeds strings a tenant chose, such as the instance's display
name); ``instance_info`` reads the nova metadata libvirt keeps
in the domain (owner, flavor vCPUs, image), the same facts Ceilometer's
libvirt-metadata discovery uses.  Drive specs are ``drives``' business.
Pure: text in, plain values out.
"""

import dataclasses

from ceilometer_os_pollster import sanitize

# libvirt's state of a domain that is not running (VIR_DOMAIN_SHUTOFF),
# so that comparing needs no libvirt import.
SHUTOFF = 5

NOVA_NAMESPACES = ('http://openstack.org/xmlns/libvirt/nova/1.1',
                   'http://openstack.org/xmlns/libvirt/nova/1.0')


class DomainXMLError(ValueError):
    """The text is not a parsable libvirt domain."""


def parse(domain_xml):
    """The root element of a libvirt domain's XML, parsed without ever
    reading a DTD, an entity or the network; DomainXMLError otherwise.

    libvirt never writes a DTD or entities, and the XML embeds strings
    a tenant chose: sanitize.parse_xml refuses anything else.
    """
    try:
        return sanitize.parse_xml(domain_xml, 'domain')
    except sanitize.XMLRefused as exc:
        raise DomainXMLError('domain XML %s' % exc)


@dataclasses.dataclass(frozen=True)
class DomainInfo:
    """What the CLI and the licence report need to know about one
    libvirt domain besides its disks."""

    uuid: str
    name: str                  # libvirt domain name
    nova: bool = False         # a Nova instance, as discovery sees it
    project_id: str = ''
    user_id: str = ''
    vcpus: int = 0             # flavor vCPUs, else the domain's own
    image_id: str = ''         # nova:root type="image", '' otherwise


def _clean(value):
    return sanitize.clean_text(value)


def billed_vcpus(flavor_vcpus, domain_vcpus):
    """The vCPUs an instance is billed for: its flavor's when the flavor
    says a positive whole number, else the domain's current count.

    ``domain_vcpus`` is that count, or a function returning it, called
    only when the flavor does not say (on the poll path it is a libvirt
    call).
    """
    if (isinstance(flavor_vcpus, int) and not isinstance(flavor_vcpus, bool)
            and flavor_vcpus > 0):
        return flavor_vcpus
    return domain_vcpus() if callable(domain_vcpus) else domain_vcpus


def domain_vcpus(root):
    """The domain's current vCPU count from its <vcpu> element (0 if
    unusable): the ``current`` attribute when set, else the maximum."""
    vcpu = root.find('vcpu')
    if vcpu is None:
        return 0
    current = sanitize.clean_int(vcpu.get('current'))
    return current or sanitize.clean_int(vcpu.text)


def _nova_element(root):
    for ns in NOVA_NAMESPACES:
        element = root.find('metadata/{%s}instance' % ns)
        if element is not None:
            return ns, element
    return None, None


def instance_info(domain_xml):
    """DomainInfo from a domain's XML, or None if it is not usable XML.

    A domain is a Nova instance when its nova metadata names the owning
    user and project and the instance, which is what Ceilometer's
    libvirt-metadata discovery requires.  vCPUs as the pollster bills
    them (``billed_vcpus``).
    """
    try:
        root = parse(domain_xml)
    except DomainXMLError:
        return None
    uuid = _clean(root.findtext('uuid'))
    if not uuid:
        return None
    info = DomainInfo(uuid=uuid, name=_clean(root.findtext('name')),
                      vcpus=domain_vcpus(root))
    ns, nova = _nova_element(root)
    if nova is None:
        return info

    def find(path):
        return nova.find('/'.join('{%s}%s' % (ns, p)
                                  for p in path.split('/')))

    user = find('owner/user')
    project = find('owner/project')
    if user is None or project is None or find('name') is None:
        return info
    user_id = _clean(user.get('uuid'))
    project_id = _clean(project.get('uuid'))
    if not user_id or not project_id:
        return info
    flavor_vcpus = find('flavor/vcpus')
    vcpus = sanitize.clean_int(
        flavor_vcpus.text if flavor_vcpus is not None else None)
    boot = find('root')
    image_id = ''
    if boot is not None and boot.get('type') == 'image':
        image_id = _clean(boot.get('uuid'))
    return dataclasses.replace(
        info, nova=True, project_id=project_id, user_id=user_id,
        vcpus=billed_vcpus(vcpus, info.vcpus), image_id=image_id)
