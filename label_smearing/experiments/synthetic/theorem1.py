"""Theorem 1: W = 0 minimises the LS regulariser of a linear model; its numerical checks."""

from __future__ import annotations

import math
from typing import Any

import ml_collections
import numpy as np
import tensorflow as tf

from label_smearing.modeling import losses

# Theorem 1 check thresholds (float64 arithmetic).
_ZERO_GRADIENT_TOLERANCE = 1e-12
_LOWER_BOUND_TOLERANCE = 1e-12
_GD_RELATIVE_TOLERANCE = 1e-6
_GD_OMEGA_TOLERANCE = 1e-10
_IDENTITY_TOLERANCE = 1e-5  # the Loss class computes in float32


def smoothing_regulariser(weights: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Omega(W) = mean_x [L logsumexp(W x) - sum_y (W x)_y] for W of shape (..., L, d).

    Args:
      weights: (L, d) or a batch (K, L, d) of weight matrices.
      x: (n, d) inputs.

    Returns:
      A scalar, or (K,) for a batch.
    """
    num_classes = weights.shape[-2]
    logits = tf.einsum("...ld,nd->...nl", weights, x)
    per_example = num_classes * tf.reduce_logsumexp(logits, axis=-1) - tf.reduce_sum(logits, axis=-1)
    return tf.reduce_mean(per_example, axis=-1)


def _gradient_descent(
    section: ml_collections.ConfigDict, x: tf.Tensor, start: np.ndarray, lower_bound: float
) -> dict:
    """Theorem 1 (c): descent on Omega from `start` and from its centred copy; where each ends."""
    weights = tf.Variable(start, dtype=tf.float64)
    learning_rate = tf.constant(section.gd_learning_rate, tf.float64)

    @tf.function
    def descend(steps):
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                omega = smoothing_regulariser(weights, x)
            weights.assign_sub(learning_rate * tape.gradient(omega, weights))
        with tf.GradientTape() as tape:
            omega = smoothing_regulariser(weights, x)
        return omega, tf.norm(tape.gradient(omega, weights))

    def centred(w):
        return w - w.mean(axis=0, keepdims=True)

    descent = {"steps": section.gd_steps, "learning_rate": section.gd_learning_rate}
    for name, initial in (("random_start", start), ("centred_start", centred(start))):
        weights.assign(initial)
        omega_end, gradient_end = descend(tf.constant(section.gd_steps))
        end = weights.numpy()
        descent[name] = {
            "norm_start": float(np.linalg.norm(initial)),
            "norm_end": float(np.linalg.norm(end)),
            "centred_norm_start": float(np.linalg.norm(centred(initial))),
            "centred_norm_end": float(np.linalg.norm(centred(end))),
            "mean_row_norm_start": float(np.linalg.norm(initial.mean(axis=0))),
            "mean_row_drift": float(np.linalg.norm(end.mean(axis=0) - initial.mean(axis=0))),
            "omega_end_minus_L_log_L": float(omega_end) - lower_bound,
            "gradient_norm_end": float(gradient_end),
        }

    return descent


def _ls_identity_error(section: ml_collections.ConfigDict, x: tf.Tensor, rng: np.random.Generator) -> float:
    """Theorem 1 (d): max |LS - ((1 - alpha) CE + (alpha / L) Omega)| per example, for random logits."""
    num_classes, dim = section.num_classes, section.dim
    alpha = section.identity_alpha
    logits = x.numpy() @ rng.normal(size=(dim, num_classes))
    labels = rng.integers(0, num_classes, size=section.num_examples)
    ls_class = losses.LabelSmoothingCrossEntropy(alpha=alpha, num_classes=num_classes, reduction="none")
    ls_values = np.asarray(ls_class(labels, logits.astype(np.float32)), np.float64)
    log_probs = (
        logits
        - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
        - logits.max(1, keepdims=True)
    )
    cross_entropy = -log_probs[np.arange(len(labels)), labels]
    omega_per_example = -log_probs.sum(axis=1)  # = L logsumexp(f) - sum_y f_y
    identity_error = float(
        np.max(np.abs(ls_values - ((1 - alpha) * cross_entropy + alpha / num_classes * omega_per_example)))
    )
    return identity_error


def run_theorem1(section: ml_collections.ConfigDict) -> dict[str, Any]:
    """Checks Theorem 1 numerically for Omega on x ~ N(input_mean * 1, I) in R^dim.

    (a) the gradient of Omega at W = 0 (tf.GradientTape) is zero;
    (b) Omega(W) - L log L >= 0 over `num_random` random W;
    (c) gradient descent from a random W reaches a minimiser: Omega -> L log L and the
        centred W - 1 mean_row(W)^T -> 0. Omega(W + 1 v^T) = Omega(W) for every v, and
        the gradient's rows sum to zero, so descent keeps the mean row of W fixed: the
        minimisers are the W with identical rows, and W = 0 is the one reached from a
        start whose rows sum to zero;
    (d) the project's LS loss equals (1 - alpha) CE + (alpha / L) Omega per example.
    """
    rng = np.random.default_rng(section.seed)
    num_classes, dim = section.num_classes, section.dim
    lower_bound = num_classes * math.log(num_classes)
    x = tf.constant(section.input_mean + rng.normal(size=(section.num_examples, dim)), tf.float64)

    zero = tf.Variable(tf.zeros((num_classes, dim), tf.float64))
    with tf.GradientTape() as tape:
        omega_zero = smoothing_regulariser(zero, x)
    gradient_at_zero = float(tf.norm(tape.gradient(omega_zero, zero)))

    scales = np.exp(
        rng.uniform(
            np.log(section.random_scale_min), np.log(section.random_scale_max), size=section.num_random
        )
    )
    random_weights = scales[:, None, None] * rng.normal(size=(section.num_random, num_classes, dim))
    gaps = smoothing_regulariser(tf.constant(random_weights, tf.float64), x).numpy() - lower_bound
    worst = int(np.argmin(gaps))

    descent = _gradient_descent(section, x, rng.normal(size=(num_classes, dim)), lower_bound)
    alpha = section.identity_alpha
    identity_error = _ls_identity_error(section, x, rng)

    result = {
        "setup": {
            "num_classes": num_classes,
            "dim": dim,
            "num_examples": section.num_examples,
            "x": f"N({section.input_mean:g} * 1, I)",
            "L_log_L": lower_bound,
        },
        "a_gradient_at_zero": {
            "norm": gradient_at_zero,
            "omega_minus_L_log_L": float(omega_zero) - lower_bound,
        },
        "b_lower_bound": {
            "num_random": section.num_random,
            "scales": [section.random_scale_min, section.random_scale_max],
            "min_omega_minus_L_log_L": float(gaps[worst]),
            "scale_at_min": float(scales[worst]),
            "num_below_bound": int(np.sum(gaps < -_LOWER_BOUND_TOLERANCE)),
        },
        "c_gradient_descent": descent,
        "d_ls_identity": {"alpha": alpha, "max_abs_error": identity_error},
    }
    random_run, centred_run = descent["random_start"], descent["centred_start"]
    result["checks"] = {
        "gradient_at_zero_is_zero": gradient_at_zero <= _ZERO_GRADIENT_TOLERANCE,
        "omega_at_least_L_log_L": result["b_lower_bound"]["num_below_bound"] == 0,
        "gradient_descent_reaches_minimiser": (
            random_run["centred_norm_end"] <= _GD_RELATIVE_TOLERANCE * random_run["centred_norm_start"]
            and abs(random_run["omega_end_minus_L_log_L"]) <= _GD_OMEGA_TOLERANCE
        ),
        "gradient_descent_from_centred_start_reaches_zero": (
            centred_run["norm_end"] <= _GD_RELATIVE_TOLERANCE * centred_run["norm_start"]
        ),
        "ls_equals_ce_plus_omega": identity_error <= _IDENTITY_TOLERANCE,
    }
    return result
