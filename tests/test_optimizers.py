"""LARS against a NumPy implementation of its formulas; schedules against hand-computed values.

Backend-neutral except the tf.function / tf.distribute tests (test_jax_backend.py runs
this file again under KERAS_BACKEND=jax).
"""

import math

import keras
import numpy as np
import pytest

from keras_components import losses, optimizers

tensorflow_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute")


def lars_reference(weights, gradients, learning_rate, momentum, weight_decay, trust, nesterov, adapted):
    """NumPy LARS, classic momentum, for one variable over several steps."""
    w = weights.astype(np.float64).copy()
    v = np.zeros_like(w)
    for grad in gradients:
        g = grad + weight_decay * w if adapted else grad.copy()  # g = grad + wd w (not if excluded)
        w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
        ratio = trust * w_norm / g_norm if adapted and w_norm > 0 and g_norm > 0 else 1.0
        v = momentum * v + learning_rate * ratio * g  # v = m v + lr ratio g
        w = w - (momentum * v + learning_rate * ratio * g if nesterov else v)
    return w


def small_model():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="batch_normalization")(x)
    outputs = keras.layers.Dense(2, name="logits")(x)
    return keras.Model(inputs, outputs)


def test_default_exclusions_cover_batch_norm_and_biases_not_kernels():
    model = small_model()
    optimizer = optimizers.LARS(0.1)
    by_path = {v.path: v for v in model.trainable_variables}
    for path in ("batch_normalization/gamma", "batch_normalization/beta", "logits/bias", "hidden/bias"):
        assert not optimizer.uses_weight_decay(by_path[path]), path
        assert not optimizer.uses_layer_adaptation(by_path[path]), path
    for path in ("hidden/kernel", "logits/kernel"):
        assert optimizer.uses_weight_decay(by_path[path]) and optimizer.uses_layer_adaptation(by_path[path])
    # Our ResNets name BN layers "*_bn*": also excluded.
    conv_bn = keras.layers.BatchNormalization(name="stage1_block1_bn1")
    conv_bn.build((None, 3))
    assert not optimizer.uses_weight_decay(conv_bn.gamma)


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_two_steps_match_numpy(nesterov):
    keras.utils.set_random_seed(0)
    model = small_model()
    rng = np.random.default_rng(0)
    # A non-excluded kernel starting at 0 exercises the "||w|| = 0 -> ratio 1" branch.
    model.get_layer("logits").kernel.assign(np.zeros((3, 2), np.float32))
    model.get_layer("hidden").bias.assign(rng.normal(size=3).astype(np.float32))
    variables = model.trainable_variables
    initial = [keras.ops.convert_to_numpy(v) for v in variables]
    gradients = [[rng.normal(size=v.shape).astype(np.float32) for v in variables] for _ in range(2)]
    hyper = dict(learning_rate=0.1, momentum=0.9, weight_decay=0.01, trust=0.5, nesterov=nesterov)

    optimizer = optimizers.LARS(
        hyper["learning_rate"],
        momentum=hyper["momentum"],
        weight_decay=hyper["weight_decay"],
        trust_coefficient=hyper["trust"],
        nesterov=nesterov,
    )
    optimizer.build(variables)
    step = lambda grads: optimizer.apply_gradients(zip(grads, variables))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        step = tf.function(step)  # graph mode, as in training
    for grads in gradients:
        step([keras.ops.convert_to_tensor(g) for g in grads])

    for index, variable in enumerate(variables):
        adapted = not variable.path.endswith(("bias", "gamma", "beta"))
        expected = lars_reference(initial[index], [g[index] for g in gradients], adapted=adapted, **hyper)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(variable), expected, rtol=1e-5, atol=1e-6, err_msg=variable.path
        )

    # The trust ratio mattered: hidden/kernel did not move by plain momentum SGD.
    plain = lars_reference(
        initial[0], [g[0] for g in gradients], **{**hyper, "trust": 1.0, "weight_decay": 0.0}, adapted=False
    )
    assert not np.allclose(keras.ops.convert_to_numpy(variables[0]), plain, atol=1e-3)


@tensorflow_only
def test_lars_under_mirrored_strategy_matches_plain_training():
    import tensorflow as tf

    rng = np.random.default_rng(2)
    features = rng.normal(size=(16, 4)).astype(np.float32)
    labels = rng.integers(0, 2, size=16)

    def train(strategy):
        keras.utils.set_random_seed(1)
        with strategy.scope():
            model = small_model()
            model.compile(optimizer=optimizers.LARS(0.5, weight_decay=0.01, trust_coefficient=0.1), loss=loss)
        initial = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
        model.fit(features, labels, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return initial, [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]

    # A loss of ours, so its batch reduction under tf.distribute is exercised too.
    loss = losses.get_loss("fc", num_classes=2, alpha=0.2)
    initial, plain = train(tf.distribute.get_strategy())
    _, mirrored = train(tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert not np.allclose(initial[0], plain[0])  # the hidden kernel moved
    for a, b in zip(plain, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_lars_exclusions_are_configurable():
    model = small_model()
    optimizer = optimizers.LARS(
        0.1, weight_decay=0.01, exclude_from_weight_decay=[], exclude_from_layer_adaptation=["kernel"]
    )
    gamma = model.get_layer("batch_normalization").gamma
    kernel = model.get_layer("hidden").kernel
    assert optimizer.uses_weight_decay(gamma) and optimizer.uses_layer_adaptation(gamma)
    assert optimizer.uses_weight_decay(kernel) and not optimizer.uses_layer_adaptation(kernel)


def test_lars_config_round_trip_with_schedule():
    schedule = optimizers.WarmupCosineDecay(0.4, total_steps=100, warmup_steps=10)
    optimizer = optimizers.LARS(
        schedule,
        momentum=0.8,
        weight_decay=1e-4,
        trust_coefficient=0.02,
        nesterov=True,
        exclude_from_weight_decay=["bias"],
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(optimizer))
    assert isinstance(restored, optimizers.LARS)
    config, restored_config = optimizer.get_config(), restored.get_config()
    for key in ("momentum", "weight_decay", "trust_coefficient", "nesterov", "exclude_from_weight_decay"):
        assert restored_config[key] == config[key], key
    assert restored.weight_decay is None  # Keras' decoupled decay stays off.
    assert restored_config["learning_rate"] == config["learning_rate"]  # the serialised schedule
    assert optimizers.LARS.from_config(config).get_config()["trust_coefficient"] == 0.02


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"momentum": 1.5}, "momentum"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"trust_coefficient": 0.0}, "trust_coefficient"),
    ],
)
def test_lars_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimizers.LARS(0.1, **kwargs)


def test_warmup_cosine_values():
    schedule = optimizers.WarmupCosineDecay(0.4, total_steps=100, warmup_steps=10)
    expected = {
        0: 0.0,  # 0.4 * 0 / 10
        5: 0.2,  # 0.4 * 5 / 10
        10: 0.4,  # 0.4 * 0.5 * (1 + cos 0)
        25: 0.2 * (1 + math.cos(math.pi / 6)),  # progress 15/90 = 1/6: 0.2 * 1.866025 = 0.373205
        55: 0.2,  # progress 1/2: 0.2 * (1 + cos(pi/2))
        100: 0.0,
        200: 0.0,  # clipped past total_steps
    }
    for step, value in expected.items():
        np.testing.assert_allclose(float(schedule(step)), value, atol=1e-6, err_msg=str(step))


def test_warmup_polynomial_values():
    schedule = optimizers.WarmupPolynomialDecay(1.0, 110, 10, power=2.0, end_learning_rate=0.1)
    expected = {
        4: 0.4,  # 1.0 * 4 / 10
        10: 1.0,  # (1 - 0.1) * 1^2 + 0.1
        60: 0.325,  # progress 50/100: 0.9 * 0.5^2 + 0.1
        110: 0.1,
        500: 0.1,
    }
    for step, value in expected.items():
        np.testing.assert_allclose(float(schedule(step)), value, atol=1e-6, err_msg=str(step))


def test_paper_step_schedule_values():
    schedule = optimizers.step_decay_schedule(0.1, [32000, 48000])
    # 0.1, divided by 10 after 32k and again after 48k steps.
    for step, value in {0: 0.1, 32000: 0.1, 32001: 0.01, 48000: 0.01, 48001: 0.001, 64000: 0.001}.items():
        np.testing.assert_allclose(float(schedule(step)), value, rtol=1e-6, err_msg=str(step))


@pytest.mark.parametrize(
    "schedule",
    [
        optimizers.WarmupCosineDecay(0.4, 100, 10),
        optimizers.WarmupPolynomialDecay(1.0, 110, 10, power=3.0, end_learning_rate=0.1),
        optimizers.step_decay_schedule(0.1, [5, 9]),
    ],
    ids=lambda schedule: type(schedule).__name__,
)
def test_schedule_serialisation_round_trip(schedule):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(restored) is type(schedule)
    for step in (0, 3, 7, 50, 120):
        np.testing.assert_allclose(float(restored(step)), float(schedule(step)), rtol=1e-7)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: optimizers.WarmupCosineDecay(0.1, 100, 100), "warmup_steps"),
        (lambda: optimizers.WarmupPolynomialDecay(0.1, 100, 10, power=0.0), "power"),
        (lambda: optimizers.step_decay_schedule(0.1, [10, 5]), "boundaries"),
        (lambda: optimizers.build_optimizer("adam", 0.1), "sgd, lars"),
    ],
)
def test_bad_schedule_and_registry_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_build_optimizer_passes_hyperparameters():
    schedule = optimizers.step_decay_schedule(0.1, [32000, 48000])
    sgd = optimizers.build_optimizer("sgd", schedule, momentum=0.9, nesterov=True, weight_decay=1e-4)
    assert isinstance(sgd, keras.optimizers.SGD)
    assert (sgd.momentum, sgd.nesterov, sgd.weight_decay) == (0.9, True, None)  # decay lives in the model
    lars = optimizers.build_optimizer("lars", schedule, momentum=0.9, nesterov=False, weight_decay=1e-4)
    assert isinstance(lars, optimizers.LARS)
    assert (lars.momentum, lars.nesterov, lars.weight_decay_rate) == (0.9, False, 1e-4)
