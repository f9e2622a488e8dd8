"""Tests for label_smearing.stages.evaluate on a tiny trained model and the conftest data artifact."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from label_smearing.core import artifacts
from label_smearing.core.config import load_config, to_plain
from label_smearing.core.errors import UserError
from label_smearing.core.spec import ModelSpec
from label_smearing.stages.evaluate import evaluate_stage, summarize

CONFIG = str(Path(__file__).resolve().parents[1] / "label_smearing" / "configs" / "quickstart.py") + ":smoke"
TEACHER = {"role": "teacher", "method": "ls", "alpha": 0.1, "seed": 0, "transition": "smoothing"}


def _read_split(data_dir: Path, split: str) -> dict[str, np.ndarray]:
    """Decodes a split's records directly (not through label_smearing.core.tfdata)."""
    import tensorflow as tf

    manifest = json.loads((data_dir / "manifest.json").read_text())
    columns = {"image": [], "label": [], "clean_label": [], "is_noisy": []}
    for name in manifest["splits"][split]["files"]:
        for record in tf.data.TFRecordDataset(str(data_dir / name)):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            columns["image"].append(tf.io.decode_png(feature["image"].bytes_list.value[0]).numpy())
            for key in ("label", "clean_label", "is_noisy"):
                columns[key].append(feature[key].int64_list.value[0])
    # The fixture's dataset "synthetic" has no normalisation constants: pixels / 255.
    return {
        "image": np.stack(columns["image"]).astype(np.float32) / 255.0,
        **{k: np.asarray(columns[k]) for k in ("label", "clean_label", "is_noisy")},
    }


def _write_model_artifact(root: Path, data_dir: Path, *, num_classes=10, image_shape=(28, 28, 1), epochs=15):
    """A tiny MLP (pre_logits, logits) fitted briefly to the noisy train labels, saved as an artifact."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(image_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16, activation="relu", name="pre_logits")(x)
    model = keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))
    if epochs and num_classes == 10 and image_shape == (28, 28, 1):
        train = _read_split(data_dir, "train")
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(train["image"], train["label"], epochs=epochs, batch_size=16, verbose=0)
    out = root / f"model-{num_classes}-{'x'.join(map(str, image_shape))}"
    out.mkdir(parents=True)
    model.save(out / "model.keras")
    config = load_config(CONFIG)
    artifacts.atomic_write_json(out / "config.json", to_plain(config))
    artifacts.write_manifest(
        out,
        stage="train",
        fingerprint=artifacts.fingerprint("train", {"classes": num_classes, "shape": list(image_shape)}),
        config={"model": {"name": "mlp", "width": 16}, "train": {"steps": 60, "seed": 0}},
        counts={"steps": 60},
        extra={"model_name": "teacher-ls0.1-s0"},
    )
    return out, model


@pytest.fixture(scope="module")
def evaluated(data_artifact, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    model_dir, model = _write_model_artifact(root, data_artifact)
    config = load_config(CONFIG, ["eval.batch_size=24", "eval.max_projection_points=20"])
    out = root / "eval" / "teacher"
    lines = []
    manifest = evaluate_stage(config, model_dir, data_artifact, out, description=TEACHER, log=lines.append)
    return {
        "out": out,
        "manifest": manifest,
        "model": model,
        "model_dir": model_dir,
        "config": config,
        "log": lines,
    }


@pytest.mark.slow
def test_test_accuracy_nll_and_ece_equal_a_direct_computation(evaluated, data_artifact):
    from label_smearing.modeling.metrics import expected_calibration_error

    metrics = json.loads((evaluated["out"] / "metrics.json").read_text())
    test = _read_split(data_artifact, "test")
    logits = evaluated["model"].predict(test["image"], verbose=0).astype(np.float64)
    labels = test["clean_label"]
    log_probs = logits - logits.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    assert metrics["test"]["num_examples"] == 32
    assert metrics["test"]["accuracy"] == pytest.approx(100.0 * np.mean(logits.argmax(1) == labels), abs=1e-9)
    assert metrics["test"]["nll"] == pytest.approx(-np.mean(log_probs[np.arange(32), labels]), rel=1e-5)
    # Batches of 24 are binned separately and merged: the ECE equals the one-shot NumPy ECE.
    ece = expected_calibration_error(np.exp(log_probs), labels, 15)
    assert metrics["test"]["ece"] == pytest.approx(ece, abs=1e-6)
    assert sum(metrics["test"]["reliability"]["counts"]) == 32
    assert metrics["scalars"]["test/accuracy"] == metrics["test"]["accuracy"]


def test_table3_breakdown_and_logit_gaps_equal_a_direct_computation(evaluated, data_artifact):
    metrics = json.loads((evaluated["out"] / "metrics.json").read_text())
    train = _read_split(data_artifact, "train")
    logits = evaluated["model"].predict(train["image"], verbose=0).astype(np.float64)
    predicted = logits.argmax(1)
    clean, noisy_label, noisy = train["clean_label"], train["label"], train["is_noisy"].astype(bool)
    assert 5 <= noisy.sum() <= 25  # the fixture flips ~20% of 64
    expected = {
        "full_true": 100.0 * np.mean(predicted == clean),
        "clean_true": 100.0 * np.mean(predicted[~noisy] == clean[~noisy]),
        "noisy_true": 100.0 * np.mean(predicted[noisy] == clean[noisy]),
        "noisy_noisy": 100.0 * np.mean(predicted[noisy] == noisy_label[noisy]),
    }
    got = metrics["train"]["accuracy"]
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    # The model was fitted to the noisy labels: it agrees with them on the noisy part more than with the truth.
    assert got["noisy_noisy"] > got["noisy_true"]
    assert metrics["train"]["num_noisy"] == int(noisy.sum())

    gap_true = logits[np.arange(64), clean] - logits.mean(1)
    gap_noisy = logits[np.arange(64), noisy_label] - logits.mean(1)
    gaps = metrics["train"]["logit_gaps"]
    assert gaps["noisy_part/true_label"]["mean"] == pytest.approx(gap_true[noisy].mean(), abs=1e-4)
    assert gaps["noisy_part/noisy_label"]["median"] == pytest.approx(np.median(gap_noisy[noisy]), abs=1e-4)
    assert gaps["all/true_label"]["q95"] == pytest.approx(np.quantile(gap_true, 0.95), abs=1e-4)
    assert gaps["clean_part/true_label"]["count"] == int((~noisy).sum())


def test_metrics_json_layout_manifest_and_tensorboard(evaluated):
    out = evaluated["out"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {
        "description",
        "units",
        "model",
        "data",
        "setting",
        "test",
        "train",
        "projection",
        "scalars",
        "plots",
    }
    assert metrics["description"] == TEACHER
    assert set(metrics["test"]) >= {"accuracy", "nll", "ece", "num_bins", "reliability", "num_examples"}
    assert set(metrics["train"]["accuracy"]) == {"full_true", "clean_true", "noisy_true", "noisy_noisy"}
    assert set(metrics["train"]["logit_gaps"]["noisy_part/true_label"]) >= {
        "mean",
        "median",
        "q05",
        "q25",
        "q75",
        "q95",
    }
    assert set(metrics["scalars"]) >= {"test/accuracy", "test/ece", "test/nll", "train/accuracy_noisy_true"}
    projection = metrics["projection"]
    assert projection["classes"] == [0, 2, 6] and 0 < projection["num_points"] <= 20
    # Manifest last, tensorboard excluded from the checksums, and inputs recorded.
    manifest = artifacts.read_manifest(out)
    assert manifest["stage"] == "evaluate" and "metrics.json" in manifest["files"]
    assert not any(f.startswith("tensorboard") for f in manifest["files"])
    assert manifest["inputs"]["model"]["path"] == str(evaluated["model_dir"])

    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    tags = events.Tags()["tensors"]
    assert {"test/accuracy", "test/ece", "test/nll", "plots/reliability", "plots/projection"} <= set(tags)
    value = float(tf.make_ndarray(events.Tensors("test/accuracy")[0].tensor_proto))
    assert value == pytest.approx(metrics["test"]["accuracy"], abs=1e-4)


def test_plots_are_real_images(evaluated):
    out = evaluated["out"]
    plots = json.loads((out / "metrics.json").read_text())["plots"]
    assert set(plots) == {"reliability", "logit_gaps_noisy_part", "logit_gaps_all", "projection"}
    for rel in plots.values():
        png = out / rel
        assert png.with_suffix(".svg").is_file()
        assert png.stat().st_size > 10_000
        image = matplotlib.image.imread(png)
        assert image.shape[0] >= 300 and image.shape[1] >= 400
        assert image[..., :3].std() > 0.05  # not blank


def test_complete_evaluation_is_cached_and_force_recomputes(evaluated, data_artifact):
    lines = []
    again = evaluate_stage(evaluated["config"], evaluated["model_dir"], data_artifact, evaluated["out"],
                           description=TEACHER, log=lines.append)  # fmt: skip
    assert again["created"] == evaluated["manifest"]["created"] and lines == [
        f"evaluate: cached {evaluated['out']}"
    ]


def test_user_errors(evaluated, data_artifact, tmp_path):
    config = evaluated["config"]

    def evaluate(model_dir, out="out"):
        evaluate_stage(
            config, model_dir, data_artifact, tmp_path / out, description=TEACHER, log=lambda _: None
        )

    with pytest.raises(UserError, match="model artifact not found"):
        evaluate(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    partial.mkdir()
    with pytest.raises(UserError, match="incomplete"):
        evaluate(partial)
    five, _ = _write_model_artifact(tmp_path, data_artifact, num_classes=5, epochs=0)
    with pytest.raises(UserError, match="has 5 classes, but the data .* have 10"):
        evaluate(five)
    wide, _ = _write_model_artifact(tmp_path, data_artifact, image_shape=(32, 32, 3), epochs=0)
    with pytest.raises(UserError, match=r"shape \[32, 32, 3\], but the data .* have \[28, 28, 1\]"):
        evaluate(wide)
    with pytest.raises(UserError, match="method"):
        evaluate_stage(config, evaluated["model_dir"], data_artifact, tmp_path / "x",
                       description={**TEACHER, "method": "xx"})  # fmt: skip


def test_describe_model_from_configs():
    config = to_plain(load_config(CONFIG, ["loss.name=fc", "loss.alpha=0.2", "train.seed=3"]))
    assert ModelSpec.from_config(config).describe() == {
        "role": "teacher",
        "method": "fc",
        "alpha": 0.2,
        "seed": 3,
        "transition": "smoothing",
    }
    teacher = to_plain(load_config(CONFIG, ["loss.name=ls", "loss.alpha=0.1"]))
    student = to_plain(
        load_config(CONFIG, ["distill.enabled=true", "distill.smoothing=0.2", "distill.temperature=4.0"])
    )
    got = ModelSpec.from_config(student, teacher).describe()
    assert got["role"] == "student" and (got["teacher_method"], got["teacher_alpha"]) == ("ls", 0.1)
    assert (got["student_method"], got["student_alpha"], got["temperature"]) == ("ls", 0.2, 4.0)


def test_summarize_quantiles():
    # 0..100: quantiles with linear interpolation are the percentiles themselves.
    stats = summarize(np.arange(101.0))
    assert (stats["q05"], stats["q25"], stats["median"], stats["q75"], stats["q95"]) == (5, 25, 50, 75, 95)
    assert stats["mean"] == 50 and stats["count"] == 101 and summarize(np.array([])) == {"count": 0}


@pytest.mark.slow
def test_cli_evaluates_a_model_dir_and_fails_in_one_line(make_data_artifact, data_artifact, tmp_path, capsys):
    from label_smearing import cli
    from label_smearing.core import layout

    workdir = tmp_path / "w"
    make_data_artifact(
        workdir, num_train=40, num_test=16, directory=layout.data(load_config(CONFIG), workdir).path
    )
    model_dir, _ = _write_model_artifact(tmp_path, data_artifact, epochs=0)
    args = [
        "evaluate",
        "--config",
        CONFIG,
        "--workdir",
        str(workdir),
        "--config.eval.max_projection_points=10",
    ]
    assert cli.main([*args, "--model", str(model_dir)]) == 0
    (out,) = (workdir / "eval").glob("teacher-ls0.1-s0-*")
    metrics = json.loads((out / "metrics.json").read_text())
    # The description comes from the model's config.json: the quickstart config trains a CE teacher, seed 0.
    assert metrics["description"] == {
        "role": "teacher",
        "method": "ce",
        "alpha": 0.0,
        "seed": 0,
        "transition": "smoothing",
    }
    assert metrics["train"]["num_examples"] == 40 and metrics["test"]["num_examples"] == 16
    capsys.readouterr()
    assert cli.main([*args, "--model", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("smear evaluate: error: model artifact not found")


def test_eval_artifact_path_is_named_after_the_model_and_keyed_by_what_changes_the_numbers(tmp_path):
    from label_smearing.core import layout

    config = load_config(CONFIG)
    model_fp, data_fp = "a" * 64, "b" * 64
    path = layout.evaluation(config, tmp_path, "student-T2-ce-s0-from-ls0.1", model_fp, data_fp).path
    expected_fp = layout.evaluation_fingerprint(config, model_fp, data_fp)
    assert path == tmp_path / "eval" / f"student-T2-ce-s0-from-ls0.1-{expected_fp[:10]}"
    # The batch size changes no number, so it does not change the fingerprint; the bin count does.
    assert (
        layout.evaluation_fingerprint(load_config(CONFIG, ["eval.batch_size=7"]), model_fp, data_fp)
        == expected_fp
    )
    assert (
        layout.evaluation_fingerprint(load_config(CONFIG, ["eval.num_bins=10"]), model_fp, data_fp)
        != expected_fp
    )


def test_figures_off_keeps_every_number_draws_nothing_and_is_another_artifact(
    evaluated, data_artifact, tmp_path
):
    from label_smearing.core import layout

    config = load_config(
        CONFIG, ["eval.batch_size=24", "eval.max_projection_points=20", "eval.figures=false"]
    )
    out = tmp_path / "no-figures"
    manifest = evaluate_stage(config, evaluated["model_dir"], data_artifact, out, description=TEACHER,
                              log=lambda _: None)  # fmt: skip
    with_figures = json.loads((evaluated["out"] / "metrics.json").read_text())
    without = json.loads((out / "metrics.json").read_text())
    for key in ("test", "train", "validation", "scalars"):
        assert without[key] == with_figures[key], key
    assert without["plots"] == {} and not (out / "plots").exists()
    assert without["projection"]["skipped"] == "eval.figures is off"
    assert manifest["fingerprint"] != evaluated["manifest"]["fingerprint"]
    # On (the default) leaves the fingerprint as it was before the key existed.
    model_fp, data_fp = "a" * 64, "b" * 64
    default = load_config(CONFIG)
    with default.unlocked():
        del default.eval["figures"]
    assert layout.evaluation_fingerprint(
        load_config(CONFIG), model_fp, data_fp
    ) == layout.evaluation_fingerprint(default, model_fp, data_fp)
    with pytest.raises(UserError, match="config override eval.figures=maybe: expected true or false"):
        load_config(CONFIG, ["eval.figures=maybe"])
