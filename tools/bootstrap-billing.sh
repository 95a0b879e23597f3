#!/bin/bash
# Install the billing services the functional billing test talks to: a
# virtualenv of their own (they are not part of the compute agent) with
# Gnocchi, CloudKitty and their clients at versions that install
# together on Python 3.11.  Idempotent; quick when everything is
# present.  Called by tools/bootstrap.sh after the Debian packages.
#
# Usage: tools/bootstrap-billing.sh          (venv at ./.venv-billing)
#        BILLING_VENV=/path tools/bootstrap-billing.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
VENV=${BILLING_VENV:-$HERE/.venv-billing}
PYTHON=/usr/bin/python3

# Debian packages, installed by tools/bootstrap.sh: PostgreSQL, and
# libpq-dev and gcc (gnocchi's psycopg2 builds from source).  gnocchi
# 4.7.1 has no "file" extra: its file storage driver needs nothing more.
DEBS=(postgresql libpq-dev gcc python3-venv python3-dev)
PINS=(
  "gnocchi[postgresql]==4.7.1"
  "cloudkitty==25.0.0"
  "gnocchiclient==7.2.0"
  "python-cloudkittyclient==6.2.0"
  "python-openstackclient==10.5.0"
  "psycopg2-binary==2.9.13"
)

log() { echo "bootstrap-billing: $*" >&2; }

for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
    || { log "Debian package $p is missing: run tools/bootstrap.sh"; exit 1; }
done

stamp="$VENV/.bootstrap-stamp"
want=$(sha256sum "$0" | cut -c1-16)
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] \
   && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

pipq() { "$VENV/bin/pip" "$@" 2>&1 | { grep -v '^WARNING: Location' || true; } >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV ($PYTHON)"
  $PYTHON -m venv "$VENV"
fi
log "installing ${PINS[*]}"
pipq install -q --upgrade pip
pipq install -q "${PINS[@]}"
"$VENV/bin/pip" check >&2
"$VENV/bin/python" -c 'import gnocchi, cloudkitty, gnocchiclient' >&2
echo "$want" > "$stamp"
log "ready: $VENV"
