"""Losses of the label-smearing family against NumPy references.

Backend-neutral: nothing here imports TensorFlow outside the TF-only tests, so
test_jax_backend.py runs this file again under KERAS_BACKEND=jax.
"""

import keras
import numpy as np
import pytest

from label_smearing.modeling import losses, noise

tensorflow_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.function")

NUM_CLASSES = 5
BATCH = 7


def np_log_softmax(logits):
    # log p_j = f_j - max f - log sum_k exp(f_k - max f)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_softmax(logits):
    return np.exp(np_log_softmax(logits))


def random_stochastic(rng, num_classes=NUM_CLASSES):
    # Rows of a positive random matrix divided by their sums: a row-stochastic T.
    matrix = rng.uniform(0.05, 1.0, size=(num_classes, num_classes)) + 3.0 * np.eye(num_classes)
    return matrix / matrix.sum(axis=1, keepdims=True)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(BATCH, NUM_CLASSES)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, size=BATCH)
    soft = rng.dirichlet(np.ones(NUM_CLASSES), size=BATCH).astype(np.float32)
    return rng, logits, labels, soft


def one_hot(labels):
    return np.eye(NUM_CLASSES, dtype=np.float32)[labels]


def value_and_gradient(function, x):
    """function(x) and its gradient with respect to x (None if none flows) on this Keras backend."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        value, gradient = jax.value_and_grad(function)(jax.numpy.asarray(x))
    elif backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = function(x)
        gradient = tape.gradient(value, x)
    else:
        pytest.skip(f"no gradient helper for the {backend} backend")
    return float(value), None if gradient is None else keras.ops.convert_to_numpy(gradient)


def per_example(loss, y_true, logits):
    """Per-example values of a Loss object (reduction switched off)."""
    config = loss.get_config()
    config["reduction"] = None
    return keras.ops.convert_to_numpy(type(loss).from_config(config)(y_true, logits))


# --------------------------------------------------------------------------- smeared


def test_smeared_matches_numpy_for_every_target_kind(data):
    rng, logits, labels, soft = data
    matrix = rng.normal(size=(NUM_CLASSES, NUM_CLASSES))
    ell = -np_log_softmax(logits.astype(np.float64))  # ell[b, y'] = -log p_{y'}
    expected_hard = (matrix[labels] * ell).sum(axis=1)  # sum_y' M[y, y'] ell_y'
    expected_soft = ((soft @ matrix) * ell).sum(axis=1)  # q^T M ell
    loss = losses.SmearedCrossEntropy(matrix)
    for y_true in (labels, labels.reshape(-1, 1), labels.astype(np.int64), one_hot(labels)):
        np.testing.assert_allclose(per_example(loss, y_true, logits), expected_hard, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            losses.smeared_cross_entropy(y_true, logits, matrix), expected_hard, rtol=1e-5, atol=1e-5
        )
    np.testing.assert_allclose(per_example(loss, soft, logits), expected_soft, rtol=1e-5, atol=1e-5)
    # Default reduction is the batch mean.
    np.testing.assert_allclose(float(loss(labels, logits)), expected_hard.mean(), rtol=1e-5)


def test_smeared_hand_computed():
    # f = [2, 0]: ell = [log(1 + e^-2), log(1 + e^2)] = [0.126928, 2.126928];
    # row 0 of M = [0.9, 0.1]: 0.9 * 0.126928 + 0.1 * 2.126928 = 0.326928.
    loss = losses.SmearedCrossEntropy([[0.9, 0.1], [0.1, 0.9]])
    np.testing.assert_allclose(float(loss([0], [[2.0, 0.0]])), 0.326928, atol=1e-5)


# --------------------------------------------------------------------------- label smoothing


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.9])
def test_label_smoothing_equals_keras_categorical_crossentropy(data, alpha):
    _, logits, labels, _ = data
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=alpha)
    expected = float(keras_loss(one_hot(labels), logits))
    loss = losses.LabelSmoothingCrossEntropy(alpha, NUM_CLASSES)
    np.testing.assert_allclose(float(loss(one_hot(labels), logits)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(loss(labels, logits)), expected, rtol=1e-5)
    # It is the smeared loss with M = (1 - alpha) I + alpha / L J.
    smeared = losses.SmearedCrossEntropy(loss.matrix)
    np.testing.assert_allclose(float(smeared(labels, logits)), expected, rtol=1e-5)


def test_label_smoothing_soft_targets_match_numpy(data):
    _, logits, _, soft = data
    alpha = 0.3
    ell = -np_log_softmax(logits.astype(np.float64))
    matrix = (1 - alpha) * np.eye(NUM_CLASSES) + alpha / NUM_CLASSES  # (1-a) I + a/L J
    expected = ((soft @ matrix) * ell).sum(axis=1)  # q^T M ell
    got = per_example(losses.LabelSmoothingCrossEntropy(alpha, NUM_CLASSES), soft, logits)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alpha", [-8.0, -1.0, -0.4, -0.1])
def test_negative_label_smoothing_matches_numpy(data, alpha):
    # Wei et al. 2022: the target (1 - alpha) onehot(y) + alpha / L, with negative weight on the other classes.
    _, logits, labels, soft = data
    ell = -np_log_softmax(logits.astype(np.float64))
    target = (1 - alpha) * np.eye(NUM_CLASSES)[labels] + alpha / NUM_CLASSES
    assert np.all(target[np.eye(NUM_CLASSES, dtype=bool)[labels] == 0] < 0)
    loss = losses.LabelSmoothingCrossEntropy(alpha, NUM_CLASSES)
    np.testing.assert_allclose(
        per_example(loss, labels, logits), (target * ell).sum(axis=1), rtol=1e-5, atol=1e-5
    )
    matrix = (1 - alpha) * np.eye(NUM_CLASSES) + alpha / NUM_CLASSES
    np.testing.assert_allclose(
        per_example(loss, soft, logits), ((soft @ matrix) * ell).sum(axis=1), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(loss.matrix, matrix)
    np.testing.assert_allclose(
        per_example(losses.get_loss("ls", NUM_CLASSES, alpha=alpha), labels, logits), (target * ell).sum(axis=1),
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip


def test_negative_label_smoothing_is_unbounded_below_for_confident_wrong_predictions():
    # Label 0; the prediction is class 1 (p = 0.88), the true class keeps p = 0.12, and the other
    # classes' logits go to -t. The negative target weight rewards that without end.
    def loss_at(alpha, t):
        logits = np.full((1, NUM_CLASSES), -t, np.float32)
        logits[0, 1] = 0.0  # the (wrong) predicted class
        logits[0, 0] = -2.0  # the true class
        return float(losses.LabelSmoothingCrossEntropy(alpha, NUM_CLASSES)(np.array([0]), logits))

    ts = [10.0, 100.0, 1000.0]
    for alpha in (-0.2, -1.0):
        values = [loss_at(alpha, t) for t in ts]
        assert values[0] > values[1] > values[2] and values[2] < -50, (alpha, values)  # no floor
    for alpha in (0.0, 0.2):  # the target is a distribution: the loss stays >= 0 (CE's -log 0.12 = 2.13)
        values = [loss_at(alpha, t) for t in ts]
        assert min(values) >= 2.1, (alpha, values)
    # The divergence check does not read the loss's sign (core/curves.py): a negative risk is an annotation.


@pytest.mark.parametrize("alpha", [1.0, 2.0, float("nan"), float("inf"), float("-inf")])
def test_label_smoothing_refuses_alpha_of_one_or_more_and_non_finite_alpha(alpha):
    with pytest.raises(ValueError, match=r"`alpha` must be in \(-inf, 1\), got"):
        losses.LabelSmoothingCrossEntropy(alpha, NUM_CLASSES)
    with pytest.raises(ValueError, match=r"must be in \(-inf, 1\)"):
        losses.get_loss("ls", NUM_CLASSES, alpha=alpha)
    assert alpha not in losses.LOSSES["ls"].alphas


@pytest.mark.parametrize("alpha", [-1.0001, -1.5, -8.0, -100.0])
def test_label_smoothing_accepts_any_finite_alpha_below_minus_one(data, alpha):
    # Every alpha < 0 is unbounded below, so -1 bounded nothing; Wei et al. sweep to -8.
    _, logits, labels, soft = data
    assert alpha in losses.LOSSES["ls"].alphas
    for loss in (
        losses.LabelSmoothingCrossEntropy(alpha, NUM_CLASSES),
        losses.get_loss("ls", NUM_CLASSES, alpha),
    ):
        assert loss.alpha == alpha
        for y_true in (labels, soft):
            assert np.all(np.isfinite(per_example(loss, y_true, logits)))
        value, gradient = value_and_gradient(lambda f, loss=loss: loss(labels, f), logits)
        assert np.isfinite(value) and np.all(np.isfinite(gradient))
        np.testing.assert_allclose(loss.matrix, noise.smoothing_matrix(NUM_CLASSES, alpha))


def test_only_label_smoothing_takes_a_negative_alpha():
    for name, entry in losses.LOSSES.items():
        assert (-0.2 in entry.alphas) == (name == "ls")
        if name != "ls":
            with pytest.raises(ValueError, match="alpha"):
                losses.get_loss(name, NUM_CLASSES, alpha=-0.2)


def test_label_smoothing_hand_computed():
    # L = 2, alpha = 0.2: target for y = 0 is [0.9, 0.1];
    # f = [2, 0]: 0.9 * 0.126928 + 0.1 * 2.126928 = 0.326928.
    loss = losses.LabelSmoothingCrossEntropy(alpha=0.2, num_classes=2)
    np.testing.assert_allclose(float(loss([0], [[2.0, 0.0]])), 0.326928, atol=1e-5)


# --------------------------------------------------------------------------- forward correction


def test_forward_correction_equals_log_of_noisy_probabilities(data):
    rng, logits, labels, soft = data
    transition = random_stochastic(rng)
    noisy = np_softmax(logits.astype(np.float64)) @ transition  # (T^T p)_y for each row
    expected_hard = -np.log(noisy[np.arange(BATCH), labels])  # -log (T^T p)_y
    expected_soft = -(soft * np.log(noisy)).sum(axis=1)  # sum_y q_y * (-log (T^T p)_y)
    loss = losses.ForwardCorrectedCrossEntropy(transition)
    for y_true in (labels, labels.reshape(-1, 1), one_hot(labels)):
        np.testing.assert_allclose(per_example(loss, y_true, logits), expected_hard, rtol=1e-5)
    np.testing.assert_allclose(per_example(loss, soft, logits), expected_soft, rtol=1e-5)
    np.testing.assert_allclose(
        losses.forward_corrected_cross_entropy(labels, logits, transition), expected_hard, rtol=1e-5
    )


def test_forward_correction_with_zeros_in_transition_is_exact_and_finite(data):
    _, logits, labels, _ = data
    # T = I has log 0 off the diagonal; FC with T = I is plain cross-entropy.
    loss = losses.ForwardCorrectedCrossEntropy(np.eye(NUM_CLASSES))
    expected = -np_log_softmax(logits.astype(np.float64))[np.arange(BATCH), labels]
    np.testing.assert_allclose(per_example(loss, labels, logits), expected, rtol=1e-5)
    value, gradient = value_and_gradient(lambda big: loss(one_hot(labels), big), logits * 300.0)
    assert np.isfinite(value)
    assert np.all(np.isfinite(gradient))


# --------------------------------------------------------------------------- backward correction


def test_backward_correction_equals_inverse_transition_times_losses(data):
    rng, logits, labels, soft = data
    transition = random_stochastic(rng)
    ell = -np_log_softmax(logits.astype(np.float64))
    smeared = ell @ np.linalg.inv(transition).T  # row b: T^-1 ell_b
    loss = losses.BackwardCorrectedCrossEntropy(transition)
    np.testing.assert_allclose(
        per_example(loss, labels, logits), smeared[np.arange(BATCH), labels], rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        per_example(loss, soft, logits), (soft * smeared).sum(axis=1), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        losses.backward_corrected_cross_entropy(labels, logits, transition),
        smeared[np.arange(BATCH), labels],
        rtol=1e-4,
        atol=1e-4,
    )


def test_backward_correction_hand_computed_is_negative():
    # T = [[0.9, 0.1], [0.1, 0.9]], T^-1 = [[1.125, -0.125], [-0.125, 1.125]];
    # f = [2, 0], y = 0: 1.125 * 0.126928 - 0.125 * 2.126928 = 0.142794 - 0.265866 = -0.123072.
    loss = losses.BackwardCorrectedCrossEntropy([[0.9, 0.1], [0.1, 0.9]])
    np.testing.assert_allclose(float(loss([0], [[2.0, 0.0]])), -0.123072, atol=1e-5)


# --------------------------------------------------------------------------- distillation


def test_distillation_matches_numpy(data):
    rng, student, _, _ = data
    teacher = rng.normal(scale=3.0, size=(BATCH, NUM_CLASSES)).astype(np.float32)
    temperature = 2.5
    targets = np_softmax(teacher / temperature)  # softmax(z_t / T)
    log_student = np_log_softmax(student.astype(np.float64) / temperature)  # log softmax(z_s / T)
    expected = -(targets * log_student).sum(axis=1)
    loss = losses.DistillationCrossEntropy(temperature=temperature)
    np.testing.assert_allclose(per_example(loss, teacher, student), expected, rtol=1e-5)

    # LS on student: targets (1 - a) q + a / L.
    smoothed = 0.8 * targets + 0.2 / NUM_CLASSES
    loss = losses.DistillationCrossEntropy(temperature=temperature, smoothing=0.2)
    np.testing.assert_allclose(
        per_example(loss, teacher, student), -(smoothed * log_student).sum(axis=1), rtol=1e-5
    )

    # FC on student: -sum_y q_y log (T^T softmax(z_s / temp))_y.
    transition = random_stochastic(rng)
    noisy = np.exp(log_student) @ transition
    loss = losses.DistillationCrossEntropy(temperature=temperature, transition=transition)
    np.testing.assert_allclose(
        per_example(loss, teacher, student), -(targets * np.log(noisy)).sum(axis=1), rtol=1e-5
    )
    np.testing.assert_allclose(
        losses.distillation_cross_entropy(teacher, student, temperature, transition=transition),
        -(targets * np.log(noisy)).sum(axis=1),
        rtol=1e-5,
    )


def test_temperature_squared_multiplies_the_distillation_loss_by_temperature_squared(data):
    rng, student, _, _ = data
    teacher = rng.normal(scale=3.0, size=(BATCH, NUM_CLASSES)).astype(np.float32)
    temperature = 3.0
    # -sum_y softmax(z_t / 3)_y log softmax(z_s / 3)_y, times 3^2 = 9.
    unscaled = -(np_softmax(teacher / temperature) * np_log_softmax(student / temperature)).sum(axis=1)
    plain = losses.DistillationCrossEntropy(temperature=temperature)
    scaled = losses.DistillationCrossEntropy(temperature=temperature, temperature_squared=True)
    np.testing.assert_allclose(per_example(plain, teacher, student), unscaled, rtol=1e-5)
    np.testing.assert_allclose(per_example(scaled, teacher, student), 9.0 * unscaled, rtol=1e-5)
    # Hand-computed: temperature 2, q = softmax([1, 0]), student uniform: 2^2 * -log 0.5 = 2.772589.
    hand = losses.DistillationCrossEntropy(temperature=2.0, temperature_squared=True)
    value = hand(np.array([[2.0, 0.0]], np.float32), np.array([[0.0, 0.0]], np.float32))
    np.testing.assert_allclose(float(value), 2.772589, atol=1e-5)


def test_distillation_hand_computed_and_teacher_gets_no_gradient():
    # temperature 2: q = softmax([1, 0]) = [0.731059, 0.268941]; student uniform: -log 0.5 = 0.693147.
    loss = losses.DistillationCrossEntropy(temperature=2.0)
    value = loss(np.array([[2.0, 0.0]], np.float32), np.array([[0.0, 0.0]], np.float32))
    np.testing.assert_allclose(float(value), 0.693147, atol=1e-5)
    # Student [1, -1]: -sum_y q_y log s_y depends on q, so only stop_gradient makes this zero.
    student = np.array([[1.0, -1.0]], np.float32)
    _, gradient = value_and_gradient(
        lambda teacher: loss(teacher, student), np.array([[2.0, 0.0]], np.float32)
    )
    assert gradient is None or not np.any(gradient)


# --------------------------------------------------------------------------- stability, graph mode


@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_finite_values_and_gradients_at_large_logits(data, name):
    _, logits, labels, _ = data
    big = (np.sign(logits) * 1e3).astype(np.float32)  # |f| = 1000
    loss = losses.get_loss(name, NUM_CLASSES, alpha=0.1, temperature=2.0)
    y_true = big[::-1] if name.startswith("distill") else labels
    value, gradient = value_and_gradient(lambda f: loss(y_true, f), big)
    assert np.isfinite(value)
    assert np.all(np.isfinite(gradient))


@tensorflow_only
def test_inside_tf_function_equals_eager(data):
    import tensorflow as tf

    rng, logits, labels, _ = data
    loss = losses.ForwardCorrectedCrossEntropy(random_stochastic(rng))
    graph_value = tf.function(lambda y, f: loss(y, f))(tf.constant(labels.reshape(-1, 1)), logits)
    np.testing.assert_allclose(float(graph_value), float(loss(labels, logits)), rtol=1e-6)


# --------------------------------------------------------------------------- serialisation


def loss_instances():
    rng = np.random.default_rng(1)
    transition = random_stochastic(rng)
    return [
        losses.SmearedCrossEntropy(rng.normal(size=(NUM_CLASSES, NUM_CLASSES))),
        losses.LabelSmoothingCrossEntropy(0.3, NUM_CLASSES),
        losses.ForwardCorrectedCrossEntropy(transition),
        losses.BackwardCorrectedCrossEntropy(transition),
        losses.DistillationCrossEntropy(3.0, smoothing=0.1, transition=transition, temperature_squared=True),
    ]


@pytest.mark.parametrize("loss", loss_instances(), ids=lambda loss: type(loss).__name__)
def test_serialisation_round_trip_gives_equal_outputs(data, loss):
    _, logits, labels, _ = data
    y_true = logits[::-1] if isinstance(loss, losses.DistillationCrossEntropy) else labels
    expected = float(loss(y_true, logits))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    np.testing.assert_allclose(float(restored(y_true, logits)), expected, rtol=1e-6)
    from_config = type(loss).from_config(loss.get_config())
    np.testing.assert_allclose(float(from_config(y_true, logits)), expected, rtol=1e-6)


# --------------------------------------------------------------------------- validation, registry


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: losses.LabelSmoothingCrossEntropy(1.5, NUM_CLASSES), "alpha"),
        (lambda: losses.LabelSmoothingCrossEntropy(float("nan"), NUM_CLASSES), "alpha"),
        (lambda: losses.ForwardCorrectedCrossEntropy([[0.5, 0.6], [0.5, 0.5]]), "sum to 1"),
        (lambda: losses.BackwardCorrectedCrossEntropy([[1.2, -0.2], [0.0, 1.0]]), "non-negative"),
        (lambda: losses.BackwardCorrectedCrossEntropy(np.ones((3, 2)) / 2), "square"),
        (lambda: losses.BackwardCorrectedCrossEntropy([[0.5, 0.5], [0.5, 0.5]]), "condition number"),
        (lambda: losses.DistillationCrossEntropy(0.0), "temperature"),
        (lambda: losses.DistillationCrossEntropy(-1.0), "temperature"),
        (lambda: losses.DistillationCrossEntropy(1.0, smoothing=2.0), "smoothing"),
        (lambda: losses.get_loss("bc", NUM_CLASSES, alpha=1.0), "alpha"),
        (lambda: losses.get_loss("focal", NUM_CLASSES), "ce, ls, fc, bc, distill"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_losses_and_noise_models_share_their_argument_checks():
    for loss_side, noise_side in [
        (lambda: losses.LabelSmoothingCrossEntropy(0.1, 2.5), lambda: noise.smoothing_matrix(2.5, 0.1)),
        (lambda: losses.get_loss("ls", 1), lambda: noise.symmetric_transition(1, 0.1)),
    ]:
        messages = []
        for build in (loss_side, noise_side):
            with pytest.raises(ValueError) as error:
                build()
            messages.append(str(error.value))
        assert messages[0] == messages[1]
    # Label smoothing's M is noise's T_alpha.
    np.testing.assert_array_equal(
        losses.LabelSmoothingCrossEntropy(0.3, NUM_CLASSES).matrix, noise.smoothing_matrix(NUM_CLASSES, 0.3)
    )


def test_registry_builds_smoothing_form_corrections(data):
    _, logits, labels, _ = data
    alpha = 0.2
    transition = (1 - alpha) * np.eye(NUM_CLASSES) + alpha / NUM_CLASSES  # T_alpha
    ell = -np_log_softmax(logits.astype(np.float64))
    rows = np.arange(BATCH)
    expected = {
        "ce": ell[rows, labels],
        "ls": (ell @ transition.T)[rows, labels],  # smoothing M = T_alpha
        "fc": -np.log((np_softmax(logits.astype(np.float64)) @ transition)[rows, labels]),
        "bc": (ell @ np.linalg.inv(transition).T)[rows, labels],
    }
    for name, values in expected.items():
        got = per_example(losses.get_loss(name, NUM_CLASSES, alpha=alpha), labels, logits)
        np.testing.assert_allclose(got, values, rtol=1e-4, atol=1e-4, err_msg=name)
    distill_fc = losses.get_loss("distill_fc", NUM_CLASSES, alpha=alpha, temperature=2.0)
    np.testing.assert_allclose(distill_fc.transition, transition)
    assert distill_fc.smoothing == 0.0
    distill = losses.get_loss("distill", NUM_CLASSES, alpha=alpha, temperature=2.0)
    assert (distill.smoothing, distill.transition, distill.temperature) == (alpha, None, 2.0)


def test_registry_lists_the_four_teacher_losses_in_table_order():
    assert list(losses.LOSSES) == [losses.CE, losses.LS, losses.FC, losses.BC] == ["ce", "ls", "fc", "bc"]
    assert [(name, entry.name, entry.label) for name, entry in losses.LOSSES.items()] == [
        ("ce", "ce", "CE"),
        ("ls", "ls", "LS"),
        ("fc", "fc", "FC"),
        ("bc", "bc", "BC"),
    ]
    assert losses.LOSS_NAMES == ("ce", "ls", "fc", "bc", "distill", "distill_fc")


@pytest.mark.parametrize("name", ["ce", "ls", "fc", "bc"])
def test_registry_flags_describe_what_each_builder_does(data, name):
    rng, logits, labels, _ = data
    entry = losses.LOSSES[name]
    transition = random_stochastic(rng)

    def values(**kwargs):
        return per_example(entry.build(NUM_CLASSES, **kwargs), labels, logits)

    # uses_alpha: alpha changes the loss; uses_transition: a given T replaces T_alpha.
    alpha_matters = not np.allclose(values(alpha=0.0), values(alpha=0.3))
    transition_matters = not np.allclose(values(alpha=0.3), values(alpha=0.3, transition=transition))
    assert (alpha_matters, transition_matters) == (entry.uses_alpha, entry.uses_transition)
    # alphas: the range it accepts; BC's T_1 = J / L is singular, so BC refuses alpha = 1.
    assert (1.0 in entry.alphas) == (name in ("ce", "fc"))
    for alpha in (entry.alphas.low, entry.alphas.high):
        if alpha in entry.alphas:
            assert np.all(np.isfinite(values(alpha=alpha)))
        else:
            with pytest.raises(ValueError, match="alpha"):
                entry.build(NUM_CLASSES, alpha=alpha)
    np.testing.assert_allclose(
        per_example(losses.get_loss(name, NUM_CLASSES, alpha=0.3, transition=transition), labels, logits),
        values(alpha=0.3, transition=transition),
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda entry: entry.build(1),
        lambda entry: entry.build(2.5, alpha=0.1),
        lambda entry: entry.build(NUM_CLASSES, alpha=1.5),
        lambda entry: entry.build(NUM_CLASSES, alpha=float("nan")),
        lambda entry: entry.build(NUM_CLASSES, alpha=float("-inf")),
    ],
)
@pytest.mark.parametrize("name", ["ce", "ls", "fc", "bc"])
def test_registry_builders_validate_num_classes_and_alpha(name, build):
    with pytest.raises(ValueError, match="num_classes|alpha"):
        build(losses.LOSSES[name])


def test_cross_entropy_warmup_is_plain_ce_until_its_step_then_the_loss(data):
    _, logits, labels, _ = data
    step = keras.Variable(0, dtype="int64")
    after = losses.get_loss("ls", NUM_CLASSES, alpha=-0.4)
    warmup = losses.CrossEntropyWarmup(after, 3, step)
    ce = float(losses.get_loss("ce", NUM_CLASSES)(labels, logits))
    for value, expected in (
        (0, ce),
        (2, ce),
        (3, float(after(labels, logits))),
        (100, float(after(labels, logits))),
    ):
        step.assign(value)
        np.testing.assert_allclose(float(warmup(labels, logits)), expected, rtol=1e-6)
    # Its config round-trips without the variable; such a copy compiles but cannot train.
    copy = losses.CrossEntropyWarmup.from_config(warmup.get_config())
    assert (copy.warmup_steps, copy.loss.alpha, copy.step) == (3, -0.4, None)
    with pytest.raises(ValueError, match="needs `step`"):
        copy(labels, logits)
    with pytest.raises(ValueError, match="warmup_steps"):
        losses.CrossEntropyWarmup(after, -1, step)
