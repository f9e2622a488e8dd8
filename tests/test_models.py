"""Architecture facts of the CIFAR ResNet v1 and ResNet-v2-50 builders."""

import keras
import numpy as np
import pytest

from label_smearing.modeling import models

tensorflow_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow kernel")


def conv_layers(model, kernel_size):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (kernel_size, kernel_size)
    ]


@pytest.mark.parametrize("depth", [8, 20])
@pytest.mark.parametrize("input_shape", [(28, 28, 1), (32, 32, 3)])
def test_cifar_resnet_outputs_logits_and_pre_logits(depth, input_shape):
    width = 4
    model = models.cifar_resnet(depth, num_classes=10, input_shape=input_shape, width=width)
    images = np.random.default_rng(0).normal(size=(2, *input_shape)).astype(np.float32)
    logits = model(images, training=False)
    assert tuple(logits.shape) == (2, 10)
    assert model.get_layer("pre_logits").output.shape[-1] == 4 * width
    assert model.get_layer("logits").activation is keras.activations.linear
    # Depth 6n + 2 = 6n + 1 3x3 convs (stem + 2 per block) + the dense layer.
    n = (depth - 2) // 6
    assert len(conv_layers(model, 3)) == 6 * n + 1
    # Projection shortcuts only where the shape changes: into stages 2 and 3.
    assert len(conv_layers(model, 1)) == 2
    # Strides 1, 2, 2: the last stage sees a quarter of the input resolution.
    last_stage = model.get_layer(f"stage3_block{n}_out").output
    assert tuple(last_stage.shape[1:]) == (input_shape[0] // 4, input_shape[1] // 4, 4 * width)


def test_cifar_resnet_default_width_pre_logits_is_64():
    model = models.build_model("cifar_resnet", 10, (32, 32, 3), depth=8)
    assert model.get_layer("pre_logits").output.shape[-1] == 64


@pytest.mark.parametrize("depth", [21, 2, 7, 0])
def test_cifar_resnet_rejects_depth_not_6n_plus_2(depth):
    with pytest.raises(ValueError, match="depth"):
        models.cifar_resnet(depth, 10, (32, 32, 3))


def test_weight_decay_penalty_has_gradient_weight_decay_times_w():
    weight_decay = 1e-3
    model = models.cifar_resnet(8, 10, (28, 28, 1), width=2, weight_decay=weight_decay)
    kernels = [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]
    # One penalty per conv / dense kernel; none on BN parameters or biases.
    assert len(model.losses) == len(kernels)
    # Penalty (wd / 2) * sum w^2, so d/dw = wd * w (classic SGD weight decay).
    expected = sum(0.5 * weight_decay * np.sum(np.square(keras.ops.convert_to_numpy(k))) for k in kernels)
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-5)
    assert not models.cifar_resnet(8, 10, (28, 28, 1), width=2).losses


def test_pre_logits_model_shares_weights_and_feeds_the_logits_layer():
    model = models.cifar_resnet(8, 5, (28, 28, 1), width=2)
    images = np.random.default_rng(1).normal(size=(3, 28, 28, 1)).astype(np.float32)
    logits, features = models.pre_logits_model(model)(images, training=False)
    np.testing.assert_allclose(logits, model(images, training=False), rtol=1e-5, atol=1e-6)
    kernel, bias = model.get_layer("logits").get_weights()
    # logits = pre_logits @ W + b
    np.testing.assert_allclose(logits, np.asarray(features) @ kernel + bias, rtol=1e-4, atol=1e-5)


def test_resnet_v2_50_builds_with_2048_pre_logits():
    model = models.build_model("resnet_v2_50", num_classes=7, input_shape=(64, 64, 3))
    logits = model(np.zeros((1, 64, 64, 3), np.float32), training=False)
    assert tuple(logits.shape) == (1, 7)
    assert model.get_layer("pre_logits").output.shape[-1] == 2048
    # 1 stem conv + 16 blocks x 3 convs + 4 projections = 53 convs (50 = 1 + 48 + dense).
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) == 53
    # Output stride 32: a 64x64 input ends 2x2 before pooling.
    assert tuple(model.get_layer("final_relu").output.shape[1:]) == (2, 2, 2048)
    # ResNet-50's well-known size: 23.5M parameters without the classifier.
    backbone = model.count_params() - (2048 * 7 + 7)
    assert abs(backbone - 23.5e6) / 23.5e6 < 0.01


def test_build_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="cifar_resnet, resnet_v2_50"):
        models.build_model("vgg16", 10, (32, 32, 3))


def keras_and_fused_batch_norms(rng, shape):
    """keras.layers.BatchNormalization and FusedBatchNormalization built with the same random gamma, beta."""
    gamma, beta = rng.normal(size=(2, shape[-1])).astype(np.float32)
    pair = (keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
            models.FusedBatchNormalization(momentum=0.9, epsilon=1e-5))  # fmt: skip
    for layer in pair:
        layer.build(shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    return pair


@tensorflow_only
def test_fused_batch_norm_trains_like_keras_batch_norm():
    """Same outputs, gradients and moving statistics as keras.layers.BatchNormalization in training."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, size=(16, 7, 7, 8)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(16, 7, 7, 8)).astype(np.float32))
    results = []
    for layer in keras_and_fused_batch_norms(rng, x.shape):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y, *grads, layer.moving_mean, layer.moving_variance, layer(x, training=False)])
    for keras_value, fused_value in zip(*results, strict=True):
        np.testing.assert_allclose(np.asarray(fused_value), np.asarray(keras_value), rtol=1e-5, atol=1e-5)


@tensorflow_only
def test_fused_batch_norm_uses_the_fused_kernel_in_training_only(monkeypatch):
    import tensorflow as tf

    calls, fused = [], tf.raw_ops.FusedBatchNormV3
    monkeypatch.setattr(
        tf.raw_ops, "FusedBatchNormV3", lambda **kw: calls.append(kw["is_training"]) or fused(**kw)
    )
    layer = models.FusedBatchNormalization()
    x = tf.ones((2, 3, 3, 4))
    layer(x, training=True)
    tf.function(lambda x: layer(x, training=True))(x)
    layer(x, training=False)
    assert calls == [True, True]


def test_fused_batch_norm_normalises_like_keras_batch_norm_on_any_backend():
    """Training output, moving statistics and inference output are Keras' (test_jax_backend.py runs this on JAX)."""
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=(16, 5, 5, 4)).astype(np.float32)
    results = []
    for layer in keras_and_fused_batch_norms(rng, x.shape):
        outputs = [
            layer(x, training=True),
            layer.moving_mean,
            layer.moving_variance,
            layer(x, training=False),
        ]
        results.append([keras.ops.convert_to_numpy(value) for value in outputs])
    # Normalised with the batch statistics: each channel of the training output has mean beta.
    beta = keras.ops.convert_to_numpy(layer.beta)
    np.testing.assert_allclose(results[1][0].mean(axis=(0, 1, 2)), beta, atol=1e-4)
    for keras_value, fused_value in zip(*results, strict=True):
        np.testing.assert_allclose(fused_value, keras_value, rtol=1e-5, atol=1e-5)


def test_plain_copy_has_keras_batch_norm_same_outputs_and_saves_no_custom_layer(tmp_path):
    model = models.cifar_resnet(8, 3, (28, 28, 1), width=2)
    assert any(isinstance(layer, models.FusedBatchNormalization) for layer in model.layers)
    copy = models.plain_copy(model)
    assert not any(isinstance(layer, models.FusedBatchNormalization) for layer in copy.layers)
    images = np.random.default_rng(2).normal(size=(2, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(copy(images, training=False), model(images, training=False), rtol=1e-6)
    copy.save(tmp_path / "model.keras")
    config = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False).get_config()
    assert "FusedBatchNormalization" not in str(config)  # plain Keras loads it, without this package
