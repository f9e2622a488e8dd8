"""The checks each stage of a plan makes of its config, made for every node before anything runs.

A stage refuses a bad value in one line when it starts; in a plan that would be after
the stages before it had run (a training's batch size after the noisy data were
written). `check_plan` runs each node's checks at plan time instead, so that `smear
run` (and its --dry-run) refuses the whole plan and writes nothing:

- every node: its stage kind's `validate_config` (the same function the stage calls);
- evaluations: the eval section against the dataset's class count;
- trainings: train.batch_size against the training split (exact once the data artifact
  exists, else the source's training examples) and, on a CPU host, against the memory
  available (`label_smearing.core.resources`, the estimate the train stage checks).

What needs the data (class count, split sizes, image shape) comes from the data
artifact's manifest when it is complete, else from the source's metadata; when neither
can be read here the data-dependent checks are left to the stages (noisify then says
why the source cannot be read).
"""

from __future__ import annotations

import importlib
import json
from typing import TYPE_CHECKING

from label_smearing.core import artifacts, registry
from label_smearing.core.datasets import DATASETS
from label_smearing.core.errors import UserError
from label_smearing.core.registry import EVALUATE, NOISIFY, TRAIN

if TYPE_CHECKING:
    from label_smearing.pipeline.plan import Node

# The image side of each source when data.image_size is 0 (the model's input; ImageNet's must be set).
SOURCE_SIDE = {"fashion_mnist": 28, "cifar10": 32, "cifar100": 32, "cifar10_n": 32, "cifar100_n": 32}
# Memory estimates already made in this process: (model section, image shape, precision, batch) -> bytes.
_ESTIMATES: dict[tuple, object] = {}


def check_plan(nodes: list[Node]) -> None:
    """Raises the one-line UserError the first refusing node's stage would raise, naming the key."""
    seen: set[tuple[str, str]] = set()
    facts: dict[int, dict | None] = {}  # id(data node) -> its facts
    for node in nodes:
        key = (node.kind, json.dumps(node.config.to_dict(), sort_keys=True, default=str))
        if key in seen:
            continue
        seen.add(key)
        module = importlib.import_module(registry.kind(node.kind).module)
        validate = getattr(module, "validate_config", None)
        if node.kind == TRAIN:  # not its input files: the stages before it make them
            validate(node.config, inputs=False)
        elif validate is not None:
            validate(node.config)
        data = _data_node(node)
        if data is None or node.kind not in (TRAIN, EVALUATE):
            continue
        if id(data) not in facts:
            facts[id(data)] = data_facts(data)
        known = facts[id(data)]
        if known is None:
            continue
        if node.kind == EVALUATE:
            from label_smearing.stages.evaluate import _check_eval_config

            _check_eval_config(node.config.eval, known["num_classes"])
        else:
            check_batch(node.config, known)


def _data_node(node: Node) -> Node | None:
    """The noisify node upstream of `node` (through its teacher and logits), or None."""
    stack, visited = list(node.inputs), set()
    while stack:
        current = stack.pop()
        if current.kind == NOISIFY:
            return current
        if id(current) not in visited:
            visited.add(id(current))
            stack.extend(current.inputs)
    return None


def data_facts(data: Node) -> dict | None:
    """{"num_classes", "train" (exact or at most), "exact", "image_shape" (or None)} of a data node's
    artifact: its manifest if complete, else the source's metadata; None if neither can be read."""
    if artifacts.is_complete_with(data.out_dir, data.fingerprint):
        manifest = artifacts.read_manifest(data.out_dir, verify=False)
        return {
            "num_classes": int(manifest["num_classes"]),
            "train": int(manifest["counts"]["train"]),
            "exact": True,
            "image_shape": tuple(int(d) for d in manifest["image_shape"]),
        }
    from label_smearing.beam_core.sources import resolve_source

    d = data.config.data
    try:
        info = resolve_source(d).info()
    except Exception:  # noqa: BLE001 - no data here (not downloaded, offline): the noisify stage says why
        return None
    train = int(info.split_sizes.get("train", 0))
    if d.max_train_examples:
        train = min(train, int(d.max_train_examples))
    side = int(d.image_size) or SOURCE_SIDE.get(info.dataset, 0)
    channels = len(DATASETS[info.dataset].mean) if info.dataset in DATASETS else 0
    return {
        "num_classes": int(info.num_classes),
        "train": train,  # before the validation split: an upper bound
        "exact": False,
        "image_shape": (side, side, channels) if side and channels else None,
    }


def check_batch(config, facts: dict) -> None:
    """train.batch_size against the training split and, on a CPU host, the memory available."""
    batch = int(config.train.batch_size)
    examples = facts["train"]
    if batch > examples:
        where = (
            "train examples"
            if facts["exact"]
            else "training examples in the source, before the validation split"
        )
        raise UserError(
            f"train.batch_size={batch} is larger than the training split ({examples} {where}); "
            f"lower it to at most {examples}"
        )
    if facts["image_shape"] is None or config.train.strategy in ("tpu", "multi_worker") or _accelerated():
        return
    from label_smearing.core import resources

    key = (
        json.dumps(config.model.to_dict(), sort_keys=True),
        facts["image_shape"],
        config.train.precision,
        batch,
    )
    if key not in _ESTIMATES:  # no keras.backend.clear_session(): it would reset a caller's Keras state
        from label_smearing.stages.train import build_model

        network = build_model(config, facts["num_classes"], facts["image_shape"])
        _ESTIMATES[key] = resources.training_memory(network, batch)
    resources.check_fits(_ESTIMATES[key], resources.available_memory(), key="train.batch_size", value=batch)


def _accelerated() -> bool:
    """Whether TensorFlow sees a GPU or TPU here (their memory is not reported: no check)."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
