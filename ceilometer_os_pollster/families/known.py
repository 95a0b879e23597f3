"""The OS families this version knows: where a new family plugs in.

Each family is one module (``windows``, ``linux``) holding everything
about it, and offers:

- ``NAME``: its os_family, libguestfs' inspect_get_type for its roots;
- ``fields(root)``: the OSRecord fields of one of its RootFacts;
- ``billing_notes(root)``: reason parts for values not taken at their
  word ([] when none);
- ``dearness(root)``: how much the root costs, a tuple compared across
  families (facts.dearness says the tiers);
- ``products(record, minimums)``: [(licence product, edition, per-VM
  minimum)] of a record of the family (licences.products);
- what both inspection methods read in its roots (its file and registry
  lists) and ``scanned_root(...)``: how a filesystem scanned by hand is
  recognised as one of its roots.

Adding a family (say FreeBSD) is one module and one entry in FAMILIES,
plus its reads in each inspection method.  SQL Server (``sqlserver``)
is not a family: it is found in Windows roots.  Pure code.
"""

from ceilometer_os_pollster.families import linux
from ceilometer_os_pollster.families import windows

# In the order roots are read when there are too many: the dearest
# family first.
FAMILIES = (windows, linux)
_BY_NAME = {family.NAME: family for family in FAMILIES}


def family(name):
    """The module of the family called ``name`` (a cleaned os_family or
    libguestfs type), or None for one this version does not know."""
    return _BY_NAME.get(name)
