"""Tests for label_smearing.core.plots: projection geometry and that each figure is a real image."""

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from label_smearing.core import plots
from label_smearing.modeling.metrics import reliability_bins


def _assert_real_figure(paths: list[Path], *texts: str) -> None:
    """The PNG is a sizeable, non-blank image and the SVG beside it holds the given texts."""
    png, svg = paths
    assert png.suffix == ".png" and svg.suffix == ".svg" and png.with_suffix("") == svg.with_suffix("")
    assert png.stat().st_size > 10_000
    image = matplotlib.image.imread(png)
    assert image.shape[1] >= 400 and image.shape[0] >= 300
    rgb = image[..., :3]
    assert rgb.std() > 0.05
    assert len(np.unique((rgb * 255).round().reshape(-1, 3), axis=0)) > 2
    svg_text = svg.read_text()
    assert "<svg" in svg_text
    for text in texts:  # matplotlib writes each text element as a comment in the SVG
        assert text in svg_text, text


def _random_templates(seed: int, dim: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(3, dim))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_basis_is_orthonormal_and_spans_template_plane(seed):
    templates = _random_templates(seed)
    basis = plots.projection_basis(templates)
    assert basis.shape == (2, 64)
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-12)
    for difference in (templates[1] - templates[0], templates[2] - templates[0]):
        residual = difference - basis.T @ (basis @ difference)
        assert np.linalg.norm(residual) < 1e-10 * np.linalg.norm(difference)


def test_projected_templates_keep_their_pairwise_distances():
    # The template differences lie in the plane, so projecting preserves distances between templates.
    templates = _random_templates(3)
    projected = plots.project_pre_logits(templates, templates)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert np.linalg.norm(projected[i] - projected[j]) == pytest.approx(
            np.linalg.norm(templates[i] - templates[j]), rel=1e-10
        )
    # An activation orthogonal to the plane projects to the origin.
    basis = plots.projection_basis(templates)
    orthogonal = np.random.default_rng(4).normal(size=64)
    orthogonal -= basis.T @ (basis @ orthogonal)
    np.testing.assert_allclose(plots.project_pre_logits(orthogonal[None], templates), 0.0, atol=1e-10)


def test_collinear_or_badly_shaped_templates_raise():
    w_a, w_b = _random_templates(5)[:2]
    with pytest.raises(ValueError, match="collinear"):
        plots.projection_basis(np.stack([w_a, w_b, w_a + 2.5 * (w_b - w_a)]))
    with pytest.raises(ValueError, match="collinear"):
        plots.projection_basis(np.stack([w_a, w_a, w_b]))
    with pytest.raises(ValueError, match="shape"):
        plots.projection_basis(_random_templates(6)[:2])
    with pytest.raises(ValueError, match="features"):
        plots.project_pre_logits(np.zeros((4, 63)), _random_templates(7))


def test_reliability_diagram(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(2000, 10))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.where(rng.random(2000) < 0.6, probs.argmax(axis=1), rng.integers(0, 10, 2000))
    bins = reliability_bins(probs, labels, num_bins=15)
    paths = plots.reliability_diagram(bins, tmp_path / "nested" / "reliability.png", "CIFAR-100 LS")
    assert paths == [tmp_path / "nested" / "reliability.png", tmp_path / "nested" / "reliability.svg"]
    _assert_real_figure(paths, "CIFAR-100 LS", f"ECE = {bins['ece']:.3f}", "perfect calibration")


def test_logit_gap_densities_with_kde_and_histogram_fallback(tmp_path):
    rng = np.random.default_rng(1)
    gaps = {
        "true label": rng.normal(1.0, 1.5, size=500),
        "noisy label": rng.normal(3.0, 1.0, size=500),
        "constant": np.full(20, 2.0),  # one distinct value: histogram fallback
    }
    paths = plots.logit_gap_densities(gaps, tmp_path / "gaps", "mislabelled examples")
    _assert_real_figure(paths, "mislabelled examples", "true label", "noisy label", "[histogram]", "density")
    with pytest.raises(ValueError, match="no finite"):
        plots.logit_gap_densities({"empty": np.array([])}, tmp_path / "bad", "t")


def test_pre_logit_projection(tmp_path):
    rng = np.random.default_rng(2)
    templates = rng.normal(size=(3, 64)) * 3
    classes = rng.integers(0, 3, size=600)
    features = templates[classes] + rng.normal(size=(600, 64))
    points = plots.project_pre_logits(features, templates)
    is_mislabelled = rng.random(600) < 0.2
    names = ["airplane", "automobile", "bird"]
    paths = plots.pre_logit_projection(
        points, classes, is_mislabelled, names, tmp_path / "prelogits", "LS 0.1"
    )
    _assert_real_figure(paths, "LS 0.1", "airplane", "bird", "mislabelled")
    with pytest.raises(ValueError, match="no name for class 2"):
        plots.pre_logit_projection(points, classes, is_mislabelled, names[:2], tmp_path / "bad", "t")


def test_accuracy_vs_alpha(tmp_path):
    alpha = [0.0, 0.1, 0.2, 0.4]
    series = {
        "LS": {"alpha": alpha, "mean": [57.1, 60.7, 60.2, 58.0], "std": [0.4, 0.3, 0.5, 0.6]},
        "FC": {"alpha": alpha, "mean": [57.1, 61.3, 60.9, 59.5], "std": [0.4, 0.4, 0.3, 0.5]},
        "BC": {"alpha": alpha, "mean": [57.1, 53.9, 52.0, 48.0], "std": [0.4, 0.4, 0.8, 1.0]},
    }
    paths = plots.accuracy_vs_alpha(series, (57.06, 0.38), tmp_path / "fig2", "CIFAR-100 ResNet-32")
    _assert_real_figure(paths, "CIFAR-100 ResNet-32", "LS", "BC", "baseline (CE) 57.06", "test accuracy (%)")
    with pytest.raises(ValueError, match="'LS'"):
        plots.accuracy_vs_alpha({"LS": {"alpha": alpha, "mean": [1.0]}}, None, tmp_path / "bad", "t")


def test_a_diverged_point_is_marked_and_does_not_stretch_the_y_axis():
    figure = plots.new_figure()
    axes = figure.subplots()
    series = {
        "LS": {"alpha": [0, 0.1, 0.4], "mean": [79.6, 80.9, 80.2], "std": [1.1, 0.9, 0.8]},
        "BC": {"alpha": [0, 0.1, 0.4], "mean": [79.6, 78.1, 29.9], "std": [1.1, 1.2, 17.2],
               "diverged": [False, False, True]},
    }  # fmt: skip
    plots._plot_series_vs_alpha(axes, series)
    low, high = axes.get_ylim()
    assert 75 < low < 78 and 81 < high < 84  # BC's 29.9 ± 17.2 would have put the bottom near 12
    labels = [line.get_label() for line in axes.get_lines()]
    assert labels.count("diverged (not averaged)") == 1
    (cross,) = [line for line in axes.get_lines() if line.get_label() == "diverged (not averaged)"]
    assert list(cross.get_xdata()) == [0.4]
    with pytest.raises(ValueError, match="diverged"):
        plots._plot_series_vs_alpha(axes, {"X": {"alpha": [0, 1], "mean": [1, 2], "diverged": [True]}})


def test_student_vs_teacher_alpha(tmp_path):
    series = {
        "LS teacher": {"alpha": [0.0, 0.1, 0.2, 0.3], "mean": [64.0, 64.5, 64.1, 63.5], "std": [0.3] * 4},
        "FC teacher": {"alpha": [0.0, 0.1, 0.2, 0.3], "mean": [64.0, 66.6, 66.0, 65.2], "std": [0.2] * 4},
    }
    paths = plots.student_vs_teacher_alpha(series, tmp_path / "fig6.png", "distillation, CIFAR-100")
    _assert_real_figure(paths, "distillation, CIFAR-100", "LS teacher", "FC teacher", "student test accuracy")


def test_montage_tiles_panels_and_rejects_missing_ones(tmp_path):
    tiny = Path(__file__).parent / "fixtures" / "report" / "tiny.png"
    out = plots.montage([(tiny, "a"), (tiny, "b"), (tiny, "c")], tmp_path / "m.png", "title", columns=3)
    assert out == tmp_path / "m.png"
    image = matplotlib.image.imread(out)
    assert image.shape[1] > 2 * image.shape[0]  # one row of three panels
    with pytest.raises(ValueError, match="does not exist"):
        plots.montage([(tmp_path / "nope.png", "x")], tmp_path / "n.png", "t")
    with pytest.raises(ValueError, match="at least one panel"):
        plots.montage([], tmp_path / "n.png", "t")
    assert not (tmp_path / "n.png").exists()


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("scale", [0.5, 4.0])  # underconfident (bars fill the upper left) and overconfident
def test_the_reliability_legend_covers_neither_panel(scale):
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=scale, size=(3000, 10))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.where(rng.random(3000) < 0.7, probs.argmax(axis=1), rng.integers(0, 10, 3000))
    bins = reliability_bins(probs, labels, num_bins=15)
    edges, counts = np.asarray(bins["edges"]), np.asarray(bins["counts"], float)
    figure = plots._reliability_figure(
        edges, counts, np.asarray(bins["accuracy"]), np.asarray(bins["confidence"]), bins["ece"], "t"
    )
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)  # lays the figure out, as saving does
    (legend,) = figure.legends
    box = legend.get_window_extent(renderer)
    top, bottom = figure.axes
    assert not top.get_legend() and not bottom.get_legend()
    for axes in (top, bottom):
        assert not _overlaps(box, axes.get_window_extent(renderer))
    assert not _overlaps(box, figure._suptitle.get_window_extent(renderer))
    assert len(legend.get_texts()) == 5  # calibration, bars, gap, mean accuracy, mean confidence


def test_figure3_panels_share_one_x_axis(tmp_path):
    rng = np.random.default_rng(2)
    panels = [
        ("CE", {"true label": rng.normal(2.0, 1.5, 300), "noisy label": rng.normal(7.5, 1.5, 300)}),
        ("LS α = 0.4", {"true label": rng.normal(0.5, 0.4, 300), "noisy label": rng.normal(2.0, 0.4, 300)}),
        ("FC α = 0.4", {"true label": rng.normal(6.0, 4.0, 300), "noisy label": rng.normal(-2.0, 3.0, 300)}),
    ]
    figure = plots._gap_panels_figure(panels, "Figure 3", columns=2)
    drawn = [axes for axes in figure.axes if axes.get_title()]
    assert [axes.get_title() for axes in drawn] == ["CE", "LS α = 0.4", "FC α = 0.4"]
    limits = {axes.get_xlim() for axes in drawn}
    assert len(limits) == 1  # one x range for every model ...
    (low, high) = limits.pop()
    assert low < -2.0 - 3 * 3.0 + 4 and high > 6.0 + 2 * 4.0  # ... spanning every model's gaps
    assert all(drawn[0].get_shared_x_axes().joined(drawn[0], axes) for axes in drawn[1:])
    assert len(figure.axes) == 3  # the empty fourth slot is removed
    assert drawn[1].xaxis.get_tick_params()["labelbottom"]  # the panel above it labels its x-axis

    out = plots.logit_gap_panels(panels, tmp_path / "figure3.png", "Figure 3")
    assert out == tmp_path / "figure3.png" and not (tmp_path / "figure3.svg").exists()
    image = matplotlib.image.imread(out)
    assert image.shape[1] > image.shape[0]  # two columns, two rows
    with pytest.raises(ValueError, match="at least one panel"):
        plots.logit_gap_panels([], tmp_path / "n.png", "t")


def test_series_round_trip_for_a_later_figure(tmp_path):
    series = {"true label": np.array([0.5, 1.5, 2.5]), "noisy label": np.array([3.0, -1.0])}
    path = plots.save_series(series, tmp_path / "plots" / "gaps.npz")
    loaded = plots.load_series(path)
    assert list(loaded) == ["true label", "noisy label"]
    for name in series:
        np.testing.assert_allclose(loaded[name], series[name])
