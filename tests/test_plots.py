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
