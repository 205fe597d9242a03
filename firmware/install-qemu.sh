#!/usr/bin/env bash
# Puts QEMU's ARM system emulator (Debian bookworm's 7.2) into target/qemu without installing
# it system-wide (an `apt-get install` would remove the image's backported qemu-utils).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/target/qemu"
[ -x "$dest/usr/bin/qemu-system-arm" ] && exit 0
debs=$(mktemp -d)
packages="qemu-system-arm libfdt1 libcapstone4 libpmem1 librdmacm1 libibverbs1 libslirp0 libvdeplug2
  libndctl6 libdaxctl1 libnl-3-200 libnl-route-3-200"
# shellcheck disable=SC2086
if ! (cd "$debs" && apt-get download $packages >/dev/null 2>&1); then
  # A fresh machine may have empty package lists: refresh them once (as root) and try again.
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq >/dev/null
  fi
  # shellcheck disable=SC2086
  (cd "$debs" && apt-get download $packages >/dev/null) || {
    echo "install-qemu.sh: cannot download Debian's qemu-system-arm; install QEMU 7.2+ (qemu-system-arm) and put it on PATH" >&2
    exit 1
  }
fi
mkdir -p "$dest"
for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
rm -rf "$debs"
LD_LIBRARY_PATH="$dest/usr/lib/x86_64-linux-gnu:$dest/lib/x86_64-linux-gnu" "$dest/usr/bin/qemu-system-arm" --version | head -1
