"""Stages that run many models in one process (a long-lived worker) trace each forward pass once, quietly.

TensorFlow counts the traces of every `tf.function` made from the same Python
code together and, once 5 of the last ~10 calls traced, logs "N out of the last
M calls to ... triggered tf.function retracing". A stage that made a new
`tf.function` per model hit that after five models with few batches each.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from label_smearing.core import artifacts, curves, tfdata, trained_model
from label_smearing.core.config import load_config, to_plain
from label_smearing.stages import evaluate, export_logits

CONFIG = str(Path(__file__).resolve().parents[1] / "label_smearing" / "configs" / "quickstart.py") + ":smoke"
TEACHER = {"role": "teacher", "method": "ce", "alpha": 0.0, "seed": 0, "transition": "smoothing"}
ROUNDS = 6  # models in a row: TensorFlow's detector warns from the fifth trace on


@contextlib.contextmanager
def retracing_messages():
    """Collects TensorFlow's log records and Python warnings that mention retracing."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep(logging.DEBUG)
    loggers = [logging.getLogger("tensorflow"), logging.getLogger()]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield seen
        seen.extend(str(w.message) for w in caught)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    seen[:] = [m for m in seen if "retracing" in m.lower()]


def _mlp(width: int, seed: int, image_shape=(28, 28, 1)) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(image_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(width, activation="relu", name="pre_logits")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))


def _model_artifact(root: Path, width: int, seed: int) -> Path:
    out = root / f"model-w{width}"
    out.mkdir(parents=True)
    _mlp(width, seed).save(out / "model.keras")
    artifacts.atomic_write_json(out / "config.json", to_plain(load_config(CONFIG)))
    artifacts.write_manifest(
        out, stage="train", fingerprint=artifacts.fingerprint("train", {"width": width, "seed": seed}),
        config={"model": {"name": "mlp", "width": width}, "train": {"steps": 1, "seed": seed}},
        counts={"steps": 1}, extra={"model_name": f"teacher-ce-w{width}"},
    )  # fmt: skip
    return out


def test_forward_function_traces_once_for_every_batch_size_and_matches_the_model():
    model = _mlp(8, 0)
    forward = trained_model.forward_function(model, (28, 28, 1))
    assert forward.tracing_count == 1  # traced when made
    rng = np.random.default_rng(0)
    for batch in (1, 7, 24, 3):
        images = rng.normal(size=(batch, 28, 28, 1)).astype(np.float32)
        logits, pre_logits = forward(tf.constant(images))
        assert logits.shape == (batch, 10) and pre_logits.shape == (batch, 8)
        np.testing.assert_allclose(
            logits.numpy(), model(images, training=False).numpy(), rtol=1e-5, atol=1e-5
        )
    logits_only = trained_model.forward_function(model, (28, 28, 1), pre_logits=False)
    assert logits_only(tf.constant(images)).shape == (3, 10)
    with pytest.raises(TypeError):  # another shape is an error, never a second trace
        forward(tf.zeros((2, 28, 28, 3)))
    assert forward.tracing_count == 1 and logits_only.tracing_count == 1


@pytest.mark.slow
def test_evaluating_two_models_in_turn_in_one_process_traces_each_once_and_never_warns(
    data_artifact, tmp_path, monkeypatch
):
    models = [_model_artifact(tmp_path / "a", 8, 1), _model_artifact(tmp_path / "b", 16, 2)]
    # 32 test and 64 train examples in batches of 48: 3 calls per model (as in the smoke run), a short
    # last train batch.
    config = load_config(CONFIG, ["eval.batch_size=48", "eval.max_projection_points=20"])
    made = []
    original = trained_model.forward_function

    def recording(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(trained_model, "forward_function", recording)
    # Matplotlib (no TensorFlow) is most of an evaluation's time here; the figures have their own tests.
    monkeypatch.setattr(evaluate, "_figures", lambda *args: ({}, {"skipped": "not drawn in this test"}))
    with retracing_messages() as seen:
        for i in range(ROUNDS):
            evaluate.evaluate_stage(
                config, models[i % 2], data_artifact, tmp_path / "eval" / str(i), description=TEACHER,
                log=lambda _: None,
            )  # fmt: skip
    assert seen == []
    assert [f.tracing_count for f in made] == [1] * ROUNDS  # one forward function per evaluation, traced once


@pytest.mark.slow
def test_learning_curves_of_models_trained_in_a_row_trace_once_each_and_never_warn(data_artifact):
    manifest = tfdata.read_data_manifest(data_artifact)
    callbacks = []
    with retracing_messages() as seen:
        for i in range(ROUNDS):
            callback = curves.LearningCurves(
                _mlp(4 + i, i), data_artifact, manifest, num_examples=3, num_bins=5, batch_size=8,
                logit_limit=1e6, log=lambda _: None,
            )  # fmt: skip
            values = callback.measure()  # one batch per subsample: 2 calls per model
            assert set(values) >= {"test_accuracy", "noisy_part_fit_true", "max_abs_logit"}
            callbacks.append((callback, values))
        for callback, values in callbacks:
            assert callback.measure() == values  # another epoch: the same function, no trace
    assert seen == []
    assert [c._forward.tracing_count for c, _ in callbacks] == [1] * ROUNDS


def test_export_teachers_in_a_row_trace_once_each_for_any_batch_size_and_never_warn(data_artifact):
    manifest = tfdata.read_data_manifest(data_artifact)
    records = [
        r.numpy()
        for name in tfdata.split_files(data_artifact, manifest, "train")
        for r in tf.data.TFRecordDataset(str(name))
    ]
    teachers = []
    with retracing_messages() as seen:
        for i in range(ROUNDS):
            teacher = export_logits.TeacherModel(
                _mlp(4 + i, i), (28, 28, 1), *tfdata.normalization("fashion_mnist", 1)
            )
            logits, pre_logits = teacher(records[:5])
            assert logits.shape == (5, 10) and pre_logits.shape == (5, 4 + i)
            assert teacher(records[5:8])[0].shape == (3, 10)  # RunInference's short last batch
            teachers.append(teacher)
    assert seen == []
    assert [t._infer.tracing_count for t in teachers] == [1] * ROUNDS
