#!/bin/sh
# Add the guest OS attributes to Gnocchi's "instance" resource type, so
# that Ceilometer's Gnocchi publisher can store what
# etc/gnocchi/gnocchi_resources.yaml maps.  Run once, with admin
# credentials loaded (OS_CLOUD or OS_* variables); running it again adds
# only what is missing.
#
# Every attribute is optional (required=false): existing instances need no
# value and get one at their next compute.instance.os.metadata sample.
# Strings are at most 255 characters, which is what the pollster emits.
#
# Environment: RESOURCE_TYPE (default instance), OPENSTACK (the client
# command, default openstack; python-gnocchiclient provides "metric").
set -eu

RESOURCE_TYPE=${RESOURCE_TYPE:-instance}
OPENSTACK=${OPENSTACK:-openstack}

# name:type:required:options, as "openstack metric resource-type update -a"
# takes them.  Never os_type: Ceilometer's own compute metadata has it.
ATTRIBUTES="
os_family:string:false:max_length=255
os_distro:string:false:max_length=255
os_info:string:false:max_length=255
os_version_major:number:false:min=0
os_version_minor:number:false:min=0
os_build:string:false:max_length=255
os_product_name:string:false:max_length=255
os_product_variant:string:false:max_length=255
os_edition:string:false:max_length=255
os_arch:string:false:max_length=255
sql_server_edition:string:false:max_length=255
os_inspection_status:string:false:max_length=255
os_inspection_reason:string:false:max_length=255
os_inspection_method:string:false:max_length=255
"

# "show -f json" lists each attribute as a key "attributes/<name>".
existing=$($OPENSTACK metric resource-type show "$RESOURCE_TYPE" -f json)

set --
for attribute in $ATTRIBUTES; do
    name=${attribute%%:*}
    if printf '%s\n' "$existing" | grep -q "\"attributes/$name\""; then
        echo "$RESOURCE_TYPE already has attribute $name" >&2
    else
        set -- "$@" --attribute "$attribute"
    fi
done

if [ $# -eq 0 ]; then
    echo "$RESOURCE_TYPE has every guest OS attribute already" >&2
    exit 0
fi
$OPENSTACK metric resource-type update "$RESOURCE_TYPE" "$@"
