"""Figure 5: separators of logistic regression under asymmetric label noise.

The two-Gaussian data with flipped negatives, the float64 Keras Dense(2) logit layer and
its full-batch L-BFGS fit, the separators' geometry against the Bayes separator, and the
experiment that fits every separator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import ml_collections
import numpy as np
import scipy.optimize
import scipy.stats
import tensorflow as tf

from label_smearing.core.errors import UserError
from label_smearing.experiments.synthetic.progress import progress
from label_smearing.modeling import losses
from label_smearing.modeling.losses import LS


def make_gaussian_data(
    mean: Sequence[float], scale: float, num_per_class: int, flip_rate: float, seed: int
) -> dict[str, np.ndarray]:
    """Two isotropic Gaussian classes at +mean (label 1) and -mean (label 0); flips negatives.

    Exactly round(flip_rate * num_per_class) negatives, chosen without replacement by
    `np.random.default_rng(seed)`, get the noisy label 1.

    Returns:
      {"x": (2n, 2) float64, "clean_label": (2n,) int32, "noisy_label": (2n,) int32,
      "is_noisy": (2n,) bool}; the first n rows are the positives.
    """
    rng = np.random.default_rng(seed)
    mean = np.asarray(mean, dtype=np.float64)
    positives = mean + scale * rng.normal(size=(num_per_class, 2))
    negatives = -mean + scale * rng.normal(size=(num_per_class, 2))
    x = np.concatenate([positives, negatives])
    clean = np.concatenate([np.ones(num_per_class), np.zeros(num_per_class)]).astype(np.int32)
    num_flipped = int(round(flip_rate * num_per_class))
    flipped = num_per_class + rng.choice(num_per_class, size=num_flipped, replace=False)
    noisy = clean.copy()
    noisy[flipped] = 1
    return {"x": x, "clean_label": clean, "noisy_label": noisy, "is_noisy": noisy != clean}


class _LinearLogisticObjective:
    """Mean LS cross-entropy of a float64 Keras Dense(2) on fixed data, plus L2; value and gradient."""

    def __init__(self, x: np.ndarray, labels: np.ndarray, l2_on_bias: bool):
        self.model = keras.Sequential(
            [keras.Input(shape=(2,), dtype="float64"), keras.layers.Dense(2, dtype="float64")]
        )
        self.variables = list(self.model.trainable_variables)  # [kernel (2, 2), bias (2,)]
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        x = tf.constant(x, dtype=tf.float64)
        labels = tf.constant(labels, dtype=tf.int32)
        kernel, bias = self.variables

        @tf.function(reduce_retracing=True)
        def value_and_gradient(theta, alpha, l2):
            self._assign(theta)
            with tf.GradientTape() as tape:
                logits = self.model(x, training=False)
                data_loss = tf.reduce_mean(losses.label_smoothing_cross_entropy(labels, logits, alpha))
                penalty = tf.reduce_sum(tf.square(kernel))
                if l2_on_bias:
                    penalty += tf.reduce_sum(tf.square(bias))
                total = data_loss + l2 * penalty
            gradients = tape.gradient(total, self.variables)
            return total, data_loss, tf.concat([tf.reshape(g, [-1]) for g in gradients], axis=0)

        self._value_and_gradient = value_and_gradient

    def _assign(self, theta) -> None:
        offset = 0
        for variable, shape, size in zip(self.variables, self.shapes, self.sizes):
            variable.assign(tf.reshape(theta[offset : offset + size], shape))
            offset += size

    @property
    def num_parameters(self) -> int:
        return sum(self.sizes)

    def __call__(self, theta: np.ndarray, alpha: float, l2: float) -> tuple[float, float, np.ndarray]:
        total, data_loss, gradient = self._value_and_gradient(
            tf.constant(theta, tf.float64), tf.constant(alpha, tf.float64), tf.constant(l2, tf.float64)
        )
        return float(total), float(data_loss), gradient.numpy()


def fit_logistic_regression(
    objective: _LinearLogisticObjective, *, alpha: float = 0.0, l2: float = 0.0, max_iterations: int = 2000
) -> dict[str, Any]:
    """Minimises mean LS-CE(alpha) + l2 * penalty from zero weights with full-batch L-BFGS.

    Returns:
      {"w": normal (2,) of the separator w . x + b = 0, the logit difference f_1 - f_0,
      "b": its offset, "loss": the objective, "data_loss": its CE part,
      "gradient_norm": the objective's final gradient norm, "iterations"}.
    """

    def fun(theta):
        total, _, gradient = objective(theta, alpha, l2)
        return total, gradient

    result = scipy.optimize.minimize(
        fun,
        np.zeros(objective.num_parameters),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iterations, "gtol": 1e-12, "ftol": 1e-16, "maxcor": 20},
    )
    total, data_loss, gradient = objective(result.x, alpha, l2)
    kernel = result.x[:4].reshape(2, 2)
    bias = result.x[4:]
    return {
        "w": kernel[:, 1] - kernel[:, 0],
        "b": float(bias[1] - bias[0]),
        "loss": total,
        "data_loss": data_loss,
        "gradient_norm": float(np.linalg.norm(gradient)),
        "iterations": int(result.nit),
    }


def disagreement_probability(w: np.ndarray, b: float, mean: np.ndarray, scale: float) -> float:
    """P_x[sign(w . x + b) != sign(mean . x)] for x from the clean equal-weight mixture.

    Each class is N(+-mean, scale^2 I); per class, the two standardised linear scores
    are bivariate normal with correlation cos(angle(w, mean)).
    """
    w, mean = np.asarray(w, np.float64), np.asarray(mean, np.float64)
    u = w / np.linalg.norm(w)
    v = mean / np.linalg.norm(mean)
    shift = b / np.linalg.norm(w)
    rho = float(np.clip(u @ v, -1.0, 1.0))

    def both_negative(a1: float, a2: float) -> float:
        """P(Z1 < -a1, Z2 < -a2) for standard normals with correlation rho."""
        if rho > 1 - 1e-9:  # parallel normals: Z1 = Z2
            return float(scipy.stats.norm.cdf(min(-a1, -a2)))
        if rho < -1 + 1e-9:  # opposite normals: Z1 = -Z2
            return float(max(0.0, scipy.stats.norm.cdf(-a2) - scipy.stats.norm.cdf(a1)))
        normal = scipy.stats.multivariate_normal(
            mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]], abseps=1e-12, releps=1e-10
        )
        return float(normal.cdf([-a1, -a2]))

    total = 0.0
    for centre in (mean, -mean):
        a1 = (u @ centre + shift) / scale  # standardised mean of the separator's score
        a2 = (v @ centre) / scale  # ... and of the Bayes separator's score
        p1, p2 = scipy.stats.norm.cdf(-a1), scipy.stats.norm.cdf(-a2)
        total += 0.5 * (p1 + p2 - 2 * both_negative(a1, a2))
    return float(max(total, 0.0))


def separator_geometry(w: np.ndarray, b: float, mean: np.ndarray, scale: float) -> dict[str, float]:
    """Where the separator w . x + b = 0 sits relative to the Bayes separator mean . x = 0.

    Returns:
      angle_deg: signed angle from the mean direction to w, in (-180, 180].
      offset: the position t of the crossing of the separator with the line t * mean/|mean|
        through both class means; t < 0 is towards the negatives.
      disagreement: `disagreement_probability`.
      clean_error: the separator's error rate on the clean distribution.
    """
    w, mean = np.asarray(w, np.float64), np.asarray(mean, np.float64)
    v = mean / np.linalg.norm(mean)
    angle = math.degrees(math.atan2(v[0] * w[1] - v[1] * w[0], float(v @ w)))
    offset = -b / float(w @ v) if float(w @ v) != 0 else math.copysign(math.inf, -b)
    shift = b / np.linalg.norm(w)
    u = w / np.linalg.norm(w)
    positive_score = (u @ mean + shift) / scale
    negative_score = (-u @ mean + shift) / scale
    clean_error = 0.5 * (scipy.stats.norm.cdf(-positive_score) + scipy.stats.norm.cdf(negative_score))
    return {
        "angle_deg": angle,
        "offset": offset,
        "disagreement": disagreement_probability(w, b, mean, scale),
        "clean_error": float(clean_error),
    }


def run_figure5(section: ml_collections.ConfigDict) -> dict[str, Any]:
    """Fits every Figure 5 separator and measures it against the Bayes separator.

    Returns:
      {"data": make_gaussian_data's dict, "rows": one dict per separator (kind "bayes",
      "clean", LS or "l2", with its parameter, geometry and fit statistics)}.
    """
    mean = np.asarray(section.mean, dtype=np.float64)
    data = make_gaussian_data(mean, section.scale, section.num_per_class, section.flip_rate, section.seed)
    bayes_error = float(scipy.stats.norm.cdf(-np.linalg.norm(mean) / section.scale))
    rows: list[dict[str, Any]] = [
        {
            "kind": "bayes",
            "labels": "-",
            "parameter": None,
            "w": (mean / np.linalg.norm(mean)).tolist(),
            "b": 0.0,
            "angle_deg": 0.0,
            "offset": 0.0,
            "disagreement": 0.0,
            "clean_error": bayes_error,
            "weight_norm": None,
            "gradient_norm": None,
            "iterations": None,
        }
    ]
    fits: list[tuple[str, str, float | None, _LinearLogisticObjective, float, float]] = []
    clean_objective = _LinearLogisticObjective(data["x"], data["clean_label"], section.l2_on_bias)
    noisy_objective = _LinearLogisticObjective(data["x"], data["noisy_label"], section.l2_on_bias)
    fits.append(("clean", "clean", None, clean_objective, 0.0, 0.0))
    fits += [(LS, "noisy", float(a), noisy_objective, float(a), 0.0) for a in section.ls_alphas]
    fits += [("l2", "noisy", float(s), noisy_objective, 0.0, float(s)) for s in section.l2_strengths]
    for kind, labels, parameter, objective, alpha, l2 in fits:
        fit = fit_logistic_regression(objective, alpha=alpha, l2=l2, max_iterations=section.max_iterations)
        if not fit["gradient_norm"] <= section.gradient_tolerance:
            raise UserError(
                f"figure 5 fit {kind}={parameter} did not converge: gradient norm {fit['gradient_norm']:.3g} "
                f"> figure5.gradient_tolerance {section.gradient_tolerance:g} after {fit['iterations']} "
                "iterations; raise figure5.max_iterations"
            )
        geometry = separator_geometry(fit["w"], fit["b"], mean, section.scale)
        rows.append(
            {
                "kind": kind,
                "labels": labels,
                "parameter": parameter,
                "w": fit["w"].tolist(),
                "b": fit["b"],
                **geometry,
                "weight_norm": float(np.linalg.norm(fit["w"])),
                "loss": fit["loss"],
                "gradient_norm": fit["gradient_norm"],
                "iterations": fit["iterations"],
            }
        )
        name = "clean data, CE" if kind == "clean" else f"{kind} {parameter:g}"
        progress(
            f"  figure 5 fit {name:<16} angle {geometry['angle_deg']:+6.2f} deg  offset {geometry['offset']:+.4f}  "
            f"disagreement {geometry['disagreement']:.5f}  |grad| {fit['gradient_norm']:.1e}"
        )
    return {"data": data, "rows": rows, "bayes_error": bayes_error}
