"""tf.distribute strategy selection by name (config `train.strategy`).

Names:
  auto          MirroredStrategy when more than one GPU is visible; otherwise the
                default (single-device) strategy. A TPU is never chosen
                automatically: connecting to one is a deliberate act (cost, quota).
  default       the default strategy: one device, no distribution.
  mirrored      MirroredStrategy over all local GPUs (or the CPU / logical CPUs).
  multi_worker  MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG.
  tpu           TPUStrategy on the TPU named by `train.tpu` ("" = this VM's TPU,
                "local", a Cloud TPU name, or "grpc://host:port").

MultiWorkerMirroredStrategy must be created before TensorFlow runs any op, so
call `make_strategy` first thing in a process.
"""

from __future__ import annotations

import json
import os
import socket
from urllib.parse import urlparse

import tensorflow as tf

from label_smearing.core.errors import UserError

_TPU_CONNECT_TIMEOUT_SECONDS = 10


def _auto(tpu: str) -> tf.distribute.Strategy:
    """MirroredStrategy over several GPUs, else the default (one device). Never a TPU."""
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _mirrored(tpu: str) -> tf.distribute.Strategy:
    # All GPUs; without GPUs all (logical) CPU devices, which tests use to stand in for GPUs.
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])


def _multi_worker(tpu: str) -> tf.distribute.Strategy:
    cluster_spec()  # fails clearly before TF tries to
    return tf.distribute.MultiWorkerMirroredStrategy()


# train.strategy name -> builder(tpu name): the one list of strategies.
STRATEGIES = {
    "auto": _auto,
    "default": lambda tpu: tf.distribute.get_strategy(),
    "mirrored": _mirrored,
    "multi_worker": _multi_worker,
    "tpu": lambda tpu: _tpu_strategy(tpu),
}


def make_strategy(name: str, tpu: str = "") -> tf.distribute.Strategy:
    """Creates the tf.distribute strategy called `name`.

    Args:
      name: one of STRATEGIES.
      tpu: the TPU for name="tpu".

    Raises:
      UserError: unknown name, missing/invalid TF_CONFIG, or no reachable TPU.
    """
    if name not in STRATEGIES:
        raise UserError(f"unknown train.strategy {name!r}; one of: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](tpu)


def cluster_spec() -> dict:
    """The parsed and checked TF_CONFIG of a multi-worker run.

    Raises:
      UserError: TF_CONFIG is unset, not JSON, or lacks cluster.worker / task.
    """
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        raise UserError(
            "train.strategy=multi_worker needs the TF_CONFIG environment variable "
            '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}})'
        )
    try:
        tf_config = json.loads(text)
    except ValueError as e:
        raise UserError(f"TF_CONFIG is not valid JSON: {e}") from None
    workers = tf_config.get("cluster", {}).get("worker") if isinstance(tf_config, dict) else None
    task = tf_config.get("task", {}) if isinstance(tf_config, dict) else {}
    if not isinstance(workers, list) or not workers:
        raise UserError("TF_CONFIG has no cluster.worker list of host:port addresses")
    if task.get("type") not in ("worker", "chief") or not isinstance(task.get("index"), int):
        raise UserError('TF_CONFIG needs task {"type": "worker", "index": N}')
    if task["type"] == "worker" and not 0 <= task["index"] < len(workers):
        raise UserError(f"TF_CONFIG task.index {task['index']} is outside the {len(workers)} workers")
    return tf_config


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the outputs (always true outside multi-worker runs)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0) or task_type is None


def build_for_multi_worker(model, strategy: tf.distribute.Strategy, input_spec) -> None:
    """Builds a compiled model's state from `input_spec` (x, y TensorSpecs) before `fit`.

    Keras 3's `fit` builds them from a first batch that it averages with
    `strategy.reduce`, which fails under MultiWorkerMirroredStrategy
    (keras-team/keras#20585); building here and skipping that step avoids it.
    """
    _patch_keras_reduce_for_multi_worker()
    with strategy.scope():
        model._symbolic_build(data_batch=input_spec)
        model.optimizer.build(model.trainable_variables)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def _patch_keras_reduce_for_multi_worker() -> None:
    """Makes Keras 3 average per-step logs across workers correctly.

    Under MultiWorkerMirroredStrategy Keras reduces every log value with
    `strategy.reduce("MEAN", v, axis=0)`, which fails on scalar losses and metrics
    (keras-team/keras#20585). The patched reduction averages across replicas
    (axis=None); every other case is left to Keras.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "smear_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.smear_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def _tpu_strategy(tpu: str) -> tf.distribute.Strategy:
    address = urlparse(tpu) if tpu.startswith("grpc://") else None
    if address is not None:
        # An unreachable grpc address makes TF wait forever: check it first.
        try:
            socket.create_connection(
                (address.hostname, address.port or 8470), timeout=_TPU_CONNECT_TIMEOUT_SECONDS
            ).close()
        except OSError as e:
            raise UserError(f"no TPU reachable at {tpu} (train.tpu): {e.strerror or e}") from None
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as e:  # noqa: BLE001 - every failure here means "no usable TPU"
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if len(detail) > 160 and ". " in detail:
            detail = detail[: detail.index(". ") + 1]  # the first sentence
        raise UserError(
            f"train.strategy=tpu but no TPU is reachable (train.tpu={tpu!r}): {detail[:200]}"
        ) from None
    return tf.distribute.TPUStrategy(resolver)
