#!/bin/sh
# Example CloudKitty hashmap rules for the guest OS meter, for the three
# rating types of etc/cloudkitty/metrics.yml.  The prices are
# placeholders: set your own below.  Run once with CloudKitty admin
# credentials loaded (OS_CLOUD or OS_* variables); it refuses to run if
# the hashmap services exist already.  With CloudKitty's v1 storage the
# v2 API is off: set OS_RATING_API_VERSION=1.
#
# Rules apply to the periods that START after they were created (the
# client cannot create them in the past): the period running now is
# rated without them.
#
# How hashmap computes a price (CloudKitty's hashmap module), per rated
# item and collect period ([collect] period, default one hour):
#   - mappings match a field's value exactly (case matters);
#   - within one group, the most expensive matching "flat" mapping is
#     kept and multiplied by the product of the matching "rate" mappings
#     (a group with rate mappings only is worth 0) and by qty;
#   - the prices of all groups are added.
# qty is the sample volume, i.e. vCPUs, for os_license_vcpu and
# sql_license_vcpu, and 1 for os_license_vm (mutate: NUMBOOL).  So a flat
# mapping on a *_vcpu service is a price per vCPU, and a per-VM price
# needs the os_license_vm rating type: hashmap cannot charge a flat amount
# regardless of qty.  Microsoft's per-VM core minimums ("at least 8
# cores") are applied before hashmap by the pyscripts rating module:
# etc/cloudkitty/licence-minimums.sh.
#
# Records without a verified OS (see doc/source/billing.rst, "What each
# status means for billing") are priced per VM by os_inspection_status, in the
# last group below, so that no disk a tenant controls makes an instance
# free: "encrypted" (the tenant hides its OS) at ENCRYPTED_PER_VM,
# "failed" (the inspection could not finish, e.g. killed at the
# deadline) and "unknown" (no OS recognised) at UNVERIFIED_PER_VM, the
# "unverified OS" rate.  Set either to 0 to drop that charge.  "pending"
# (not inspected yet, a new VM's first minutes) is not priced: the
# inspection is the operator's to do, and it ends within the deadline
# as ok, unknown, encrypted or failed.
#
# Environment: OPENSTACK (client command, default openstack; the
# "rating" commands come from python-cloudkittyclient).
set -eu

OPENSTACK=${OPENSTACK:-openstack}

# Per vCPU and period.
WINDOWS_STANDARD_PER_VCPU=${WINDOWS_STANDARD_PER_VCPU:-0.0120}
WINDOWS_DATACENTER_PER_VCPU=${WINDOWS_DATACENTER_PER_VCPU:-0.0650}
SQL_ENTERPRISE_PER_VCPU=${SQL_ENTERPRISE_PER_VCPU:-0.2700}
SQL_STANDARD_PER_VCPU=${SQL_STANDARD_PER_VCPU:-0.0700}
SQL_WEB_PER_VCPU=${SQL_WEB_PER_VCPU:-0.0050}
# Per instance and period.
RHEL_PER_VM=${RHEL_PER_VM:-0.0600}
SLES_PER_VM=${SLES_PER_VM:-0.0500}
SLES_FOR_SAP_PER_VM=${SLES_FOR_SAP_PER_VM:-0.0900}
SLE_HPC_PER_VM=${SLE_HPC_PER_VM:-0.0700}
SLE_MICRO_PER_VM=${SLE_MICRO_PER_VM:-0.0300}
ENCRYPTED_PER_VM=${ENCRYPTED_PER_VM:-0.0600}
UNVERIFIED_PER_VM=${UNVERIFIED_PER_VM:-0.0600}

hashmap() {
    $OPENSTACK rating hashmap "$@"
}

# Create an object and print its ID: new_id COLUMN ARGS...
new_id() {
    column=$1
    shift
    hashmap "$@" -f value -c "$column"
}

# flat FIELD_ID GROUP_ID VALUE COST
flat() {
    hashmap mapping create --field-id "$1" --group-id "$2" \
        --value "$3" --type flat "$4" >/dev/null
}

if hashmap service list -f value -c Name \
        | grep -qx -e os_license_vcpu -e sql_license_vcpu -e os_license_vm
then
    echo "hashmap services os_license_vcpu/sql_license_vcpu/os_license_vm" \
         "exist already;" \
         "delete them to run this again" >&2
    exit 1
fi

$OPENSTACK rating module enable hashmap >/dev/null

# -- per vCPU: Windows Server -----------------------------------------
vcpu=$(new_id "Service ID" service create os_license_vcpu)

# Windows Server by edition.  Evaluation media are free; client editions
# (Professional, Enterprise, ...) are not priced here.
windows=$(new_id "Group ID" group create windows_server_per_vcpu)
os_edition=$(new_id "Field ID" field create "$vcpu" os_edition)
flat "$os_edition" "$windows" "Standard" "$WINDOWS_STANDARD_PER_VCPU"
flat "$os_edition" "$windows" "Datacenter" "$WINDOWS_DATACENTER_PER_VCPU"
flat "$os_edition" "$windows" "Datacenter: Azure Edition" \
    "$WINDOWS_DATACENTER_PER_VCPU"
flat "$os_edition" "$windows" "Standard Evaluation" 0
flat "$os_edition" "$windows" "Datacenter Evaluation" 0

# -- per vCPU: SQL Server ---------------------------------------------
# By its most expensive edition installed in the guest; a service of its
# own, so it adds to the Windows price and has its own minimum.
sql_vcpu=$(new_id "Service ID" service create sql_license_vcpu)
sql=$(new_id "Group ID" group create sql_server_per_vcpu)
sql_edition=$(new_id "Field ID" field create "$sql_vcpu" sql_server_edition)
flat "$sql_edition" "$sql" "Enterprise" "$SQL_ENTERPRISE_PER_VCPU"
flat "$sql_edition" "$sql" "Datacenter" "$SQL_ENTERPRISE_PER_VCPU"
flat "$sql_edition" "$sql" "Standard" "$SQL_STANDARD_PER_VCPU"
flat "$sql_edition" "$sql" "Web" "$SQL_WEB_PER_VCPU"
flat "$sql_edition" "$sql" "Developer" 0
flat "$sql_edition" "$sql" "Express" 0
flat "$sql_edition" "$sql" "Evaluation" 0

# -- per VM: RHEL and SLES subscriptions ------------------------------
vm=$(new_id "Service ID" service create os_license_vm)

# One group: a SLES for SAP (or HPC) guest matches both os_distro=sles
# and os_edition=SAP (HPC), and only the more expensive flat of a group
# applies.
linux=$(new_id "Group ID" group create linux_subscription_per_vm)
os_distro=$(new_id "Field ID" field create "$vm" os_distro)
flat "$os_distro" "$linux" "rhel" "$RHEL_PER_VM"
flat "$os_distro" "$linux" "sles" "$SLES_PER_VM"
flat "$os_distro" "$linux" "slem" "$SLE_MICRO_PER_VM"
vm_edition=$(new_id "Field ID" field create "$vm" os_edition)
flat "$vm_edition" "$linux" "SAP" "$SLES_FOR_SAP_PER_VM"
flat "$vm_edition" "$linux" "HPC" "$SLE_HPC_PER_VM"

# Guests whose OS was not verified, by os_inspection_status: a group of
# its own, so it adds to nothing else (such a record has no OS fields).
unverified=$(new_id "Group ID" group create unverified_os_per_vm)
status=$(new_id "Field ID" field create "$vm" os_inspection_status)
flat "$status" "$unverified" "encrypted" "$ENCRYPTED_PER_VM"
flat "$status" "$unverified" "failed" "$UNVERIFIED_PER_VM"
flat "$status" "$unverified" "unknown" "$UNVERIFIED_PER_VM"

echo "hashmap rules created: services os_license_vcpu, sql_license_vcpu," \
     "os_license_vm" >&2
