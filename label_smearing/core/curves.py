"""Per-epoch learning curves on fixed subsamples, and the divergence check.

While a model trains, `LearningCurves` measures at the end of every Keras epoch
(train.steps_per_epoch steps), on the same fixed subsamples of the data
artifact every time:

- `test_accuracy` (%) and `test_ece` on the first `train.curve_examples` clean
  test examples;
- `validation_accuracy_noisy` / `validation_accuracy_clean` (%) on the first
  examples of the validation split (when the data have one), against its noisy
  and its clean labels;
- `noisy_part_fit_noisy` / `noisy_part_fit_true` (%): of the first mislabelled
  training examples, the share predicted as their noisy label (memorisation)
  and as their true label;
- `max_abs_logit`: the largest |logit| over all of the above.

The values are added to the epoch's Keras logs, so `history.json` (the train
stage's TrainingLog) and TensorBoard (`epoch_curve_*`) both record them. The
subsamples are decoded once and kept as tensors, batches of `eval.batch_size`;
a measurement is one forward pass over them (at most 3 x `train.curve_examples`
images), through one function traced once for the whole training. Under
TPUStrategy the train stage measures nothing (the forward pass would run on the
host).

Divergence: a training whose loss runs away is recorded, not hidden. At the end
of an epoch it has diverged when the loss is not finite, when the epoch's mean
training loss falls below the loss's floor (`LossEntry.loss_floor`: 0, the lower
bound of the clean cross-entropy that every loss of the smearing family
estimates, so that only backward correction, which is unbounded below, can get
there; no floor for negative label smoothing, whose loss is meant to go below
0), or when `max_abs_logit` exceeds
`train.divergence_logit_limit`. The check is a pure function of an epoch's
record (`first_divergence`), so a resumed training finds an earlier divergence
in its history. Training goes on, so the plan stays the same; the first such
epoch's step and reason go into history.json and the model's manifest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from label_smearing.core import artifacts, tfdata, trained_model
from label_smearing.modeling.metrics import expected_calibration_error

CURVE_KEYS = (
    "test_accuracy",
    "test_ece",
    "validation_accuracy_noisy",
    "validation_accuracy_clean",
    "noisy_part_fit_noisy",
    "noisy_part_fit_true",
    "max_abs_logit",
)
PREFIX = "curve_"  # the curves' keys in the Keras logs (and so in history.json and TensorBoard)
LOSS_FLOOR = 0.0  # the clean cross-entropy's lower bound: the default floor


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


class LearningCurves(keras.callbacks.Callback):
    """Measures the curves after every epoch and checks for divergence (see the module docstring).

    Args:
      network: the model whose logits are measured (for a distillation wrapper, the student).
      data_dir: the data artifact (clean test split, noisy train split, optional validation split).
      manifest: its manifest.
      num_examples: the size of each subsample; 0 measures nothing (the loss check still runs).
      num_bins: ECE bins.
      batch_size: forward-pass batch.
      logit_limit: `max_abs_logit` above this is divergence.
      loss_floor: an epoch's mean loss below this is divergence (-inf: none).
      log: where the divergence line goes.
    """

    def __init__(
        self, network: keras.Model, data_dir: str | Path, manifest: dict, *, num_examples: int, num_bins: int,
        batch_size: int, logit_limit: float, loss_floor: float = LOSS_FLOOR, log: Callable[[str], None] = print,
    ):  # fmt: skip
        super().__init__()
        self.network, self.data_dir, self.manifest = network, artifacts.path(data_dir), manifest
        self.num_examples, self.num_bins, self.batch_size = int(num_examples), int(num_bins), int(batch_size)
        self.logit_limit, self.loss_floor, self.log = float(logit_limit), float(loss_floor), log
        self._warned = False
        self._batches: dict[str, list] | None = None
        self._forward = None

    # ------------------------------------------------------------ the subsamples
    def _subsamples(self) -> dict[str, tf.data.Dataset]:
        """The fixed subsamples: the first examples of test and validation, the first mislabelled ones."""
        num_classes = int(self.manifest["num_classes"])
        common = dict(
            batch_size=self.batch_size, training=False, num_classes=num_classes, include_metadata=True,
            manifest=self.manifest,
        )  # fmt: skip
        out = {}
        for split in ("test", "validation"):
            if split in self.manifest["splits"]:
                out[split] = tfdata.make_dataset(self.data_dir, split, subset=self.num_examples, **common)
        if int((self.manifest.get("counts") or {}).get("train", 0)):
            noisy = (
                tfdata.make_dataset(self.data_dir, "train", cache=False, **common)
                .unbatch()
                .filter(lambda example: example["is_noisy"] > 0)
                .take(self.num_examples)
                .batch(self.batch_size)
            )
            out["noisy_part"] = noisy
        return out

    def _cached_batches(self) -> dict[str, list[tuple[tf.Tensor, np.ndarray, np.ndarray]]]:
        """Each subsample as a list of (images, noisy labels, clean labels) batches, read once.

        As tensors, an epoch's measurement is the forward passes alone, without a
        tf.data iterator per subsample (about 0.1 s each, measured on 2 cores); they
        take the memory the datasets' caches took before.
        """
        out = {}
        for name, dataset in self._subsamples().items():
            out[name] = [(b["image"], b["label"].numpy(), b["clean_label"].numpy()) for b in dataset]
        return out

    def _logits(self, batches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not batches:
            return np.zeros((0, 0)), np.zeros(0, int), np.zeros(0, int)
        logits = [self._forward(images) for images, _, _ in batches]  # dispatched before any is read
        return (
            np.concatenate([np.asarray(x, np.float64) for x in logits]),
            np.concatenate([labels for _, labels, _ in batches]),
            np.concatenate([clean for _, _, clean in batches]),
        )

    def measure(self) -> dict[str, float]:
        """The curves' values for the network as it is now."""
        if self.num_examples <= 0:
            return {}
        if self._batches is None:
            self._batches = self._cached_batches()
            # One trace for the whole training: every epoch, subsample and last-batch size.
            self._forward = trained_model.forward_function(
                self.network, self.manifest["image_shape"], pre_logits=False
            )
        values: dict[str, float] = {}
        largest = 0.0
        for name, batches in self._batches.items():
            logits, labels, clean = self._logits(batches)
            if not len(logits):
                continue
            largest = max(largest, float(np.max(np.abs(logits))))
            predictions = logits.argmax(axis=1)
            if name == "test":
                values["test_accuracy"] = float(100.0 * np.mean(predictions == clean))
                values["test_ece"] = float(expected_calibration_error(_softmax(logits), clean, self.num_bins))
            elif name == "validation":
                values["validation_accuracy_noisy"] = float(100.0 * np.mean(predictions == labels))
                values["validation_accuracy_clean"] = float(100.0 * np.mean(predictions == clean))
            else:
                values["noisy_part_fit_noisy"] = float(100.0 * np.mean(predictions == labels))
                values["noisy_part_fit_true"] = float(100.0 * np.mean(predictions == clean))
        values["max_abs_logit"] = largest
        return values

    # ------------------------------------------------------------ the callback
    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        values = self.measure()
        logs.update({PREFIX + k: v for k, v in values.items()})
        reason = divergence(logs.get("loss"), values.get("max_abs_logit"), self.logit_limit, self.loss_floor)
        if reason and not self._warned:
            self._warned = True
            step = int(self.model.optimizer.iterations.numpy())
            self.log(f"train: diverged at step {step}: {reason}; training goes on and the run is marked")


def first_divergence(epochs: list[dict], logit_limit: float, loss_floor: float = LOSS_FLOOR) -> dict | None:
    """{step, epoch, reason} of the first diverged epoch record of a history, or None."""
    for record in epochs:
        reason = divergence(record.get("loss"), record.get(PREFIX + "max_abs_logit"), logit_limit, loss_floor)
        if reason:
            return {"step": int(record["step"]), "epoch": int(record["epoch"]), "reason": reason}
    return None


def divergence(
    loss: float | None, max_abs_logit: float | None, logit_limit: float, loss_floor: float = LOSS_FLOOR
) -> str:
    """Why an epoch counts as diverged ('' if it does not): see the module docstring."""
    if loss is not None:
        loss = float(loss)
        if not math.isfinite(loss):
            return f"the training loss is {loss}"
        if loss < loss_floor:
            return f"the training loss {loss:.4g} is below {loss_floor:g}, the loss's lower bound"
    if max_abs_logit is not None and not max_abs_logit <= logit_limit:
        return f"a logit reached {max_abs_logit:.4g}, past train.divergence_logit_limit={logit_limit:g}"
    return ""


def curves_of(epochs: list[dict]) -> list[dict]:
    """The curves recorded in a history's epochs: [{epoch, step, <CURVE_KEYS present>}]."""
    out = []
    for record in epochs:
        values = {k: record[PREFIX + k] for k in CURVE_KEYS if PREFIX + k in record}
        if values:
            out.append({"epoch": record.get("epoch"), "step": record.get("step"), **values})
    return out
