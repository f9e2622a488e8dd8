"""Figures of the paper: accuracy vs alpha (Fig. 2), logit-gap densities (Fig. 3/7),
pre-logit projections (Fig. 4/8/9), student vs teacher alpha (Fig. 6) and
reliability diagrams (for Table 4's ECE).

Every plotting function writes a PNG and an SVG beside it and returns both paths.
`path` may be a stem (`results/fig2`) or end in `.png`/`.svg`; parent folders are
created. Figures are drawn on the Agg canvas directly, without pyplot, so importing
this module changes no global matplotlib state.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from label_smearing.core import artifacts

__all__ = [
    "accuracy_vs_alpha",
    "load_series",
    "logit_gap_densities",
    "logit_gap_panels",
    "montage",
    "new_figure",
    "pre_logit_projection",
    "project_pre_logits",
    "projection_basis",
    "reliability_diagram",
    "save",
    "save_series",
    "student_vs_teacher_alpha",
]

_DPI = 150
_COLLINEAR_RTOL = 1e-8


def new_figure(figsize: tuple[float, float] = (6.4, 4.8), dpi: int = _DPI) -> Figure:
    """A figure with its own Agg canvas: no pyplot, no global state."""
    figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: str | os.PathLike) -> list[Path]:
    """Writes `path`.png and `path`.svg (a .png/.svg suffix of `path` is dropped), each atomically."""
    stem = artifacts.path(path)
    if stem.suffix.lower() in (".png", ".svg"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = [stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.svg"]
    for target in written:
        _write(figure, target, figure.dpi)
    return written


def _write(figure: Figure, target, dpi: int) -> None:
    """The figure in `target`'s format (its suffix), written whole (a local path or a URL)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=target.suffix[1:], dpi=dpi)
    artifacts.atomic_write_bytes(target, buffer.getvalue())


# ---------------------------------------------------------------------------
# Reliability diagram
# ---------------------------------------------------------------------------


def reliability_diagram(bins: Mapping[str, Any], path: str | os.PathLike, title: str) -> list[Path]:
    """Accuracy per confidence bin against the diagonal, with a confidence histogram.

    Args:
        bins: Output of `label_smearing.modeling.metrics.reliability_bins`: `edges` (M+1,),
            `counts`, `accuracy`, `confidence` (M,), and optionally `ece` (computed
            from the bins if absent).
        path: Output stem or `.png` path.
        title: Figure title; the ECE is appended.

    Returns:
        The written PNG and SVG paths.

    Raises:
        ValueError: If a key is missing or the arrays do not have matching lengths.
    """
    missing = {"edges", "counts", "accuracy", "confidence"} - set(bins)
    if missing:
        raise ValueError(f"bins is missing keys {sorted(missing)}")
    edges = np.asarray(bins["edges"], dtype=np.float64)
    counts = np.asarray(bins["counts"], dtype=np.float64)
    accuracy = np.asarray(bins["accuracy"], dtype=np.float64)
    confidence = np.asarray(bins["confidence"], dtype=np.float64)
    num_bins = len(counts)
    if edges.shape != (num_bins + 1,) or accuracy.shape != (num_bins,) or confidence.shape != (num_bins,):
        raise ValueError(
            f"bins arrays disagree: edges {edges.shape}, counts {counts.shape}, "
            f"accuracy {accuracy.shape}, confidence {confidence.shape}"
        )
    total = counts.sum()
    if total <= 0:
        raise ValueError("bins hold no examples")
    ece = (
        float(bins["ece"]) if "ece" in bins else float(np.sum(counts / total * np.abs(accuracy - confidence)))
    )
    return save(_reliability_figure(edges, counts, accuracy, confidence, ece, title), path)


def _reliability_figure(edges, counts, accuracy, confidence, ece: float, title: str) -> Figure:
    """The reliability diagram's figure: bars over the diagonal, the confidence histogram below, and
    one legend above both, outside the axes, so that it covers no bar whatever the model's calibration
    (an underconfident model's bars fill the upper left, an overconfident one's histogram the right)."""
    total = counts.sum()
    lefts, widths = edges[:-1], np.diff(edges)
    nonempty = counts > 0
    figure = new_figure((6.0, 7.0))
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])

    top.bar(
        lefts[nonempty],
        accuracy[nonempty],
        width=widths[nonempty],
        align="edge",
        color="tab:blue",
        edgecolor="black",
        linewidth=0.6,
        label="accuracy per bin",
    )
    gap_bottom = np.minimum(accuracy, confidence)[nonempty]
    gap_height = np.abs(accuracy - confidence)[nonempty]
    top.bar(
        lefts[nonempty],
        gap_height,
        bottom=gap_bottom,
        width=widths[nonempty],
        align="edge",
        color="tab:red",
        alpha=0.3,
        edgecolor="tab:red",
        hatch="//",
        linewidth=0.6,
        label="gap to mean confidence",
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.grid(alpha=0.3)

    bottom.bar(lefts, counts / total, width=widths, align="edge", color="tab:gray", edgecolor="black", lw=0.6)
    mean_confidence = float(np.sum(counts * confidence) / total)
    mean_accuracy = float(np.sum(counts * accuracy) / total)
    bottom.axvline(mean_accuracy, color="tab:blue", linestyle="-", label=f"accuracy {mean_accuracy:.3f}")
    bottom.axvline(
        mean_confidence, color="tab:red", linestyle="--", label=f"mean confidence {mean_confidence:.3f}"
    )
    bottom.set_xlabel("confidence (top-label probability)")
    bottom.set_ylabel("fraction")
    handles, labels = top.get_legend_handles_labels()
    more_handles, more_labels = bottom.get_legend_handles_labels()
    figure.suptitle(f"{title} (ECE = {ece:.3f})")
    figure.legend(
        handles + more_handles, labels + more_labels, loc="outside lower center", ncols=2, fontsize="small"
    )
    return figure


# ---------------------------------------------------------------------------
# Logit-gap densities (Figure 3 / 7)
# ---------------------------------------------------------------------------


def _density(values: np.ndarray, grid: np.ndarray) -> tuple[str, Any]:
    """('kde', density on grid) or ('hist', (density, edges)) when a KDE is impossible."""
    if np.unique(values).size >= 2:
        from scipy.stats import gaussian_kde

        try:
            return "kde", gaussian_kde(values)(grid)
        except np.linalg.LinAlgError:
            pass
    # 40 equal bins over the shared x range keep a degenerate series' spike on the scale of the others.
    density, edges = np.histogram(values, bins=np.linspace(grid[0], grid[-1], 41), density=True)
    return "hist", (density, edges)


def logit_gap_densities(gaps: Mapping[str, np.ndarray], path: str | os.PathLike, title: str) -> list[Path]:
    """Densities of z_label - mean(z), one curve per named series (the paper's Figure 3/7).

    Each curve is a Gaussian kernel density estimate (`scipy.stats.gaussian_kde`); a
    series with fewer than two distinct values is drawn as a density histogram instead.

    Args:
        gaps: Series name (e.g. "true label", "noisy label") -> 1-D array of
            z_label - mean(z) values, z the logits of an example.
        path: Output stem or `.png` path.
        title: Figure title.

    Returns:
        The written PNG and SVG paths.

    Raises:
        ValueError: If there is no series or a series has no finite value.
    """
    series = _finite_series(gaps)
    figure = new_figure()
    axes = figure.subplots()
    _draw_gap_densities(axes, series, _gap_grid([series]))
    axes.set_xlabel(_GAP_LABEL)
    axes.set_ylabel("density")
    axes.set_title(title)
    axes.legend(loc="best")
    return save(figure, path)


_GAP_LABEL = r"$z_{y} - \mathrm{mean}(z)$  (logit of label $y$ minus mean logit)"


def _finite_series(gaps: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not gaps:
        raise ValueError("gaps must name at least one series")
    series = {}
    for name, values in gaps.items():
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError(f"series {name!r} has no finite values")
        series[name] = values
    return series


def _gap_grid(panels: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
    """One x grid over every series of every panel, padded by 15% of the range."""
    low = min(v.min() for series in panels for v in series.values())
    high = max(v.max() for series in panels for v in series.values())
    pad = 0.15 * (high - low) if high > low else 1.0
    return np.linspace(low - pad, high + pad, 512)


def _draw_gap_densities(axes: Any, series: Mapping[str, np.ndarray], grid: np.ndarray) -> None:
    """One density curve per series on `grid` (a histogram for a series with one distinct value)."""
    for index, (name, values) in enumerate(series.items()):
        color = f"C{index % 10}"
        label = f"{name} (n={values.size}, mean={values.mean():.2f})"
        kind, result = _density(values, grid)
        if kind == "kde":
            axes.plot(grid, result, color=color, linewidth=2, label=label)
            axes.fill_between(grid, result, color=color, alpha=0.15)
        else:
            density, edges = result
            axes.stairs(density, edges, color=color, linewidth=2, fill=False, label=f"{label} [histogram]")
        axes.axvline(values.mean(), color=color, linestyle=":", linewidth=1)
    axes.axvline(0.0, color="gray", linewidth=0.8)
    axes.set_xlim(grid[0], grid[-1])
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)


def logit_gap_panels(
    panels: Sequence[tuple[str, Mapping[str, np.ndarray]]],
    path: str | os.PathLike,
    title: str,
    columns: int = 2,
) -> Path:
    """The paper's Figure 3: one panel of logit-gap densities per model, all on one shared x-axis.

    The per-model figures (`logit_gap_densities`) each fit their own x range, so tiled side by side
    they could not be compared: a gap of 2 sat where another panel drew 8. Here every panel draws
    on the same grid and x-axis (its y-axis stays its own: a model whose gaps are concentrated has
    a taller density).

    Args:
        panels: (panel title, {series name: 1-D gap values}) per model, drawn row by row.
        path: Output `.png` path (a PNG alone, as the montage it replaces).
        title: Figure title.
        columns: Panels per row.

    Returns:
        The written PNG path.

    Raises:
        ValueError: If there is no panel, or a panel has no series or a series no finite value.
    """
    figure = _gap_panels_figure(panels, title, columns)
    target = artifacts.path(path).with_suffix(".png")
    target.parent.mkdir(parents=True, exist_ok=True)
    _write(figure, target, _DPI)
    return target


def _gap_panels_figure(
    panels: Sequence[tuple[str, Mapping[str, np.ndarray]]], title: str, columns: int = 2
) -> Figure:
    if not panels:
        raise ValueError("logit_gap_panels needs at least one panel")
    series = [_finite_series(gaps) for _, gaps in panels]
    grid = _gap_grid(series)
    columns = max(1, min(columns, len(panels)))
    rows = -(-len(panels) // columns)
    figure = new_figure((5.2 * columns, 3.6 * rows + 0.4))
    axes = figure.subplots(rows, columns, sharex=True, squeeze=False)
    for index, ((label, _), values) in enumerate(zip(panels, series)):
        panel = axes.flat[index]
        _draw_gap_densities(panel, values, grid)
        panel.set_title(label)
        panel.legend(loc="best", fontsize="small")
    for column in range(columns):  # the lowest panel of each column carries the x-axis' labels
        filled = [r for r in range(rows) if r * columns + column < len(panels)]
        for row in range(rows):
            if row not in filled:
                axes[row][column].remove()
        axes[filled[-1]][column].xaxis.set_tick_params(labelbottom=True)
        axes[filled[-1]][column].set_xlabel(_GAP_LABEL)
    for row in range(rows):
        axes[row][0].set_ylabel("density")
    figure.suptitle(title)
    return figure


def save_series(series: Mapping[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Writes named 1-D float arrays as an .npz (a figure's data, so that a later figure can redraw it)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(values, dtype=np.float32) for name, values in series.items()})
    target = artifacts.path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    artifacts.atomic_write_bytes(target, buffer.getvalue())
    return target


def load_series(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays `save_series` wrote, in their order."""
    with np.load(io.BytesIO(artifacts.read_bytes(path)), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


# ---------------------------------------------------------------------------
# Pre-logit projections (Figure 4 / 8 / 9; Mueller et al. 2019)
# ---------------------------------------------------------------------------


def projection_basis(templates: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the plane through three class templates.

    Gram-Schmidt on u = w_b - w_a and v = w_c - w_a: e1 = u / |u|,
    e2 = (v - (v.e1) e1) / |v - (v.e1) e1|.

    Args:
        templates: Shape (3, D): the final dense layer's weight vectors w_a, w_b, w_c
            of the three chosen classes (columns of a Keras Dense kernel, transposed).

    Returns:
        Array (2, D), rows e1 and e2, with B B^T = I and span = span(w_b - w_a, w_c - w_a).

    Raises:
        ValueError: If `templates` is not (3, D) with D >= 2, or the three templates are
            (numerically) collinear, so they do not define a plane.
    """
    templates = np.asarray(templates, dtype=np.float64)
    if templates.ndim != 2 or templates.shape[0] != 3 or templates.shape[1] < 2:
        raise ValueError(f"templates must have shape (3, D) with D >= 2, got {templates.shape}")
    if not np.all(np.isfinite(templates)):
        raise ValueError("templates must be finite")
    u = templates[1] - templates[0]
    v = templates[2] - templates[0]
    scale = max(np.linalg.norm(u), np.linalg.norm(v))
    if scale == 0.0 or np.linalg.norm(u) <= _COLLINEAR_RTOL * scale:
        raise ValueError("templates are collinear (two coincide): they do not span a plane")
    e1 = u / np.linalg.norm(u)
    residual = v - (v @ e1) * e1
    if np.linalg.norm(residual) <= _COLLINEAR_RTOL * scale:
        raise ValueError("templates are collinear: w_c - w_a is parallel to w_b - w_a")
    e2 = residual / np.linalg.norm(residual)
    e2 = e2 - (e2 @ e1) * e1  # second Gram-Schmidt pass for numerical orthogonality
    e2 /= np.linalg.norm(e2)
    return np.stack([e1, e2])


def project_pre_logits(features: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Projects penultimate-layer activations onto the plane of three class templates.

    Follows Mueller et al. (2019): coordinates = features @ B^T, B = projection_basis(templates).
    These are coordinates in the plane's directions with the origin at the projection of
    the zero vector; measuring from w_a instead ((features - w_a) @ B^T) would translate
    every point by the same constant and change nothing in the figure.

    Args:
        features: Shape (N, D), penultimate-layer activations (inputs of the final dense layer).
        templates: Shape (3, D), see `projection_basis`.

    Returns:
        Shape (N, 2) plane coordinates.

    Raises:
        ValueError: On mismatched shapes or collinear templates.
    """
    features = np.asarray(features, dtype=np.float64)
    basis = projection_basis(templates)
    if features.ndim != 2 or features.shape[1] != basis.shape[1]:
        raise ValueError(f"features must have shape (N, {basis.shape[1]}), got {features.shape}")
    return features @ basis.T


def pre_logit_projection(
    points: np.ndarray,
    classes: np.ndarray,
    is_mislabelled: np.ndarray,
    class_names: Sequence[str] | Mapping[int, str],
    path: str | os.PathLike,
    title: str,
) -> list[Path]:
    """Scatter of projected activations coloured by class, mislabelled examples in black.

    Args:
        points: Shape (N, 2), e.g. from `project_pre_logits`.
        classes: Shape (N,) integer class of each example (the clean label in the paper's plots).
        is_mislabelled: Shape (N,) bool; True where the training label was corrupted.
            These points are drawn black, on top.
        class_names: Name of each class id: a mapping, or a sequence indexed by class id.
        path: Output stem or `.png` path.
        title: Figure title.

    Returns:
        The written PNG and SVG paths.

    Raises:
        ValueError: On mismatched shapes or a class without a name.
    """
    points = np.asarray(points, dtype=np.float64)
    classes = np.asarray(classes)
    is_mislabelled = np.asarray(is_mislabelled, dtype=bool)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] == 0:
        raise ValueError(f"points must have shape (N, 2) with N >= 1, got {points.shape}")
    if classes.shape != (len(points),) or is_mislabelled.shape != (len(points),):
        raise ValueError(
            f"classes {classes.shape} and is_mislabelled {is_mislabelled.shape} "
            f"must have shape ({len(points)},)"
        )
    names = {}
    for class_id in np.unique(classes):
        try:
            names[int(class_id)] = str(class_names[int(class_id)])
        except (KeyError, IndexError):
            raise ValueError(f"class_names has no name for class {int(class_id)}") from None

    figure = new_figure((6.4, 6.0))
    axes = figure.subplots()
    size = 12 if len(points) <= 2000 else 4
    for index, (class_id, name) in enumerate(names.items()):
        chosen = (classes == class_id) & ~is_mislabelled
        axes.scatter(
            points[chosen, 0],
            points[chosen, 1],
            s=size,
            color=f"C{index % 10}",
            alpha=0.6,
            linewidths=0,
            label=f"{name} (n={int(chosen.sum())})",
        )
    if is_mislabelled.any():
        axes.scatter(
            points[is_mislabelled, 0],
            points[is_mislabelled, 1],
            s=size * 1.5,
            color="black",
            alpha=0.8,
            linewidths=0,
            label=f"mislabelled (n={int(is_mislabelled.sum())})",
        )
    axes.set_aspect("equal", adjustable="datalim")
    axes.set_xlabel("coordinate along basis vector 1")
    axes.set_ylabel("coordinate along basis vector 2")
    axes.set_title(title)
    axes.legend(loc="best", markerscale=2)
    axes.grid(alpha=0.3)
    return save(figure, path)


# ---------------------------------------------------------------------------
# Accuracy against alpha (Figure 2, Figure 6)
# ---------------------------------------------------------------------------


def _plot_series_vs_alpha(axes: Any, series: Mapping[str, Mapping[str, Sequence[float]]]) -> None:
    if not series:
        raise ValueError("series must name at least one method")
    marked = False
    for index, (name, values) in enumerate(series.items()):
        if "alpha" not in values or "mean" not in values:
            raise ValueError(f"series {name!r} needs 'alpha' and 'mean' (and optionally 'std')")
        alpha = np.asarray(values["alpha"], dtype=np.float64)
        mean = np.asarray(values["mean"], dtype=np.float64)
        std = np.asarray(values.get("std", np.zeros_like(mean)), dtype=np.float64)
        if alpha.ndim != 1 or alpha.size == 0 or mean.shape != alpha.shape or std.shape != alpha.shape:
            raise ValueError(
                f"series {name!r}: alpha {alpha.shape}, mean {mean.shape}, std {std.shape} must be equal 1-D"
            )
        diverged = np.asarray(values.get("diverged", np.zeros(alpha.shape, bool)), dtype=bool)
        if diverged.shape != alpha.shape:
            raise ValueError(f"series {name!r}: diverged {diverged.shape} must match alpha {alpha.shape}")
        order = np.argsort(alpha)
        alpha, mean, std, diverged = alpha[order], mean[order], std[order], diverged[order]
        color = f"C{index % 10}"
        # A cell with a diverged run is not a mean (the tables say "diverged"): no point, no band, only
        # a cross on the axis, so that it neither joins the line nor stretches the y-axis.
        shown = np.where(diverged, np.nan, mean)
        axes.plot(alpha, shown, marker="o", color=color, linewidth=2, label=name)
        axes.fill_between(alpha, shown - std, shown + std, where=~diverged, color=color, alpha=0.2)
        if diverged.any():
            axes.plot(
                alpha[diverged], np.full(int(diverged.sum()), 0.03), linestyle="none", marker="X", markersize=10,
                color=color, transform=axes.get_xaxis_transform(), clip_on=False,
                label=None if marked else "diverged (not averaged)",
            )  # fmt: skip
            marked = True


def _plot_baseline(axes: Any, baseline: tuple[float, float] | None, label: str) -> None:
    if baseline is None:
        return
    mean, std = (float(x) for x in baseline)
    axes.axhline(mean, color="black", linestyle="--", linewidth=1.5, label=f"{label} {mean:.2f} ± {std:.2f}")
    axes.axhspan(mean - std, mean + std, color="black", alpha=0.1)


def _versus_alpha(
    series, baseline, baseline_label: str, xlabel: str, ylabel: str, title: str, path
) -> list[Path]:
    """One line (± std band) per series against alpha, with an optional dashed baseline."""
    figure = new_figure()
    axes = figure.subplots()
    _plot_series_vs_alpha(axes, series)
    _plot_baseline(axes, baseline, baseline_label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(loc="best")
    axes.grid(alpha=0.3)
    return save(figure, path)


def accuracy_vs_alpha(
    series: Mapping[str, Mapping[str, Sequence[float]]],
    baseline: tuple[float, float] | None,
    path: str | os.PathLike,
    title: str,
    ylabel: str = "test accuracy (%)",
) -> list[Path]:
    """Figure 2: mean accuracy (± std band) against alpha, one line per method.

    Args:
        series: Method name (e.g. "LS", "FC", "BC") -> {"alpha": [...], "mean": [...],
            "std": [...], "diverged": [...]} with equal lengths; "std" and "diverged" may be
            omitted. A diverged point is drawn as a cross at the bottom of the axes, outside
            the line and the y-range, as the tables show it as "diverged" and not as a mean.
        baseline: (mean, std) of the plain cross-entropy baseline, drawn as a dashed
            horizontal line with its std band; None to omit.
        path: Output stem or `.png` path.
        title: Figure title.
        ylabel: y-axis label.

    Returns:
        The written PNG and SVG paths.

    Raises:
        ValueError: If `series` is empty or a series' arrays disagree in length.
    """
    return _versus_alpha(
        series, baseline, "baseline (CE)", r"smoothing parameter $\alpha$", ylabel, title, path
    )


def student_vs_teacher_alpha(
    series: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | os.PathLike,
    title: str,
    baseline: tuple[float, float] | None = None,
) -> list[Path]:
    """Figure 6 analogue: distilled student accuracy (± std band) against the teacher's alpha.

    Args:
        series: Series name (e.g. "LS teacher", "FC teacher") -> {"alpha": teacher alphas,
            "mean": student accuracies, "std": their standard deviations}; "std" optional.
        path: Output stem or `.png` path.
        title: Figure title.
        baseline: Optional (mean, std) reference, e.g. the student trained without a
            teacher, drawn as a dashed horizontal line with its std band.

    Returns:
        The written PNG and SVG paths.

    Raises:
        ValueError: If `series` is empty or a series' arrays disagree in length.
    """
    xlabel = r"teacher's smoothing parameter $\alpha$"
    return _versus_alpha(series, baseline, "reference", xlabel, "student test accuracy (%)", title, path)


# ---------------------------------------------------------------------------
# Montage of per-model figures (the paper's multi-panel Figures 3 and 4)
# ---------------------------------------------------------------------------


# Learning-curve panels: (curve key, y label); the last panel also draws `noisy_part_fit_true` dashed.
CURVE_PANELS = (
    ("test_accuracy", "test accuracy (%)"),
    ("test_ece", "test ECE"),
    ("validation_accuracy_noisy", "validation accuracy, noisy labels (%)"),
    ("noisy_part_fit_noisy", "mislabelled train examples fit (%)"),
)


def learning_curves(
    series: Mapping[str, Mapping[str, Sequence[float]]], path: str | os.PathLike, title: str
) -> list[Path]:
    """Per-epoch curves against the training step, one line (± std band over seeds) per model.

    Args:
        series: Model name (e.g. "CE", "LS α=0.1") -> {"step": [...], "<key>": mean [...], "<key>_std": [...]}
            for the keys of `CURVE_PANELS` (and "noisy_part_fit_true"); a missing key leaves its panel empty.
        path: Output stem or `.png` path.
        title: Figure title.

    Returns:
        The written PNG and SVG paths.

    Raises:
        ValueError: If `series` is empty or a series has no "step".
    """
    if not series:
        raise ValueError("series must name at least one model")
    figure = new_figure(figsize=(11.0, 7.5))
    panels = figure.subplots(2, 2, sharex=True).ravel()
    for index, (name, values) in enumerate(series.items()):
        if "step" not in values:
            raise ValueError(f"series {name!r} needs 'step'")
        step = np.asarray(values["step"], dtype=np.float64)
        color = f"C{index % 10}"
        for axes, (key, _) in zip(panels, CURVE_PANELS):
            drawn = [(key, "-", name)]
            if key == "noisy_part_fit_noisy":
                drawn.append(("noisy_part_fit_true", "--", None))
            for curve, style, label in drawn:
                if curve not in values:
                    continue
                mean = np.asarray(values[curve], dtype=np.float64)
                std = np.asarray(values.get(f"{curve}_std", np.zeros_like(mean)), dtype=np.float64)
                axes.plot(step, mean, style, color=color, linewidth=2, label=label)
                axes.fill_between(step, mean - std, mean + std, color=color, alpha=0.15)
    for axes, (_, ylabel) in zip(panels, CURVE_PANELS):
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
    panels[3].set_title("solid: predicts the noisy label; dashed: the true label", fontsize=9)
    for axes in panels[2:]:
        axes.set_xlabel("training step")
    panels[0].legend(loc="best", fontsize=8)
    figure.suptitle(title)
    return save(figure, path)


def montage(
    panels: Sequence[tuple[str | os.PathLike, str]],
    path: str | os.PathLike,
    title: str,
    columns: int = 2,
    panel_inches: float = 4.0,
) -> Path:
    """Tiles existing PNG figures into one PNG, each panel with its own title.

    Args:
        panels: (PNG path, panel title) pairs, drawn row by row.
        path: Output `.png` path (a raster montage has no useful SVG form).
        title: Figure title.
        columns: Panels per row.
        panel_inches: Width of one panel in inches; heights follow the images' aspect.

    Returns:
        The written PNG path.

    Raises:
        ValueError: If `panels` is empty or a panel's file is missing.
    """
    import matplotlib.image

    if not panels:
        raise ValueError("montage needs at least one panel")
    images = []
    for source, label in panels:
        if not artifacts.path(source).is_file():
            raise ValueError(f"montage panel {source} does not exist")
        images.append(
            (matplotlib.image.imread(io.BytesIO(artifacts.read_bytes(source)), format="png"), label)
        )
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    aspect = max(image.shape[0] / image.shape[1] for image, _ in images)
    figure = new_figure((panel_inches * columns, panel_inches * aspect * rows + 0.5))
    figure.suptitle(title)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat:
        axes.set_axis_off()
    for axes, (image, label) in zip(grid.flat, images):
        axes.imshow(image, interpolation="lanczos")
        axes.set_title(label, fontsize=10)
    target = artifacts.path(path).with_suffix(".png")
    target.parent.mkdir(parents=True, exist_ok=True)
    _write(figure, target, _DPI)
    return target
