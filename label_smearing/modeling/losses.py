"""Losses of the label-smearing family, all on logits.

Notation (see the paper notes): L classes, logits f in R^L, p = softmax(f), and the
vector of per-label losses ell(f) with ell_y(f) = -log p_y. The smeared loss of a
matrix M on a hard label y is ell^M(y, f) = sum_{y'} M[y, y'] ell_{y'}(f); on a soft
target q it is q^T M ell(f).

Every loss accepts two kinds of ``y_true``:

* integer labels of shape (B,) or (B, 1) (any dtype; ``keras.losses.Loss`` casts
  ``y_true`` to float before ``call``, so the values are cast back to int32);
* one-hot or soft targets of shape (B, L).

The kind is decided from the static shape: rank 2 with last dimension L means
targets, anything else means labels. (Dtype cannot decide it inside a ``Loss``
because the base class has already cast ``y_true`` to float.)

Each loss is a pure per-example function returning shape (B,) plus a thin
``keras.losses.Loss`` subclass; reduction over the batch is left to the base class,
so the classes work under ``tf.distribute``. Only ``keras.ops`` is used, so the losses run
on any Keras 3 backend (TensorFlow, JAX).

Under a mixed-precision policy the losses still compute in float32: half-precision
logits (float16, bfloat16) are cast to float32 first, so the log-softmax, the
smearing matrices (BC's T^{-1} has large entries of both signs) and the result keep
float32 numerics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from label_smearing.modeling.noise import check_num_classes, check_probability, smoothing_matrix

# Stands in for log(0) in log-transition matrices: finite, so that no inf - inf or
# 0 * inf can appear in values or gradients, and so negative that exp() of it (plus
# any log-probability) underflows to exactly zero.
_LOG_ZERO = -1e30
_STOCHASTIC_ATOL = 1e-6
_MAX_CONDITION_NUMBER = 1e8

ArrayLike = Any


@dataclasses.dataclass(frozen=True)
class AlphaRange:
    """The finite alphas a loss accepts: [low, high], or [low, high) when `high_open`; low -inf: no bound."""

    low: float = 0.0
    high: float = 1.0
    high_open: bool = False

    def __str__(self) -> str:
        low = "(-inf" if self.low == -np.inf else f"[{self.low:g}"
        return f"{low}, {self.high:g}{')' if self.high_open else ']'}"

    def __contains__(self, alpha: float) -> bool:
        alpha = float(alpha)
        if not np.isfinite(alpha):
            return False
        return self.low <= alpha and (alpha < self.high if self.high_open else alpha <= self.high)

    def check(self, alpha: float, argument: str = "alpha") -> float:
        """`alpha` as a float; raises ValueError naming `argument` and the range unless it is inside."""
        alpha = float(alpha)
        if alpha not in self:
            raise ValueError(f"`{argument}` must be in {self}, got {alpha}.")
        return alpha


PROBABILITY = AlphaRange(0.0, 1.0)  # CE (ignored), FC's T_alpha
NON_SINGULAR = AlphaRange(0.0, 1.0, high_open=True)  # BC: T_1 = J / L is singular
# LS, generalised (Wei et al., ICML 2022): alpha < 0 is negative label smoothing. The target
# (1 - alpha) onehot(y) + alpha / L then puts a negative weight alpha / L on every other class, and
# the loss is unbounded below for every alpha < 0: pushing those classes' logits to -inf lowers it
# without end. So no lower bound (Wei et al. sweep alpha to -8); alpha = 1 would make the target
# ignore the label.
SMOOTHING_ALPHAS = AlphaRange(-np.inf, 1.0, high_open=True)


# ----------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------


def _is_soft_target(y_true, num_classes: int) -> bool:
    """True if `y_true` is a (B, L) target matrix, False if it holds integer labels."""
    shape = y_true.shape
    if getattr(shape, "rank", 0) is None:
        raise ValueError("y_true must have a known rank to tell labels from targets.")
    return len(shape) == 2 and shape[-1] == num_classes


def _full_precision(logits):
    """`logits` as a tensor, float16 and bfloat16 cast to float32 (float32 and float64 as they are)."""
    logits = ops.convert_to_tensor(logits)
    if keras.backend.standardize_dtype(logits.dtype) in ("float16", "bfloat16"):
        return ops.cast(logits, "float32")
    return logits


def _int_labels(y_true):
    """Labels of shape (B,) or (B, 1), any dtype -> int32 tensor of shape (B,)."""
    labels = ops.convert_to_tensor(y_true)
    if len(labels.shape) == 2:
        labels = ops.squeeze(labels, axis=-1)
    return ops.cast(labels, "int32")


def _weights_for_targets(y_true, matrix, num_classes: int, dtype):
    """Row weights w with loss = sum_y' w[:, y'] ell_{y'}: M[y] for labels, q^T M for targets."""
    matrix = ops.cast(matrix, dtype)
    if _is_soft_target(y_true, num_classes):
        return ops.matmul(ops.cast(y_true, dtype), matrix)
    # Gathering row M[y] costs O(B L), cheaper than one_hot(y) @ M at O(B L^2).
    return ops.take(matrix, _int_labels(y_true), axis=0)


def _num_classes_of(logits) -> int:
    num_classes = logits.shape[-1]
    if num_classes is None:
        raise ValueError("logits must have a static last dimension (the number of classes).")
    return int(num_classes)


def _check_matrix(matrix: ArrayLike, argument: str) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(f"`{argument}` must be a square L x L matrix with L >= 2, got shape {matrix.shape}.")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"`{argument}` must contain only finite values.")
    return matrix


def _check_transition(transition: ArrayLike, argument: str = "transition") -> np.ndarray:
    transition = _check_matrix(transition, argument)
    if np.any(transition < 0):
        raise ValueError(f"`{argument}` must be non-negative, min entry {transition.min():.3g}.")
    row_sums = transition.sum(axis=1)
    if not np.allclose(row_sums, 1.0, rtol=0.0, atol=_STOCHASTIC_ATOL):
        worst = float(np.max(np.abs(row_sums - 1.0)))
        raise ValueError(f"`{argument}` rows must sum to 1 (within 1e-6), worst deviation {worst:.3g}.")
    return transition


def _log_transition(transition: ArrayLike) -> np.ndarray:
    """Elementwise log T with log 0 replaced by a huge finite negative number."""
    transition = np.asarray(transition, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(transition > 0, np.log(np.maximum(transition, 1e-300)), _LOG_ZERO)


def _forward_log_probs(log_probs, log_transition):
    """log(T^T p) for every noisy label: (B, L) log p and (L, L) log T -> (B, L).

    out[b, y] = logsumexp_j(log p[b, j] + log T[j, y]). Memory is O(B L^2).
    """
    return ops.logsumexp(log_probs[:, :, None] + log_transition[None, :, :], axis=1)


def _matrix_config(matrix: np.ndarray) -> list[list[float]]:
    return np.asarray(matrix, dtype=np.float64).tolist()


# ----------------------------------------------------------------------------------
# Pure per-example functions
# ----------------------------------------------------------------------------------


def smeared_cross_entropy(y_true, logits, matrix):
    """Per-example smeared loss ell^M(y, f) = sum_{y'} M[y, y'] (-log softmax(f)_{y'}).

    Args:
        y_true: int labels (B,) / (B, 1), or targets q (B, L) giving q^T M ell(f).
        logits: (B, L) logits f.
        matrix: (L, L) smearing matrix M.

    Returns:
        (B,) per-example losses.
    """
    y_true = ops.convert_to_tensor(y_true)
    logits = _full_precision(logits)
    num_classes = _num_classes_of(logits)
    weights = _weights_for_targets(y_true, matrix, num_classes, logits.dtype)
    return -ops.sum(weights * ops.log_softmax(logits, axis=-1), axis=-1)


def label_smoothing_cross_entropy(y_true, logits, alpha: float):
    """Per-example label-smoothed cross-entropy: smearing with M = (1 - alpha) I + alpha/L J.

    Uses the closed form (1 - alpha) ell_y + (alpha / L) sum_{y'} ell_{y'}, which for
    hard labels is logsumexp(f) - (1 - alpha) f_y - alpha mean(f), so no L x L matrix is
    built. For a soft target q the second term is scaled by sum(q).

    Args:
        y_true: int labels (B,) / (B, 1), or targets (B, L).
        logits: (B, L) logits.
        alpha: smoothing, any finite alpha < 1 (< 0: negative label smoothing).

    Returns:
        (B,) per-example losses.
    """
    y_true = ops.convert_to_tensor(y_true)
    logits = _full_precision(logits)
    num_classes = _num_classes_of(logits)
    log_probs = ops.log_softmax(logits, axis=-1)
    uniform_term = -ops.mean(log_probs, axis=-1)  # (1/L) sum_y' ell_y'
    if _is_soft_target(y_true, num_classes):
        targets = ops.cast(y_true, logits.dtype)
        target_term = -ops.sum(targets * log_probs, axis=-1)
        uniform_term = uniform_term * ops.sum(targets, axis=-1)
    else:
        # On TensorFlow this is the fused kernel tf.nn.sparse_softmax_cross_entropy_with_logits.
        target_term = ops.sparse_categorical_crossentropy(_int_labels(y_true), logits, from_logits=True)
    return (1.0 - alpha) * target_term + alpha * uniform_term


def backward_corrected_cross_entropy(y_true, logits, transition):
    """Per-example backward-corrected loss (T^{-1} ell(f))_y (Patrini et al. 2017).

    Inverts `transition` on every call; `BackwardCorrectedCrossEntropy` inverts once.

    Args:
        y_true: int labels (B,) / (B, 1), or targets (B, L).
        logits: (B, L) logits.
        transition: (L, L) row-stochastic, invertible noise matrix T.

    Returns:
        (B,) per-example losses (may be negative).
    """
    logits = _full_precision(logits)
    if ops.is_tensor(transition):
        transition = ops.cast(transition, "float64")
    else:
        # A float64 NumPy matrix stays float64 where the backend has it (TensorFlow; JAX with x64)
        # and becomes float32 without a warning where it does not.
        transition = np.asarray(transition, dtype=np.float64)
    inverse = ops.inv(transition)
    return smeared_cross_entropy(y_true, logits, ops.cast(inverse, logits.dtype))


def forward_corrected_cross_entropy(y_true, logits, transition=None, log_transition=None):
    """Per-example forward-corrected loss -log (T^T softmax(f))_y, computed in log space.

    ell_FC(y, f) = -logsumexp_j(log_softmax(f)_j + log T[j, y]); for a soft target q
    the loss is sum_y q_y ell_FC(y, f). Zero entries of T are handled without NaN.

    Args:
        y_true: int labels (B,) / (B, 1), or targets (B, L).
        logits: (B, L) logits.
        transition: (L, L) row-stochastic T; ignored if `log_transition` is given.
        log_transition: optional precomputed log T (log 0 as a huge negative number).

    Returns:
        (B,) per-example losses.
    """
    y_true = ops.convert_to_tensor(y_true)
    logits = _full_precision(logits)
    num_classes = _num_classes_of(logits)
    if log_transition is None:
        log_transition = _log_transition(transition)
    log_transition = ops.cast(log_transition, logits.dtype)
    log_probs = ops.log_softmax(logits, axis=-1)
    if _is_soft_target(y_true, num_classes):
        noisy_log_probs = _forward_log_probs(log_probs, log_transition)
        return -ops.sum(ops.cast(y_true, logits.dtype) * noisy_log_probs, axis=-1)
    # Row y of log T^T is column y of log T: (B, L) = log T[:, y_b].
    columns = ops.take(ops.transpose(log_transition), _int_labels(y_true), axis=0)
    return -ops.logsumexp(log_probs + columns, axis=-1)


def distillation_cross_entropy(
    teacher_logits,
    student_logits,
    temperature: float,
    smoothing: float = 0.0,
    transition=None,
):
    """Per-example distillation loss at a temperature, without the T^2 factor.

    q = (1 - smoothing) softmax(teacher / temperature) + smoothing / L, and
    loss = -sum_y q_y log s_y with s = softmax(student / temperature), or, with a
    transition T (forward correction on the student), s = T^T softmax(student / temperature)
    computed in log space.

    Args:
        teacher_logits: (B, L) teacher logits (no gradient flows into them).
        student_logits: (B, L) student logits.
        temperature: > 0.
        smoothing: label smoothing of the soft targets, in [0, 1].
        transition: optional (L, L) row-stochastic T.

    Returns:
        (B,) per-example losses.
    """
    student_logits = _full_precision(student_logits)
    num_classes = _num_classes_of(student_logits)
    teacher_logits = ops.stop_gradient(ops.cast(teacher_logits, student_logits.dtype))
    targets = ops.softmax(teacher_logits / temperature, axis=-1)
    if smoothing:
        targets = (1.0 - smoothing) * targets + smoothing / num_classes
    log_probs = ops.log_softmax(student_logits / temperature, axis=-1)
    if transition is not None:
        log_transition = ops.cast(_log_transition(transition), student_logits.dtype)
        log_probs = _forward_log_probs(log_probs, log_transition)
    return -ops.sum(targets * log_probs, axis=-1)


# ----------------------------------------------------------------------------------
# Loss classes
# ----------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="smear")
class SmearedCrossEntropy(keras.losses.Loss):
    """Label-smeared cross-entropy on logits.

    Formula:

    ```
    loss(y, f) = sum_{y'} M[y, y'] * (-log softmax(f)_{y'})      # hard label y
    loss(q, f) = q^T M (-log softmax(f))                          # soft target q
    ```

    M = I is cross-entropy, M = (1 - alpha) I + alpha/L J label smoothing, M = T^{-1}
    backward correction.

    Args:
        matrix: (L, L) smearing matrix M (array or nested lists), finite, L >= 2.
        reduction: batch reduction, as in `keras.losses.Loss`.
        name: loss name.

    Example:

    >>> loss = SmearedCrossEntropy(matrix=[[0.9, 0.1], [0.1, 0.9]])
    >>> loss([0, 1], [[2.0, 0.0], [0.0, 2.0]])  # 0.9 * 0.127 + 0.1 * 2.127 = 0.327

    References:
        Lukasik et al., "Does label smoothing mitigate label noise?", ICML 2020,
        Section 3.1, Table 1.
    """

    def __init__(self, matrix, reduction="sum_over_batch_size", name="smeared_cross_entropy"):
        super().__init__(name=name, reduction=reduction)
        self.matrix = _check_matrix(matrix, "matrix")
        self.num_classes = self.matrix.shape[0]

    def call(self, y_true, y_pred):
        return smeared_cross_entropy(y_true, y_pred, self.matrix)

    def get_config(self):
        return {**super().get_config(), "matrix": _matrix_config(self.matrix)}


@keras.saving.register_keras_serializable(package="smear")
class LabelSmoothingCrossEntropy(keras.losses.Loss):
    """Label-smoothed cross-entropy on logits; equals Keras' CategoricalCrossentropy(label_smoothing).

    Formula:

    ```
    M = (1 - alpha) I + (alpha / L) J
    loss(y, f) = (1 - alpha) * ell_y(f) + (alpha / L) * sum_{y'} ell_{y'}(f)
               = logsumexp(f) - (1 - alpha) f_y - alpha * mean(f)
    ```

    i.e. cross-entropy against (1 - alpha) onehot(y) + alpha / L. With alpha = 0 it
    is plain softmax cross-entropy; with alpha < 0 it is negative label smoothing
    (Wei et al. 2022), whose target gives the other classes negative weight, so the
    loss is unbounded below (`SMOOTHING_ALPHAS`).

    Args:
        alpha: smoothing, any finite alpha < 1 (< 0: negative label smoothing).
        num_classes: L >= 2.
        reduction: batch reduction, as in `keras.losses.Loss`.
        name: loss name.

    Example:

    >>> loss = LabelSmoothingCrossEntropy(alpha=0.2, num_classes=2)
    >>> loss([0], [[2.0, 0.0]])  # 0.9 * 0.127 + 0.1 * 2.127 = 0.327

    References:
        Szegedy et al., "Rethinking the Inception architecture", CVPR 2016;
        Lukasik et al., ICML 2020, Table 1;
        Wei et al., "To Smooth or Not? When Label Smoothing Meets Noisy Labels", ICML 2022.
    """

    def __init__(
        self, alpha: float, num_classes: int, reduction="sum_over_batch_size", name="label_smoothing"
    ):
        super().__init__(name=name, reduction=reduction)
        self.alpha = SMOOTHING_ALPHAS.check(alpha)
        self.num_classes = check_num_classes(num_classes)

    @property
    def matrix(self) -> np.ndarray:
        return smoothing_matrix(self.num_classes, self.alpha)

    def call(self, y_true, y_pred):
        return label_smoothing_cross_entropy(y_true, y_pred, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="smear")
class CrossEntropyWarmup(keras.losses.Loss):
    """Plain cross-entropy for the first `warmup_steps` optimiser steps, then `loss`.

    A CE warm-up in the spirit of Wei et al. (ICML 2022): they train CE to completion,
    then fine-tune with a fresh optimiser at a small constant rate; this switches the
    loss mid-run instead. Negative smoothing needs it here: from a random start its
    unbounded loss can make the logits run away (ls:-0.4 from scratch at 40% noise: a
    logit of 1,335 after 100 steps). `step` is a scalar variable read at every call,
    the optimizer's `iterations`, so the switch happens inside the compiled train step.
    Its config leaves the variable out: a copy made from it (Keras' `clone_model` of a
    compiled model) can be compiled but not trained until `step` is set.

    Args:
        loss: the loss after the warm-up.
        warmup_steps: >= 0.
        step: a scalar integer variable (e.g. `optimizer.iterations`).
    """

    def __init__(self, loss: keras.losses.Loss, warmup_steps: int, step=None, name=None, reduction=None):
        super().__init__(name=name or loss.name, reduction=reduction or loss.reduction)
        warmup_steps = int(warmup_steps)
        if warmup_steps < 0:
            raise ValueError(f"`warmup_steps` must be >= 0, got {warmup_steps}.")
        self.loss, self.warmup_steps, self.step = loss, warmup_steps, step

    def call(self, y_true, y_pred):
        if self.step is None:
            raise ValueError("CrossEntropyWarmup needs `step` (the optimizer's iterations) to train")
        plain = label_smoothing_cross_entropy(y_true, y_pred, 0.0)
        warm = ops.convert_to_tensor(self.step) < self.warmup_steps
        return ops.where(warm, plain, self.loss.call(y_true, y_pred))

    def get_config(self):
        return {
            **super().get_config(), "loss": keras.saving.serialize_keras_object(self.loss),
            "warmup_steps": self.warmup_steps,
        }  # fmt: skip

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("loss")), **config)


@keras.saving.register_keras_serializable(package="smear")
class BackwardCorrectedCrossEntropy(SmearedCrossEntropy):
    """Backward-corrected cross-entropy: smearing with M = T^{-1}.

    Formula:

    ```
    loss(y, f) = (T^{-1} ell(f))_y,   ell_{y'}(f) = -log softmax(f)_{y'}
    ```

    Unbiased for the clean loss under class-conditional noise T, but can be negative
    and unbounded below.

    Args:
        transition: (L, L) row-stochastic noise matrix T[i, j] = P(noisy j | clean i);
            rows must sum to 1 within 1e-6 and its condition number must be <= 1e8.
        reduction: batch reduction, as in `keras.losses.Loss`.
        name: loss name.

    Example:

    >>> loss = BackwardCorrectedCrossEntropy(transition=[[0.9, 0.1], [0.1, 0.9]])
    >>> loss([0], [[2.0, 0.0]])  # T^-1 row 0 = [1.125, -0.125]: 1.125*0.127 - 0.125*2.127 = -0.123

    References:
        Patrini et al., "Making deep neural networks robust to label noise: a loss
        correction approach", CVPR 2017; Lukasik et al., ICML 2020, eq. 4.
    """

    def __init__(self, transition, reduction="sum_over_batch_size", name="backward_correction"):
        transition = _check_transition(transition)
        condition_number = np.linalg.cond(transition)
        if not np.isfinite(condition_number) or condition_number > _MAX_CONDITION_NUMBER:
            raise ValueError(
                f"`transition` is singular or ill-conditioned (condition number {condition_number:.3g} "
                f"> {_MAX_CONDITION_NUMBER:.0e})."
            )
        super().__init__(np.linalg.inv(transition), reduction=reduction, name=name)  # M = T^{-1}
        self.transition = transition

    def get_config(self):
        config = {k: v for k, v in super().get_config().items() if k != "matrix"}
        return {**config, "transition": _matrix_config(self.transition)}


@keras.saving.register_keras_serializable(package="smear")
class ForwardCorrectedCrossEntropy(keras.losses.Loss):
    """Forward-corrected cross-entropy: cross-entropy of the noisy-label distribution T^T p.

    Formula:

    ```
    loss(y, f) = -log (T^T softmax(f))_y = -logsumexp_j(log_softmax(f)_j + log T[j, y])
    loss(q, f) = sum_y q_y * loss(y, f)
    ```

    Zero entries of T contribute nothing (no NaN). Soft targets need O(B L^2) memory.

    Args:
        transition: (L, L) row-stochastic noise matrix T[i, j] = P(noisy j | clean i);
            rows must sum to 1 within 1e-6.
        reduction: batch reduction, as in `keras.losses.Loss`.
        name: loss name.

    Example:

    >>> loss = ForwardCorrectedCrossEntropy(transition=[[0.9, 0.1], [0.1, 0.9]])
    >>> loss([0], [[2.0, 0.0]])  # p = [0.881, 0.119]; -log(0.9*0.881 + 0.1*0.119) = 0.212

    References:
        Patrini et al., CVPR 2017; Lukasik et al., ICML 2020, eq. 5.
    """

    def __init__(self, transition, reduction="sum_over_batch_size", name="forward_correction"):
        super().__init__(name=name, reduction=reduction)
        self.transition = _check_transition(transition)
        self.num_classes = self.transition.shape[0]
        self.log_transition = _log_transition(self.transition)

    def call(self, y_true, y_pred):
        return forward_corrected_cross_entropy(y_true, y_pred, log_transition=self.log_transition)

    def get_config(self):
        return {**super().get_config(), "transition": _matrix_config(self.transition)}


@keras.saving.register_keras_serializable(package="smear")
class DistillationCrossEntropy(keras.losses.Loss):
    """Distillation cross-entropy against a teacher's tempered softmax, optionally times T^2.

    `y_true` holds the teacher's logits (B, L); `y_pred` the student's logits.

    Formula:

    ```
    q = (1 - smoothing) * softmax(teacher_logits / temperature) + smoothing / L
    s = softmax(student_logits / temperature)            # transition is None
    s = T^T softmax(student_logits / temperature)        # forward correction on student
    loss = -sum_y q_y log s_y
    loss = temperature^2 * (-sum_y q_y log s_y)          # temperature_squared
    ```

    The temperature^2 factor (Hinton et al.) keeps the gradients' magnitude from
    shrinking as 1 / temperature^2; it is off by default, as the paper's student
    trains "only with the cross-entropy objective against the teacher's logits".
    `smoothing` is the paper's "LS on student", `transition` its "FC on student"
    (Table 5).

    Args:
        temperature: > 0, divides both teacher and student logits.
        smoothing: label smoothing of the soft targets, in [0, 1]. Defaults to 0.
        transition: optional (L, L) row-stochastic T for forward correction on the
            student. Defaults to None (no correction).
        temperature_squared: multiply the loss by temperature^2. Defaults to False.
        reduction: batch reduction, as in `keras.losses.Loss`.
        name: loss name.

    Example:

    >>> loss = DistillationCrossEntropy(temperature=2.0)
    >>> loss([[2.0, 0.0]], [[0.0, 0.0]])  # q = softmax([1, 0]) = [0.731, 0.269]; -sum q log 0.5 = 0.693
    >>> loss = DistillationCrossEntropy(temperature=2.0, temperature_squared=True)
    >>> loss([[2.0, 0.0]], [[0.0, 0.0]])  # 2^2 * 0.693 = 2.773

    References:
        Hinton et al., "Distilling the knowledge in a neural network", 2015;
        Lukasik et al., ICML 2020, Section 5 and Table 5.
    """

    def __init__(
        self,
        temperature: float,
        smoothing: float = 0.0,
        transition=None,
        temperature_squared: bool = False,
        reduction="sum_over_batch_size",
        name="distillation",
    ):
        super().__init__(name=name, reduction=reduction)
        temperature = float(temperature)
        if not temperature > 0 or not np.isfinite(temperature):
            raise ValueError(f"`temperature` must be a finite number > 0, got {temperature}.")
        self.temperature = temperature
        self.smoothing = check_probability(smoothing, "smoothing")
        self.transition = None if transition is None else _check_transition(transition)
        self.temperature_squared = bool(temperature_squared)

    def call(self, y_true, y_pred):
        loss = distillation_cross_entropy(
            y_true, y_pred, self.temperature, smoothing=self.smoothing, transition=self.transition
        )
        return loss * self.temperature**2 if self.temperature_squared else loss

    def get_config(self):
        transition = None if self.transition is None else _matrix_config(self.transition)
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "smoothing": self.smoothing,
            "transition": transition,
            "temperature_squared": self.temperature_squared,
        }


# ----------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------

# The loss names: configs, sweeps, CLIs and reports read them from here.
CE, LS, FC, BC = "ce", "ls", "fc", "bc"
DISTILL, DISTILL_FC = "distill", "distill_fc"


@dataclasses.dataclass(frozen=True)
class LossEntry:
    """A teacher loss by name: what it takes and how to build it.

    Args:
        name: the registry key, as configs and sweep strings spell it.
        label: display label in tables and plots ("CE", "LS", "FC", "BC").
        uses_alpha: whether `alpha` changes the loss (False for CE).
        uses_transition: whether it may take a transition matrix (e.g. an estimated T)
            instead of the smoothing form T_alpha.
        alphas: the alphas it accepts (BC: < 1, as T_1 is singular; LS: also < 0).
        build: build(num_classes, alpha=0.0, transition=None) -> `keras.losses.Loss`;
            validates its arguments and raises ValueError naming the bad one.
    """

    name: str
    label: str
    uses_alpha: bool
    uses_transition: bool
    alphas: AlphaRange
    build: Callable[..., keras.losses.Loss]


def _transition_or_smoothing_form(
    num_classes: int, alpha: float, transition, alphas: AlphaRange = PROBABILITY
) -> ArrayLike:
    """`transition`, or T_alpha = (1 - alpha) I + alpha/L J if it is None (paper Section 4.1)."""
    num_classes = check_num_classes(num_classes)
    alphas.check(alpha)
    return smoothing_matrix(num_classes, alpha) if transition is None else transition


def _build_ce(num_classes: int, alpha: float = 0.0, transition=None) -> keras.losses.Loss:
    PROBABILITY.check(alpha)  # accepted and ignored, like `transition`
    return LabelSmoothingCrossEntropy(alpha=0.0, num_classes=num_classes, name="cross_entropy")


def _build_ls(num_classes: int, alpha: float = 0.0, transition=None) -> keras.losses.Loss:
    return LabelSmoothingCrossEntropy(alpha=alpha, num_classes=num_classes)


def _build_fc(num_classes: int, alpha: float = 0.0, transition=None) -> keras.losses.Loss:
    return ForwardCorrectedCrossEntropy(_transition_or_smoothing_form(num_classes, alpha, transition))


def _build_bc(num_classes: int, alpha: float = 0.0, transition=None) -> keras.losses.Loss:
    # T_1 = J / L is singular: alpha < 1 unless a transition is given.
    alphas = NON_SINGULAR if transition is None else PROBABILITY
    return BackwardCorrectedCrossEntropy(
        _transition_or_smoothing_form(num_classes, alpha, transition, alphas)
    )


LOSSES: dict[str, LossEntry] = {
    entry.name: entry
    for entry in (
        LossEntry(CE, "CE", uses_alpha=False, uses_transition=False, alphas=PROBABILITY, build=_build_ce),
        LossEntry(LS, "LS", uses_alpha=True, uses_transition=False, alphas=SMOOTHING_ALPHAS, build=_build_ls),
        LossEntry(FC, "FC", uses_alpha=True, uses_transition=True, alphas=PROBABILITY, build=_build_fc),
        LossEntry(BC, "BC", uses_alpha=True, uses_transition=True, alphas=NON_SINGULAR, build=_build_bc),
    )
}  # fmt: skip

# Every name `get_loss` accepts: the teacher losses, then the distillation losses.
LOSS_NAMES: tuple[str, ...] = (*LOSSES, DISTILL, DISTILL_FC)


def get_loss(
    name: str,
    num_classes: int,
    alpha: float = 0.0,
    transition: ArrayLike | Sequence[Sequence[float]] | None = None,
    temperature: float = 1.0,
) -> keras.losses.Loss:
    """Builds a loss by name, for configs that hold names and numbers only.

    Args:
        name: one of `LOSS_NAMES`:
            "ce": plain softmax cross-entropy (`alpha`, `transition` ignored);
            "ls": label smoothing with any finite `alpha` < 1 (< 0: negative smoothing);
            "fc" / "bc": forward / backward correction with `transition`, or, if it is
                None, the smoothing-form T_alpha = (1 - alpha) I + alpha/L J (paper
                Section 4.1; "bc" with alpha = 1 is singular and raises);
            "distill": distillation at `temperature`, `alpha` smooths the student's
                targets ("LS on student"), optional `transition` forward-corrects the
                student;
            "distill_fc": distillation with forward correction on the student by
                `transition`, or T_alpha if it is None ("FC on student"), no smoothing.
        num_classes: L.
        alpha: smoothing / noise-model parameter, in the loss's `LossEntry.alphas` (in
            [0, 1] for the distillation losses).
        transition: optional (L, L) row-stochastic matrix.
        temperature: distillation temperature (> 0); ignored by the other losses.

    Returns:
        A `keras.losses.Loss` that takes logits.
    """
    num_classes = check_num_classes(num_classes)
    if name in LOSSES:
        return LOSSES[name].build(num_classes, alpha=alpha, transition=transition)
    if name == DISTILL:
        return DistillationCrossEntropy(
            temperature, smoothing=PROBABILITY.check(alpha), transition=transition
        )
    if name == DISTILL_FC:
        transition = _transition_or_smoothing_form(num_classes, alpha, transition)
        return DistillationCrossEntropy(temperature, transition=transition)
    raise ValueError(f"Unknown loss name {name!r}; known names: {', '.join(LOSS_NAMES)}.")
