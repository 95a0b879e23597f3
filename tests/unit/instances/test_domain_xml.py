"""domain_xml: the one vCPU rule (billed_vcpus) the pollster (flavor
from discovery, libvirt's count) and the CLI (nova metadata and <vcpu> in
the domain XML) both bill by, and instance_info: what the operator's
command learns from a domain's XML, on a table of domains; the one
hardened parser never reads an external entity."""

from dataclasses import replace

import pytest

from ceilometer_os_pollster.instances import domain_xml
from tests import helpers


@pytest.mark.parametrize('flavor_vcpus, domain_vcpus, expected', [
    (4, 8, 4),          # the flavor wins
    (None, 8, 8),       # no flavor figure: the domain's count
    (0, 3, 3),          # discovery says 0 when <nova:vcpus> is missing
    (-2, 3, 3),
    (True, 3, 3),       # a boolean is no count
    ('4', 3, 3),        # nor is text: the pollster's flavor holds ints
    (4.0, 3, 3),
    (None, 0, 0),       # nothing known: 0, billed as the minimum
])
def test_billed_vcpus(flavor_vcpus, domain_vcpus, expected):
    assert domain_xml.billed_vcpus(flavor_vcpus, domain_vcpus) == expected


def test_the_domain_count_is_asked_only_when_needed():
    asked = []

    def count():
        asked.append(1)
        return 6

    assert domain_xml.billed_vcpus(2, count) == 2
    assert asked == []
    assert domain_xml.billed_vcpus(None, count) == 6
    assert asked == [1]


@pytest.mark.parametrize('flavor, vcpu, expected', [
    ('<nova:flavor name="x"><nova:vcpus>4</nova:vcpus></nova:flavor>',
     "<vcpu current='3'>8</vcpu>", 4),
    ('<nova:flavor name="x"><nova:vcpus>0</nova:vcpus></nova:flavor>',
     "<vcpu current='3'>8</vcpu>", 3),
    ('', "<vcpu>8</vcpu>", 8),
    ('<nova:flavor name="x"><nova:vcpus>x</nova:vcpus></nova:flavor>',
     '', 0),
])
def test_instance_info_bills_like_the_pollster(flavor, vcpu, expected):
    xml = """<domain type='kvm'><name>instance-1</name>
      <uuid>cccccccc-0000-4000-8000-000000000001</uuid>
      <metadata><nova:instance
          xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
        <nova:name>vm</nova:name>%s
        <nova:owner><nova:user uuid="u"/><nova:project uuid="p"/>
        </nova:owner></nova:instance></metadata>%s</domain>""" % (
        flavor, vcpu)
    info = domain_xml.instance_info(xml)
    assert info.nova and info.vcpus == expected


# -- instance_info on a table of nova domains ---------------------------

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


def nova_domain(metadata, **changes):
    """A nova instance's domain with ``metadata`` in <metadata>."""
    fields = dict(name='instance-0000002a', uuid=UUID, vcpu='<vcpu>2</vcpu>',
                  os="<os><type arch='x86_64'>hvm</type></os>")
    fields.update(changes)
    return helpers.domain_xml(metadata=metadata, **fields)


FULL = domain_xml.DomainInfo(
    uuid=UUID, name='instance-0000002a', nova=True, project_id='p-1',
    user_id='u-1', vcpus=8, image_id='img-1')
PLAIN = domain_xml.DomainInfo(uuid=UUID, name='instance-0000002a',
                              vcpus=2)


@pytest.mark.parametrize('xml, expected', [
    (nova_domain(nova()), FULL),
    (nova_domain(nova(ns=NOVA_10)), FULL),
    # the agent's pollster falls back to the domain's vCPUs
    (nova_domain(nova(flavor='')), replace(FULL, vcpus=2)),
    (nova_domain(nova(flavor='<nova:flavor name="x"><nova:vcpus>0'
                             '</nova:vcpus></nova:flavor>'),
                 vcpu="<vcpu current='3'>4</vcpu>"),
     replace(FULL, vcpus=3)),
    (nova_domain(nova(flavor='<nova:flavor name="x"><nova:vcpus>many'
                             '</nova:vcpus></nova:flavor>')),
     replace(FULL, vcpus=2)),
    # booted from a volume: no image
    (nova_domain(nova(root='<nova:root type="volume" uuid="vol-1"/>')),
     replace(FULL, image_id='')),
    (nova_domain(nova(root='')),
     replace(FULL, image_id='')),
    # what discovery needs is missing: not a Nova instance
    (nova_domain(''), PLAIN),
    (nova_domain(nova(user='')), PLAIN),
    (nova_domain(nova(project='<nova:project>demo</nova:project>')), PLAIN),
    (nova_domain(nova(name='')), PLAIN),
    (nova_domain('<other:instance xmlns:other="urn:x"/>'), PLAIN),
    (nova_domain('', vcpu=''), replace(PLAIN, vcpus=0)),
    # unusable input
    ('not xml', None),
    ('<node/>', None),
    (nova_domain('', uuid=''), None),
    (b'\xff\xfe', None),
    (None, None),
])
def test_parse_domain(xml, expected):
    assert domain_xml.instance_info(xml) == expected


def test_parse_domain_never_reads_external_entities(tmp_path):
    secret = tmp_path / 'secret'
    secret.write_text('s3cr3t')
    prolog = ('<!DOCTYPE domain [<!ENTITY leak SYSTEM "file://%s">]>'
              % secret)
    # libvirt never writes a DOCTYPE: the one hardened parser (shared
    # with drives) refuses the domain rather than read the entity.
    for metadata in (nova(name='<nova:name>&leak;</nova:name>'),
                     nova(project='<nova:project uuid="&leak;"/>')):
        xml = nova_domain(metadata, prolog=prolog)
        assert domain_xml.instance_info(xml) is None


def test_parse_domain_sanitises_ids():
    xml = nova_domain(nova(user='<nova:user uuid="u-&#x202e;1&#9;x"/>'))
    info = domain_xml.instance_info(xml)
    assert info.nova and info.user_id == 'u-1 x'
