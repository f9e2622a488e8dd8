"""Noise models: transition matrices and deterministic noisy-label assignment.

T[i, j] = P(noisy label = j | clean label = i); rows sum to 1 (the paper's Section 2.2).

The noisy label of an example is a pure function of (seed, example id, clean
label, T): a keyed BLAKE2b hash of (seed, id) gives a uniform u in [0, 1), and
the noisy label is the inverse CDF of row T[clean] at u. Nothing depends on
sharding, worker count, retries or runner (docs/guarantees.md).

Instance-dependent noise (`instance`, Xia et al., NeurIPS 2020) has no T: each
example gets its own row, a pure function of (seed, id, image, clean label)
(`instance_noisy_labels`). Its scores are the image's raw pixel values, flattened,
times a per-class random projection, as in the authors' code; it deviates from them
in drawing every random number from keyed hashes instead of one global RNG, and
offers a per-image standardised variant (`noise.instance_features`).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence

import numpy as np
from scipy import special

_ROW_SUM_TOLERANCE = 1e-6


def check_num_classes(num_classes: int) -> int:
    """`num_classes` as an int; raises ValueError unless it is an integer >= 2."""
    try:
        valid = int(num_classes) == num_classes and num_classes >= 2
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise ValueError(f"`num_classes` must be an integer >= 2, got {num_classes!r}.")
    return int(num_classes)


def check_probability(value: float, argument: str) -> float:
    """`value` as a float; raises ValueError naming `argument` unless it is in [0, 1]."""
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{argument}` must be in [0, 1], got {value}.")
    return value


def smoothing_matrix(num_classes: int, alpha: float) -> np.ndarray:
    """T_alpha = (1 - alpha) I + (alpha / L) J: label smoothing's M, and "resample" noise.

    Defined for any finite alpha <= 1; it is a transition matrix (non-negative) only for
    alpha in [0, 1]. Negative alpha is negative label smoothing's M (Wei et al. sweep it to -8).
    """
    num_classes = check_num_classes(num_classes)
    alpha = float(alpha)
    if not (np.isfinite(alpha) and alpha <= 1.0):
        raise ValueError(f"`alpha` must be a finite number <= 1, got {alpha}.")
    return (1.0 - alpha) * np.eye(num_classes) + alpha / num_classes * np.ones((num_classes, num_classes))


def uniform_transition(num_classes: int, rate: float) -> np.ndarray:
    """Resample the label uniformly among all L classes with probability `rate`.

    The new label may equal the old one: the realised flip rate is rate (L-1)/L.
    """
    check_probability(rate, "rate")
    return smoothing_matrix(num_classes, rate)


def symmetric_transition(num_classes: int, rate: float) -> np.ndarray:
    """Flip to one of the other L-1 classes, uniformly, with probability `rate`.

    T = (1 - rate) I + rate / (L - 1) (J - I).
    """
    num_classes = check_num_classes(num_classes)
    check_probability(rate, "rate")
    off = rate / (num_classes - 1)
    return (1.0 - rate) * np.eye(num_classes) + off * (
        np.ones((num_classes, num_classes)) - np.eye(num_classes)
    )


def pair_flip_transition(num_classes: int, rate: float) -> np.ndarray:
    """Flip class i to class (i + 1) mod L with probability `rate` (Han et al. 2018)."""
    num_classes = check_num_classes(num_classes)
    check_probability(rate, "rate")
    t = (1.0 - rate) * np.eye(num_classes)
    t[np.arange(num_classes), (np.arange(num_classes) + 1) % num_classes] += rate
    return t


def validate_transition(
    transition, num_classes: int | None = None, name: str = "transition matrix"
) -> np.ndarray:
    """Checks T is square, finite, non-negative, row-stochastic (and L x L if given).

    Returns:
      T as a float64 array.

    Raises:
      ValueError: naming the first problem found.
    """
    try:
        t = np.asarray(transition, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} is not a numeric matrix: {e}") from None
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"{name} must be square, got shape {t.shape}")
    if num_classes is not None and t.shape[0] != num_classes:
        raise ValueError(f"{name} is {t.shape[0]}x{t.shape[1]} but the dataset has {num_classes} classes")
    if t.shape[0] < 2:
        raise ValueError(f"{name} must be at least 2x2, got {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{name} has non-finite entries")
    if np.any(t < 0):
        i, j = np.argwhere(t < 0)[0]
        raise ValueError(f"{name} has a negative entry T[{i}, {j}] = {t[i, j]}")
    sums = t.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE)
    if bad.size:
        raise ValueError(f"{name} is not row-stochastic: row {bad[0]} sums to {sums[bad[0]]:.6g}")
    return t


def _read_array_file(path: str, what: str, text_suffix: str, read_text) -> np.ndarray:
    """A .npy file (no pickles), or a `text_suffix` file read by `read_text(open file)`.

    Raises:
      ValueError: one line naming `what`, the file and the problem.
    """
    remote = "://" in path  # a URL (gs://): TensorFlow's file systems, as Keras' own file utilities use
    if remote:
        import tensorflow as tf

        exists, opener = tf.io.gfile.exists(path), tf.io.gfile.GFile
    else:
        exists, opener = os.path.isfile(path), open
    if not exists:
        raise ValueError(f"{what} file not found: {path}")
    try:
        if path.endswith(".npy"):
            with opener(path, "rb") as f:
                return np.load(io.BytesIO(f.read()), allow_pickle=False)
        if path.endswith(text_suffix):
            with opener(path, "r") if remote else open(path, newline="") as f:
                return read_text(f)
        raise ValueError(f"expected a .npy or {text_suffix} file")
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {what} {path}: {e}") from None


def load_transition(path: str | os.PathLike, num_classes: int | None = None) -> np.ndarray:
    """Loads and validates T from a .npy file or a .json file.

    The JSON may be a list of rows or an object with a "transition" key (the
    format `smear estimate-transition` writes).
    """

    def from_json(f):
        data = json.load(f)
        if isinstance(data, dict):
            if "transition" not in data:
                raise ValueError('a JSON object needs a "transition" key')
            data = data["transition"]
        return data

    path = os.fspath(path)
    data = _read_array_file(path, "transition matrix", ".json", from_json)
    return validate_transition(data, num_classes, name=f"transition matrix {path}")


def load_noisy_labels(path: str | os.PathLike, num_examples: int, num_classes: int) -> np.ndarray:
    """Loads per-example noisy labels (CIFAR-10N style) in source order.

    Args:
      path: .npy (1-D integer array) or .csv (one label per row, first column;
        a non-numeric first row is a header).
      num_examples: the size of the training split; the file must match it.
      num_classes: labels must lie in [0, num_classes).
    """

    def from_csv(f):
        rows = [r for r in csv.reader(f) if r]
        if rows and not rows[0][0].strip().lstrip("-").isdigit():
            rows = rows[1:]  # a header
        return np.array([int(r[0]) for r in rows])

    path = os.fspath(path)
    labels = _read_array_file(path, "noisy labels", ".csv", from_csv)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"noisy labels {path} must be a 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    if labels.shape[0] != num_examples:
        raise ValueError(
            f"noisy labels {path} has {labels.shape[0]} labels but the split has {num_examples} examples"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"noisy labels {path} has labels outside [0, {num_classes})")
    return labels.astype(np.int64)


def example_uniforms(ids: Sequence[str | bytes], seed: int) -> np.ndarray:
    """One uniform in [0, 1) per id: a keyed hash of (seed, id), independent of order."""
    key = int(seed).to_bytes(8, "little", signed=True)
    out = np.empty(len(ids), dtype=np.uint64)
    for i, example_id in enumerate(ids):
        if isinstance(example_id, str):
            example_id = example_id.encode()
        out[i] = int.from_bytes(hashlib.blake2b(example_id, digest_size=8, key=key).digest(), "little")
    return (out >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def assign_noisy_labels(ids: Sequence[str | bytes], clean_labels, transition, seed: int) -> np.ndarray:
    """Noisy labels: inverse CDF of row T[clean] at a per-example uniform.

    A pure function of (seed, id, clean label, T): the same example gets the same
    noisy label whatever else is in the batch.

    Args:
      ids: example ids (stable across runs).
      clean_labels: int array, same length.
      transition: validated L x L row-stochastic matrix.
      seed: integer seed.

    Returns:
      int64 array of noisy labels.
    """
    clean = np.asarray(clean_labels, dtype=np.int64).reshape(-1)
    t = np.asarray(transition, dtype=np.float64)
    if clean.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} ids but {clean.shape[0]} labels")
    if clean.size and (clean.min() < 0 or clean.max() >= t.shape[0]):
        raise ValueError(f"clean labels outside [0, {t.shape[0]})")
    u = example_uniforms(ids, seed)
    cdf = np.cumsum(t, axis=1)
    cdf[:, -1] = np.inf  # rounding never pushes u past the last class
    return np.argmax(u[:, None] < cdf[clean], axis=1).astype(np.int64)


# ---------------------------------------------------------------- instance-dependent noise
INSTANCE_RATE_STD = 0.1  # the per-example flip rate's standard deviation around rho; Xia et al.'s
_RATE_TAG = b"flip-rate/"  # the flip rate's uniform hashes this prefix + id: independent of the label's
_PROJECTION_TAG = 0x494E5354  # "INST": the projections' seed stream, apart from any other use of the seed
RAW, STANDARDIZED = "raw", "standardized"
# What an image's scores are computed from (`noise.instance_features`): Xia et al.'s raw pixel values
# (the default), or the image standardised on its own (ours, the only features before the key existed).
INSTANCE_FEATURES = (RAW, STANDARDIZED)


def instance_flip_rates(ids: Sequence[str | bytes], rate: float, seed: int, std: float = INSTANCE_RATE_STD):
    """Each example's flip rate: a normal around `rate` truncated to [0, 1], at a keyed uniform of its id.

    Its mean is slightly above `rate` when `rate` is near 0 (0.2055 for rate 0.2, std 0.1):
    `instance_expected_rate`.
    """
    rate = check_probability(rate, "rate")
    if std <= 0 or rate in (0.0, 1.0):
        return np.full(len(ids), rate)
    keyed = [_RATE_TAG + (i.encode() if isinstance(i, str) else i) for i in ids]
    u = example_uniforms(keyed, seed)
    low, high = special.ndtr((0.0 - rate) / std), special.ndtr((1.0 - rate) / std)
    return np.clip(rate + std * special.ndtri(low + u * (high - low)), 0.0, 1.0)


def instance_expected_rate(rate: float, std: float = INSTANCE_RATE_STD) -> float:
    """The mean of `instance_flip_rates`: the truncated normal's mean, the realised rate's expectation."""
    if std <= 0 or rate in (0.0, 1.0):
        return float(rate)
    a, b = (0.0 - rate) / std, (1.0 - rate) / std
    pdf = lambda x: np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)  # noqa: E731
    return float(rate + std * (pdf(a) - pdf(b)) / (special.ndtr(b) - special.ndtr(a)))


def instance_projection(num_features: int, num_classes: int, seed: int, label: int) -> np.ndarray:
    """Class `label`'s random projection W_y (num_features x L, standard normal) for noise seed `seed`.

    Xia et al.'s W[y], W of shape (L, D, L): here each class's W_y has its own seed stream.
    """
    entropy = [int(seed) & 0xFFFFFFFFFFFFFFFF, int(label), _PROJECTION_TAG]
    return np.random.default_rng(np.random.SeedSequence(entropy)).standard_normal((num_features, num_classes))


def raw_images(images) -> np.ndarray:
    """(N, D) float64: each image flattened, its pixel values as they are (uint8 images: 0..255).

    Xia et al.'s features: their code multiplies the stored pixels, cast to float, by W[y].
    """
    return np.asarray(images, dtype=np.float64).reshape(len(images), -1)


def normalised_images(images) -> np.ndarray:
    """(N, D) float64: each image flattened, scaled to [0, 1] and standardised (mean 0, std 1; blank: 0).

    The `standardized` variant of `instance_noisy_labels`, not Xia et al.'s features (`raw_images`).
    """
    x = raw_images(images) / 255.0
    x = x - x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, keepdims=True)
    return np.divide(x, std, out=np.zeros_like(x), where=std > 0)


def instance_features(images, features: str = RAW) -> np.ndarray:
    """(N, D) float64: the images as `instance_noisy_labels` scores them, `features` one of INSTANCE_FEATURES."""
    if features == RAW:
        return raw_images(images)
    if features == STANDARDIZED:
        return normalised_images(images)
    raise ValueError(f"`features` must be one of {', '.join(INSTANCE_FEATURES)}, got {features!r}.")


def instance_noisy_labels(
    ids: Sequence[str | bytes],
    images,
    clean_labels,
    num_classes: int,
    rate: float,
    seed: int,
    features: str = RAW,
) -> np.ndarray:
    """Instance-dependent noisy labels: the generator of Xia et al. (NeurIPS 2020, part-dependent noise).

    Xia et al.'s code (`get_instance_noisy_label`): for an example (x, y), x its
    pixel values as stored (uint8: 0..255) as floats, flattened, and W of shape
    (L, D, L) standard normal, the scores are x W[y]; the own class's score is set
    to -inf; the noisy-label distribution is q softmax(scores), plus 1 - q on y,
    where q, the example's flip rate, is drawn from a normal around `rate` (std
    `INSTANCE_RATE_STD`) truncated to [0, 1]; the label is drawn from it. So the
    flip probability is q, and where a flip goes depends on the image. With
    `features=raw` (the default) this is that generator, in those features.
    Pixels are flattened in the source's (H, W, C) order (Xia et al.'s CIFAR
    files: (C, H, W)), which with an i.i.d. W changes no distribution.

    Ours, deviations:
      - no global RNG (Xia et al. seed one and draw q, W and the labels from it):
        W[y] is `instance_projection(D, L, seed, y)`, q the truncated normal's
        inverse CDF at a uniform hashed from (seed, id), and the label the row's
        inverse CDF at the example's keyed uniform, as for a T. So the label is a
        pure function of (seed, id, image, clean label), independent of order,
        sharding and runner; the distribution of the labels is Xia et al.'s.
      - `features=standardized` scores the image scaled to [0, 1] and
        standardised on its own (`normalised_images`) instead: not Xia et al.'s,
        and it spreads a class's flips over more classes. Pixels are
        non-negative, so every raw image has a large component along the
        all-ones vector, whose scores are the same for the whole class;
        standardising removes it.

    Raises:
      ValueError: mismatched lengths, a clean label outside [0, L), or unknown `features`.
    """
    clean = np.asarray(clean_labels, dtype=np.int64).reshape(-1)
    x = instance_features(images, features)
    if len(x) != len(ids) or clean.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} ids, {len(x)} images and {clean.shape[0]} labels")
    if clean.size and (clean.min() < 0 or clean.max() >= num_classes):
        raise ValueError(f"clean labels outside [0, {num_classes})")
    q = instance_flip_rates(ids, rate, seed)
    u = example_uniforms(ids, seed)
    out = clean.copy()
    for label in np.unique(clean):
        rows = np.flatnonzero(clean == label)
        scores = x[rows] @ instance_projection(x.shape[1], num_classes, seed, label)
        scores[:, label] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        flip = np.exp(scores)
        flip /= flip.sum(axis=1, keepdims=True)
        p = q[rows, None] * flip
        p[:, label] += 1.0 - q[rows]
        cdf = np.cumsum(p, axis=1)
        cdf[:, -1] = np.inf
        out[rows] = np.argmax(u[rows, None] < cdf, axis=1)
    return out


def _matrix_from_file(num_classes: int, rate: float, transition_file: str) -> np.ndarray:
    if not transition_file:
        raise ValueError(f"noise.model={MATRIX} needs noise.transition_file")
    return load_transition(transition_file, num_classes)


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """A noise model by name: how it makes T, and how its data artifact is named.

    Args:
        name: the registry key, as `noise.model` spells it.
        transition: transition(num_classes, rate, transition_file) -> T (L x L), or
            None for per-example noisy labels read from `noise.labels_file`.
        uses_rate: whether `noise.rate` changes the noise (and so names the data).
        label: the data artifact's noise label when the rate does not name it.
        per_example: the noisy labels come from `noise.labels_file`, one per training example.
        instance: the noisy label depends on the image (`instance_noisy_labels`); no T.
        annotated: the noisy labels are the dataset's own human labels (`noise.annotation`); no T.
        uses_seed: whether `noise.seed` changes the noisy labels (so each seed may draw its own).
    """

    name: str
    transition: Callable[[int, float, str], np.ndarray | None]
    uses_rate: bool = True
    label: str = ""
    per_example: bool = False
    instance: bool = False
    annotated: bool = False
    uses_seed: bool = True

    def data_label(self, rate: float, annotation: str = "") -> str:
        """The noise part of a data artifact's name: `symmetric0.2`, `labels`, `clean`, `human-aggre_label`."""
        if self.annotated:
            return f"{self.label}-{annotation}"
        return f"{self.name}{rate:g}" if self.uses_rate else self.label


SYMMETRIC, UNIFORM, PAIR_FLIP, MATRIX, LABELS, NONE, INSTANCE, HUMAN = (
    "symmetric",
    "uniform",
    "pair_flip",
    "matrix",
    "labels",
    "none",
    "instance",
    "human",
)
NOISE_MODELS: dict[str, NoiseModel] = {
    model.name: model
    for model in (
        NoiseModel(SYMMETRIC, lambda num_classes, rate, _: symmetric_transition(num_classes, rate)),
        NoiseModel(UNIFORM, lambda num_classes, rate, _: uniform_transition(num_classes, rate)),
        NoiseModel(PAIR_FLIP, lambda num_classes, rate, _: pair_flip_transition(num_classes, rate)),
        NoiseModel(MATRIX, _matrix_from_file),
        NoiseModel(LABELS, lambda num_classes, rate, _: None, uses_rate=False, label=LABELS, per_example=True,
                   uses_seed=False),
        NoiseModel(NONE, lambda num_classes, rate, _: np.eye(num_classes), uses_rate=False, label="clean",
                   uses_seed=False),
        NoiseModel(INSTANCE, lambda num_classes, rate, _: None, instance=True),
        # CIFAR-N's human labels: the annotation a dataset carries (label_smearing.core.datasets).
        NoiseModel(HUMAN, lambda num_classes, rate, _: None, uses_rate=False, label=HUMAN, annotated=True,
                   uses_seed=False),
    )
}  # fmt: skip


def make_transition(
    model: str, num_classes: int, rate: float, transition_file: str = ""
) -> np.ndarray | None:
    """The T a noise config names; None for per-example labels (a file, human annotations) and instance noise."""
    if model not in NOISE_MODELS:
        raise ValueError(f"unknown noise.model {model!r}; one of {', '.join(NOISE_MODELS)}")
    return NOISE_MODELS[model].transition(num_classes, rate, transition_file)
