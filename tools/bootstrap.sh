#!/bin/bash
# Install everything ceilometer-os-pollster needs on a Debian 12 host,
# idempotently: Debian packages (libguestfs and its appliance kernel,
# qemu, libvirt, image-building tools, and Ceph's mon, OSD and client
# tools for the test rig's one-node cluster), then a venv on
# /usr/bin/python3 with system site-packages (python3-guestfs/
# python3-libvirt are only built for that interpreter), Ceilometer from
# PyPI and this package in editable mode with its test, lint and docs
# tools (Sphinx, reno); then
# tools/bootstrap-billing.sh (the billing services' own venv).  Quick
# when everything is present.
#
# Usage: tools/bootstrap.sh            (venv at ./.venv)
#        VENV=/path tools/bootstrap.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$HERE/.venv}
PYTHON=/usr/bin/python3
CEILOMETER_VERSION=${CEILOMETER_VERSION:-27.0.0}

DEBS=(
  python3 python3-venv python3-dev python3-guestfs python3-libvirt
  libguestfs-tools linux-image-amd64 supermin
  qemu-system-x86 qemu-utils
  libvirt-daemon-system libvirt-clients
  ntfs-3g libwin-hivex-perl cryptsetup-bin cryptsetup
  e2fsprogs xfsprogs dosfstools btrfs-progs lvm2 util-linux fdisk mtools file
  qemu-block-extra sudo libfuse2
  ceph-mon ceph-osd ceph-common ceph-base
  # the billing services (tools/bootstrap-billing.sh); gnocchi's
  # psycopg2 builds from source
  postgresql libpq-dev gcc
  # Debian's oslo.cache depends on it: without it dogpile's plugin scan
  # logs an ERROR for oslo_cache.memcache_pool at every agent start.
  python3-memcache
)

log() { echo "bootstrap: $*" >&2; }

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
    || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
    --no-install-recommends "${missing[@]}" >&2
fi

# supermin builds the appliance from the host kernel, which Ubuntu (not
# Debian) installs 0600; non-root users then cannot launch an appliance.
if [ "$(id -u)" -eq 0 ]; then
  chmod 0644 /boot/vmlinuz-* 2>/dev/null || true
fi

# The billing services (PostgreSQL, Gnocchi, CloudKitty) the billing
# chain test talks to: their own virtualenv, not the agent's.
"$HERE/tools/bootstrap-billing.sh"

# pip: keep real errors, drop the per-package index location notices.
pipq() { "$VENV/bin/pip" "$@" 2>&1 | { grep -v '^WARNING: Location' || true; } >&2; }

stamp="$VENV/.bootstrap-stamp"
want=$(cat "$HERE/pyproject.toml" "$0" | sha256sum | cut -c1-16)
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] \
   && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV (system site-packages, $PYTHON)"
  $PYTHON -m venv --system-site-packages "$VENV"
fi
log "installing ceilometer $CEILOMETER_VERSION and this package"
pipq install -q --upgrade pip
pipq install -q "ceilometer==$CEILOMETER_VERSION"
pipq install -q -e "$HERE[test,lint,docs]" tox
"$VENV/bin/python" -c 'import guestfs, libvirt, ceilometer' >&2
echo "$want" > "$stamp"
log "ready: $VENV"
