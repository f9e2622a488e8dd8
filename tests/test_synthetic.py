"""Tests for `smear synthetic`: Figure 1's loss shapes, Figure 5's separators, Theorem 1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from label_smearing import cli
from label_smearing.core import artifacts
from label_smearing.core.config import load_config
from label_smearing.experiments import synthetic

CONFIG = str(Path(__file__).resolve().parents[1] / "label_smearing" / "configs" / "synthetic.py")
EXPECTED_FILES = {
    *(f"figure1_{m}.{ext}" for m in ("ls", "bc", "fc") for ext in ("png", "svg")),
    *(f"figure5_{k}.{ext}" for k in ("ls", "l2") for ext in ("png", "svg")),
    "figure1.json",
    "figure5_table.json",
    "figure5_table.md",
    "theorem1.json",
    "summary.md",
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, Path]:
    """(workdir, artifact directory) of one `smear synthetic` run of the smoke config."""
    workdir = tmp_path_factory.mktemp("synthetic")
    assert cli.main(["synthetic", "--config", f"{CONFIG}:smoke", "--workdir", str(workdir)]) == 0
    [out] = list((workdir / "synthetic").iterdir())
    return workdir, out


@pytest.fixture(scope="module")
def figure5_full():
    """Figure 5 on the full config's data and grids (2000 points, 14 fits; a few seconds)."""
    return synthetic.run_figure5(load_config(CONFIG).figure5)


def _rows(result, kind):
    return [r for r in result["rows"] if r["kind"] == kind]


# --- the stage: files, manifest, no silent overwrite -------------------------------------------


@pytest.mark.slow
def test_smoke_run_writes_every_file_and_a_verified_manifest(smoke_run):
    _, out = smoke_run
    manifest = artifacts.read_manifest(out, verify=True)
    assert manifest["stage"] == "synthetic"
    assert set(manifest["files"]) == EXPECTED_FILES
    assert out.name == f"synthetic-{manifest['fingerprint'][:10]}"
    assert all(manifest["theorem1_checks"].values())
    for name in EXPECTED_FILES:
        if name.endswith(".png"):
            image = matplotlib.image.imread(out / name)
            assert image.shape[0] >= 300 and image.shape[1] >= 400, name
            assert image[..., :3].std() > 0.05, f"{name} is blank"
    assert "| LS alpha | noisy |" in (out / "figure5_table.md").read_text()
    summary = (out / "summary.md").read_text()
    for heading in ("## Figure 1", "## Figure 5", "## Theorem 1"):
        assert heading in summary


@pytest.mark.slow
def test_second_run_is_cached_and_force_recomputes(smoke_run, capsys):
    workdir, out = smoke_run
    argv = ["synthetic", "--config", f"{CONFIG}:smoke", "--workdir", str(workdir)]
    created = artifacts.read_manifest(out)["created"]
    capsys.readouterr()
    assert cli.main(argv) == 0  # the lifecycle every stage goes through: reused, not an error
    assert f"cached: {out} is complete" in capsys.readouterr().out
    assert artifacts.read_manifest(out)["created"] == created  # untouched
    assert cli.main([*argv, "--force"]) == 0
    assert set(artifacts.read_manifest(out, verify=True)["files"]) == EXPECTED_FILES


def test_bad_config_value_is_a_user_error(tmp_path, capsys):
    argv = [
        "synthetic",
        "--config",
        f"{CONFIG}:smoke",
        "--workdir",
        str(tmp_path),
        "--config.figure5.scale=-1",
    ]
    assert cli.main(argv) == 2
    assert "figure5.scale" in capsys.readouterr().err
    assert not (tmp_path / "synthetic").exists()


# --- Figure 5 -----------------------------------------------------------------------------------


def test_clean_data_gives_the_bayes_separator(figure5_full):
    [clean] = _rows(figure5_full, "clean")
    assert abs(clean["offset"]) < 0.1  # through the origin, up to sampling
    assert abs(clean["angle_deg"]) < 3.0  # normal along the mean difference
    assert clean["disagreement"] < 0.005
    assert clean["clean_error"] < figure5_full["bayes_error"] * 1.05


def test_noise_draws_the_separator_towards_the_negatives(figure5_full):
    [clean] = _rows(figure5_full, "clean")
    noisy = _rows(figure5_full, "ls")[0]
    assert noisy["parameter"] == 0.0
    assert noisy["offset"] < clean["offset"] - 0.1 < 0
    assert noisy["disagreement"] > 3 * clean["disagreement"]


def test_every_fit_converged(figure5_full):
    fitted = [r for r in figure5_full["rows"] if r["kind"] != "bayes"]
    assert len(fitted) == 1 + 6 + 7
    assert max(r["gradient_norm"] for r in fitted) < 1e-6


@pytest.mark.parametrize("kind", ["ls", "l2"])
def test_separator_returns_to_bayes_as_regularisation_grows(figure5_full, kind):
    rows = _rows(figure5_full, kind)
    parameters = [r["parameter"] for r in rows]
    assert parameters == sorted(parameters) and parameters[0] == 0.0 and len(rows) >= 5
    distance = np.array([r["disagreement"] for r in rows])
    offset = np.array([abs(r["offset"]) for r in rows])
    assert distance[-1] < 0.6 * distance[0]
    assert offset[-1] < 0.6 * offset[0]
    assert np.all(np.diff(distance) <= 1e-6), distance
    assert np.all(np.diff(offset) <= 1e-6), offset
    # Regularisation shrinks the weights.
    assert np.all(np.diff([r["weight_norm"] for r in rows]) < 0)


def test_smoke_table_shows_the_same_ordering(smoke_run):
    _, out = smoke_run
    rows = json.loads((out / "figure5_table.json").read_text())["rows"]
    for kind in ("ls", "l2"):
        distance = [r["disagreement"] for r in rows if r["kind"] == kind]
        assert np.all(np.diff(distance) < 0), (kind, distance)


def test_disagreement_probability_matches_monte_carlo():
    rng = np.random.default_rng(1)
    mean, scale, w, b = np.array([1.0, 1.0]), 0.6, np.array([1.0, 0.4]), 0.3
    n = 400_000
    sign = rng.integers(0, 2, size=n) * 2 - 1
    x = sign[:, None] * mean + scale * rng.normal(size=(n, 2))
    empirical = np.mean(np.sign(x @ w + b) != np.sign(x @ mean))
    exact = synthetic.disagreement_probability(w, b, mean, scale)
    assert abs(exact - empirical) < 4 * math.sqrt(exact * (1 - exact) / n)
    assert synthetic.disagreement_probability(2 * mean, 0.0, mean, scale) == pytest.approx(0.0, abs=1e-9)
    # Parallel separators disagree on the strip between them: |offset| = 0.3 / |w| along w.
    shifted = synthetic.disagreement_probability(mean, 0.3 * math.sqrt(2), mean, scale)
    strip = 0.5 * sum(
        abs(scipy.stats.norm.cdf((c + 0.3) / scale) - scipy.stats.norm.cdf(c / scale))
        for c in (math.sqrt(2), -math.sqrt(2))
    )
    assert shifted == pytest.approx(strip, rel=1e-9)
    geometry = synthetic.separator_geometry(np.array([1.0, 1.0]), -0.5, mean, scale)
    assert geometry["angle_deg"] == pytest.approx(0.0)
    assert geometry["offset"] == pytest.approx(0.5 / math.sqrt(2))  # crosses at +0.354 along mean/|mean|


# --- Figure 1 -----------------------------------------------------------------------------------


def test_figure1_curves_have_the_papers_shapes():
    margins = np.linspace(-20.0, 20.0, 4001)
    curves = synthetic.figure1_curves((0.0, 0.1, 0.3), margins)
    step = margins[1] - margins[0]
    ce = curves["ls"][0.0]
    assert np.all(np.diff(ce) <= 0) and ce[0] == pytest.approx(20.0, abs=1e-3)
    for method in ("ls", "bc", "fc"):
        np.testing.assert_allclose(curves[method][0.0], ce, atol=1e-5)  # alpha = 0 is the logistic loss
    for alpha in (0.1, 0.3):
        ls, bc, fc = curves["ls"][alpha], curves["bc"][alpha], curves["fc"][alpha]
        # LS: a finite positive minimum, at the margin whose sigmoid is the target 1 - alpha/2.
        i = int(np.argmin(ls))
        assert 0 < i < len(margins) - 1 and ls[i] > 0
        assert margins[i] == pytest.approx(math.log((2 - alpha) / alpha), abs=step)
        # BC: negative and still falling for large positive margins.
        assert bc[-1] < 0 and bc[-1] < bc[np.searchsorted(margins, 10.0)]
        # FC: saturates at -log(alpha/2) for large negative margins.
        assert fc[0] == pytest.approx(-math.log(alpha / 2), abs=1e-3)
        assert np.all(fc <= -math.log(alpha / 2) + 1e-5)


# --- Theorem 1 ----------------------------------------------------------------------------------


def test_theorem1_numbers(smoke_run):
    _, out = smoke_run
    result = json.loads((out / "theorem1.json").read_text())
    bound = result["setup"]["L_log_L"]
    assert bound == pytest.approx(3 * math.log(3))
    assert result["a_gradient_at_zero"]["norm"] <= 1e-12
    assert abs(result["a_gradient_at_zero"]["omega_minus_L_log_L"]) < 1e-12
    assert result["b_lower_bound"]["min_omega_minus_L_log_L"] >= -1e-12
    assert result["b_lower_bound"]["num_below_bound"] == 0
    random_start = result["c_gradient_descent"]["random_start"]
    assert random_start["centred_norm_end"] < 1e-6 * random_start["centred_norm_start"]
    assert abs(random_start["omega_end_minus_L_log_L"]) < 1e-10
    assert random_start["mean_row_drift"] < 1e-10  # descent cannot move the mean row ...
    L = result["setup"]["num_classes"]  # noqa: N806 - the paper's symbol
    # ... so it ends at the minimiser 1 mean_row^T, whose norm is sqrt(L) |mean_row|.
    assert random_start["norm_end"] == pytest.approx(
        math.sqrt(L) * random_start["mean_row_norm_start"], rel=1e-6
    )
    centred_start = result["c_gradient_descent"]["centred_start"]
    assert centred_start["norm_start"] > 1 and centred_start["norm_end"] < 1e-6
    assert result["d_ls_identity"]["max_abs_error"] < 1e-5
    assert all(result["checks"].values())


def test_omega_is_minimal_exactly_on_identical_rows():
    rng = np.random.default_rng(0)
    x = tf.constant(0.5 + rng.normal(size=(64, 4)), tf.float64)
    bound = 3 * math.log(3)
    zero = tf.zeros((3, 4), tf.float64)
    identical_rows = tf.constant(np.tile(rng.normal(size=(1, 4)), (3, 1)), tf.float64)
    assert float(synthetic.smoothing_regulariser(zero, x)) == pytest.approx(bound, abs=1e-12)
    assert float(synthetic.smoothing_regulariser(identical_rows, x)) == pytest.approx(bound, abs=1e-12)
    batch = tf.constant(rng.normal(size=(50, 3, 4)), tf.float64)
    values = synthetic.smoothing_regulariser(batch, x).numpy()
    assert values.shape == (50,) and np.all(values > bound + 1e-3)
