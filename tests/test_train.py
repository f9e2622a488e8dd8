"""The train stage: artifacts, resumption after SIGKILL, validation, distillation, names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from label_smearing.core.artifacts import read_manifest
from label_smearing.core.config import load_config
from label_smearing.core.errors import UserError
from label_smearing.stages import train
from tests.processes import kill_at_marker

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "label_smearing" / "configs" / "quickstart.py") + ":smoke"
TINY = ["train.steps=4", "train.steps_per_epoch=2", "train.batch_size=16", "train.shuffle_buffer=64"]


def _config(*overrides):
    return load_config(QUICKSTART, [*TINY, *overrides])


@pytest.mark.slow
def test_train_stage_writes_a_complete_loadable_artifact(data_artifact, tmp_path, capsys):
    config = _config("loss.name=ls", "loss.alpha=0.1")
    out = tmp_path / "model"
    lines = []
    manifest = train.train_stage(config, data_artifact, out, log=lines.append)
    progress = capsys.readouterr().out  # Keras' epoch lines: the metrics, not the learning curves
    assert "Epoch 2/2" in progress and "loss:" in progress and "curve_" not in progress, progress

    assert read_manifest(out)["fingerprint"] == manifest["fingerprint"]  # checksums verify
    assert manifest["stage"] == "train" and manifest["counts"]["steps"] == 4
    assert (
        manifest["inputs"]["data"]["fingerprint"]
        == json.loads((data_artifact / "manifest.json").read_text())["fingerprint"]
    )
    assert "tensorboard/" not in " ".join(manifest["files"]) and (out / "tensorboard").is_dir()
    assert not (out / "backup").exists()
    history = json.loads((out / "history.json").read_text())
    assert [e["step"] for e in history["epochs"]] == [2, 4]
    assert "curve_test_accuracy" in history["epochs"][-1]  # the curves are in the history
    assert all(np.isfinite(e["loss"]) and 0 <= e["accuracy"] <= 1 for e in history["epochs"])
    assert history["images_per_second"] > 0 and history["peak_rss_mb"] > 0
    assert json.loads((out / "config.json").read_text())["loss"]["alpha"] == 0.1

    model = keras.saving.load_model(out / "model.keras", compile=False)
    logits = model.predict(np.zeros((3, 28, 28, 1), np.float32), verbose=0)
    assert logits.shape == (3, 10)
    assert model.get_layer("pre_logits") is not None
    assert any("done" in line for line in lines)

    with pytest.raises(UserError, match="already holds a complete artifact"):
        train.train_stage(config, data_artifact, out, log=lines.append)


@pytest.mark.slow
def test_training_is_step_based_and_stops_at_exactly_train_steps(data_artifact, tmp_path):
    config = _config("train.steps=5", "train.steps_per_epoch=2")  # epochs of 2, 2, 1 steps
    manifest = train.train_stage(config, data_artifact, tmp_path / "m", log=lambda _: None)
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    assert manifest["counts"]["steps"] == 5
    assert [e["step"] for e in history["epochs"]] == [2, 4, 5]


_HANG_MID_EPOCH_3 = """
import sys, time
from label_smearing.stages.train import TrainingLog
end_batch = TrainingLog.on_train_batch_end
def end_then_hang(self, batch, logs=None):
    end_batch(self, batch, logs)
    if self._step() == 7:  # mid-epoch 3 (steps 7-9), one step after the back-up of step 6
        print("MID-EPOCH", flush=True)
        time.sleep(600)
TrainingLog.on_train_batch_end = end_then_hang
from label_smearing.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(make_data_artifact, tmp_path):
    """SIGKILL at step 7 of 12 (epochs of 3): the run resumes at step 6, skips the batches the
    uninterrupted run read before it, and ends with the same weights and the same history."""
    from label_smearing.core import layout

    overrides = ["train.steps=12", "train.steps_per_epoch=3", "train.batch_size=16", "train.shuffle_buffer=64",
                 "train.deterministic=true"]  # fmt: skip
    config = load_config(QUICKSTART, overrides)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    runs = {}
    for name in ("killed", "whole"):
        workdir = tmp_path / name
        make_data_artifact(
            workdir, dataset="fashion_mnist", directory=layout.data(config, workdir).path, seed=0
        )
        argv = ["train", "--config", QUICKSTART, "--workdir", str(workdir)] + [
            f"--config.{o}" for o in overrides
        ]
        if name == "killed":
            kill_at_marker(_HANG_MID_EPOCH_3, argv, "MID-EPOCH")
            (model_dir,) = (workdir / "models").glob("[!.]*")  # not the lock a killed run leaves
            assert (model_dir / "backup" / "training_metadata.json").is_file()
            assert not (model_dir / "manifest.json").exists()  # partial: never read as input
        done = subprocess.run([sys.executable, "-m", "label_smearing.cli", *argv], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        (model_dir,) = (workdir / "models").glob("[!.]*")
        runs[name] = (done.stdout, model_dir)

    stdout, killed = runs["killed"]
    assert "resuming from step 6 of 12" in stdout and "not bit-identical" not in stdout
    manifest = read_manifest(killed)
    assert manifest["counts"]["steps"] == 12
    assert manifest["resumed"] == {"step": 6, "exact": True, "why": ""}
    assert read_manifest(runs["whole"][1])["resumed"] is None
    histories = [json.loads((runs[n][1] / "history.json").read_text()) for n in ("killed", "whole")]
    assert histories[0]["resumed_from_step"] == 6
    assert [e["step"] for e in histories[0]["epochs"]] == [3, 6, 9, 12]  # epochs before the kill are kept
    for key in ("loss", "accuracy"):
        assert [e[key] for e in histories[0]["epochs"]] == [e[key] for e in histories[1]["epochs"]], key
    weights = [keras.saving.load_model(runs[n][1] / "model.keras", compile=False).get_weights() for n in runs]
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


def test_a_resumption_is_exact_only_in_the_same_environment_with_op_determinism(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    then = {"deterministic": True, "devices": ["CPU"], "replicas": 1, "cpus": 2, "intra_op_threads": 0,
            "inter_op_threads": 0, "tensorflow": "2.21.0"}  # fmt: skip
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": -1, "environment": then}))
    assert train.resume_step(backup, _config("train.steps=12", "train.steps_per_epoch=3")) == 6
    assert train.resume_step(tmp_path / "none", _config()) == 0
    assert train.resumption(backup, 0, then) is None
    assert train.resumption(backup, 6, then) == {"step": 6, "exact": True, "why": ""}
    moved = train.resumption(backup, 6, dict(then, cpus=8))
    assert moved["exact"] is False and "cpus 2 -> 8" in moved["why"]
    loose = train.resumption(backup, 6, dict(then, deterministic=False))
    assert loose["exact"] is False and "deterministic" in loose["why"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.name=vgg", "unknown model.name 'vgg'"),
        ("loss.name=focal", "unknown loss.name 'focal'"),
        ("train.strategy=gpu", "unknown train.strategy 'gpu'"),
        ("train.optimizer=adam", "unknown train.optimizer 'adam'"),
        ("loss.alpha=1.5", r"loss.alpha must be in \[0, 1\]"),
        ("train.steps=0", "train.steps must be > 0"),
        ("train.batch_size=0", "train.batch_size must be > 0"),
        ("train.lr_boundaries=(0.75, 0.5)", "train.lr_boundaries must be increasing"),
        ("model.depth=9", "model: .*depth"),
    ],
)
def test_bad_config_values_are_one_line_user_errors_naming_the_key(
    override, message, data_artifact, tmp_path
):
    config = _config(override)
    with pytest.raises(UserError, match=message) as info:
        train.train_stage(config, data_artifact, tmp_path / "m", log=lambda _: None)
    assert "\n" not in str(info.value)


def test_distillation_settings_are_checked():
    with pytest.raises(UserError, match="distill.temperature must be > 0"):
        train.validate_config(
            _config("distill.enabled=true", "distill.logits_dir=x", "distill.temperature=0")
        )
    with pytest.raises(UserError, match="needs distill.logits_dir"):
        train.validate_config(_config("distill.enabled=true"))


@pytest.mark.slow
def test_student_trains_on_teacher_logits(logits_artifact, make_data_artifact, tmp_path):
    config = _config("distill.enabled=true", f"distill.logits_dir={logits_artifact}", "distill.smoothing=0.1")
    manifest = train.train_stage(config, logits_artifact, tmp_path / "s", logits_dir=logits_artifact,
                                 log=lambda _: None)  # fmt: skip
    assert manifest["role"] == "student" and manifest["model_name"] == "student-T2-ls0.1-s0"
    assert (
        manifest["inputs"]["logits"]["fingerprint"]
        == json.loads((logits_artifact / "manifest.json").read_text())["fingerprint"]
    )

    five_classes = make_data_artifact(tmp_path, name="five", num_classes=5, num_train=8, num_test=4)
    with pytest.raises(UserError, match="num_classes 10, but the data .* have 5"):
        train.train_stage(
            config, five_classes, tmp_path / "s2", logits_dir=logits_artifact, log=lambda _: None
        )


def test_names_and_fingerprints_follow_what_changes_the_model():
    from label_smearing.core import layout
    from label_smearing.core.config import to_plain
    from label_smearing.core.spec import ModelSpec

    def name(config, teacher=None):
        return ModelSpec.from_config(to_plain(config), teacher and to_plain(teacher)).name

    teacher = _config("loss.name=ls", "loss.alpha=0.1")
    assert name(teacher) == "teacher-ls0.1-s0"
    assert name(_config()) == "teacher-ce-s0"
    student = _config("distill.enabled=true", "distill.temperature=4", "distill.fc_alpha=0.2")
    assert name(student) == "student-T4-fc0.2-s0"
    assert name(student, teacher) == "student-T4-fc0.2-s0-from-ls0.1"

    fp = layout.model_fingerprint(teacher, "abc")
    assert fp == layout.model_fingerprint(
        _config("loss.name=ls", "loss.alpha=0.1", "train.strategy=mirrored"), "abc"
    )
    assert fp == layout.model_fingerprint(
        _config("loss.name=ls", "loss.alpha=0.1", "distill.temperature=9"), "abc"
    )
    assert fp != layout.model_fingerprint(_config("loss.name=ls", "loss.alpha=0.2"), "abc")
    assert fp != layout.model_fingerprint(teacher, "abd")
    path = layout.model(teacher, "/w", ModelSpec.from_config(to_plain(teacher)), "abc").path
    assert path == Path("/w/models") / f"teacher-ls0.1-s0-{fp[:10]}"


def test_step_schedule_decays_at_fractions_of_steps_with_optional_warmup():
    config = _config("train.steps=100", "train.learning_rate=0.1")
    schedule = train.learning_rate_schedule(config.train)
    lr = [float(schedule(s)) for s in (0, 50, 51, 75, 76, 99)]
    np.testing.assert_allclose(lr, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    warm = train.learning_rate_schedule(_config("train.steps=100", "train.warmup_steps=10").train)
    np.testing.assert_allclose([float(warm(s)) for s in (0, 5, 10, 60)], [0.0, 0.05, 0.1, 0.01], rtol=1e-6)


def test_user_model_compiles_with_label_smoothing():
    from label_smearing.modeling.losses import LabelSmoothingCrossEntropy

    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    model.compile(optimizer="sgd", loss=LabelSmoothingCrossEntropy(alpha=0.1, num_classes=3))
    rng = np.random.default_rng(0)
    history = model.fit(rng.normal(size=(32, 4)), rng.integers(0, 3, size=32), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
