"""The stage's figures: Figure 1 (one per method) and Figure 5 (LS and L2), as matplotlib Figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np
from matplotlib.figure import Figure

from label_smearing.core import plots
from label_smearing.experiments.synthetic.figure1 import FIGURE1_METHODS
from label_smearing.modeling.losses import BC, FC, LS

_METHOD_TITLES = {
    LS: "label smoothing (LS)",
    BC: "backward correction (BC), T = T_alpha",
    FC: "forward correction (FC), T = T_alpha",
}
_DPI = 110


def _colours(count: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.9 * i / max(count - 1, 1)) for i in range(count)]


def plot_figure1(method: str, margins: np.ndarray, by_alpha: Mapping[float, np.ndarray]) -> Figure:
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


def _line_through_box(w: Sequence[float], b: float, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(w, dtype=np.float64)
    norm = np.linalg.norm(w)
    foot = -b * w / norm**2
    direction = np.array([-w[1], w[0]]) / norm
    t = np.array([-4 * half_width, 4 * half_width])
    return foot[0] + t * direction[0], foot[1] + t * direction[1]


def plot_figure5(
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
