"""Choosing the domains a command works on (commands/domains.py).

Listing them is exercised through whole commands in test_cli.py
(libvirt's ``test:///`` driver).
"""

import pytest

from ceilometer_os_pollster.commands import domains
from ceilometer_os_pollster.instances import domain_xml as domain_xml_mod


def scanned(name, uuid, nova=True, state=1):
    info = domain_xml_mod.DomainInfo(
        uuid=uuid, name=name, nova=nova, project_id='p' if nova else '',
        user_id='u' if nova else '', vcpus=1)
    return domains.Scanned(info=info, xml='<domain/>', domain_id=1,
                           state=state)


A = scanned('instance-a', 'AAAA-1')
B = scanned('instance-b', 'bbbb-2', state=5)      # shut off
C = scanned('plain', 'cccc-3', nova=False)
ALL = [A, B, C]


@pytest.mark.parametrize('names, all_domains, stopped, chosen, unknown', [
    ((), True, False, [A], []),
    ((), True, True, [A, B], []),
    (('instance-a',), False, False, [A], []),
    (('aaaa-1',), False, False, [A], []),            # UUID, any case
    (('plain', 'instance-b'), False, False, [C, B], []),
    (('instance-a', 'AAAA-1'), False, False, [A], []),
    (('nope', 'instance-a'), False, False, [A], ['nope']),
    (('INSTANCE-A',), False, False, [], ['INSTANCE-A']),
])
def test_select(names, all_domains, stopped, chosen, unknown):
    assert domains.select(ALL, names, all_domains, stopped) == (
        chosen, unknown)
