"""Memory: what a training step needs and what the machine has, so a batch that cannot fit is refused.

A batch too large for memory does not fail cleanly: the kernel kills the process,
or an op dies on a buffer it could not get (a segmentation fault on CPU). The
estimate here is made before anything is written or trained:

    bytes = ACTIVATION_FACTOR x (activation bytes per example) x (examples per host)
            + (parameter bytes) x (1 weight + 1 gradient + optimizer slots)

The activation bytes per example are the sizes of every layer's outputs (input
included) in their dtype: what the forward pass keeps for the backward pass.
ACTIVATION_FACTOR = 1 covers the gradient buffers and the oneDNN workspace too:
measured here (TF 2.21 CPU, SGD with momentum, tests/test_os_errors.py), the peak
resident memory of training grows by 0.66-1.09 x the estimate (cifar_resnet 8 on
28x28x1 and 20 on 32x32x3, batches 64-2048; the 1.09 a ResNet-8 at batch 1024 on a
busy machine), so the estimate is within a factor of two of the real need: it
refuses a batch many times too large, not one a little too large.

The memory available is the least of MemAvailable (/proc/meminfo) and, under a
cgroup memory limit (v2 memory.max or v1 memory.limit_in_bytes), the limit minus
the group's working set (usage less inactive page cache). On GPUs and TPUs the
activations live in device memory, which TensorFlow does not report: no check.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

from label_smearing.core.errors import UserError

ACTIVATION_FACTOR = 1.0
_UNLIMITED = 1 << 60  # cgroup v1 writes 2^63 rounded to a page for "no limit"


@dataclasses.dataclass(frozen=True)
class TrainingMemory:
    """The estimate of one training step's memory.

    Attributes:
      activation_bytes_per_example: the sizes of the layer outputs of one example.
      state_bytes: weights, gradients and optimizer slots.
      batch_size: the examples processed on this host at once.
    """

    activation_bytes_per_example: int
    state_bytes: int
    batch_size: int

    @property
    def total_bytes(self) -> int:
        return int(ACTIVATION_FACTOR * self.activation_bytes_per_example * self.batch_size) + self.state_bytes

    def largest_batch(self, available_bytes: int) -> int:
        """The most examples per host whose step fits in `available_bytes` (0 if none)."""
        per_example = ACTIVATION_FACTOR * self.activation_bytes_per_example
        return max(0, int((available_bytes - self.state_bytes) // per_example)) if per_example else 0


def _dtype_bytes(dtype) -> int:
    """Bytes of one element of a Keras dtype name ("float32", "bfloat16", "int64", "bool")."""
    name = str(getattr(dtype, "name", dtype))
    bits = re.search(r"(\d+)$", name)
    return int(bits.group(1)) // 8 if bits else 1


def activation_bytes_per_example(model) -> int:
    """Sum of the sizes, in bytes, of one example's outputs of every layer of a functional `model`.

    The model's inputs count too (the outputs of its InputLayer); a nested
    functional model counts its own layers. A subclassed model, which has no graph
    of layers to read, counts 0.
    """
    total = 0
    for layer in model.layers:
        if getattr(layer, "layers", None) and getattr(layer, "_inbound_nodes", None):
            total += activation_bytes_per_example(layer)
            continue
        for node in getattr(layer, "_inbound_nodes", ()):
            for tensor in node.outputs:
                total += math.prod(d or 1 for d in tensor.shape[1:]) * _dtype_bytes(tensor.dtype)
    return total


def training_memory(model, batch_size: int, *, optimizer_slots: int = 1) -> TrainingMemory:
    """The estimate for training `model` on `batch_size` examples at once on this host.

    Args:
      model: a built functional Keras model.
      batch_size: the examples one host processes in a step (all its replicas).
      optimizer_slots: variables the optimizer keeps per weight (SGD with momentum
        and LARS: 1; Adam: 2).
    """
    weight_bytes = sum(math.prod(w.shape) * _dtype_bytes(w.dtype) for w in model.weights)
    return TrainingMemory(
        activation_bytes_per_example=activation_bytes_per_example(model),
        state_bytes=weight_bytes * (2 + optimizer_slots),
        batch_size=int(batch_size),
    )


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available(proc: Path) -> int | None:
    """MemAvailable in bytes ("MemAvailable:   23374448 kB"), or None."""
    try:
        match = re.search(r"^MemAvailable:\s+(\d+) kB$", (proc / "meminfo").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _cgroup_available(proc: Path, cgroup: Path) -> tuple[int, str] | None:
    """The cgroup's limit minus its working set, v2 then v1; None without a limit."""
    relative = ""
    try:
        for line in (proc / "self" / "cgroup").read_text().splitlines():
            if line.startswith("0::"):
                relative = line[3:].strip().lstrip("/")
    except OSError:
        pass
    for directory in dict.fromkeys([cgroup / relative, cgroup]):  # v2: this process's group, else the root
        limit = _read_int(directory / "memory.max")  # "max" (no limit) reads as None
        if limit is not None:
            usage = _read_int(directory / "memory.current") or 0
            usage -= _stat(directory / "memory.stat", "inactive_file")
            return max(0, limit - max(0, usage)), f"the cgroup limit {directory / 'memory.max'}"
    v1 = cgroup / "memory"
    limit = _read_int(v1 / "memory.limit_in_bytes")
    if limit is not None and limit < _UNLIMITED:
        usage = (_read_int(v1 / "memory.usage_in_bytes") or 0) - _stat(
            v1 / "memory.stat", "total_inactive_file"
        )
        return max(0, limit - max(0, usage)), f"the cgroup limit {v1 / 'memory.limit_in_bytes'}"
    return None


def available_memory(
    proc: str | os.PathLike = "/proc", cgroup: str | os.PathLike = "/sys/fs/cgroup"
) -> tuple[int, str] | None:
    """(bytes this process can still use, where that number comes from), or None if unknown.

    The least of MemAvailable and what a cgroup memory limit leaves.
    """
    found = []
    meminfo = _meminfo_available(Path(proc))
    if meminfo is not None:
        found.append((meminfo, "MemAvailable in /proc/meminfo"))
    limited = _cgroup_available(Path(proc), Path(cgroup))
    if limited is not None:
        found.append(limited)
    return min(found) if found else None


def describe_bytes(n: float) -> str:
    """1536 -> "1.5 KiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_fits(
    estimate: TrainingMemory,
    available: tuple[int, str] | None,
    *,
    key: str = "train.batch_size",
    value: int | None = None,
    hosts: int = 1,
) -> None:
    """Raises a one-line UserError naming `key` when `estimate` exceeds the memory `available`.

    Args:
      estimate: from `training_memory`.
      available: from `available_memory` (None: unknown, no check).
      key: the config key to name, with its `value` (default the estimate's batch times `hosts`).
      hosts: the hosts that share the key's batch (multi-worker training), each with the estimate's.
    """
    if available is None or estimate.total_bytes <= available[0]:
        return
    value = estimate.batch_size * hosts if value is None else value
    fits = estimate.largest_batch(available[0]) * hosts
    advice = f"at most {fits} fits" if fits else "no batch fits; free memory"
    raise UserError(
        f"{key}={value} does not fit in memory: a step needs about {describe_bytes(estimate.total_bytes)} "
        f"({describe_bytes(estimate.activation_bytes_per_example)} of layer outputs per example x "
        f"{estimate.batch_size} + {describe_bytes(estimate.state_bytes)} of weights, gradients and "
        f"optimizer state), more than the {describe_bytes(available[0])} available ({available[1]}); "
        f"lower {key} ({advice})"
    )
