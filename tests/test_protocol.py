"""The rigorous protocol's pieces: per-seed noise draws in the plan, learning curves, divergence."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest

from label_smearing.core import curves, tfdata
from label_smearing.core.config import load_config
from label_smearing.modeling.metrics import expected_calibration_error
from label_smearing.pipeline.plan import plan

CONFIG = str(Path(__file__).resolve().parents[1] / "label_smearing" / "configs" / "quickstart.py") + ":smoke"


# ---------------------------------------------------------------- noise draws in the plan
def _plan(tmp_path, *overrides):
    return plan(load_config(CONFIG, ["sweep.seeds=(0, 1)", *overrides]), tmp_path)


def test_each_seed_draws_its_own_noise_and_its_models_read_it(tmp_path):
    nodes = _plan(tmp_path, "noise.seed=5")
    data = [n for n in nodes if n.kind == "noisify"]
    assert [n.config.noise.seed for n in data] == [5, 6]
    assert [n.overrides["noise.seed"] for n in data] == [5, 6]
    assert len({n.fingerprint for n in data}) == 2
    for node in nodes:
        if node.kind in ("train", "export_logits", "evaluate"):
            (source,) = [n for n in node.inputs if n.kind == "noisify"] or [
                next(n for n in node.input_of("train").inputs if n.kind == "noisify")
            ]
            assert source.config.noise.seed == 5 + node.spec.seed, node.label
            # The standalone command reads the same data: it names the noise seed.
            assert f"--config.noise.seed={5 + node.spec.seed}" in node.command(CONFIG, tmp_path), node.label


def test_one_noise_draw_for_every_seed_when_redraw_is_off(tmp_path):
    nodes = _plan(tmp_path, "sweep.redraw_noise=false")
    data = [n for n in nodes if n.kind == "noisify"]
    assert len(data) == 1 and "noise.seed" not in data[0].overrides
    trains = [n for n in nodes if n.kind == "train"]
    assert {n.spec.seed for n in trains} == {0, 1}
    assert all(n.input_of("noisify") is data[0] for n in trains if n.spec.role == "teacher")


# ---------------------------------------------------------------- divergence
@pytest.mark.parametrize(
    "loss, logit, validation, best, expected",
    [
        (0.5, 10.0, None, None, ""),
        (-0.01, 10.0, None, None, ""),  # a negative training risk is not divergence
        (-1e6, 10.0, 70.0, 72.0, ""),
        (math.nan, None, None, None, "the training loss is nan"),
        (math.inf, None, None, None, "the training loss is inf"),
        (0.5, 1e4, None, None, "past train.divergence_logit_limit"),
        (0.5, math.nan, None, None, "past train.divergence_logit_limit"),
        (0.5, 10.0, 36.0, 74.0, "fell to 36.0%, below 0.5 of its best earlier epoch's (74.0%)"),
        (0.5, 10.0, 38.0, 74.0, ""),
        (0.5, 10.0, 10.0, None, ""),  # the first epoch has no best to fall from
        (None, None, None, None, ""),
    ],
)
def test_divergence_rule(loss, logit, validation, best, expected):
    reason = curves.divergence(loss, logit, 1000.0, validation, best)
    assert (expected in reason) if expected else reason == ""


def test_first_divergence_reads_a_history_resumed_or_not():
    epochs = [
        {
            "epoch": 1,
            "step": 10,
            "loss": 1.0,
            "curve_max_abs_logit": 5.0,
            "curve_validation_accuracy_noisy": 60.0,
        },
        {
            "epoch": 2,
            "step": 20,
            "loss": -0.2,
            "curve_max_abs_logit": 50.0,
            "curve_validation_accuracy_noisy": 70.0,
        },
        {
            "epoch": 3,
            "step": 30,
            "loss": -0.5,
            "curve_max_abs_logit": 60.0,
            "curve_validation_accuracy_noisy": 34.0,
        },
        {"epoch": 4, "step": 40, "loss": 1.0, "curve_max_abs_logit": 5e6},
    ]
    found = curves.first_divergence(epochs, 1000.0)
    assert found["step"] == 30 and found["epoch"] == 3 and "below 0.5 of its best" in found["reason"]
    assert curves.first_divergence(epochs[:2], 1000.0) is None  # a negative risk alone is not divergence
    assert curves.first_negative_risk(epochs) == 20
    assert curves.first_negative_risk(epochs[:1]) is None
    logit = curves.first_divergence([epochs[0], epochs[3]], 1000.0)
    assert logit["step"] == 40 and "past train.divergence_logit_limit" in logit["reason"]
    assert curves.curves_of(epochs)[3] == {"epoch": 4, "step": 40, "max_abs_logit": 5e6}


def test_backward_correction_is_negative_smoothing_and_gets_the_same_verdict():
    """BC with T_alpha is LS with alpha' = -alpha / (1 - alpha): the same loss, so the same divergence
    verdict and the same negative-risk annotation from the same history."""
    from label_smearing.modeling import losses
    from label_smearing.modeling.noise import smoothing_matrix

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (64, 10)).astype("float32")
    labels = rng.integers(0, 10, 64)
    for alpha in (0.1, 0.2, 0.4):
        bc = losses.backward_corrected_cross_entropy(labels, logits, smoothing_matrix(10, alpha))
        nls = losses.label_smoothing_cross_entropy(labels, logits, -alpha / (1 - alpha))
        np.testing.assert_allclose(np.asarray(bc), np.asarray(nls), rtol=1e-5, atol=1e-5)
        # As the sweep builds them (LOSSES), mean over the batch: the same training objective.
        built_bc, built_nls = (
            losses.LOSSES["bc"].build(10, alpha),
            losses.LOSSES["ls"].build(10, -alpha / (1 - alpha)),
        )
        assert float(built_bc(labels, logits)) == pytest.approx(float(built_nls(labels, logits)), abs=1e-5)
    # The verdicts are a function of the history alone: no loss name enters them.
    history = [
        {
            "epoch": 1,
            "step": 100,
            "loss": 0.8,
            "curve_max_abs_logit": 9.0,
            "curve_validation_accuracy_noisy": 70.0,
        },
        {
            "epoch": 2,
            "step": 200,
            "loss": -0.3,
            "curve_max_abs_logit": 14.0,
            "curve_validation_accuracy_noisy": 74.0,
        },
    ]
    assert curves.first_divergence(history, 1000.0) is None
    assert curves.first_negative_risk(history) == 200


# ---------------------------------------------------------------- learning curves
def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_learning_curves_measure_fixed_subsamples_as_numpy_does(make_data_artifact, tmp_path):
    data = make_data_artifact(tmp_path, num_train=96, num_test=40, num_validation=30, noise_rate=0.4)
    manifest = tfdata.read_data_manifest(data)
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    callback = curves.LearningCurves(
        network,
        data,
        manifest,
        num_examples=25,
        num_bins=5,
        batch_size=8,
        logit_limit=1000.0,
        log=lambda _: None,
    )
    got = callback.measure()

    def split(name):
        ds = tfdata.make_dataset(
            data, name, batch_size=1000, training=False, num_classes=10, include_metadata=True
        )
        batch = next(iter(ds))
        logits = network(batch["image"]).numpy().astype(np.float64)
        return logits, batch["label"].numpy(), batch["clean_label"].numpy(), batch["is_noisy"].numpy()

    logits, _, clean, _ = split("test")
    logits, clean = logits[:25], clean[:25]
    assert got["test_accuracy"] == pytest.approx(100 * np.mean(logits.argmax(1) == clean))
    assert got["test_ece"] == pytest.approx(expected_calibration_error(_softmax(logits), clean, 5), abs=1e-6)
    logits_v, label_v, clean_v, _ = split("validation")
    assert got["validation_accuracy_noisy"] == pytest.approx(
        100 * np.mean(logits_v[:25].argmax(1) == label_v[:25])
    )
    assert got["validation_accuracy_clean"] == pytest.approx(
        100 * np.mean(logits_v[:25].argmax(1) == clean_v[:25])
    )
    logits_t, label_t, clean_t, noisy_t = split("train")
    mislabelled = np.flatnonzero(noisy_t)[:25]
    predicted = logits_t[mislabelled].argmax(1)
    assert got["noisy_part_fit_noisy"] == pytest.approx(100 * np.mean(predicted == label_t[mislabelled]))
    assert got["noisy_part_fit_true"] == pytest.approx(100 * np.mean(predicted == clean_t[mislabelled]))
    assert got["max_abs_logit"] == pytest.approx(
        max(np.abs(logits).max(), np.abs(logits_v[:25]).max(), np.abs(logits_t[mislabelled]).max()), rel=1e-5
    )
    # The same subsamples every epoch: unchanged weights give the same numbers.
    assert callback.measure() == got
    assert (
        curves.LearningCurves(
            network, data, manifest, num_examples=0, num_bins=5, batch_size=8, logit_limit=1.0
        ).measure()
        == {}
    )


# ---------------------------------------------------------------- wired through train and evaluate
@pytest.mark.slow
def test_a_run_past_the_logit_limit_is_recorded_as_diverged_from_training_to_metrics(
    make_data_artifact, tmp_path
):
    from label_smearing.core.spec import ModelSpec
    from label_smearing.stages import evaluate, train

    data = make_data_artifact(tmp_path, num_train=64, num_test=32, num_validation=16)
    config = load_config(
        CONFIG,
        ["train.steps=4", "train.steps_per_epoch=2", "train.batch_size=16", "train.shuffle_buffer=64",
         "train.curve_examples=16", "train.divergence_logit_limit=1e-6"],
    )  # fmt: skip
    lines = []
    manifest = train.train_stage(config, data, tmp_path / "model", log=lines.append)
    import json

    history = json.loads((tmp_path / "model" / "history.json").read_text())
    assert manifest["diverged"] == history["diverged"] and history["diverged"]["step"] == 2
    assert "past train.divergence_logit_limit" in history["diverged"]["reason"]
    assert sum(line.startswith("train: diverged at step 2") for line in lines) == 1  # once, not every epoch
    assert any(line.startswith("train: this run diverged at step 2") for line in lines)  # and in the summary
    # Every epoch carries the curves, which the evaluation passes on with the divergence.
    assert all(
        "curve_test_accuracy" in e and "curve_validation_accuracy_noisy" in e for e in history["epochs"]
    )
    evaluate.evaluate_stage(
        config, tmp_path / "model", data, tmp_path / "eval", description=ModelSpec.from_config(config).describe(),
        log=lambda _: None,
    )  # fmt: skip
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["training"]["diverged"]["step"] == 2
    assert [p["step"] for p in metrics["training"]["curves"]] == [2, 4]
    assert set(metrics["validation"]) == {"num_examples", "noise_rate", "accuracy_noisy", "accuracy_clean"}
    assert metrics["validation"]["num_examples"] == 16


def test_a_ce_warmup_names_a_new_model_only_where_it_changes_the_training():
    from label_smearing.core import layout

    def fingerprint(*overrides):
        return layout.model_fingerprint(load_config(CONFIG, list(overrides)), "data")

    # No warm-up, or a warm-up of CE itself, is the model trained before the key existed.
    assert fingerprint("loss.ce_warmup_steps=0") == fingerprint()
    assert fingerprint("loss.ce_warmup_steps=2") == fingerprint()  # the smoke config's loss is CE
    ls = ("loss.name=ls", "loss.alpha=-0.2")
    assert fingerprint(*ls, "loss.ce_warmup_steps=2") != fingerprint(*ls)
