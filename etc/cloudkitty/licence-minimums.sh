#!/bin/sh
# Install etc/cloudkitty/licence-minimums.py as a CloudKitty pyscripts
# rating script that runs before hashmap (pyscripts gets a higher module
# priority), so that hashmap prices at least the per-VM core minimums.
# Run once, after etc/cloudkitty/hashmap-example.sh, with CloudKitty admin
# credentials loaded (OS_CLOUD or OS_* variables; with the v1 storage
# also OS_RATING_API_VERSION=1).  Like hashmap rules, the script applies
# to periods that start after it was created.
#
# Environment: OPENSTACK (client command, default openstack), SCRIPT
# (default: licence-minimums.py beside this file), NAME (the pyscript's
# name, default licence_minimums).
set -eu

OPENSTACK=${OPENSTACK:-openstack}
SCRIPT=${SCRIPT:-$(dirname "$0")/licence-minimums.py}
NAME=${NAME:-licence_minimums}

if $OPENSTACK rating pyscript list -f value -c Name | grep -qx "$NAME"; then
    echo "pyscript $NAME exists already; use" \
         "\"$OPENSTACK rating pyscript update\" to change it" >&2
    exit 1
fi

$OPENSTACK rating pyscript create "$NAME" "$SCRIPT" >/dev/null
$OPENSTACK rating module enable pyscripts >/dev/null
# Modules run from the highest priority down; hashmap's is 1 by default.
hashmap_priority=$($OPENSTACK rating module get hashmap -f value -c Priority)
$OPENSTACK rating module set priority pyscripts \
    "$((hashmap_priority + 1))" >/dev/null
echo "pyscript $NAME installed; pyscripts runs before hashmap" >&2
