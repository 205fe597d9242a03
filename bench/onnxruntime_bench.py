"""Times onnxruntime on an ONNX digit model and compares with tract's figures read from stdin
(the JSON of `runtime bench --json`). Run through bench/tract_vs_onnxruntime.sh."""
import gzip
import json
import sys
import time

import numpy as np
import onnxruntime as ort

model = sys.argv[1]
tract = json.load(sys.stdin)
raw = gzip.open("data/mnist/t10k-images-idx3-ubyte.gz").read()
images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0

opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
opts.inter_op_num_threads = 1
session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name

lat = []
for i in range(5200):
    x = images[i % 1000: i % 1000 + 1]
    t = time.perf_counter()
    session.run(None, {name: x})
    if i >= 200:
        lat.append((time.perf_counter() - t) * 1e6)
lat.sort()
p50 = lat[len(lat) // 2]
batch = images[:64]
for _ in range(5):
    session.run(None, {name: batch})
calls, t = 0, time.perf_counter()
while calls < 20 or time.perf_counter() - t < 1.0:
    session.run(None, {name: batch})
    calls += 1
ort64 = calls * 64 / (time.perf_counter() - t)
tract64 = next(x["images_per_sec"] for x in tract["throughput"] if x["batch"] == 64)
print(f"onnxruntime {ort.__version__}: p50 {p50:.1f} us, batch 64 {ort64:.0f} images/s")
print(f"tract:              p50 {tract['p50_us']:.1f} us, batch 64 {tract64:.0f} images/s")
print(f"tract / onnxruntime latency: {tract['p50_us'] / p50:.2f}x; throughput ratio {tract64 / ort64:.2f}x")
if tract.get("int8"):
    q = tract["int8"]["p50_us"]
    print(f"host int8 (firmware kernels): p50 {q:.1f} us, {q / tract['p50_us']:.2f}x tract's, {q / p50:.2f}x onnxruntime's float")
