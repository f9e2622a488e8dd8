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

Divergence: a training that runs away is recorded, not hidden. The rule is
the same for every loss, so that one objective gets one verdict whatever it is
called (backward correction with T_alpha is negative smoothing with
alpha' = -alpha / (1 - alpha)). At the end of an epoch a training has diverged
when:

- its loss is not finite (nor, then, its weights);
- `max_abs_logit` exceeds `train.divergence_logit_limit`;
- its noisy-label validation accuracy has collapsed: below `COLLAPSE_SHARE`
  (one half) of its best earlier epoch's (a run near chance after it had
  learned is one such collapse).

A loss whose smearing matrix has negative entries (backward correction,
negative smoothing) estimates a risk that is unbounded below: once the network
fits the noisy labels, its mean training loss can go below 0, as an unbiased
risk estimate with negative weights does (non-negative PU learning, Kiryo et
al. 2017). That is recorded as an annotation, "negative training risk from
step N" (`first_negative_risk`), not as divergence. The checks are pure
functions of a history's epoch records (`first_divergence`), so the evaluate
stage applies them to any model's history.json, a resumed training finds an
earlier divergence in its history, and a change of the rule needs no
retraining. Training goes on either way, so the plan stays the same.
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
COLLAPSE_SHARE = 0.5  # noisy-validation accuracy below this share of its best earlier epoch's: collapsed


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
      log: where the divergence line goes.
    """

    def __init__(
        self, network: keras.Model, data_dir: str | Path, manifest: dict, *, num_examples: int, num_bins: int,
        batch_size: int, logit_limit: float, log: Callable[[str], None] = print,
    ):  # fmt: skip
        super().__init__()
        self.network, self.data_dir, self.manifest = network, artifacts.path(data_dir), manifest
        self.num_examples, self.num_bins, self.batch_size = int(num_examples), int(num_bins), int(batch_size)
        self.logit_limit, self.log = float(logit_limit), log
        self._warned = False
        self._best_validation: float | None = None  # the best noisy-validation accuracy so far
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
        validation = values.get("validation_accuracy_noisy")
        reason = divergence(
            logs.get("loss"), values.get("max_abs_logit"), self.logit_limit, validation, self._best_validation
        )
        if validation is not None:
            self._best_validation = max(validation, self._best_validation or validation)
        if reason and not self._warned:
            self._warned = True
            step = int(self.model.optimizer.iterations.numpy())
            self.log(f"train: diverged at step {step}: {reason}; training goes on and the run is marked")


def first_divergence(epochs: list[dict], logit_limit: float) -> dict | None:
    """{step, epoch, reason} of the first diverged epoch record of a history, or None."""
    best = None
    for record in epochs:
        validation = record.get(PREFIX + "validation_accuracy_noisy")
        reason = divergence(
            record.get("loss"), record.get(PREFIX + "max_abs_logit"), logit_limit, validation, best
        )
        if reason:
            return {"step": int(record["step"]), "epoch": int(record["epoch"]), "reason": reason}
        if validation is not None:
            best = max(float(validation), best if best is not None else float(validation))
    return None


def divergence(
    loss: float | None,
    max_abs_logit: float | None,
    logit_limit: float,
    validation_accuracy: float | None = None,
    best_validation_accuracy: float | None = None,
) -> str:
    """Why an epoch counts as diverged ('' if it does not): see the module docstring.

    Args:
      loss: the epoch's mean training loss (its sign is not a criterion).
      max_abs_logit: the largest |logit| of the curves' forward pass.
      logit_limit: `train.divergence_logit_limit`.
      validation_accuracy: this epoch's noisy-label validation accuracy (%).
      best_validation_accuracy: the best of the earlier epochs' (None: no earlier epoch).
    """
    if loss is not None and not math.isfinite(float(loss)):
        return f"the training loss is {float(loss)}"
    if max_abs_logit is not None and not max_abs_logit <= logit_limit:
        return f"a logit reached {max_abs_logit:.4g}, past train.divergence_logit_limit={logit_limit:g}"
    if (
        validation_accuracy is not None
        and best_validation_accuracy is not None
        and validation_accuracy < COLLAPSE_SHARE * best_validation_accuracy
    ):
        return (
            f"the noisy-label validation accuracy fell to {validation_accuracy:.1f}%, below "
            f"{COLLAPSE_SHARE:g} of its best earlier epoch's ({best_validation_accuracy:.1f}%)"
        )
    return ""


def first_negative_risk(epochs: list[dict]) -> int | None:
    """The step of the first epoch whose mean training loss is below 0, or None (an annotation,
    not divergence: see the module docstring)."""
    for record in epochs:
        loss = record.get("loss")
        if loss is not None and math.isfinite(float(loss)) and float(loss) < 0:
            return int(record["step"])
    return None


def curves_of(epochs: list[dict]) -> list[dict]:
    """The curves recorded in a history's epochs: [{epoch, step, <CURVE_KEYS present>}]."""
    out = []
    for record in epochs:
        values = {k: record[PREFIX + k] for k in CURVE_KEYS if PREFIX + k in record}
        if values:
            out.append({"epoch": record.get("epoch"), "step": record.get("step"), **values})
    return out
