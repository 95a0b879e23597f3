"""Domain XML as nova writes it and libvirt returns it for a running
instance: disks of every kind nova attaches (after nova's
LibvirtConfigGuestDisk, with what libvirt adds to the live XML: index
attributes, aliases, addresses, backingStore chains).  For the tests of
instances/ (drives, identity)."""

UUID = '3f2c9a1e-8d4b-4c6e-9f0a-1b2c3d4e5f60'
SECRET = '5b7e6a2c-0f1d-4e3b-8a9c-7d6e5f4a3b21'
INSTANCES = '/var/lib/nova/instances/' + UUID


def domain(*disks, os_boot=('hd',)):
    """A live domain XML as libvirt returns it for a nova instance."""
    boots = ''.join("<boot dev='%s'/>" % dev for dev in os_boot)
    return """<domain type='kvm' id='7'>
  <name>instance-0000002a</name>
  <uuid>%(uuid)s</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>vm1</nova:name>
      <nova:flavor name="m1.small" id="2"><nova:vcpus>1</nova:vcpus>
      </nova:flavor>
      <nova:root type="image" uuid="a1b2c3d4-0000-4000-8000-000000000001"/>
    </nova:instance>
  </metadata>
  <memory unit='KiB'>2097152</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    %(boots)s
    <smbios mode='sysinfo'/>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    %(disks)s
    <controller type='usb' index='0' model='none'/>
    <interface type='bridge'>
      <mac address='fa:16:3e:11:22:33'/>
      <source bridge='br-int'/>
      <target dev='tap1234'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>
""" % {'uuid': UUID, 'boots': boots, 'disks': '\n'.join(disks)}


def file_disk(name, target, fmt='qcow2', bus='virtio', extra='',
              backing=''):
    return """<disk type='file' device='disk'>
      <driver name='qemu' type='%s' cache='none'/>
      <source file='%s/%s' index='1'/>
      %s
      <target dev='%s' bus='%s'/>
      %s
      <alias name='virtio-disk0'/>
    </disk>""" % (fmt, INSTANCES, name, backing, target, bus, extra)


BASE_BACKING = """<backingStore type='file' index='2'>
        <format type='raw'/>
        <source file='/var/lib/nova/instances/_base/9e1b2f3a4c'/>
        <backingStore/>
      </backingStore>"""

ROOT_OVERLAY = file_disk('disk', 'vda', backing=BASE_BACKING)

STANDALONE_QCOW2 = file_disk('disk', 'vda')

RAW_FILE = """<disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source file='%s/disk' index='1'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
    </disk>""" % INSTANCES

NO_DRIVER_TYPE = """<disk type='file' device='disk'>
      <driver name='qemu' cache='none'/>
      <source file='%s/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>""" % INSTANCES

NO_DRIVER = """<disk type='file' device='disk'>
      <source file='%s/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>""" % INSTANCES

LVM = """<disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source dev='/dev/nova-vg/%s_disk' index='1'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
    </disk>""" % UUID

ISCSI_PATH = ('/dev/disk/by-path/ip-192.0.2.10:3260-iscsi-'
              'iqn.2010-10.org.openstack:volume-0c1d2e3f-lun-1')
ISCSI_BLOCK = """<disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source dev='%s' index='2'/>
      <backingStore/>
      <target dev='vdb' bus='virtio'/>
      <serial>0c1d2e3f-0000-4000-8000-00000000000b</serial>
    </disk>""" % ISCSI_PATH

RBD = """<disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='writeback' discard='unmap'/>
      <auth username='nova'>
        <secret type='ceph' uuid='%s'/>
      </auth>
      <source protocol='rbd' name='vms/%s_disk' index='1'>
        <host name='192.0.2.1' port='6789'/>
        <host name='192.0.2.2'/>
        <host name='2001:db8::3' port='3300'/>
      </source>
      <target dev='vda' bus='virtio'/>
    </disk>""" % (SECRET, UUID)

RBD_NO_HOSTS = """<disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='volumes/volume-1234'/>
      <target dev='vda' bus='virtio'/>
    </disk>"""

ISCSI_NETWORK = """<disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='iscsi'
              name='iqn.2013-07.com.example:iscsi-nopool/1'>
        <host name='iscsi.example.com'/>
      </source>
      <auth username='myuser'>
        <secret type='iscsi' usage='libvirtiscsi'/>
      </auth>
      <target dev='vdb' bus='virtio'/>
    </disk>"""

NBD_TCP = """<disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='nbd' name='export1'>
        <host name='nbd.example.org' port='6000'/>
      </source>
      <target dev='vdc' bus='virtio'/>
    </disk>"""

NBD_TCP_DEFAULTS = """<disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='nbd'>
        <host name='nbd.example.org'/>
      </source>
      <target dev='vdc' bus='virtio'/>
    </disk>"""

NBD_UNIX = """<disk type='network' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source protocol='nbd' name='bar'>
        <host transport='unix' socket='/var/run/nbdsock'/>
      </source>
      <target dev='vdd' bus='virtio'/>
    </disk>"""

CDROM_ISO = """<disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='%s/disk.config' index='3'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>""" % INSTANCES

EMPTY_CDROM = """<disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>"""

FLOPPY = """<disk type='file' device='floppy'>
      <source file='/tmp/floppy.img'/>
      <target dev='fda' bus='fdc'/>
    </disk>"""

EMPTY_DISK = """<disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <target dev='vdz' bus='virtio'/>
    </disk>"""

# Older nova put a vfat config drive on the last ide slot.
CONFIG_DRIVE_DISK_HDD = """<disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source file='%s/disk.config'/>
      <target dev='hdd' bus='ide'/>
    </disk>""" % INSTANCES

# Current nova: a vfat config drive takes the next free virtio name.
CONFIG_DRIVE_DISK_VDB = """<disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source file='%s/disk.config'/>
      <target dev='vdb' bus='virtio'/>
    </disk>""" % INSTANCES

VOLUME_TYPE = """<disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='default' volume='data.img'/>
      <target dev='vde' bus='virtio'/>
    </disk>"""

HTTP_DISK = """<disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='https' name='/images/x.img'>
        <host name='images.example.com' port='443'/>
      </source>
      <target dev='vdf' bus='virtio'/>
    </disk>"""

LUN = """<disk type='block' device='lun' sgio='unfiltered'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/sdx'/>
      <target dev='sdb' bus='scsi'/>
    </disk>"""

LUKS_VOLUME = """<disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/disk/by-id/dm-uuid-mpath-3600a0b8'>
        <encryption format='luks'>
          <secret type='passphrase' uuid='%s'/>
        </encryption>
      </source>
      <target dev='vdb' bus='virtio'/>
    </disk>""" % SECRET


VDB = file_disk('disk.local', 'vdb', fmt='qcow2')
