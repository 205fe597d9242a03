#!/usr/bin/env bash
# Installs everything Ember's firmware commands need on a machine that has rustup and a
# stable toolchain: the thumb targets and the components that rust-toolchain.toml names (rustup
# installs them only when it installs a toolchain whole, not into one already there) and QEMU
# (install-qemu.sh). Safe to run again: what is installed is kept, so it then takes a second.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# The lists are read from rust-toolchain.toml, so the targets are named in one place.
targets=$(sed -n 's/^targets *= *\[\(.*\)\]/\1/p' rust-toolchain.toml | grep -o '"[^"]*"' | tr -d '"')
components=$(sed -n 's/^components *= *\[\(.*\)\]/\1/p' rust-toolchain.toml | grep -o '"[^"]*"' | tr -d '"')
installed=$(rustup target list --installed)
missing=$(for t in $targets; do grep -qx "$t" <<<"$installed" || echo "$t"; done)
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  rustup target add $missing
fi
installed=$(rustup component list --installed)
missing=$(for c in $components; do grep -q "^$c" <<<"$installed" || echo "$c"; done)
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  rustup component add $missing
fi
bash firmware/install-qemu.sh
