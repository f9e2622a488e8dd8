"""train.precision: mixed-precision training whose logits, losses and saved models stay float32."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import ml_collections
import numpy as np
import pytest

from label_smearing.core import layout, tfdata, trained_model
from label_smearing.core.config import load_config, to_plain
from label_smearing.core.errors import UserError
from label_smearing.modeling import losses, models, optimizers
from label_smearing.stages import train

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "label_smearing" / "configs" / "quickstart.py") + ":smoke"
TINY = ["train.steps=4", "train.steps_per_epoch=2", "train.batch_size=16", "train.shuffle_buffer=64"]
MIXED = ("mixed_bfloat16", "mixed_float16")
HALF = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
NUM_CLASSES = 10


def _config(*overrides):
    return load_config(QUICKSTART, [*TINY, "model.width=8", *overrides])


@pytest.fixture
def global_policy():
    """Sets Keras' process-global dtype policy for one test and restores float32 afterwards."""
    try:
        yield keras.mixed_precision.set_global_policy
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="module")
def trained(data_artifact, tmp_path_factory):
    """One smoke training per precision on the same data, seed and steps: precision -> model dir."""
    root = tmp_path_factory.mktemp("precision")
    out = {}
    for precision in models.PRECISIONS:
        out[precision] = root / precision
        train.train_stage(
            _config(f"train.precision={precision}"), data_artifact, out[precision], log=lambda _: None
        )
    return out


def _history(model_dir: Path) -> dict:
    return json.loads((model_dir / "history.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("precision", MIXED)
def test_a_mixed_precision_training_ends_with_float32s_loss(trained, precision):
    reference, history = _history(trained["float32"]), _history(trained[precision])
    assert history["steps"] == 4
    # The same 4 steps from the same initialisation: each epoch's loss within 0.01 of float32's (2.46, 2.34).
    for ours, theirs in zip(history["epochs"], reference["epochs"], strict=True):
        assert np.isfinite(ours["loss"])
        assert ours["loss"] == pytest.approx(theirs["loss"], abs=0.01)
    # It did compute in half precision, and it trained.
    assert history["epochs"][-1]["loss"] != reference["epochs"][-1]["loss"]
    assert history["epochs"][-1]["loss"] < history["epochs"][0]["loss"]


@pytest.mark.slow
@pytest.mark.parametrize("precision", models.PRECISIONS)
def test_the_saved_model_is_float32_loads_and_exports_float32_logits(
    trained, data_artifact, precision, tmp_path
):
    from label_smearing.stages import export_logits

    model = trained_model.load(trained_model.read(trained[precision])[1])
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    images = next(
        iter(tfdata.make_dataset(data_artifact, "test", batch_size=8, training=False, num_classes=10))
    )[0]
    logits, pre_logits = models.pre_logits_model(model)(images, training=False)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert keras.backend.standardize_dtype(pre_logits.dtype) == "float32"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(logits)))

    manifest = export_logits.export_stage(_config(), trained[precision], data_artifact, tmp_path / "logits",
                                          split="test", log=lambda _: None)  # fmt: skip
    assert manifest["counts"]["test"] == 32
    exported = tfdata.make_dataset(tmp_path / "logits", "test", batch_size=32, training=False, num_classes=10,
                                   with_teacher_logits=True)  # fmt: skip
    teacher_logits = next(iter(exported))[1]
    assert keras.backend.standardize_dtype(teacher_logits.dtype) == "float32"
    assert np.all(np.isfinite(teacher_logits.numpy()))


@pytest.mark.parametrize("precision", MIXED)
def test_the_saved_copy_computes_the_trained_network_at_full_precision(precision):
    keras.utils.set_random_seed(0)
    network = train.build_model(_config(f"train.precision={precision}"), NUM_CLASSES, (28, 28, 1))
    copy = models.plain_copy(network)
    images = np.random.default_rng(0).normal(size=(4, 28, 28, 1)).astype(np.float32)
    mixed, full = network(images, training=False), copy(images, training=False)
    reference = train.build_model(_config(), NUM_CLASSES, (28, 28, 1))
    reference.set_weights(network.get_weights())
    np.testing.assert_allclose(full, reference(images, training=False), rtol=1e-6, atol=1e-6)
    # The trained network computes in half precision: close to the copy, but not equal.
    np.testing.assert_allclose(mixed, full, rtol=0.1, atol=0.1)
    assert not np.allclose(mixed, full, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow kernel")
@pytest.mark.parametrize("precision", MIXED)
def test_fused_batch_norm_on_half_precision_inputs_trains_like_keras_batch_norm(precision, monkeypatch):
    """The fused kernel runs on a mixed policy's inputs, with Keras' outputs, gradients and statistics."""
    import tensorflow as tf

    calls, fused = [], tf.raw_ops.FusedBatchNormV3
    monkeypatch.setattr(
        tf.raw_ops, "FusedBatchNormV3", lambda **kw: calls.append(kw["x"].dtype) or fused(**kw)
    )
    rng = np.random.default_rng(0)
    x = tf.cast(rng.normal(2.0, 3.0, size=(16, 7, 7, 8)), HALF[precision])
    upstream = tf.constant(rng.normal(size=(16, 7, 7, 8)).astype(np.float32))
    gamma, beta = rng.normal(size=(2, 8)).astype(np.float32)
    results = []
    for batch_norm in (keras.layers.BatchNormalization, models.FusedBatchNormalization):
        layer = batch_norm(momentum=0.9, epsilon=1e-5, dtype=precision)
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        statistics = [tf.convert_to_tensor(layer.moving_mean), tf.convert_to_tensor(layer.moving_variance)]
        results.append([y, *grads, *statistics, layer(x, training=False)])
    assert calls == [tf.as_dtype(HALF[precision])]  # the fused layer's training call, on the half input
    ulp = {"mixed_bfloat16": 2.0**-7, "mixed_float16": 2.0**-10}[precision]
    for keras_value, fused_value in zip(*results, strict=True):
        assert fused_value.dtype == keras_value.dtype  # y, dx and inference in half, the rest float32
        tolerance = 2 * ulp if keras_value.dtype != tf.float32 else 1e-5
        np.testing.assert_allclose(
            tf.cast(fused_value, tf.float32), tf.cast(keras_value, tf.float32), rtol=tolerance, atol=tolerance
        )


@pytest.mark.parametrize("precision", models.PRECISIONS)
def test_layers_compute_in_the_policy_but_the_logits_in_float32(precision):
    network = train.build_model(_config(f"train.precision={precision}"), NUM_CLASSES, (28, 28, 1))
    compute = {layer.name: layer.compute_dtype for layer in network.layers[1:]}  # [0]: the input
    half = HALF.get(precision, "float32")
    assert compute.pop("logits") == "float32"
    assert set(compute.values()) == {half}
    assert all(v.dtype == "float32" for v in network.weights)  # mixed policies keep float32 weights
    output = network(np.zeros((2, 28, 28, 1), np.float32), training=True)
    assert keras.backend.standardize_dtype(output.dtype) == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # nothing process-global was set


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", optimizers.OPTIMIZER_NAMES)
def test_mixed_float16_scales_the_loss_for_each_optimizer(optimizer):
    config = _config("train.precision=mixed_float16", f"train.optimizer={optimizer}")
    keras.utils.set_random_seed(0)
    model = train._compiled_model(config, NUM_CLASSES, (28, 28, 1), 1, student=False)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert type(model.optimizer.inner_optimizer).__name__ == {"sgd": "SGD", "lars": "LARS"}[optimizer]
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, 16)
    before = [w.copy() for w in model.get_weights()]
    model.fit(images, labels, batch_size=16, epochs=1, verbose=0)
    # One applied step (finite gradients at the initial scale of 2^15), which moved every kernel.
    assert int(model.optimizer.iterations.numpy()) == 1
    assert float(model.optimizer.dynamic_scale.numpy()) == 2.0**15
    kernels = [i for i, v in enumerate(model.weights) if v.path.endswith("kernel")]
    assert all(not np.array_equal(before[i], model.get_weights()[i]) for i in kernels)
    for precision in ("float32", "mixed_bfloat16"):  # no loss scaling where it is not needed
        other = train._compiled_model(_config(f"train.precision={precision}"), NUM_CLASSES, (28, 28, 1), 1,
                                      student=False)  # fmt: skip
        assert not isinstance(other.optimizer, keras.optimizers.LossScaleOptimizer)


def _losses() -> dict[str, keras.losses.Loss]:
    built = {name: entry.build(NUM_CLASSES, alpha=0.1) for name, entry in losses.LOSSES.items()}
    built["ls_warmup"] = losses.CrossEntropyWarmup(built["ls"], 2, keras.Variable(5, dtype="int64"))
    built["distill"] = losses.DistillationCrossEntropy(2.0, smoothing=0.1)
    return built


@pytest.mark.parametrize("precision", models.PRECISIONS)
@pytest.mark.parametrize("name", [*losses.LOSSES, "ls_warmup", "distill"])
def test_every_loss_computes_in_float32_under_each_policy(global_policy, precision, name):
    global_policy(precision)
    loss = _losses()[name]
    rng = np.random.default_rng(0)
    full = keras.ops.convert_to_tensor(rng.normal(0, 4, (8, NUM_CLASSES)).astype(np.float32))
    logits = keras.ops.cast(full, HALF.get(precision, "float32"))  # what a half-precision head would give
    exact = keras.ops.cast(logits, "float32")  # the same values, in float32
    targets = (
        rng.normal(0, 3, (8, NUM_CLASSES)).astype(np.float32) if name == "distill" else rng.integers(0, 10, 8)
    )
    # Both through Keras' __call__ and through .call, which CrossEntropyWarmup and the online teacher use.
    for value, expected in ((loss(targets, logits), loss(targets, exact)),
                            (loss.call(targets, logits), loss.call(targets, exact))):  # fmt: skip
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        # Computed in float32 from the half-precision values: bfloat16 arithmetic would be ~1e-2 off.
        np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-6)


def test_float32_keeps_the_fingerprint_a_mixed_precision_changes_it():
    config = _config("loss.name=ls", "loss.alpha=0.1")
    assert "precision" not in layout.model_section(config)["train"]
    # The same config before train.precision existed: float32 models keep the fingerprints they had.
    plain = to_plain(config)
    del plain["train"]["precision"]
    legacy = ml_collections.ConfigDict(plain)
    assert layout.model_fingerprint(config, "abc") == layout.model_fingerprint(legacy, "abc")
    fingerprints = {
        p: layout.model_fingerprint(_config(f"train.precision={p}"), "abc") for p in models.PRECISIONS
    }
    assert len(set(fingerprints.values())) == 3
    assert (
        layout.model_section(_config("train.precision=mixed_float16"))["train"]["precision"]
        == "mixed_float16"
    )


def test_a_bad_precision_is_a_one_line_error_naming_the_key_and_values():
    with pytest.raises(UserError) as info:
        train.validate_config(_config("train.precision=float16"))
    assert str(info.value) == (
        "unknown train.precision 'float16'; one of: float32, mixed_bfloat16, mixed_float16"
    )
