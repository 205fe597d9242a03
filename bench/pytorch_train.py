"""Trains Ember's CNN with PyTorch on the same MNIST batches shape (batch 64, Adam) and prints
images per second, for the comparison in `cargo bench -p ember-trainer --bench train_throughput`.

PyTorch from PyPI comes with its CUDA libraries (~5.5 GB); where `torch` is absent this script
says so on stderr and exits with status 2, and the benchmark fails, saying how to install it.
Usage: python3 bench/pytorch_train.py data/mnist
"""
import gzip
import sys
import time

try:
    import numpy as np
    import torch
    from torch import nn
except ImportError as e:  # the comparison is optional
    sys.stderr.write(f"PyTorch not installed ({e}); pip install torch numpy to compare\n")
    sys.exit(2)

BATCH, WARMUP, STEPS = 64, 20, 300


def load_images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)


def load_labels(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    return np.frombuffer(data, dtype=np.uint8, offset=8)


def ember_cnn():
    """The same layers as `trainer summary --arch cnn`."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(288, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "data/mnist"
    torch.set_num_threads(2)
    torch.manual_seed(1)
    x = torch.from_numpy(load_images(f"{root}/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0)
    y = torch.from_numpy(load_labels(f"{root}/train-labels-idx1-ubyte.gz").astype(np.int64))
    model = ember_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for step in range(WARMUP + STEPS):
        if step == WARMUP:
            start = time.perf_counter()
        i = (step * BATCH) % (len(x) - BATCH)
        opt.zero_grad()
        loss = loss_fn(model(x[i:i + BATCH]), y[i:i + BATCH])
        loss.backward()
        opt.step()
    rate = STEPS * BATCH / (time.perf_counter() - start)
    print(f"pytorch {torch.__version__}, cnn, batch {BATCH}, 2 threads: steps {rate:.0f} images/s")
    print(f"torch_images_per_sec {rate:.1f}")
    # A whole epoch as `trainer train` runs one: a fresh shuffle, every batch, the loss read.
    start = time.perf_counter()
    order = torch.randperm(len(x))
    for i in range(0, len(x), BATCH):
        idx = order[i:i + BATCH]
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        loss.item()
    seconds = time.perf_counter() - start
    print(f"pytorch epoch of {len(x)} images: {seconds:.2f} s ({len(x) / seconds:.0f} images/s)")
    print(f"torch_epoch_seconds {seconds:.3f}")


if __name__ == "__main__":
    main()
