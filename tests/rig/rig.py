"""The rig: running nova-like qemu (TCG) domains with nova's disk layouts.

Owns the life of a set of test instances under one work directory: their
disks in nova's places (``instances/<uuid>/disk``, ``_base/<sha1>``,
``volumes/<id>`` for block and nbd volumes), the libvirt domains, loop
devices and nbd servers behind them, the rbd images and libvirt
``ceph`` secrets of rbd instances (on a tests.rig.ceph cluster), and a
state file (``rig.json``) that lets another process (``python -m
tests.rig down``) undo it all.  Only what the state file lists is ever
removed.

The daemons are not this module's business: call
``libvirtd.ensure_daemons()`` first.
"""

import base64
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import time
import uuid as uuid_mod

from lxml import etree

from tests.rig import ceph as ceph_mod
from tests.rig import disks as disks_mod
from tests.rig import domains
from tests.rig import libvirtd

# Boot disk layouts, as nova (or cinder) would leave them.
OVERLAY = 'overlay'             # qcow2 instances/<uuid>/disk on _base raw
OVERLAY_BLANK_BASE = 'overlay-blank-base'   # the OS only in the overlay
QCOW2 = 'qcow2'                 # standalone qcow2
RAW = 'raw'                     # raw file
BLOCK = 'block'                 # loop device, type='block'
NBD = 'nbd'                     # qemu-nbd on 127.0.0.1, type='network'
NBD_UNIX = 'nbd-unix'           # qemu-nbd on a unix socket
LAYOUTS = (OVERLAY, OVERLAY_BLANK_BASE, QCOW2, RAW, BLOCK, NBD, NBD_UNIX)
# rbd layouts need a Ceph cluster (tests.rig.ceph): Rig.add_rbd.
RBD_EPHEMERAL = 'rbd-ephemeral'     # nova images_type=rbd: vms/<uuid>_disk
RBD_VOLUME = 'rbd-volume'           # Cinder: volumes/volume-<id>
RBD_LAYOUTS = (RBD_EPHEMERAL, RBD_VOLUME)

STATE_NAME = 'rig.json'
_OWNED_DIRS = ('instances', '_base', 'volumes')
PROJECT_ID = domains.stable_uuid('project', 'demo')
USER_ID = domains.stable_uuid('user', 'demo')


class RigError(RuntimeError):
    """The rig could not build or run a domain."""


@dataclasses.dataclass(frozen=True)
class RigDisk:
    """One disk of a rig domain and every host path holding its bytes.

    ``chain`` lists them top first: overlay then base; loop device then
    its file; for nbd the file qemu-nbd serves.
    """

    target: str
    kind: str
    format: str
    source: str
    chain: tuple = ()
    device: str = 'disk'
    host: str = ''
    port: int = 0
    socket: str = ''
    protocol: str = ''
    hosts: tuple = ()           # rbd: every monitor, in XML order
    auth_username: str = ''
    secret_uuid: str = ''

    @property
    def pool(self):
        return self.source.partition('/')[0]

    @property
    def image(self):
        return self.source.partition('/')[2]


@dataclasses.dataclass(frozen=True)
class RigDomain:
    uuid: str
    name: str
    display_name: str
    layout: str
    flavor: domains.Flavor
    project_id: str
    user_id: str
    image_id: str | None
    disks: tuple
    xml: str

    @property
    def vcpus(self):
        return self.flavor.vcpus

    @property
    def boot_disk(self):
        return next(d for d in self.disks if d.device == 'disk')

    @property
    def disk_paths(self):
        """Every host path behind the domain's disks, without repeats."""
        seen = []
        for disk in self.disks:
            seen.extend(p for p in disk.chain if p not in seen)
        return tuple(seen)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        data['flavor'] = domains.Flavor(**data['flavor'])
        data['disks'] = tuple(
            RigDisk(**dict(d, chain=tuple(d['chain']),
                           hosts=tuple(tuple(h) for h in d.get('hosts', ()))))
            for d in data['disks'])
        return cls(**data)


def _libvirt():
    import libvirt     # here: importing the rig must not need it
    return libvirt


class Rig:
    """Domains under ``workdir``; a context manager that tears down.

    ``add`` prepares disks and defines a domain, ``start_all`` starts
    every defined one, ``teardown`` undoes everything the state lists.
    ``halt=False`` boots the disks through the BIOS instead of the
    halting stub kernel (see domains.py: costly, and the guest runs
    whatever boot code the image has).
    """

    def __init__(self, workdir, uri=libvirtd.URI, halt=True):
        self.workdir = pathlib.Path(workdir).resolve()
        self.uri = uri
        self.halt = halt
        self._conn = None
        self._state = {'uri': uri, 'domains': [], 'loops': [], 'nbd': [],
                       'bases': {}, 'secrets': [], 'rbd': []}
        self._cache = None

    @classmethod
    def load(cls, workdir):
        """The rig recorded in ``workdir`` (empty if there is none)."""
        rig = cls(workdir)
        try:
            with open(rig.workdir / STATE_NAME) as handle:
                rig._state.update(json.load(handle))
        except FileNotFoundError:
            pass
        rig.uri = rig._state['uri']
        return rig

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.teardown()

    @property
    def conn(self):
        if self._conn is None or not self._conn.isAlive():
            self._conn = _libvirt().open(self.uri)
        return self._conn

    def reconnect(self):
        """Forget the libvirt connection: after libvirtd restarted, a
        dead connection can still look alive.  The next use opens one."""
        self._conn = None

    @property
    def domains(self):
        return [RigDomain.from_dict(d) for d in self._state['domains']]

    def _save(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = self.workdir / (STATE_NAME + '.tmp')
        tmp.write_text(json.dumps(self._state, indent=1))
        os.replace(tmp, self.workdir / STATE_NAME)

    def _dir(self, *parts):
        path = self.workdir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _cache_mode(self):
        if self._cache is None:
            direct = disks_mod.direct_io_works(self._dir('instances'))
            self._cache = 'none' if direct else 'writeback'
        return self._cache

    def _base(self, key, make):
        """_base/<sha1(key)>, made once by ``make(path)`` and shared."""
        base = self._dir('_base') / hashlib.sha1(key.encode()).hexdigest()
        if str(base) not in self._state['bases']:
            tmp = base.with_suffix('.part')
            make(tmp)
            os.replace(tmp, base)
            self._state['bases'][str(base)] = key
            self._save()
        return base

    def _image_base(self, image, image_id):
        # nova names a base file after the sha1 of the image id
        return self._base(image_id, lambda tmp: disks_mod.to_raw(image, tmp))

    def _volume_copy(self, image):
        volume_id = str(uuid_mod.uuid4())
        path = self._dir('volumes') / volume_id
        disks_mod.to_raw(image, path)
        return volume_id, path

    def _socket_path(self, volume_id):
        # sun_path holds 107 bytes: keep the name short
        path = str(self._dir('volumes') / (volume_id[:8] + '.sock'))
        if len(path.encode()) > 107:
            raise RigError('workdir too deep for a unix socket: %s' % path)
        return path

    def _boot_disk(self, layout, image, image_key, inst_dir):
        """(boot RigDisk, volume id or '') of ``layout``, its files made."""
        disk = inst_dir / 'disk'
        if layout == OVERLAY:
            base = self._image_base(image, image_key)
            disks_mod.overlay(base, disk)
            return RigDisk('vda', 'file', 'qcow2', str(disk),
                           (str(disk), str(base))), ''
        if layout == OVERLAY_BLANK_BASE:
            size = disks_mod.image_info(image)['virtual-size']
            base = self._base('blank:%d' % size,
                              lambda tmp: disks_mod.blank_raw(tmp, size))
            disks_mod.overlay(base, disk, content=image)
            return RigDisk('vda', 'file', 'qcow2', str(disk),
                           (str(disk), str(base))), ''
        if layout == QCOW2:
            disks_mod.to_qcow2(image, disk)
            return RigDisk('vda', 'file', 'qcow2', str(disk),
                           (str(disk),)), ''
        if layout == RAW:
            disks_mod.to_raw(image, disk)
            return RigDisk('vda', 'file', 'raw', str(disk),
                           (str(disk),)), ''
        if layout == BLOCK:
            volume_id, path = self._volume_copy(image)
            device = disks_mod.attach_loop(path)
            self._state['loops'].append({'device': device,
                                         'path': str(path)})
            self._save()
            return RigDisk('vda', 'block', 'raw', device,
                           (device, str(path))), volume_id
        if layout in (NBD, NBD_UNIX):
            volume_id, path = self._volume_copy(image)
            record = disks_mod.start_nbd(
                path, volume_id, str(path) + '.pid',
                unix_socket=self._socket_path(volume_id)
                if layout == NBD_UNIX else '')
            self._state['nbd'].append(record)
            self._save()
            if record['socket']:
                return RigDisk('vda', 'network', 'raw', volume_id,
                               (str(path),), socket=record['socket']), \
                    volume_id
            return RigDisk('vda', 'network', 'raw', volume_id,
                           (str(path),), host=disks_mod.NBD_HOST,
                           port=record['port']), volume_id
        raise AssertionError(layout)

    def _free_number(self):
        taken = {dom.name() for dom in self.conn.listAllDomains()}
        number = 1
        while domains.instance_name(number) in taken:
            number += 1
        return number

    def add(self, name, image, *, layout=OVERLAY, vcpus=2, image_id=None,
            from_volume=False, data_image=None, data_raw=False, cdrom=False,
            flavor=None, project_id=PROJECT_ID, user_id=USER_ID,
            memory_mib=64):
        """Make the disks of one instance and define (not start) it.

        ``image`` is a raw or qcow2 guest image; the rig works on copies
        or overlays, never on it.  ``image_id`` defaults to an id derived
        from the image's path; ``from_volume`` drops ``<nova:root>`` as
        nova does for a boot-from-volume instance.  ``data_image`` adds
        vdb (an overlay on that image; ``data_raw``: a raw copy, what a
        tool adding every file disk as raw reads right), ``cdrom`` an
        empty cdrom drive.
        """
        if layout not in LAYOUTS:
            raise ValueError('unknown layout %r (one of %s)'
                             % (layout, ', '.join(LAYOUTS)))
        image = pathlib.Path(image).resolve()
        if not image.is_file():
            raise RigError('no image at %s' % image)
        image_id = image_id or domains.stable_uuid('image', str(image))
        instance_id = str(uuid_mod.uuid4())
        inst_dir = self._dir('instances', instance_id)
        try:
            boot, serial = self._boot_disk(layout, image, image_id,
                                           inst_dir)
        except (disks_mod.DiskError, OSError) as exc:
            raise RigError('%s: %s layout failed: %s' % (name, layout, exc))
        rig_disks = [boot]
        xml_disks = [domains.Disk(
            boot.target, boot.kind, boot.source, boot.format,
            host=boot.host, port=boot.port, socket=boot.socket, serial=serial,
            cache=self._cache_mode())]
        if data_image is not None:
            data_image = pathlib.Path(data_image).resolve()
            data = inst_dir / 'disk.eph0'
            if data_raw:
                disks_mod.to_raw(data_image, data)
                chain, data_format = (str(data),), 'raw'
            else:
                base = self._image_base(
                    data_image, domains.stable_uuid('image', str(data_image)))
                disks_mod.overlay(base, data)
                chain, data_format = (str(data), str(base)), 'qcow2'
            rig_disks.append(RigDisk('vdb', 'file', data_format, str(data),
                                     chain))
            xml_disks.append(domains.Disk('vdb', 'file', str(data),
                                          data_format,
                                          cache=self._cache_mode()))
        if cdrom:
            # Listed first: the boot order, not the XML order, decides.
            rig_disks.insert(0, RigDisk('hdc', 'file', 'raw', '',
                                        device=domains.DEVICE_CDROM))
            xml_disks.insert(0, domains.Disk(
                'hdc', 'file', '', 'raw', device=domains.DEVICE_CDROM))
        return self._define(name, layout, image_id, rig_disks, xml_disks,
                            inst_dir, instance_id, vcpus=vcpus,
                            flavor=flavor, from_volume=from_volume,
                            project_id=project_id, user_id=user_id,
                            memory_mib=memory_mib)

    def _define(self, name, layout, image_id, rig_disks, xml_disks,
                inst_dir, instance_id, *, vcpus, flavor, from_volume,
                project_id, user_id, memory_mib):
        """Write the XML of one instance, define it, record it."""
        kernel = ''
        if self.halt:
            kernel = inst_dir / 'kernel'
            kernel.write_bytes(domains.halt_kernel())
        flavor = flavor or domains.flavor_for(vcpus)
        root_image = None if from_volume else image_id
        for attempt in range(5):
            spec = domains.DomainSpec(
                uuid=instance_id,
                name=domains.instance_name(self._free_number()),
                display_name=name, flavor=flavor, project_id=project_id,
                user_id=user_id, image_id=root_image,
                disks=tuple(xml_disks),
                creation_time=time.strftime('%Y-%m-%d %H:%M:%S',
                                            time.gmtime()),
                memory_mib=memory_mib,
                console_log=str(inst_dir / 'console.log'),
                kernel=str(kernel),
                rig_tag=str(self.workdir))
            xml = domains.domain_xml(spec)
            try:
                self.conn.defineXML(xml)
                break
            except _libvirt().libvirtError as exc:
                # Another rig took the name meanwhile: pick again.
                if attempt == 4 or 'already exists' not in str(exc):
                    raise RigError('%s: define failed: %s' % (name, exc))
        domain = RigDomain(
            uuid=instance_id, name=spec.name, display_name=name,
            layout=layout, flavor=flavor, project_id=project_id,
            user_id=user_id, image_id=root_image, disks=tuple(rig_disks),
            xml=xml)
        self._state['domains'].append(domain.to_dict())
        self._save()
        return domain

    # ---------------------------------------------------------------- rbd

    def ceph_secret(self, cluster, user):
        """UUID of the libvirt ``ceph`` secret holding ``client.<user>``'s
        key, defined (once per user) the way nova's deployers do.

        The value goes through the libvirt API, never a command line.
        """
        for known in self._state['secrets']:
            if known['user'] == user and known['cluster'] == str(cluster.dir):
                return known['uuid']
        secret_uuid = str(uuid_mod.uuid4())
        xml = domains.ceph_secret_xml(
            secret_uuid, 'client.%s secret %s' % (user, secret_uuid[:8]))
        try:
            self.conn.secretDefineXML(xml)
        except _libvirt().libvirtError as exc:
            raise RigError('secret for client.%s: %s' % (user, exc))
        self._state['secrets'].append({'uuid': secret_uuid, 'user': user,
                                       'cluster': str(cluster.dir)})
        self._save()
        self.set_secret_value(secret_uuid, cluster.users[user].key)
        return secret_uuid

    def set_secret_value(self, secret_uuid, key):
        """Store a cephx key (base64 text) as the secret's raw value."""
        secret = self.conn.secretLookupByUUIDString(secret_uuid)
        secret.setValue(base64.b64decode(key))

    def add_rbd(self, name, image, cluster, *, layout=RBD_EPHEMERAL,
                user='nova', hosts=None, pool=None, vcpus=2, flavor=None,
                image_id=None, project_id=PROJECT_ID, user_id=USER_ID,
                memory_mib=64):
        """Import ``image`` into ``cluster`` and define an instance whose
        boot disk is that rbd image, attached as nova (RBD_EPHEMERAL) or
        Cinder (RBD_VOLUME) does.

        ``hosts`` lists the ``<host>`` monitors in order (default: the
        cluster's v1 address); ``user`` is the cephx user in ``<auth>``,
        its key in a libvirt secret.  ``pool`` overrides vms/volumes.
        """
        if layout not in RBD_LAYOUTS:
            raise ValueError('unknown rbd layout %r' % layout)
        image = pathlib.Path(image).resolve()
        if not image.is_file():
            raise RigError('no image at %s' % image)
        image_id = image_id or domains.stable_uuid('image', str(image))
        instance_id = str(uuid_mod.uuid4())
        inst_dir = self._dir('instances', instance_id)
        volume_id = ''
        if layout == RBD_EPHEMERAL:
            pool = pool or 'vms'
            rbd_name = '%s_disk' % instance_id
        else:
            pool = pool or 'volumes'
            volume_id = str(uuid_mod.uuid4())
            rbd_name = 'volume-%s' % volume_id
        hosts = tuple(tuple(h) for h in (hosts or cluster.mon_hosts))
        secret_uuid = self.ceph_secret(cluster, user)
        source = self._import(cluster, image, pool, rbd_name)
        boot = RigDisk('vda', 'network', 'raw', source, (), host=hosts[0][0],
                       port=hosts[0][1], protocol='rbd', hosts=hosts,
                       auth_username=user, secret_uuid=secret_uuid)
        xml_disk = domains.Disk(
            'vda', 'network', source, 'raw', serial=volume_id,
            cache='writeback', protocol='rbd', hosts=hosts,
            auth_username=user, secret_uuid=secret_uuid)
        return self._define(name, layout, image_id, [boot], [xml_disk],
                            inst_dir, instance_id, vcpus=vcpus,
                            flavor=flavor,
                            from_volume=layout == RBD_VOLUME,
                            project_id=project_id, user_id=user_id,
                            memory_mib=memory_mib)

    def _import(self, cluster, image, pool, rbd_name):
        """``rbd import`` a raw copy of ``image`` as ``pool/rbd_name``."""
        raw = image
        if disks_mod.image_info(image)['format'] != 'raw':
            raw = self._dir('volumes') / (rbd_name + '.raw')
            disks_mod.to_raw(image, raw)
        self._state['rbd'].append({'cluster': str(cluster.dir),
                                   'pool': pool, 'image': rbd_name})
        self._save()
        try:
            return cluster.import_image(raw, pool, rbd_name)
        except ceph_mod.CephError as exc:
            raise RigError('rbd import %s/%s: %s' % (pool, rbd_name, exc))
        finally:
            if raw != image:
                os.unlink(raw)

    def _teardown_rbd(self):
        problems = []
        clusters = {}
        for entry in self._state['rbd']:
            cluster = clusters.get(entry['cluster'])
            if cluster is None:
                cluster = clusters[entry['cluster']] = ceph_mod.Cluster.load(
                    entry['cluster'])
            if cluster is None or not cluster.running():
                continue        # the images go with the cluster
            try:
                if entry['pool'] not in cluster.pools():
                    continue
                if entry['image'] in cluster.images(entry['pool']):
                    cluster.remove_image(entry['pool'], entry['image'],
                                         force=True)
            except ceph_mod.CephError as exc:
                problems.append(str(exc))
        self._state['rbd'] = []
        for known in self._state['secrets']:
            try:
                self.conn.secretLookupByUUIDString(known['uuid']).undefine()
            except _libvirt().libvirtError as exc:
                if exc.get_error_code() != _libvirt().VIR_ERR_NO_SECRET:
                    problems.append('secret %s: %s' % (known['uuid'], exc))
        self._state['secrets'] = []
        return problems

    def _by_uuid(self):
        # Listing, not lookupByUUID: a miss would print a libvirt error.
        return {d.UUIDString(): d for d in self.conn.listAllDomains()}

    def start_all(self, timeout=60.0):
        """Start every defined domain not running; returns the seconds."""
        libvirt = _libvirt()
        began = time.monotonic()
        existing = self._by_uuid()
        todo = [existing[d.uuid] for d in self.domains
                if d.uuid in existing and not existing[d.uuid].isActive()]
        errors = [
            '%s: %s' % (dom.name(), exc) for dom, exc in
            parallel(lambda dom: dom.create(), todo, libvirt.libvirtError)
            if exc]
        if errors:
            raise RigError('start failed: %s' % '; '.join(errors))
        deadline = time.monotonic() + timeout
        while set(self.states().values()) != {'running'}:
            if time.monotonic() > deadline:
                raise RigError('domains not running: %s' % self.states())
            time.sleep(0.1)
        return time.monotonic() - began

    def states(self):
        """{uuid: 'running'|'paused'|'shutoff'|...|'missing'}."""
        libvirt = _libvirt()
        names = {libvirt.VIR_DOMAIN_RUNNING: 'running',
                 libvirt.VIR_DOMAIN_BLOCKED: 'running',
                 libvirt.VIR_DOMAIN_PAUSED: 'paused',
                 libvirt.VIR_DOMAIN_SHUTOFF: 'shutoff',
                 libvirt.VIR_DOMAIN_CRASHED: 'crashed'}
        existing = self._by_uuid()
        return {d.uuid: (names.get(existing[d.uuid].state()[0], 'other')
                         if d.uuid in existing else 'missing')
                for d in self.domains}

    def teardown(self):
        """Undo everything the state lists; returns the problems as text.

        Domains first (their qemu holds the loops and nbd connections),
        then nbd servers, loop devices, and the directories the rig made.
        """
        problems = []
        if self._state['domains']:
            uuids = [d['uuid'] for d in self._state['domains']]
            for last in (False, True):
                try:
                    problems += remove_domains(self.conn, uuids)
                    break
                except _libvirt().libvirtError as exc:
                    # libvirtd restarted meanwhile (fault tests of
                    # another session do): reconnect once.
                    self.reconnect()
                    if last:
                        problems.append('libvirt: %s' % exc)
        self._state['domains'] = []
        if self._state['rbd'] or self._state['secrets']:
            problems += self._teardown_rbd()
        for record in self._state['nbd']:
            if not disks_mod.stop_nbd(record):
                problems.append('qemu-nbd %d does not stop' % record['pid'])
        self._state['nbd'] = []
        for loop in self._state['loops']:
            try:
                disks_mod.detach_loop(loop['device'], loop['path'])
            except disks_mod.DiskError as exc:
                problems.append(str(exc))
        self._state['loops'] = []
        for name in _OWNED_DIRS:
            shutil.rmtree(self.workdir / name, ignore_errors=True)
        self._state['bases'] = {}
        try:
            os.unlink(self.workdir / STATE_NAME)
        except FileNotFoundError:
            pass
        if self._conn is not None:
            try:
                self._conn.close()
            except _libvirt().libvirtError:
                pass
            self._conn = None
        return problems


def parallel(func, items, errors=Exception, workers=4):
    """[(item, exception or None)] of ``func`` over ``items`` in threads.

    Four workers: libvirtd serves at most five calls per client at once.
    A domain's destroy waits ~2 s here for pid 1 to reap its qemu, so
    doing them one by one dominates a teardown.
    """
    def call(item):
        try:
            func(item)
            return item, None
        except errors as exc:
            return item, exc
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(call, items))


def remove_domains(conn, uuids, timeout=60.0):
    """Destroy and undefine the domains of ``uuids`` that exist."""
    libvirt = _libvirt()
    wanted = set(uuids)
    doms = [d for d in conn.listAllDomains() if d.UUIDString() in wanted]

    def remove(dom):
        if dom.isActive():
            dom.destroy()
        if dom.isPersistent():
            dom.undefine()
    problems = ['%s: %s' % (dom.UUIDString(), exc) for dom, exc in
                parallel(remove, doms, libvirt.libvirtError) if exc]
    deadline = time.monotonic() + timeout
    left = wanted & {d.UUIDString() for d in conn.listAllDomains()}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left &= {d.UUIDString() for d in conn.listAllDomains()}
    problems += ['%s: still defined' % uuid for uuid in sorted(left)]
    return problems


def rig_domains(conn, workdir=None):
    """UUIDs of domains carrying the rig's tag (of ``workdir`` if given).

    Finds what a crashed run left behind when its state file is gone.
    """
    libvirt = _libvirt()
    found = []
    for dom in conn.listAllDomains():
        try:
            tag = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                               domains.RIG_NS)
        except libvirt.libvirtError:
            continue
        owner = etree.fromstring(tag).get('workdir')
        if workdir is None or owner == str(workdir):
            found.append(dom.UUIDString())
    return found


def disk_checksums(rig):
    """{path: sha256} of every file and block device behind the domains.

    For the "the inspector never writes a byte" invariant.  Cdrom drives
    are empty and count for nothing.
    """
    paths = []
    for domain in rig.domains:
        paths.extend(p for p in domain.disk_paths if p not in paths)
    return {path: disks_mod.sha256(path) for path in paths}


def rbd_usage(rig, cluster, sources=None):
    """{pool/image: {'sha256', 'watchers', 'locks', 'snapshots'}} of every
    rbd disk behind the domains (or only of ``sources``): the "the
    inspector never writes, and leaves nothing behind" invariant for
    Ceph."""
    found = {}
    for domain in rig.domains:
        for disk in domain.disks:
            if disk.protocol == 'rbd' and disk.source not in found and (
                    sources is None or disk.source in sources):
                facts = cluster.usage(disk.pool, disk.image)
                facts['sha256'] = cluster.export_sha256(disk.pool,
                                                        disk.image)
                found[disk.source] = facts
    return found
