#!/usr/bin/env bash
# Runs a firmware ELF in QEMU with semihosting and a deterministic instruction clock.
# Usage: qemu-run.sh MACHINE firmware.elf   (MACHINE: lm3s6965evb, netduinoplus2, microbit,
# mps2-an505 or mps2-an500)
# EMBER_SERIAL=stdio puts the board's first serial port on stdin/stdout (the inference
# service); by default it is not connected and stdout carries semihosting only.
# The model file EMBER_MODEL_FILE (default: the committed models/mnist_cnn.int8) is loaded at
# the start of the board's MODEL region (boards/*.x), where the firmware reads it.
set -euo pipefail
machine=$1
elf=$2
here=$(cd "$(dirname "$0")/.." && pwd)
local_qemu="$here/target/qemu/usr/bin/qemu-system-arm"
if [ -x "$local_qemu" ]; then
  export LD_LIBRARY_PATH="$here/target/qemu/usr/lib/x86_64-linux-gnu:$here/target/qemu/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  qemu="$local_qemu"
else
  qemu=qemu-system-arm
fi
case "$machine" in
  netduinoplus2) cpu=cortex-m4 model_at=0x080C0000 ;;
  microbit) cpu=cortex-m0 model_at=0x00028000 ;;
  mps2-an505) cpu=cortex-m33 model_at=0x10300000 ;;
  mps2-an500) cpu=cortex-m7 model_at=0x00300000 ;;
  *) cpu=cortex-m3 model_at=0x00028000 ;;
esac
model=${EMBER_MODEL_FILE:-$here/models/mnist_cnn.int8}
exec "$qemu" -machine "$machine" -cpu "$cpu" \
  -nographic -monitor none -serial "${EMBER_SERIAL:-none}" -icount shift=0 \
  -semihosting-config enable=on,target=native -kernel "$elf" \
  -device "loader,file=$model,addr=$model_at,force-raw=on"
