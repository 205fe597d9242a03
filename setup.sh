#!/usr/bin/env bash
# Installs what Ember's tests need on a machine that has rustup and a stable toolchain: the
# firmware's targets and QEMU (firmware/setup.sh), and a browser for the page's test (Debian's
# chromium and chromium-driver, as root or through sudo). Safe to run again: what is installed
# is kept.
set -euo pipefail
cd "$(dirname "$0")"
bash firmware/setup.sh
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo)
  install() { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }
  # A fresh machine may have empty package lists: refresh them once and try again.
  install || { "${as_root[@]}" apt-get update -qq >/dev/null && install; } || {
    echo "setup.sh: cannot install Debian's chromium and chromium-driver; the browser test needs /usr/bin/chromium and /usr/bin/chromedriver" >&2
    exit 1
  }
fi
chromium --version
