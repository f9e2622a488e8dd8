"""LARS against a NumPy implementation of its formulas; schedules against hand-computed values.

Backend-neutral except the tf.function / tf.distribute tests (test_jax_backend.py runs
this file again under KERAS_BACKEND=jax).
"""

import math

import keras
import numpy as np
import pytest

from label_smearing.modeling import losses, optimizers

tensorflow_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute")


def lars_reference(
    weights,
    gradients,
    learning_rate,
    momentum,
    weight_decay,
    trust,
    nesterov,
    adapted,
    decayed=None,
    trust_ratio="you2017",
    epsilon=0.0,
):
    """NumPy LARS, classic momentum, for one variable over several steps.

    `adapted`: the variable gets the trust ratio; `decayed`: it gets weight decay (None: `adapted`).
    """
    decay = weight_decay if (adapted if decayed is None else decayed) else 0.0  # excluded: wd = 0
    w = weights.astype(np.float64).copy()
    v = np.zeros_like(w)
    for grad in gradients:
        grad = grad.astype(np.float64)
        g = grad + decay * w  # both forms update with the decayed gradient
        w_norm = np.linalg.norm(w)
        if trust_ratio == "you2017":  # eta ||w|| / (||grad|| + wd ||w|| + eps), grad without decay
            g_norm = np.linalg.norm(grad)
            denominator = g_norm + decay * w_norm + epsilon
        else:  # simclr: eta ||w|| / ||grad + wd w||
            g_norm = denominator = np.linalg.norm(g)
        ratio = trust * w_norm / denominator if adapted and w_norm > 0 and g_norm > 0 else 1.0
        v = momentum * v + learning_rate * ratio * g  # v = m v + lr ratio g
        w = w - (momentum * v + learning_rate * ratio * g if nesterov else v)
    return w


def run_steps(optimizer, variables, gradients):
    """Applies each list of `gradients` in turn (in a tf.function under TensorFlow, as in training)."""
    optimizer.build(variables)
    step = lambda grads: optimizer.apply_gradients(zip(grads, variables))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        step = tf.function(step)
    for grads in gradients:
        step([keras.ops.convert_to_tensor(g) for g in grads])


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


@pytest.mark.parametrize("trust_ratio", optimizers.TRUST_RATIOS)
@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_two_steps_match_numpy(nesterov, trust_ratio):
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
        trust_ratio=trust_ratio,
    )
    run_steps(optimizer, variables, gradients)

    for index, variable in enumerate(variables):
        adapted = not variable.path.endswith(("bias", "gamma", "beta"))
        expected = lars_reference(
            initial[index], [g[index] for g in gradients], adapted=adapted, trust_ratio=trust_ratio, **hyper
        )
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(variable), expected, rtol=1e-5, atol=1e-6, err_msg=variable.path
        )

    # The trust ratio mattered: hidden/kernel did not move by plain momentum SGD.
    plain = lars_reference(
        initial[0], [g[0] for g in gradients], **{**hyper, "trust": 1.0, "weight_decay": 0.0}, adapted=False
    )
    assert not np.allclose(keras.ops.convert_to_numpy(variables[0]), plain, atol=1e-3)


@pytest.mark.parametrize("trust_ratio", optimizers.TRUST_RATIOS)
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("weight_decay, epsilon", [(0.05, 0.0), (0.0, 0.0), (0.05, 0.1)])
def test_lars_exclusions_and_zero_norms_match_numpy(trust_ratio, nesterov, weight_decay, epsilon):
    rng = np.random.default_rng(3)
    # name: (initial weights, gradient scale) -- 0 means ||w|| = 0 or ||grad|| = 0 at every step
    cases = {
        "kernel": (rng.normal(size=(3, 2)), 1.0),  # decay and trust ratio
        "no_decay_kernel": (rng.normal(size=(3, 2)), 1.0),  # trust ratio only
        "no_adapt_kernel": (rng.normal(size=4), 1.0),  # decay only, ratio 1
        "zero_kernel": (np.zeros(3), 1.0),  # ||w|| = 0 at step 1: ratio 1
        "zero_grad_kernel": (rng.normal(size=3), 0.0),  # ||grad|| = 0 (simclr: ||g|| = wd ||w|| may not be)
        "zero_both_kernel": (np.zeros(2), 0.0),  # stays 0, no NaN
    }
    variables = [keras.Variable(w.astype(np.float32), name=name) for name, (w, _) in cases.items()]
    gradients = [
        [(scale * rng.normal(size=w.shape)).astype(np.float32) for w, scale in cases.values()]
        for _ in range(4)
    ]
    hyper = dict(learning_rate=0.1, momentum=0.9, weight_decay=weight_decay, trust=0.5, nesterov=nesterov)
    optimizer = optimizers.LARS(
        hyper["learning_rate"],
        momentum=hyper["momentum"],
        weight_decay=weight_decay,
        trust_coefficient=hyper["trust"],
        nesterov=nesterov,
        exclude_from_weight_decay=["no_decay"],
        exclude_from_layer_adaptation=["no_adapt"],
        trust_ratio=trust_ratio,
        epsilon=epsilon,
    )
    run_steps(optimizer, variables, gradients)

    for index, (name, (initial, _)) in enumerate(cases.items()):
        expected = lars_reference(
            initial,
            [g[index] for g in gradients],
            adapted=not name.startswith("no_adapt"),
            decayed=not name.startswith("no_decay"),
            trust_ratio=trust_ratio,
            epsilon=epsilon,
            **hyper,
        )
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(variables[index]), expected, rtol=1e-5, atol=1e-6, err_msg=name
        )


def test_default_trust_ratio_is_you2017_and_differs_from_simclr():
    assert optimizers.LARS(0.1).get_config()["trust_ratio"] == "you2017"
    assert optimizers.build_optimizer("lars", 0.1).trust_ratio == "you2017"
    # w = (3, 4), grad = (1, 0), wd = 0.1, eta = 1, lr = 1, no momentum; g = grad + wd w = (1.3, 0.4)
    # you2017: ratio = 5 / (1 + 0.1 * 5) = 10/3;          w - ratio g = (3 - 13/3, 4 - 4/3)
    # simclr:  ratio = 5 / ||g|| = 5 / sqrt(1.85) = 3.676073; w - ratio g = (-1.778895, 2.529571)
    you2017 = [3 - 13 / 3, 4 - 4 / 3]
    simclr = [3 - 1.3 * 5 / math.sqrt(1.85), 4 - 0.4 * 5 / math.sqrt(1.85)]
    for form, expected in [({}, you2017), ({"trust_ratio": "simclr"}, simclr)]:
        optimizer = optimizers.LARS(1.0, momentum=0.0, weight_decay=0.1, trust_coefficient=1.0, **form)
        kernel = keras.Variable(np.array([3.0, 4.0], np.float32), name="kernel")
        run_steps(optimizer, [kernel], [[np.array([1.0, 0.0], np.float32)]])
        np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), expected, rtol=1e-6)
    assert not np.allclose(you2017, simclr, atol=0.1)


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
        trust_ratio="simclr",
        epsilon=1e-6,
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(optimizer))
    assert isinstance(restored, optimizers.LARS)
    config, restored_config = optimizer.get_config(), restored.get_config()
    assert (restored_config["trust_ratio"], restored_config["epsilon"]) == ("simclr", 1e-6)
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
        ({"trust_ratio": "lamb"}, "trust_ratio.*you2017, simclr"),
        ({"epsilon": -1e-8}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
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
    lars = optimizers.build_optimizer(
        "lars", schedule, momentum=0.9, nesterov=False, weight_decay=1e-4, trust_ratio="simclr"
    )
    assert isinstance(lars, optimizers.LARS)
    assert (lars.momentum, lars.nesterov, lars.weight_decay_rate) == (0.9, False, 1e-4)
    assert lars.trust_ratio == "simclr"
    sgd = optimizers.build_optimizer("sgd", schedule, trust_ratio="simclr")  # ignored for sgd
    assert isinstance(sgd, keras.optimizers.SGD)


def test_warmup_then_rises_linearly_to_the_base_rate_then_follows_its_schedule():
    from label_smearing.modeling.optimizers import WarmupThen

    then = keras.optimizers.schedules.PiecewiseConstantDecay([20], [0.1, 0.01])
    schedule = WarmupThen(then, base_learning_rate=0.1, warmup_steps=10)
    # 0.1 * step / 10 below step 10; the step decay's 0.1 up to step 20, 0.01 after
    values = [float(schedule(s)) for s in (0, 5, 9, 10, 20, 21)]
    np.testing.assert_allclose(values, [0.0, 0.05, 0.09, 0.1, 0.1, 0.01], rtol=1e-6)
    assert schedule.get_config()["warmup_steps"] == 10
