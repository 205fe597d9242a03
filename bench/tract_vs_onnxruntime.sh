#!/usr/bin/env bash
# tract (through `runtime bench`) and onnxruntime (Python, from PyPI) on the same ONNX file,
# in one run: single-image p50 latency and batch-64 throughput, one thread each.
# Usage: bash bench/tract_vs_onnxruntime.sh [models/mnist_cnn.onnx]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/mnist_cnn.onnx}
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet onnxruntime numpy
fi
cargo build --release -q -p ember-runtime
tract=$(./target/release/runtime bench --model "$model" --batch 64 --runs 5000 --json)
echo "$tract" | "$venv/bin/python" bench/onnxruntime_bench.py "$model"
