"""Distillation options: distill.teacher_view (exported | online | auto) and distill.temperature_squared."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from label_smearing.core.config import load_config
from label_smearing.core.errors import UserError
from label_smearing.modeling import distillation
from label_smearing.stages import export_logits, train
from tests.conftest import write_data_artifact

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "label_smearing" / "configs" / "quickstart.py") + ":smoke"
TINY = ["train.steps=4", "train.steps_per_epoch=2", "train.batch_size=16", "train.shuffle_buffer=64"]


def _config(*overrides):
    return load_config(QUICKSTART, [*TINY, "export.batch_size=16", *overrides])


def _student_config(logits_dir, *overrides):
    return _config("distill.enabled=true", f"distill.logits_dir={logits_dir}", *overrides)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A smoke teacher trained 4 steps on 64 random 28x28x1 images, and its exported train logits."""
    root = tmp_path_factory.mktemp("distill")
    data_dir = write_data_artifact(root, num_train=64, num_test=16)
    teacher_dir, logits_dir = root / "models" / "teacher", root / "logits" / "teacher"
    train.train_stage(_config(), data_dir, teacher_dir, log=lambda _: None)
    export_logits.export_stage(_config(), teacher_dir, data_dir, logits_dir, log=lambda _: None)
    return {"root": root, "data": data_dir, "teacher": teacher_dir, "logits": logits_dir}


def _train_student(exported, out_dir, *overrides, monkeypatch=None):
    """Trains a student on the exported logits; returns (manifest, log lines, the compiled model)."""
    built = []
    if monkeypatch is not None:  # keep the model that trains, to look at its teacher afterwards
        compiled = train._compiled_model
        monkeypatch.setattr(
            train, "_compiled_model", lambda *a, **k: built.append(compiled(*a, **k)) or built[-1]
        )
    lines = []
    config = _student_config(exported["logits"], *overrides)
    manifest = train.train_stage(
        config, exported["data"], out_dir, logits_dir=exported["logits"], log=lines.append
    )
    return manifest, lines, (built[0] if built else None)


def _weights(path):
    return keras.saving.load_model(path, compile=False).get_weights()


@pytest.mark.slow
def test_the_online_teacher_never_moves_and_only_the_student_is_saved(exported, tmp_path, monkeypatch):
    out = tmp_path / "student"
    manifest, lines, model = _train_student(
        exported, out, "train.augment=crop_flip", "distill.teacher_view=auto", monkeypatch=monkeypatch
    )
    assert any("teacher view online (distill.teacher_view=auto)" in line for line in lines)
    assert isinstance(model, distillation.OnlineTeacher) and manifest["counts"]["steps"] == 4

    # Every teacher weight, batch-norm moving statistics included, equals the saved teacher's.
    saved_teacher = _weights(exported["teacher"] / "model.keras")
    assert len(model.teacher.get_weights()) == len(saved_teacher)
    for after, before in zip(model.teacher.get_weights(), saved_teacher):
        np.testing.assert_array_equal(after, before)
    assert not model.teacher.trainable_weights

    # model.keras is the student alone: its weights, one (B, L) logits output.
    student = keras.saving.load_model(out / "model.keras", compile=False)
    assert student.output_shape == (None, 10) and student.get_layer("pre_logits") is not None
    assert [w.shape for w in student.get_weights()] == [w.shape for w in model.student.get_weights()]
    for saved, trained in zip(student.get_weights(), model.student.get_weights()):
        np.testing.assert_array_equal(saved, trained)
    assert len(student.get_weights()) < len(model.get_weights())
    history = json.loads((out / "history.json").read_text())
    assert all(np.isfinite(e["loss"]) and 0 <= e["accuracy"] <= 1 for e in history["epochs"])


@pytest.mark.slow
def test_online_on_unaugmented_data_equals_exported(exported, tmp_path):
    common = ["train.augment=none", "train.deterministic=true"]
    _, exported_lines, _ = _train_student(exported, tmp_path / "exported", *common)  # auto: exported
    _, online_lines, _ = _train_student(exported, tmp_path / "online", *common, "distill.teacher_view=online")
    assert any("teacher view exported (distill.teacher_view=auto)" in line for line in exported_lines)
    assert any("teacher view online (distill.teacher_view=online)" in line for line in online_lines)

    # The teacher's logits on the same un-augmented images differ only by float rounding
    # (export batch 16 vs. the training batch), so the two students train alike.
    for a, b in zip(
        _weights(tmp_path / "exported" / "model.keras"), _weights(tmp_path / "online" / "model.keras")
    ):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    first, second = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("exported", "online"))
    for a, b in zip(first["epochs"], second["epochs"]):
        np.testing.assert_allclose([a["loss"], a["accuracy"]], [b["loss"], b["accuracy"]], atol=1e-4)


@pytest.mark.parametrize(
    "augment, image_shape, encoding, view",
    [
        ("crop_flip", (28, 28, 1), "png", "online"),
        ("none", (32, 32, 3), "png", "exported"),
        ("auto", (32, 32, 3), "png", "online"),  # auto augments CIFAR-shaped images
        ("auto", (28, 28, 1), "png", "exported"),
        ("auto", (224, 224, 3), "source", "online"),  # and random-resized crops of source images
    ],
)
def test_auto_teacher_view_is_online_exactly_when_training_crops_and_flips(
    augment, image_shape, encoding, view
):
    config = _config("distill.enabled=true", f"train.augment={augment}")
    assert train.teacher_view(config, image_shape, encoding) == view
    for explicit in ("exported", "online"):
        config = _config(
            "distill.enabled=true", f"train.augment={augment}", f"distill.teacher_view={explicit}"
        )
        assert train.teacher_view(config, image_shape) == explicit


def test_temperature_squared_scales_the_loss_and_the_online_loss_reads_the_teacher_half():
    rng = np.random.default_rng(0)
    teacher, student = (rng.normal(scale=3.0, size=(6, 10)).astype(np.float32) for _ in range(2))
    plain = train.build_loss(_student_config("x", "distill.temperature=4"), 10)
    squared = train.build_loss(
        _student_config("x", "distill.temperature=4", "distill.temperature_squared=true"), 10
    )
    assert squared.temperature_squared and not plain.temperature_squared
    np.testing.assert_allclose(
        float(squared(teacher, student)), 16 * float(plain(teacher, student)), rtol=1e-5
    )

    # Online: y_pred = [student | teacher]; y_true (the exported logits) does not matter.
    online = distillation.AgainstOnlineTeacher(squared)
    both = np.concatenate([student, teacher], axis=1)
    expected = float(squared(teacher, student))
    np.testing.assert_allclose(float(online(np.zeros_like(teacher), both)), expected, rtol=1e-6)
    np.testing.assert_allclose(float(online(student, both)), expected, rtol=1e-6)
    swapped = np.concatenate([teacher, student], axis=1)  # the halves' order matters
    assert float(online(teacher, swapped)) != pytest.approx(expected)


def _logits_with_teacher(root, model_path):
    """A logits artifact whose manifest names `model_path` as its teacher (None: names none)."""
    logits = write_data_artifact(root, name="logits", teacher_logits=True)
    if model_path is not None:
        manifest_path = logits / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["inputs"] = {"model": {"path": str(model_path), "fingerprint": "0" * 64}}
        manifest_path.write_text(json.dumps(manifest))
    return logits


def _one_line_error(match, function, *args, **kwargs):
    with pytest.raises(UserError, match=match) as info:
        function(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bad_teacher_view_settings_are_one_line_user_errors(tmp_path):
    logits = _logits_with_teacher(tmp_path / "a", None)
    _one_line_error(
        r"unknown distill.teacher_view 'sideways'; one of: auto, exported, online",
        train.validate_config,
        _student_config(logits, "distill.teacher_view=sideways"),
    )
    message = _one_line_error(
        "names no teacher model",
        train.validate_config,
        _student_config(logits, "distill.teacher_view=online"),
    )
    assert str(logits) in message

    missing = tmp_path / "models" / "gone"
    logits = _logits_with_teacher(tmp_path / "b", missing)
    message = _one_line_error(
        "teacher model artifact not found",
        train.validate_config,
        _student_config(logits, "distill.teacher_view=online"),
    )
    assert str(missing) in message and "distill.teacher_view" in message

    partial = tmp_path / "models" / "partial"
    partial.mkdir(parents=True)
    (partial / "model.keras").write_bytes(b"")
    logits = _logits_with_teacher(tmp_path / "c", partial)
    _one_line_error(
        f"{partial} is incomplete",
        train.validate_config,
        _student_config(logits, "distill.teacher_view=online"),
    )
    train.validate_config(_student_config(logits, "distill.teacher_view=exported"))  # needs no teacher

    # auto -> online (crop_flip): the same error from the train stage, before anything is written.
    out = tmp_path / "student"
    config = _student_config(logits, "train.augment=crop_flip")
    _one_line_error(
        f"{partial} is incomplete", train.train_stage, config, logits, out, logits_dir=logits, log=print
    )
    assert not out.exists()


def test_both_options_are_in_a_students_fingerprint_and_not_in_a_teachers():
    from label_smearing.core import layout

    def fingerprint(*overrides):
        return layout.model_fingerprint(_config(*overrides), "data")

    student = fingerprint("distill.enabled=true")
    assert student != fingerprint("distill.enabled=true", "distill.teacher_view=online")
    assert student != fingerprint("distill.enabled=true", "distill.temperature_squared=true")
    assert fingerprint() == fingerprint("distill.teacher_view=online", "distill.temperature_squared=true")
