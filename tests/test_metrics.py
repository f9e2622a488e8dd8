"""Tests for label_smearing.modeling.metrics (expected calibration error)."""

import keras
import numpy as np
import pytest

from label_smearing.modeling import metrics
from label_smearing.modeling.metrics import (
    ExpectedCalibrationError,
    expected_calibration_error,
    reliability_bins,
)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _loop_ece(probs: np.ndarray, labels: np.ndarray, num_bins: int) -> float:
    """Independent, deliberately naive ECE: one pass over the examples per bin."""
    n = len(labels)
    total = 0.0
    for b in range(num_bins):
        lower, upper = b / num_bins, (b + 1) / num_bins
        confidences, hits = [], []
        for i in range(n):
            confidence = max(probs[i])
            if lower < confidence <= upper or (b == 0 and confidence == 0.0):
                confidences.append(confidence)
                hits.append(1.0 if list(probs[i]).index(confidence) == labels[i] else 0.0)
        if confidences:
            gap = abs(sum(hits) / len(hits) - sum(confidences) / len(confidences))
            total += len(confidences) / n * gap
    return total


def _random_case(seed: int, n: int = 300, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=rng.uniform(0.5, 4.0, size=(n, 1)), size=(n, num_classes))
    labels = rng.integers(0, num_classes, size=n)
    # Make the model right more often than chance so bins have varied accuracy.
    agree = rng.random(n) < 0.5
    labels[agree] = logits[agree].argmax(axis=1)
    return logits, labels


def test_hand_computed_ece_three_bins():
    probs = np.array(
        [
            [0.3, 0.25, 0.25, 0.2],  # conf 0.3 -> bin 0 (0, 1/3], predicts 0, label 0: correct
            [0.1, 0.6, 0.2, 0.1],  # conf 0.6 -> bin 1 (1/3, 2/3], correct
            [0.5, 0.2, 0.2, 0.1],  # conf 0.5 -> bin 1, predicts 0, label 2: wrong
            [0.9, 0.05, 0.05, 0.0],  # conf 0.9 -> bin 2 (2/3, 1], correct
            [0.05, 0.05, 0.1, 0.8],  # conf 0.8 -> bin 2, predicts 3, label 0: wrong
            [0.7, 0.1, 0.1, 0.1],  # conf 0.7 -> bin 2, correct
        ]
    )
    labels = np.array([0, 1, 2, 0, 0, 0])
    # bin 0: n=1, acc 1,   conf 0.3               -> (1/6) * 0.7
    # bin 1: n=2, acc 1/2, conf 0.55              -> (2/6) * 0.05
    # bin 2: n=3, acc 2/3, conf (0.9+0.8+0.7)/3=0.8 -> (3/6) * 0.1333...
    # ECE = (0.7 + 0.1 + 0.4) / 6 = 0.2
    assert expected_calibration_error(probs, labels, num_bins=3) == pytest.approx(0.2, abs=1e-12)
    bins = reliability_bins(probs, labels, num_bins=3)
    np.testing.assert_array_equal(bins["counts"], [1, 2, 3])
    np.testing.assert_allclose(bins["accuracy"], [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(bins["confidence"], [0.3, 0.55, 0.8])
    np.testing.assert_allclose(bins["edges"], [0.0, 1 / 3, 2 / 3, 1.0])


def test_bin_boundaries_are_right_closed_and_zero_goes_first():
    # M=2: bins (0, 0.5] and (0.5, 1]. conf 0.5 -> bin 0; conf 0 -> bin 0; conf 0.8 -> bin 1.
    probs = np.array([[0.5, 0.4], [0.0, 0.0], [0.2, 0.8]])
    labels = np.array([0, 0, 1])
    bins = reliability_bins(probs, labels, num_bins=2)
    np.testing.assert_array_equal(bins["counts"], [2, 1])
    # bin 0: both correct (argmax of [0, 0] is 0), mean conf 0.25 -> (2/3)*0.75; bin 1: (1/3)*0.2
    assert bins["ece"] == pytest.approx((2 / 3) * 0.75 + (1 / 3) * 0.2)
    # The streaming metric uses the same convention.
    metric = ExpectedCalibrationError(num_bins=2, from_logits=False)
    metric.update_state(labels, probs)
    np.testing.assert_array_equal(np.asarray(metric.bin_counts), [2, 1])
    assert float(metric.result()) == pytest.approx(bins["ece"], abs=1e-6)


@pytest.mark.parametrize("num_bins", [1, 10, 15])
@pytest.mark.parametrize("seed", [0, 1])
def test_ece_matches_loop_implementation(num_bins, seed):
    logits, labels = _random_case(seed)
    probs = _softmax(logits)
    expected = _loop_ece(probs, labels, num_bins)
    assert expected > 0.01  # the case is not trivially calibrated
    assert expected_calibration_error(probs, labels, num_bins) == pytest.approx(expected, abs=1e-6)


def test_single_bin_ece_is_gap_between_accuracy_and_mean_confidence():
    logits, labels = _random_case(3)
    probs = _softmax(logits)
    accuracy = np.mean(probs.argmax(axis=1) == labels)
    assert expected_calibration_error(probs, labels, 1) == pytest.approx(abs(accuracy - probs.max(1).mean()))


@pytest.mark.parametrize(
    "probs, labels, num_bins, message",
    [
        (np.ones(4) / 4, np.array([0]), 15, "shape"),
        (np.ones((3, 4)) / 4, np.array([0, 1]), 15, "shape"),
        (np.ones((2, 4)) / 4, np.array([0, 4]), 15, r"\[0, 4\)"),
        (np.ones((2, 4)) / 4, np.array([0.0, 1.0]), 15, "integers"),
        (np.ones((2, 4)) / 4, np.array([0, 1]), 0, "num_bins"),
        (np.ones((2, 4)) / 4, np.array([0, 1]), 2.5, "num_bins"),
    ],
)
def test_bad_inputs_raise_value_error(probs, labels, num_bins, message):
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(probs, labels, num_bins)


def test_streaming_metric_over_batches_equals_function():
    logits, labels = _random_case(4, n=250)
    metric = ExpectedCalibrationError(num_bins=15)
    # Uneven batches; alternate label shapes (B,) and (B, 1).
    for k, (start, stop) in enumerate([(0, 100), (100, 137), (137, 250)]):
        batch_labels = labels[start:stop] if k % 2 == 0 else labels[start:stop, None]
        metric.update_state(batch_labels, logits[start:stop].astype(np.float32))
    expected = expected_calibration_error(_softmax(logits.astype(np.float32).astype(np.float64)), labels, 15)
    assert float(metric.result()) == pytest.approx(expected, abs=1e-5)

    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state(labels[:50], logits[:50])
    assert float(metric.result()) == pytest.approx(
        expected_calibration_error(_softmax(logits[:50]), labels[:50]), abs=1e-5
    )


def test_streaming_metric_from_probabilities_and_sample_weight():
    logits, labels = _random_case(5, n=120)
    probs = _softmax(logits)
    metric = ExpectedCalibrationError(num_bins=10, from_logits=False)
    # Weight 2 on the first 40 examples is the same as listing them twice.
    weights = np.where(np.arange(120) < 40, 2.0, 1.0)
    metric.update_state(labels, probs, sample_weight=weights)
    duplicated = np.concatenate([probs, probs[:40]]), np.concatenate([labels, labels[:40]])
    assert float(metric.result()) == pytest.approx(expected_calibration_error(*duplicated, 10), abs=1e-5)


def test_streaming_metric_through_model_evaluate():
    logits, labels = _random_case(6, n=200)
    logits = logits.astype(np.float32)
    inputs = keras.Input(shape=(logits.shape[1],))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))  # outputs the given logits
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[ExpectedCalibrationError(num_bins=15, name="test/ece")],
    )
    result = model.evaluate(logits, labels[:, None], batch_size=32, verbose=0, return_dict=True)
    expected = expected_calibration_error(_softmax(logits.astype(np.float64)), labels, 15)
    assert result["test/ece"] == pytest.approx(expected, abs=1e-5)


def test_metric_serialisation_round_trip():
    metric = ExpectedCalibrationError(num_bins=7, from_logits=False, name="val/ece")
    serialised = keras.saving.serialize_keras_object(metric)
    assert serialised["registered_name"] == "smear>ExpectedCalibrationError"
    restored = keras.saving.deserialize_keras_object(serialised)
    assert isinstance(restored, ExpectedCalibrationError)
    assert restored.get_config() == metric.get_config()
    assert (restored.num_bins, restored.from_logits, restored.name) == (7, False, "val/ece")


def test_metric_rejects_bad_num_bins_and_one_hot_labels():
    with pytest.raises(ValueError, match="num_bins"):
        ExpectedCalibrationError(num_bins=0)
    metric = ExpectedCalibrationError()
    with pytest.raises(ValueError, match="y_true"):
        metric.update_state(np.eye(3)[[0, 1]], np.zeros((2, 3)))


def test_reliability_bins_accumulated_over_batches_equal_those_of_the_whole_split():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(301, 7)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 7, size=301)
    whole = metrics.reliability_bins(probs, labels, 10)
    streamed = metrics.ReliabilityBins(10)
    for start in range(0, 301, 64):  # uneven last batch
        streamed.update(probs[start : start + 64], labels[start : start + 64])
    got = streamed.result()
    np.testing.assert_array_equal(got["counts"], whole["counts"])
    for key in ("accuracy", "confidence"):
        np.testing.assert_allclose(got[key], whole[key], rtol=1e-12)
    assert got["num_examples"] == 301 and got["ece"] == pytest.approx(whole["ece"], rel=1e-12)
    with pytest.raises(ValueError, match="no examples"):
        metrics.ReliabilityBins(10).result()
