"""Tests of domain_xml.billed_vcpus: the one vCPU rule the pollster
(flavor from discovery, libvirt's count) and the CLI (nova metadata and
<vcpu> in the domain XML) both bill by."""

import pytest

from ceilometer_os_pollster.instances import domain_xml


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
