"""label-smearing: label smoothing and loss correction under label noise.

A reproduction toolkit for "Does label smoothing mitigate label noise?" (Lukasik
et al., ICML 2020). The public API is the pure Keras 3 part, usable on any model:

    import label_smearing as ls

    model.compile(optimizer="sgd", loss=ls.LabelSmoothingCrossEntropy(alpha=0.1, num_classes=10))
    model.compile(optimizer="sgd", loss=ls.ForwardCorrectedCrossEntropy(ls.symmetric_transition(10, 0.2)))

Losses (`label_smearing.modeling.losses`), noise models (`.noise`), metrics
(`.metrics`) and the LARS optimizer with its schedules (`.optimizers`) are
imported on first use, so `import label_smearing` (and the `smear` CLI's
`--help`) does not load TensorFlow or Keras.

Sub-packages, bottom layer first (no import goes up; tests/test_layers.py):
  modeling/     pure Keras 3: losses, noise models, metrics, optimizers, models
  core/         plumbing: artifacts, layout, the stage registry, spec, configs, tf.data, locks
  beam_core/    Beam plumbing: options and runners, sources, TFRecord bytes
  stages/       one module per stage kind (noisify, train, export-logits, ...)
  experiments/  the synthetic Figure 1 / Figure 5 / Theorem 1 experiments
  pipeline/     the plan, its executors (in process, --jobs N, Kubeflow) and publishing
  configs/      bundled configs, named on the command line as `quickstart:smoke`
  cli.py        the `smear` command
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.4.0"  # the release; artifact fingerprints do not cover it (core/registry.py has the stages')

# Public name -> the module that defines it (imported on first access).
_API = {
    # losses: the label-smearing family, on logits
    "SmearedCrossEntropy": "label_smearing.modeling.losses",
    "LabelSmoothingCrossEntropy": "label_smearing.modeling.losses",
    "BackwardCorrectedCrossEntropy": "label_smearing.modeling.losses",
    "ForwardCorrectedCrossEntropy": "label_smearing.modeling.losses",
    "DistillationCrossEntropy": "label_smearing.modeling.losses",
    "CrossEntropyWarmup": "label_smearing.modeling.losses",
    "get_loss": "label_smearing.modeling.losses",
    "LOSSES": "label_smearing.modeling.losses",
    # noise models: transition matrices and the deterministic noisy-label draw
    "smoothing_matrix": "label_smearing.modeling.noise",
    "symmetric_transition": "label_smearing.modeling.noise",
    "uniform_transition": "label_smearing.modeling.noise",
    "pair_flip_transition": "label_smearing.modeling.noise",
    "make_transition": "label_smearing.modeling.noise",
    "assign_noisy_labels": "label_smearing.modeling.noise",
    "instance_noisy_labels": "label_smearing.modeling.noise",
    "NOISE_MODELS": "label_smearing.modeling.noise",
    # metrics: calibration
    "ExpectedCalibrationError": "label_smearing.modeling.metrics",
    "expected_calibration_error": "label_smearing.modeling.metrics",
    "reliability_bins": "label_smearing.modeling.metrics",
    # optimizers and schedules
    "LARS": "label_smearing.modeling.optimizers",
    "WarmupCosineDecay": "label_smearing.modeling.optimizers",
    "WarmupPolynomialDecay": "label_smearing.modeling.optimizers",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # later accesses skip this function
        return value
    raise AttributeError(f"module 'label_smearing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from label_smearing.modeling.losses import (
        LOSSES,
        BackwardCorrectedCrossEntropy,
        CrossEntropyWarmup,
        DistillationCrossEntropy,
        ForwardCorrectedCrossEntropy,
        LabelSmoothingCrossEntropy,
        SmearedCrossEntropy,
        get_loss,
    )
    from label_smearing.modeling.metrics import (
        ExpectedCalibrationError,
        expected_calibration_error,
        reliability_bins,
    )
    from label_smearing.modeling.noise import (
        NOISE_MODELS,
        assign_noisy_labels,
        instance_noisy_labels,
        make_transition,
        pair_flip_transition,
        smoothing_matrix,
        symmetric_transition,
        uniform_transition,
    )
    from label_smearing.modeling.optimizers import LARS, WarmupCosineDecay, WarmupPolynomialDecay
