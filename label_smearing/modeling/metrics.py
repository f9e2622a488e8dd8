"""Calibration metrics: top-label expected calibration error (ECE).

The paper (Table 4) reports top-label ECE with equal-width confidence bins; its bin
count is not recoverable, so 15 bins (Guo et al. 2017) is our default.

Binning convention, shared by the NumPy functions and the streaming Keras metric:
with M bins and edges e_i = i / M, bin i covers (e_i, e_{i+1}]; a confidence of
exactly 0 goes in bin 0 and (rounding) confidences above 1 go in the last bin. The
bin index of a confidence c is the number of interior edges e_1..e_{M-1} strictly
below c.

    ECE = sum_b (n_b / N) |acc_b - conf_b| = (1 / N) sum_b |sum_{i in b} correct_i - sum_{i in b} c_i|
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["ExpectedCalibrationError", "expected_calibration_error", "reliability_bins"]


def _check_num_bins(num_bins: Any) -> int:
    if isinstance(num_bins, bool) or not isinstance(num_bins, int | np.integer) or num_bins < 1:
        raise ValueError(f"num_bins must be an integer >= 1, got {num_bins!r}")
    return int(num_bins)


def _bin_edges(num_bins: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, num_bins + 1)


class ReliabilityBins:
    """Top-label confidence against accuracy in equal-width bins, accumulated batch by batch (NumPy).

    `update` adds a batch; `result` gives the per-bin statistics and the ECE of
    everything added, exactly as `reliability_bins` of the concatenated batches.

    Example:
        >>> bins = ReliabilityBins(num_bins=2)
        >>> bins.update(np.array([[0.9, 0.1]]), np.array([0]))
        >>> bins.update(np.array([[0.2, 0.8]]), np.array([0]))
        >>> round(bins.result()["ece"], 6)  # one bin: accuracy 1/2, mean confidence 0.85
        0.35
    """

    def __init__(self, num_bins: int = 15):
        self.num_bins = _check_num_bins(num_bins)
        self.edges = _bin_edges(self.num_bins)
        self.counts = np.zeros(self.num_bins, np.int64)
        self.correct = np.zeros(self.num_bins)  # per-bin sums of 0/1 correctness
        self.confidence = np.zeros(self.num_bins)  # per-bin sums of top-label probability

    def update(self, probs: np.ndarray, labels: np.ndarray) -> None:
        """Adds a batch: probs (N, L) class probabilities, labels (N,) integers in [0, L).

        Raises:
            ValueError: On badly shaped inputs, labels out of range or non-finite probabilities.
        """
        probs = np.asarray(probs, dtype=np.float64)
        labels = np.asarray(labels)
        if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] == 0:
            raise ValueError(f"probs must have shape (N, L) with N, L >= 1, got {probs.shape}")
        if labels.shape != (probs.shape[0],):
            raise ValueError(f"labels must have shape ({probs.shape[0]},) to match probs, got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        if labels.min() < 0 or labels.max() >= probs.shape[1]:
            raise ValueError(
                f"labels must lie in [0, {probs.shape[1]}), got [{labels.min()}, {labels.max()}]"
            )
        if not np.all(np.isfinite(probs)):
            raise ValueError("probs must be finite")
        confidence = probs.max(axis=1)
        correct = (probs.argmax(axis=1) == labels).astype(np.float64)
        # Number of interior edges strictly below c, i.e. c in (e_i, e_{i+1}] -> i, c = 0 -> 0.
        bin_index = np.searchsorted(self.edges[1:-1], confidence, side="left")
        self.counts += np.bincount(bin_index, minlength=self.num_bins)
        self.correct += np.bincount(bin_index, weights=correct, minlength=self.num_bins)
        self.confidence += np.bincount(bin_index, weights=confidence, minlength=self.num_bins)

    def result(self) -> dict[str, Any]:
        """`edges`, `counts`, per-bin `accuracy` and mean `confidence` (0 where empty), `num_examples`, `ece`.

        Raises:
            ValueError: Nothing was added.
        """
        num_examples = int(self.counts.sum())
        if num_examples == 0:
            raise ValueError("no examples were added")
        nonempty = self.counts > 0
        accuracy = np.divide(self.correct, self.counts, out=np.zeros(self.num_bins), where=nonempty)
        mean_confidence = np.divide(self.confidence, self.counts, out=np.zeros(self.num_bins), where=nonempty)
        ece = float(np.sum(self.counts / num_examples * np.abs(accuracy - mean_confidence)))
        return {
            "edges": self.edges,
            "counts": self.counts.copy(),
            "accuracy": accuracy,
            "confidence": mean_confidence,
            "num_examples": num_examples,
            "ece": ece,
        }


def reliability_bins(probs: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> dict[str, Any]:
    """Per-bin statistics of top-label confidence against accuracy.

    Args:
        probs: Predicted class probabilities, shape (N, L).
        labels: Integer labels in [0, L), shape (N,).
        num_bins: Number of equal-width confidence bins over [0, 1].

    Returns:
        A dict with
        `edges` (num_bins + 1,) bin edges;
        `counts` (num_bins,) number of examples per bin;
        `accuracy` (num_bins,) fraction of correct top-label predictions per bin (0 where empty);
        `confidence` (num_bins,) mean top-label probability per bin (0 where empty);
        `num_examples` N; and `ece`, the expected calibration error computed from these bins.

    Raises:
        ValueError: On badly shaped inputs, labels out of range or num_bins < 1.
    """
    bins = ReliabilityBins(num_bins)
    bins.update(probs, labels)
    return bins.result()


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, num_bins: int = 15) -> float:
    """Top-label expected calibration error with equal-width confidence bins.

    Formula:
        ECE = sum_b (n_b / N) * |accuracy_b - mean confidence_b|, bins (i/M, (i+1)/M].

    Args:
        probs: Predicted class probabilities, shape (N, L).
        labels: Integer labels in [0, L), shape (N,).
        num_bins: Number of bins M >= 1.

    Returns:
        The ECE as a Python float in [0, 1].

    Example:
        >>> # One bin (0.5, 1] holds both: accuracy 1/2, mean confidence 0.85 -> ECE 0.35.
        >>> round(expected_calibration_error(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 0]), 2), 6)
        0.35

    References:
        Guo, Pleiss, Sun, Weinberger, "On calibration of modern neural networks", ICML 2017.
    """
    return reliability_bins(probs, labels, num_bins)["ece"]


def _accumulator_dtype() -> str:
    """float64 where the backend supports it (JAX only with x64 enabled), else float32."""
    if keras.backend.backend() == "jax":
        import jax

        return "float64" if jax.config.jax_enable_x64 else "float32"
    return "float64"


@keras.saving.register_keras_serializable(package="smear")
class ExpectedCalibrationError(keras.metrics.Metric):
    """Streaming top-label expected calibration error.

    Accumulates, per equal-width confidence bin, the (weighted) number of examples, the
    number of correct top-label predictions and the sum of confidences; `result()` is
    (1 / N) sum_b |correct_b - confidence_sum_b|, identical to
    `expected_calibration_error` on the concatenated batches. Accumulators are float64
    when the backend supports it.

    Args:
        num_bins: Number of equal-width bins over [0, 1]; >= 1.
        from_logits: Whether `y_pred` holds logits (softmax is applied) or probabilities.
        name: Metric name; use `split/ece` names in trainers (e.g. `test/ece`).
        dtype: Dtype of the result.

    Example:
        >>> model.compile(loss=..., metrics=[ExpectedCalibrationError(num_bins=15)])

    References:
        Guo et al., "On calibration of modern neural networks", ICML 2017.
    """

    def __init__(
        self, num_bins: int = 15, from_logits: bool = True, name: str = "ece", dtype: Any = None
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self.num_bins = _check_num_bins(num_bins)
        self.from_logits = bool(from_logits)
        self._accumulator_dtype = _accumulator_dtype()
        self._interior_edges = _bin_edges(self.num_bins)[1:-1]

        def variable(variable_name: str) -> keras.Variable:
            return self.add_variable(
                shape=(self.num_bins,),
                initializer="zeros",
                dtype=self._accumulator_dtype,
                aggregation="sum",
                name=variable_name,
            )

        self.bin_counts = variable("bin_counts")
        self.bin_correct = variable("bin_correct")
        self.bin_confidence = variable("bin_confidence")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds a batch.

        Args:
            y_true: Integer labels, shape (B,) or (B, 1).
            y_pred: Logits (or probabilities if `from_logits=False`), shape (B, L).
            sample_weight: Optional per-example weights, shape (B,) or (B, 1).
        """
        acc_dtype = self._accumulator_dtype
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        if len(y_pred.shape) != 2:
            raise ValueError(f"y_pred must have shape (B, L), got {tuple(y_pred.shape)}")
        if len(y_true.shape) == 2 and y_true.shape[-1] not in (None, 1):
            raise ValueError(f"y_true must be integer labels of shape (B,) or (B, 1), got {y_true.shape}")
        y_pred = ops.cast(y_pred, acc_dtype)
        probs = ops.softmax(y_pred, axis=-1) if self.from_logits else y_pred
        confidence = ops.max(probs, axis=-1)
        predictions = ops.cast(ops.argmax(probs, axis=-1), "int32")
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        correct = ops.cast(ops.equal(predictions, labels), acc_dtype)

        edges = ops.convert_to_tensor(self._interior_edges, dtype=acc_dtype)
        bin_index = ops.sum(ops.cast(confidence[:, None] > edges[None, :], "int32"), axis=1)
        one_hot = ops.one_hot(bin_index, self.num_bins, dtype=acc_dtype)  # (B, M)
        if sample_weight is None:
            weights = ops.ones_like(confidence)
        else:
            weights = ops.reshape(ops.cast(sample_weight, acc_dtype), (-1,))
        self.bin_counts.assign_add(ops.matmul(weights, one_hot))
        self.bin_correct.assign_add(ops.matmul(weights * correct, one_hot))
        self.bin_confidence.assign_add(ops.matmul(weights * confidence, one_hot))

    def result(self) -> Any:
        """The ECE over everything added since the last reset (0 if nothing was added)."""
        total = ops.sum(self.bin_counts)
        gap = ops.sum(ops.abs(self.bin_correct - self.bin_confidence))
        return ops.cast(ops.divide_no_nan(gap, total), self.dtype)

    def reset_state(self) -> None:
        """Zeros the per-bin accumulators."""
        for variable in (self.bin_counts, self.bin_correct, self.bin_confidence):
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self) -> dict[str, Any]:
        """Every constructor argument, for serialisation."""
        return {**super().get_config(), "num_bins": self.num_bins, "from_logits": self.from_logits}
