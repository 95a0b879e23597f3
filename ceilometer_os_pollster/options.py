"""Every configuration option of ceilometer-os-pollster.

All options live in the ``[os_inspection]`` group of ceilometer.conf (or
of any file passed with --config-file to the CLI).  ``list_opts`` is the
``oslo.config.opts`` entry point, so

    oslo-config-generator --namespace ceilometer-os-pollster

prints a commented sample.
"""

from oslo_config import cfg

GROUP = 'os_inspection'

# Where the privilege-separated mode keeps records: root's alone.
ROOT_CACHE_DIR = '/var/lib/ceilometer-os-pollster'

OPTS = [
    cfg.StrOpt(
        'cache_dir',
        default='/var/lib/ceilometer/os-inspection',
        help='Directory holding one inspection record per instance. It '
             'must be writable by the user running ceilometer-polling '
             '(and by the CLI when it inspects). Records survive agent '
             'restarts, so a restart costs no appliance launch. If the '
             'directory cannot be written the agent keeps records in '
             'memory only and logs one ERROR. Run as root (the '
             'privilege-separated mode), it and every directory above it '
             'must be owned by root and writable by no other user, and '
             'none may be a symbolic link, or the command refuses: set it '
             'to a root-only directory such as %s there.'
             % ROOT_CACHE_DIR),
    cfg.IntOpt(
        'concurrency',
        default=1, min=1, max=16,
        help='How many inspections (libguestfs appliances) may run at '
             'once on this host. Each appliance is a small VM using '
             'appliance_memory_mb of RAM and one host CPU while it runs. '
             'Raise it to fill a cold cache faster on large hosts.'),
    cfg.IntOpt(
        'appliance_memory_mb',
        default=768, min=256, max=8192,
        help='Memory (MiB) given to each libguestfs appliance. 768 is '
             'enough for inspection of Windows and Linux guests; raise it '
             'only if inspections fail with out-of-memory errors.'),
    cfg.IntOpt(
        'inspection_deadline',
        default=300, min=30,
        help='Hard limit, in seconds, for one inspection including the '
             'appliance launch. Every inspection runs in a worker '
             'process of its own; at the deadline that process and '
             'everything it started (qemu-img, the appliance\'s qemu) '
             'are killed, whatever the disk or its storage is doing, and '
             'the instance is reported with status "failed" (reason '
             '"deadline: ... while <stage>"), then retried later with '
             'backoff. On hosts without KVM (TCG emulation) one launch '
             'alone can take 30-60 s.'),
    cfg.StrOpt(
        'libguestfs_backend',
        default='direct',
        help='libguestfs backend. Only "direct" is supported: the '
             'inspector must see the qemu command line libguestfs builds '
             '(to refuse a drive whose format qemu would probe) and kill '
             'the appliance with its worker at the deadline, which an '
             'appliance started by libvirtd ("libvirt") would escape. '
             'Any other value makes every inspection fail with a reason '
             'saying so.'),
    cfg.ListOpt(
        'libguestfs_backend_settings',
        default=[],
        help='libguestfs backend settings (LIBGUESTFS_BACKEND_SETTINGS). '
             'Set "force_tcg" on hosts where KVM is unavailable or '
             'unusable, e.g. nested virtualisation where the appliance '
             'hangs at boot.'),
    cfg.IntOpt(
        'worker_nice',
        default=10, min=0, max=19,
        help='Nice level of each inspection worker process and of the '
             'appliance (qemu) it starts, so that inspections yield the '
             'CPU to tenants\' VMs on a busy compute node. 0 keeps the '
             'agent\'s own priority.'),
    cfg.StrOpt(
        'worker_io_class',
        default='idle', choices=['idle', 'best-effort', 'none'],
        help='Linux I/O scheduling class of each inspection worker and '
             'its appliance (see ionice(1)). "idle" reads guest disks '
             'only when no other process wants the disk, so inspections '
             'never slow tenants\' I/O; on a host whose disks are never '
             'idle an inspection may then reach inspection_deadline: '
             'use "best-effort" (lowest level) there. "none" leaves the '
             'agent\'s class. Only honoured by I/O schedulers with '
             'priorities (bfq); local or network storage served by '
             'another daemon (Ceph, NFS) ignores it.'),
    cfg.StrOpt(
        'appliance_cache_dir',
        default='',
        help='Where libguestfs keeps the appliance it builds from host '
             'packages on first use (LIBGUESTFS_CACHEDIR). Empty means '
             'the libguestfs default (/var/tmp). Must be on a local '
             'filesystem writable by the agent user.'),
    cfg.StrOpt(
        'tmp_dir',
        default='',
        help='Where each inspection gets its private directory '
             '(os-inspection-<random>, mode 0700, removed when the '
             'inspection ends; left-overs of killed processes are removed '
             'at the next start). It holds the disks\' overlays, where the '
             'appliance\'s writes land (e.g. a journal replayed at '
             'mount), libguestfs\' temporary files and sockets (the '
             'sockets only when the worker is not root: libguestfs 1.48 '
             'puts root\'s in /tmp, see worker_user) and qemu\'s scratch '
             'copy of the appliance disk. Empty means the '
             'system temporary directory ($TMPDIR or /tmp). Use a local '
             'filesystem with a short path (unix socket paths are limited '
             'to 107 bytes) and room for overlay_max_mb per disk (see '
             'tmp_min_free_mb).'),
    cfg.IntOpt(
        'overlay_max_mb',
        default=4096, min=64,
        help='Largest file, in MiB, the appliance\'s qemu may write: each '
             'disk\'s overlay and its scratch copy of the appliance disk '
             '(enforced with a file-size limit, RLIMIT_FSIZE, on qemu). '
             'A guest can make the appliance write a lot, e.g. a '
             'filesystem journal of tens of GiB replayed at mount; at this '
             'size qemu is stopped and the instance is recorded "failed" '
             'with the reason "overlay write limit reached ...", which '
             'bills it at the unverified rate, never cheaper. Ordinary '
             'journals are at most 1 GiB (ext4) or 2 GiB (XFS).'),
    cfg.IntOpt(
        'tmp_min_free_mb',
        default=1024, min=0,
        help='Free space, in MiB, that inspections must leave on the '
             'filesystem of tmp_dir. Before the appliance starts, the '
             'filesystem must have (number of disks + 1) x overlay_max_mb '
             '+ this much free, or the inspection is recorded "failed" '
             '("not enough free space for the overlays ..."), so even '
             'overlays written to their limit never fill the host\'s '
             'disk. Each running inspection checks on its own: with '
             'concurrency above 1, add (concurrency - 1) x 2 x '
             'overlay_max_mb here.'),
    cfg.IntOpt(
        'appliance_address_space_mb',
        default=0, min=0,
        help='Address-space limit (RLIMIT_AS), in MiB, of the appliance\'s '
             'qemu. 0 means appliance_memory_mb + 3072: qemu maps about '
             '1.5 GiB beyond the guest memory under TCG emulation (its '
             'code buffer), less with KVM. An appliance that fails to '
             'start with "cannot allocate memory" needs more.'),
    cfg.StrOpt(
        'worker_user',
        default='',
        help='User that inspections run as when the inspecting process '
             'is root (the privilege-separated mode\'s timer and '
             '"ceilometer-os-pollster inspect" run by root): the worker '
             'switches to it and its groups before reading anything, so '
             'the worker, qemu-img and the appliance\'s qemu never run as '
             'root. Use a dedicated user (e.g. "os-inspector") that can '
             'read the instance disks and their backing files (see the '
             'installation guide, "Permissions"; and /dev/kvm through the '
             'kvm group) and '
             'nothing else. Empty: inspections started by root are '
             'refused ("inspect" exits 2, the agent records each instance '
             '"failed" with "inspection not confined: ...") unless '
             'allow_root_inspection is true. A user that does not exist '
             'or is root is refused the same way. Ignored when not root.'),
    cfg.BoolOpt(
        'allow_root_inspection',
        default=False,
        help='Let inspections started by root run as root when worker_user '
             'is empty: the worker, qemu-img and the appliance\'s qemu then '
             'read guest-controlled disks with every privilege of root, '
             'and libguestfs leaves a socket directory in /tmp for each '
             'killed inspection. Only for hosts that cannot have a '
             'dedicated user; logged as a WARNING at start. Off (default): '
             'such inspections are refused, see worker_user. Ignored when '
             'worker_user is set or when not root.'),
    cfg.StrOpt(
        'inspection_method',
        default='auto', choices=['auto', 'direct', 'appliance'],
        help='How an instance\'s disks are read. "direct": by the '
             'inspector\'s own read-only, bounded, pure-Python readers in '
             'the inspection worker (qcow2/raw files and block devices, '
             'nbd and rbd disks read-only, MBR/GPT, LVM linear/striped, '
             'ext2/3/4, XFS, btrfs on one device, NTFS and the Windows '
             'registry): milliseconds and under a MB of the disk per '
             'instance, no qemu, no kernel, no appliance; anything they do '
             'not read (iSCSI/Gluster disks, md-raid, multi-device or RAID '
             'btrfs, unknown filesystems) '
             'makes the record "failed". "appliance": always a libguestfs '
             'appliance (a small VM per inspection), as before. "auto" '
             '(default): direct first, the appliance for whatever direct '
             'does not read, per instance; os_inspection_method says '
             'which decided and os_inspection_reason why direct fell '
             'back.'),
    cfg.IntOpt(
        'max_filesystems',
        default=512, min=1,
        help='Most filesystems, btrfs subvolumes and logical volumes an '
             'instance\'s disks may hold for libguestfs\' own inspection '
             'to walk them all. Above it (a disk made to run the '
             'inspection into its deadline), the inspector mounts at '
             'most 32 of them itself, the boot disk\'s and NTFS ones '
             'first; if that leaves any unvisited where the billed OS '
             'could be, the instance is billed as the dearest product '
             '(Windows Server Datacenter with SQL Server Enterprise) and '
             'the reason says so. Real guests hold a few dozen at most.'),
    cfg.BoolOpt(
        'inspect_all_disks',
        default=False,
        help='Inspect every disk of an instance instead of only its boot '
             'disk. Off by default: an attached data volume that happens '
             'to hold another OS must not decide what the instance is '
             'billed as, and every extra disk slows the inspection.'),
    cfg.IntOpt(
        'record_ttl',
        default=86400, min=600,
        help='Seconds an inspection record stays valid when nothing about '
             'the instance changed (disks, image, qemu restart). After '
             'that it is refreshed in the background; the old record is '
             'served until then. Default: once a day. A change of the boot '
             'disk, the image or the qemu process is re-inspected at once '
             '(at most once per changed_requeue_interval ahead of the '
             'queue), whatever this value. Records of disks with no '
             'recognisable OS '
             '("unknown") follow unknown_retry_max_delay instead.'),
    cfg.FloatOpt(
        'record_ttl_jitter',
        default=0.1, min=0.0, max=0.5,
        help='Fraction of record_ttl by which each record\'s lifetime is '
             'randomly lengthened, so the VMs of one host do not all '
             'expire (and launch appliances) at the same moment. '
             'record_ttl stays the shortest lifetime.'),
    cfg.IntOpt(
        'retry_initial_delay',
        default=300, min=1,
        help='Seconds before a failed inspection is retried. The delay '
             'doubles with every further failure, up to retry_max_delay.'),
    cfg.IntOpt(
        'retry_max_delay',
        default=21600, min=1,
        help='Upper bound, in seconds, of the retry delay for instances '
             'whose inspection keeps failing (status "failed": the '
             'appliance could not read the disks).'),
    cfg.IntOpt(
        'unknown_retry_max_delay',
        default=14400, min=60,
        help='Upper bound, in seconds, of the retry delay for instances '
             'whose boot disk was read but held no recognisable operating '
             'system (status "unknown": a blank disk, an OS being '
             'installed from an ISO, an unsupported OS). Checks start '
             'after retry_initial_delay and double up to this value, so '
             'an OS installed today is billed today. Each check is one '
             'appliance launch: with the default of 4 hours a blank VM '
             'costs about 6 launches a day.'),
    cfg.IntOpt(
        'changed_requeue_interval',
        default=3600, min=0,
        help='Seconds during which an instance whose boot disk, image or '
             'qemu process changed (stop/start, hard reboot, rebuild) '
             'jumps the inspection queue only once. A further change '
             'within this time is inspected with the expired records and '
             'retries instead, after any retry backoff, so a guest '
             'restarted in a loop cannot hold the inspection slots. The '
             'old record is published meanwhile. 0: every change jumps '
             'the queue.'),
    cfg.IntOpt(
        'carry_over_max_age',
        default=259200, min=0,
        help='How long, in seconds after the last good inspection, the '
             'facts of an "ok" or "encrypted" record keep being published '
             'when later inspections of the same boot disk fail or find no '
             'OS (e.g. a torn read of a busy disk). Meanwhile the status '
             'stays and the reason says the facts are carried over; a good '
             'result ends it at once. Past this age the failure itself is '
             'published. 0 publishes every failure at once (the licence '
             'may then go unbilled until the next good inspection). '
             'Default: 3 days.'),
    cfg.IntOpt(
        'forget_after',
        default=86400, min=0,
        help='Seconds after an instance was last seen on this host before '
             'its record is deleted from cache_dir (it may come back after '
             'a migration that is rolled back).'),
    cfg.StrOpt(
        'libvirt_secret_uri',
        default='',
        help='Read-write libvirt URI used only to read the Ceph secret of '
             'rbd disks (e.g. qemu:///system). Ceilometer\'s own '
             'connection is read-only and cannot read secrets. Empty: the '
             'key is read by librbd from the Ceph keyring file instead '
             '(see ceph_conf). Keys never appear on a command line.'),
    cfg.StrOpt(
        'ceph_conf',
        default='/etc/ceph/ceph.conf',
        help='Ceph client configuration used for rbd disks when no '
             'libvirt secret is used; librbd finds the client keyring '
             '(/etc/ceph/ceph.client.<user>.keyring) through it. The '
             'agent user must be able to read the keyring. It is always '
             'named explicitly: librbd never searches $CEPH_CONF or the '
             'working directory.'),
    cfg.StrOpt(
        'ceph_user',
        default='',
        help='cephx user the inspector reads rbd disks as, e.g. '
             '"os-inspector" for client.os-inspector, whose keyring is '
             'found through ceph_conf. Give it read-only caps (see the '
             'installation guide, "A read-only cephx user") so that the '
             'inspector cannot write to the cluster even if it wanted to. '
             'Empty: the user named in the disk\'s <auth username> '
             '(nova\'s rbd_user, which may write), with its key from '
             'ceph_conf or, if libvirt_secret_uri is set, from the '
             'domain\'s libvirt secret.'),
    cfg.IntOpt(
        'ceph_client_mount_timeout',
        default=20, min=1, max=300,
        help='Seconds librbd tries to reach the Ceph monitors of an rbd '
             'disk before the inspection fails with "error connecting: '
             'Connection timed out" (Ceph\'s own default is 300). With '
             'inspection_method auto the direct readers try first and '
             'the appliance once more, so keep twice this well below '
             'inspection_deadline: a cluster whose monitors are down '
             'then gives that clear reason rather than a deadline.'),
]

# Each option's default by name, for code that works without a
# configuration object (policy.Settings, cache.RecordCache): the
# value is written once, above.
DEFAULTS = {opt.dest: opt.default for opt in OPTS}


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)
    return conf


def list_opts():
    """oslo.config.opts entry point."""
    return [(GROUP, OPTS)]
