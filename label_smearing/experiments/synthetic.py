"""`smear synthetic`: the paper's theory experiments, Figure 1, Figure 5 and Theorem 1.

Command:
    smear synthetic --config synthetic --workdir W [--force]

writes one artifact directory `W/synthetic/synthetic-<fingerprint>/` holding
- figure1_{ls,bc,fc}.{png,svg} and figure1.json: the two-class logistic loss of
  label 1 against the margin m = f_1 - f_0 (logits (-m/2, m/2)) under label
  smoothing (LS), backward correction (BC) and forward correction (FC) with the
  smoothing-form T_alpha, computed by calling the project's Keras loss objects;
- figure5_{ls,l2}.{png,svg}, figure5_table.{md,json}: logistic regression (a
  float64 Keras Dense(2) logit layer, full-batch L-BFGS) on a 2-D two-Gaussian
  problem with 5% of the negatives flipped to positive, with LS over a grid of
  alphas and with L2 over a grid of strengths, against the Bayes separator;
- theorem1.json: numerical checks of Theorem 1 for the LS regulariser Omega;
- summary.md, and `manifest.json` written last.

The Figure 5 fits minimise the mean of the project's per-example function
`label_smearing.modeling.losses.label_smoothing_cross_entropy` on float64 logits: the
Loss classes cast predictions to Keras' floatx (float32), whose rounding stops
L-BFGS at gradient norms near 1e-5, while in float64 every fit converges to a
gradient norm below 1e-8.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import ml_collections
import numpy as np
import scipy.optimize
import scipy.stats
import tensorflow as tf
from matplotlib.figure import Figure

from label_smearing.core import artifacts, plots, registry
from label_smearing.core.cli_common import command_parser, parse_stage_args
from label_smearing.core.config import to_plain
from label_smearing.core.errors import UserError, require
from label_smearing.core.lifecycle import CACHED, run_stage
from label_smearing.core.registry import SYNTHETIC, StageRequest
from label_smearing.modeling import losses
from label_smearing.modeling.losses import BC, FC, LOSSES, LS

__all__ = [
    "disagreement_probability",
    "figure1_curves",
    "fit_logistic_regression",
    "make_gaussian_data",
    "run",
    "run_figure5",
    "run_theorem1",
    "separator_geometry",
    "smoothing_regulariser",
]

FIGURE1_METHODS = (LS, BC, FC)
_METHOD_TITLES = {
    LS: "label smoothing (LS)",
    BC: "backward correction (BC), T = T_alpha",
    FC: "forward correction (FC), T = T_alpha",
}
_DPI = 110
# Theorem 1 check thresholds (float64 arithmetic).
_ZERO_GRADIENT_TOLERANCE = 1e-12
_LOWER_BOUND_TOLERANCE = 1e-12
_GD_RELATIVE_TOLERANCE = 1e-6
_GD_OMEGA_TOLERANCE = 1e-10
_IDENTITY_TOLERANCE = 1e-5  # the Loss class computes in float32


def _progress(message: str) -> None:
    print(f"[synthetic] {message}", flush=True)


# ---------------------------------------------------------------------------
# Figure 1: the logistic loss under LS, BC and FC
# ---------------------------------------------------------------------------


def _figure1_loss(method: str, alpha: float) -> keras.losses.Loss:
    if method not in FIGURE1_METHODS:
        raise ValueError(f"unknown Figure 1 method {method!r}; one of {FIGURE1_METHODS}")
    loss = LOSSES[method].build(2, alpha=alpha)  # FC and BC with T_alpha
    loss.reduction = "none"
    return loss


def figure1_curves(alphas: Sequence[float], margins: np.ndarray) -> dict[str, dict[float, np.ndarray]]:
    """Loss of label 1 at logits (-m/2, m/2) for each method and alpha.

    Args:
      alphas: smoothing / noise parameters in [0, 1); T_alpha = (1 - alpha) I + alpha/2 J
        is the transition of BC and FC.
      margins: the margins m = f_1 - f_0.

    Returns:
      {method: {alpha: losses of shape margins.shape}} for methods ls, bc, fc.
    """
    margins = np.asarray(margins, dtype=np.float64)
    logits = np.stack([-margins / 2, margins / 2], axis=1).astype(np.float32)
    labels = np.ones(len(margins), dtype=np.int32)
    curves: dict[str, dict[float, np.ndarray]] = {}
    for method in FIGURE1_METHODS:
        curves[method] = {}
        for alpha in alphas:
            loss = _figure1_loss(method, float(alpha))
            curves[method][float(alpha)] = np.asarray(loss(labels, logits), dtype=np.float64)
    return curves


def _figure1_key_points(margins: np.ndarray, curves: Mapping[str, Mapping[float, np.ndarray]]) -> dict:
    points: dict[str, dict[str, Any]] = {}
    for method, by_alpha in curves.items():
        points[method] = {}
        for alpha, values in by_alpha.items():
            i = int(np.argmin(values))
            points[method][f"{alpha:g}"] = {
                "loss_at_min_margin": float(values[0]),
                "loss_at_zero_margin": float(np.interp(0.0, margins, values)),
                "loss_at_max_margin": float(values[-1]),
                "min_loss": float(values[i]),
                "argmin_margin": float(margins[i]),
            }
    return points


def _plot_figure1(method: str, margins: np.ndarray, by_alpha: Mapping[float, np.ndarray]) -> Figure:
    figure = plots.new_figure((5.6, 4.0), dpi=_DPI)
    axes = figure.add_subplot()
    colours = _colours(len(by_alpha))
    for colour, (alpha, values) in zip(colours, by_alpha.items()):
        label = f"alpha = {alpha:g}" + (" (plain logistic loss)" if alpha == 0 else "")
        axes.plot(margins, values, color=colour, linewidth=1.8, label=label)
    axes.axhline(0.0, color="grey", linewidth=0.8, linestyle=":")
    axes.set_xlabel("margin m = f_1(x) - f_0(x)   (true label 1; logits (-m/2, m/2))")
    axes.set_ylabel("loss of label 1")
    letter = "abc"[FIGURE1_METHODS.index(method)]
    axes.set_title(f"Figure 1({letter}): logistic loss under {_METHOD_TITLES[method]}", fontsize=10)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return figure


# ---------------------------------------------------------------------------
# Figure 5: separators of logistic regression under asymmetric label noise
# ---------------------------------------------------------------------------


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
        _progress(
            f"  figure 5 fit {name:<16} angle {geometry['angle_deg']:+6.2f} deg  offset {geometry['offset']:+.4f}  "
            f"disagreement {geometry['disagreement']:.5f}  |grad| {fit['gradient_norm']:.1e}"
        )
    return {"data": data, "rows": rows, "bayes_error": bayes_error}


def _line_through_box(w: Sequence[float], b: float, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(w, dtype=np.float64)
    norm = np.linalg.norm(w)
    foot = -b * w / norm**2
    direction = np.array([-w[1], w[0]]) / norm
    t = np.array([-4 * half_width, 4 * half_width])
    return foot[0] + t * direction[0], foot[1] + t * direction[1]


def _plot_figure5(
    kind: str, result: Mapping[str, Any], section: ml_collections.ConfigDict, zoom: float = 0.6
) -> Figure:
    data, rows = result["data"], result["rows"]
    grid_rows = [r for r in rows if r["kind"] == kind]
    figure = plots.new_figure((11.0, 5.0), dpi=_DPI)
    full_axes, zoom_axes = figure.subplots(1, 2)
    extent = float(np.max(np.abs(section.mean)) + 3.5 * section.scale)
    x, clean, noisy = data["x"], data["clean_label"], data["is_noisy"]
    colours = _colours(len(grid_rows))
    symbol = "alpha" if kind == LS else "lambda"
    for axes, half_width in ((full_axes, extent), (zoom_axes, zoom)):
        size = 6 if axes is full_axes else 14
        axes.scatter(*x[clean == 1].T, s=size, color="tab:blue", alpha=0.35, label="positives (label 1)")
        keep = (clean == 0) & ~noisy
        axes.scatter(*x[keep].T, s=size, color="tab:orange", alpha=0.35, label="negatives (label 0)")
        axes.scatter(
            *x[noisy].T,
            s=28,
            marker="x",
            color="tab:red",
            linewidths=1.2,
            label=f"negatives flipped to label 1 ({int(noisy.sum())})",
        )
        bayes = rows[0]
        axes.plot(
            *_line_through_box(bayes["w"], bayes["b"], half_width),
            color="black",
            linewidth=2.4,
            label="Bayes separator (mean . x = 0)",
        )
        clean_row = next(r for r in rows if r["kind"] == "clean")
        axes.plot(
            *_line_through_box(clean_row["w"], clean_row["b"], half_width),
            color="black",
            linestyle="--",
            linewidth=1.2,
            label="logistic regression, clean labels",
        )
        for colour, row in zip(colours, grid_rows):
            label = f"noisy labels, {symbol} = {row['parameter']:g}  (offset {row['offset']:+.3f})"
            axes.plot(
                *_line_through_box(row["w"], row["b"], half_width), color=colour, linewidth=1.5, label=label
            )
        axes.set_xlim(-half_width, half_width)
        axes.set_ylim(-half_width, half_width)
        axes.set_aspect("equal")
        axes.set_xlabel("x_1")
        axes.set_ylabel("x_2")
        axes.grid(alpha=0.3)
    full_axes.set_title("data and separators", fontsize=10)
    zoom_axes.set_title(f"zoom on the origin, |x_i| <= {zoom:g}", fontsize=10)
    zoom_axes.legend(fontsize=7, loc="upper left")
    what = "label smoothing (growing alpha)" if kind == LS else "L2 on kernel and bias (growing lambda)"
    mean = ", ".join(f"{m:g}" for m in section.mean)
    figure.suptitle(
        f"Figure 5({'a' if kind == LS else 'b'}): {what} moves the noisy separator back to the Bayes "
        f"separator\nclasses N(+-({mean}), {section.scale:g}^2 I), {section.num_per_class} per class, "
        f"{section.flip_rate:.0%} of negatives flipped",
        fontsize=10,
    )
    return figure


def _figure5_markdown(result: Mapping[str, Any]) -> str:
    header = (
        "| separator | labels | parameter | angle (deg) | offset | disagreement | clean error | norm of w "
        "| final grad norm |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    names = {"bayes": "Bayes (mean . x = 0)", "clean": "CE", LS: "LS alpha", "l2": "CE + L2 lambda"}
    lines = []
    for r in result["rows"]:
        parameter = "-" if r["parameter"] is None else f"{r['parameter']:g}"
        weight = "-" if r["weight_norm"] is None else f"{r['weight_norm']:.3f}"
        gradient = "-" if r["gradient_norm"] is None else f"{r['gradient_norm']:.1e}"
        lines.append(
            f"| {names[r['kind']]} | {r['labels']} | {parameter} | {r['angle_deg']:+.2f} | {r['offset']:+.4f} "
            f"| {r['disagreement']:.5f} | {r['clean_error']:.5f} | {weight} | {gradient} |"
        )
    return header + "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Theorem 1: W = 0 minimises the LS regulariser of a linear model
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Output helpers
# ---------------------------------------------------------------------------


def _colours(count: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.9 * i / max(count - 1, 1)) for i in range(count)]


def _write_text(path: Path, text: str) -> None:
    artifacts.atomic_write_bytes(path, text.encode())


def _validate(config: ml_collections.ConfigDict) -> None:
    for section in ("figure1", "figure5", "theorem1"):
        require(section in config, f"config has no section {section!r}")
    f1, f5, t1 = config.figure1, config.figure5, config.theorem1
    require(
        len(f1.alphas) > 0 and all(0 <= a < 1 for a in f1.alphas),
        f"figure1.alphas must be non-empty and in [0, 1) (BC inverts T_alpha), got {tuple(f1.alphas)}",
    )
    require(f1.margin_min < 0 < f1.margin_max, "figure1 needs margin_min < 0 < margin_max")
    require(f1.num_points >= 3, f"figure1.num_points must be >= 3, got {f1.num_points}")
    require(
        len(f5.mean) == 2 and any(m != 0 for m in f5.mean),
        f"figure5.mean must be a non-zero 2-vector, got {tuple(f5.mean)}",
    )
    require(f5.scale > 0, f"figure5.scale must be > 0, got {f5.scale}")
    require(f5.num_per_class >= 2, f"figure5.num_per_class must be >= 2, got {f5.num_per_class}")
    require(0 <= f5.flip_rate < 1, f"figure5.flip_rate must be in [0, 1), got {f5.flip_rate}")
    require(
        len(f5.ls_alphas) > 0 and all(0 <= a < 1 for a in f5.ls_alphas),
        f"figure5.ls_alphas must be non-empty and in [0, 1), got {tuple(f5.ls_alphas)}",
    )
    require(
        len(f5.l2_strengths) > 0 and all(s >= 0 for s in f5.l2_strengths),
        f"figure5.l2_strengths must be non-empty and >= 0, got {tuple(f5.l2_strengths)}",
    )
    require(
        f5.max_iterations >= 1 and f5.gradient_tolerance > 0,
        "figure5.max_iterations must be >= 1 and figure5.gradient_tolerance > 0",
    )
    require(
        t1.num_classes >= 2 and t1.dim >= 1 and t1.num_examples >= 1 and t1.num_random >= 1,
        "theorem1 needs num_classes >= 2, dim >= 1, num_examples >= 1, num_random >= 1",
    )
    require(0 < t1.random_scale_min <= t1.random_scale_max, "theorem1 needs 0 < random_scale_min <= max")
    require(
        t1.gd_steps >= 1 and t1.gd_learning_rate > 0, "theorem1 needs gd_steps >= 1, gd_learning_rate > 0"
    )
    require(
        0 <= t1.identity_alpha <= 1, f"theorem1.identity_alpha must be in [0, 1], got {t1.identity_alpha}"
    )


def _summary_markdown(
    config: ml_collections.ConfigDict,
    figure1_points: Mapping[str, Any],
    figure5: Mapping[str, Any],
    theorem1: Mapping[str, Any],
    seconds: Mapping[str, float],
) -> str:
    f5 = config.figure5
    mean = ", ".join(f"{m:g}" for m in f5.mean)
    lines = [
        "# Theory experiments: Figure 1, Figure 5, Theorem 1",
        "",
        "## Figure 1: the logistic loss under LS, BC and FC",
        "",
        "Two classes, true label 1, logits (-m/2, m/2), margin m = f_1 - f_0 in "
        f"[{config.figure1.margin_min:g}, {config.figure1.margin_max:g}]; BC and FC use "
        "T_alpha = (1 - alpha) I + (alpha/2) J. Computed with the project's Keras loss objects.",
        "",
        "| method | alpha | loss at m_min | loss at 0 | loss at m_max | min loss | at m |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, by_alpha in figure1_points.items():
        for alpha, p in by_alpha.items():
            lines.append(
                f"| {method.upper()} | {alpha} | {p['loss_at_min_margin']:.4f} | {p['loss_at_zero_margin']:.4f} "
                f"| {p['loss_at_max_margin']:.4f} | {p['min_loss']:.4f} | {p['argmin_margin']:+.2f} |"
            )
    lines += [
        "",
        "LS has a finite positive minimum (at m = log((2 - alpha)/alpha)); BC goes negative for large "
        "positive m; FC saturates at -log(alpha/2) for large negative m.",
        "",
        "## Figure 5: separators under 5% asymmetric noise",
        "",
        f"Positives N(+({mean}), {f5.scale:g}^2 I), negatives N(-({mean}), {f5.scale:g}^2 I), "
        f"{f5.num_per_class} per class; {int(figure5['data']['is_noisy'].sum())} negatives "
        f"({f5.flip_rate:.0%}, seed {f5.seed}) relabelled positive. Model: a float64 Keras Dense(2) logit "
        "layer fitted by full-batch L-BFGS from zero to the stated gradient norm, on the project's LS "
        "cross-entropy (alpha = 0 is plain CE); L2 adds lambda * (|kernel|^2 + |bias|^2)"
        + ("" if f5.l2_on_bias else " (bias not penalised: figure5.l2_on_bias = false)")
        + ". The Bayes separator is mean . x = 0 "
        f"(Bayes error {figure5['bayes_error']:.5f}).",
        "",
        "- angle: from the mean direction to the separator's normal, degrees;",
        "- offset: where the separator crosses the line through the two class means, measured from the "
        "origin towards the positive mean (negative: towards the negatives);",
        "- disagreement (the distance to the Bayes separator): P_x[the separator and the Bayes separator "
        "classify x differently], x from the clean mixture, exact (bivariate normal CDF);",
        "- clean error: the separator's error rate on the clean distribution.",
        "",
        _figure5_markdown(figure5),
        "## Theorem 1: W = 0 minimises Omega(W) = E_x[L logsumexp(W x) - sum_y (W x)_y]",
        "",
    ]
    s = theorem1["setup"]
    a, b, c, d = (
        theorem1[k] for k in ("a_gradient_at_zero", "b_lower_bound", "c_gradient_descent", "d_ls_identity")
    )
    r, z = c["random_start"], c["centred_start"]
    lines += [
        f"L = {s['num_classes']}, W is {s['num_classes']} x {s['dim']}, x ~ {s['x']}, "
        f"{s['num_examples']} examples; L log L = {s['L_log_L']:.6f}.",
        "",
        f"- (a) |grad Omega(0)| = {a['norm']:.3g} (tf.GradientTape); Omega(0) - L log L = "
        f"{a['omega_minus_L_log_L']:.3g}.",
        f"- (b) min over {b['num_random']} random W (entries N(0, s^2), s log-uniform in "
        f"[{b['scales'][0]:g}, {b['scales'][1]:g}]) of Omega(W) - L log L = {b['min_omega_minus_L_log_L']:.3g} "
        f"(at s = {b['scale_at_min']:.3g}); {b['num_below_bound']} below the bound.",
        f"- (c) gradient descent on Omega, {c['steps']} steps of size {c['learning_rate']:g}. From a random W: "
        f"norm of W {r['norm_start']:.4f} -> {r['norm_end']:.4f}, of the centred W - 1 mean_row^T "
        f"{r['centred_norm_start']:.4f} -> {r['centred_norm_end']:.3g}, Omega - L log L at the end "
        f"{r['omega_end_minus_L_log_L']:.3g}, final gradient norm {r['gradient_norm_end']:.3g}. Omega(W + 1 v^T) "
        "= Omega(W), so every W with identical rows is a minimiser (W = 0 among them) and descent keeps "
        f"the mean row (norm {r['mean_row_norm_start']:.4f}, drift {r['mean_row_drift']:.2g}). From the same "
        f"W centred (rows summing to zero): norm {z['norm_start']:.4f} -> {z['norm_end']:.3g}, i.e. W -> 0.",
        f"- (d) the project's LabelSmoothingCrossEntropy(alpha={d['alpha']:g}) equals (1 - alpha) CE + "
        f"(alpha/L) Omega per example to {d['max_abs_error']:.2g} (float32 loss).",
        "",
        "Checks: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in theorem1["checks"].items()) + ".",
        "",
        "Runtime: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()) + ".",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------


def _timed(name: str, seconds: dict[str, float], function: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    _progress(f"{name} ...")
    value = function()
    seconds[name] = time.perf_counter() - start
    _progress(f"{name} done in {seconds[name]:.1f} s")
    return value


def run(argv: Sequence[str] | None = None) -> Path:
    """Runs the stage; returns the artifact directory.

    Raises:
      UserError: bad config values, a complete artifact without --force, or a
        Figure 5 fit that does not converge.
    """
    args, config, _ = parse_stage_args(command_parser(SYNTHETIC), argv, validate=_validate)
    section = to_plain(config)
    fp = artifacts.fingerprint(SYNTHETIC, section)
    out_dir = artifacts.artifact_dir(args.workdir, registry.kind(SYNTHETIC).folder, SYNTHETIC, fp)
    request = StageRequest(config, {}, out_dir, fp, SYNTHETIC, force=args.force)
    status, _ = run_stage(request, lambda r: _compute(r.config, section, r.out_dir, fp, r.force))
    if status == CACHED:
        _progress(f"cached: {out_dir} is complete with fingerprint {fp[:10]} (--force recomputes it)")
    return out_dir


def _compute(config: ml_collections.ConfigDict, section: dict, out_dir: Path, fp: str, force: bool) -> dict:
    """Runs the three experiments into `out_dir`; returns its manifest."""
    out = artifacts.prepare_output(out_dir, force=force)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    _progress(f"writing {out}")

    margins = np.linspace(config.figure1.margin_min, config.figure1.margin_max, config.figure1.num_points)
    curves = _timed("figure 1", seconds, lambda: figure1_curves(config.figure1.alphas, margins))
    figure1_points = _figure1_key_points(margins, curves)
    for method in FIGURE1_METHODS:
        plots.save(_plot_figure1(method, margins, curves[method]), out / f"figure1_{method}")
    artifacts.atomic_write_json(
        out / "figure1.json",
        {
            "margin": "m = f_1 - f_0, logits (-m/2, m/2), label 1",
            "margins": np.round(margins, 6).tolist(),
            "curves": {
                m: {f"{a:g}": np.round(v, 6).tolist() for a, v in c.items()} for m, c in curves.items()
            },
            "key_points": figure1_points,
        },
    )

    figure5 = _timed("figure 5", seconds, lambda: run_figure5(config.figure5))
    for kind in (LS, "l2"):
        plots.save(_plot_figure5(kind, figure5, config.figure5), out / f"figure5_{kind}")
    artifacts.atomic_write_json(
        out / "figure5_table.json",
        {
            "setup": {
                **to_plain(config.figure5),
                "num_flipped": int(figure5["data"]["is_noisy"].sum()),
                "bayes_error": figure5["bayes_error"],
            },
            "definitions": {
                "angle_deg": "signed angle from the mean direction to the separator's normal w",
                "offset": "t where the separator meets the line t * mean/|mean|; negative = towards negatives",
                "disagreement": "P_x[sign(w.x + b) != sign(mean.x)], x from the clean mixture (exact)",
                "clean_error": "error rate of the separator on the clean distribution",
            },
            "rows": figure5["rows"],
        },
    )
    _write_text(out / "figure5_table.md", _figure5_markdown(figure5))

    theorem1 = _timed("theorem 1", seconds, lambda: run_theorem1(config.theorem1))
    artifacts.atomic_write_json(out / "theorem1.json", theorem1)
    seconds["total"] = time.perf_counter() - started
    _write_text(out / "summary.md", _summary_markdown(config, figure1_points, figure5, theorem1, seconds))

    manifest = artifacts.write_manifest(
        out,
        stage=SYNTHETIC,
        fingerprint=fp,
        config=section,
        counts={
            "figure5_points": len(figure5["data"]["x"]),
            "figure5_fits": len(figure5["rows"]) - 1,
            "theorem1_random_weights": config.theorem1.num_random,
        },
        extra={"theorem1_checks": theorem1["checks"], "seconds": seconds},
    )

    by_kind = {k: [r for r in figure5["rows"] if r["kind"] == k] for k in ("clean", LS, "l2")}
    clean = by_kind["clean"][0]
    _progress("summary:")
    print(f"  figure 5 clean CE: angle {clean['angle_deg']:+.2f} deg, offset {clean['offset']:+.4f}")
    for kind, symbol in ((LS, "alpha"), ("l2", "lambda")):
        trail = ", ".join(f"{r['parameter']:g}: {r['disagreement']:.4f}" for r in by_kind[kind])
        print(f"  figure 5 disagreement with Bayes by {symbol} ({kind}): {trail}")
    print(
        "  theorem 1: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in theorem1["checks"].items())
    )
    print(f"  outputs: {out} (summary.md); {seconds['total']:.1f} s")
    return manifest
