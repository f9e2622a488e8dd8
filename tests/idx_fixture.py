"""Writes tiny MNIST-format IDX datasets for offline tests of the IDX source."""

import gzip
import os

import numpy as np


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_idx_dataset(directory, num_train=300, num_test=100, seed=0, num_classes=10, blank=False):
    """Random 28x28 images (`blank`: all zeros) with labels 0..num_classes-1, as Fashion-MNIST's four files."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    for prefix, n in (("train", num_train), ("t10k", num_test)):
        images = np.zeros((n, 28, 28)) if blank else rng.integers(0, 256, (n, 28, 28))
        _write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), images)
        _write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), np.arange(n) % num_classes)
    return str(directory)
