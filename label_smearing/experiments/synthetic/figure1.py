"""Figure 1: the logistic loss under LS, BC and FC.

The two-class loss of label 1 against the margin m = f_1 - f_0 (logits (-m/2, m/2)),
computed by calling the project's Keras loss objects, and the curves' key points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from label_smearing.modeling.losses import BC, FC, LOSSES, LS

FIGURE1_METHODS = (LS, BC, FC)


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


def figure1_key_points(margins: np.ndarray, curves: Mapping[str, Mapping[float, np.ndarray]]) -> dict:
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
