"""A real libvirt rig: running qemu (TCG) domains that look like nova's.

``ensure_daemons()`` starts virtlogd/libvirtd when needed, ``Rig`` makes
instances with nova's disk layouts and nova metadata, ``disk_checksums``
fingerprints every byte behind them; ``ceph.Cluster`` is a private
one-node Ceph cluster for rbd instances (``Rig.add_rbd``).  Importing
this package has no side effects and does not need libvirt.  ``python
-m tests.rig`` drives it from a shell.
"""

from tests.rig.domains import Flavor  # noqa: F401
from tests.rig.libvirtd import ensure_daemons  # noqa: F401
from tests.rig.libvirtd import stop_started_daemons  # noqa: F401
from tests.rig.rig import disk_checksums  # noqa: F401
from tests.rig.rig import LAYOUTS  # noqa: F401
from tests.rig.rig import Rig  # noqa: F401
from tests.rig.rig import RigDisk  # noqa: F401
from tests.rig.rig import RigDomain  # noqa: F401
from tests.rig.rig import RigError  # noqa: F401
