"""domain_xml.instance_info: what the operator's command and the
pollster learn from a domain's XML (nova metadata, vCPUs), on a table of
domains; the one hardened parser never reads an external entity."""

from dataclasses import replace

import pytest

from ceilometer_os_pollster.instances import domain_xml as domain_xml_mod
from tests import helpers


NOVA = 'http://openstack.org/xmlns/libvirt/nova/1.1'
NOVA_10 = 'http://openstack.org/xmlns/libvirt/nova/1.0'


def nova(ns=NOVA, user='<nova:user uuid="u-1">alice</nova:user>',
         project='<nova:project uuid="p-1">demo</nova:project>',
         flavor='<nova:flavor name="m1.large" id="4">'
                '<nova:vcpus>8</nova:vcpus></nova:flavor>',
         root='<nova:root type="image" uuid="img-1"/>',
         name='<nova:name>web-1</nova:name>'):
    return ('<nova:instance xmlns:nova="%s">%s%s<nova:owner>%s%s'
            '</nova:owner>%s</nova:instance>'
            % (ns, name, flavor, user, project, root))


UUID = '6d3f0c2e-0000-4000-8000-000000000001'


def domain_xml(metadata, **changes):
    """A nova instance's domain with ``metadata`` in <metadata>."""
    fields = dict(name='instance-0000002a', uuid=UUID, vcpu='<vcpu>2</vcpu>',
                  os="<os><type arch='x86_64'>hvm</type></os>")
    fields.update(changes)
    return helpers.domain_xml(metadata=metadata, **fields)


FULL = domain_xml_mod.DomainInfo(
    uuid=UUID, name='instance-0000002a', nova=True, project_id='p-1',
    user_id='u-1', vcpus=8, image_id='img-1')
PLAIN = domain_xml_mod.DomainInfo(uuid=UUID, name='instance-0000002a',
                                  vcpus=2)


@pytest.mark.parametrize('xml, expected', [
    (domain_xml(nova()), FULL),
    (domain_xml(nova(ns=NOVA_10)), FULL),
    # the agent's pollster falls back to the domain's vCPUs
    (domain_xml(nova(flavor='')), replace(FULL, vcpus=2)),
    (domain_xml(nova(flavor='<nova:flavor name="x"><nova:vcpus>0'
                            '</nova:vcpus></nova:flavor>'),
                vcpu="<vcpu current='3'>4</vcpu>"),
     replace(FULL, vcpus=3)),
    (domain_xml(nova(flavor='<nova:flavor name="x"><nova:vcpus>many'
                            '</nova:vcpus></nova:flavor>')),
     replace(FULL, vcpus=2)),
    # booted from a volume: no image
    (domain_xml(nova(root='<nova:root type="volume" uuid="vol-1"/>')),
     replace(FULL, image_id='')),
    (domain_xml(nova(root='')),
     replace(FULL, image_id='')),
    # what discovery needs is missing: not a Nova instance
    (domain_xml(''), PLAIN),
    (domain_xml(nova(user='')), PLAIN),
    (domain_xml(nova(project='<nova:project>demo</nova:project>')), PLAIN),
    (domain_xml(nova(name='')), PLAIN),
    (domain_xml('<other:instance xmlns:other="urn:x"/>'), PLAIN),
    (domain_xml('', vcpu=''), replace(PLAIN, vcpus=0)),
    # unusable input
    ('not xml', None),
    ('<node/>', None),
    (domain_xml('', uuid=''), None),
    (b'\xff\xfe', None),
    (None, None),
])
def test_parse_domain(xml, expected):
    assert domain_xml_mod.instance_info(xml) == expected


def test_parse_domain_never_reads_external_entities(tmp_path):
    secret = tmp_path / 'secret'
    secret.write_text('s3cr3t')
    prolog = ('<!DOCTYPE domain [<!ENTITY leak SYSTEM "file://%s">]>'
              % secret)
    # libvirt never writes a DOCTYPE: the one hardened parser (shared
    # with drives) refuses the domain rather than read the entity.
    for metadata in (nova(name='<nova:name>&leak;</nova:name>'),
                     nova(project='<nova:project uuid="&leak;"/>')):
        xml = domain_xml(metadata, prolog=prolog)
        assert domain_xml_mod.instance_info(xml) is None


def test_parse_domain_sanitises_ids():
    xml = domain_xml(nova(user='<nova:user uuid="u-&#x202e;1&#9;x"/>'))
    info = domain_xml_mod.instance_info(xml)
    assert info.nova and info.user_id == 'u-1 x'
