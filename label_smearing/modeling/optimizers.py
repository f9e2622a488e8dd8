"""LARS, learning-rate schedules and an optimizer registry.

CIFAR (the paper, Appendix B): SGD with Nesterov momentum 0.9, learning rate 0.1
divided by 10 at 32k and 48k of 64k steps (`step_decay_schedule`); weight decay is a
kernel regulariser in the model. ImageNet: LARS (`LARS`) with a warm-up schedule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import keras
from keras import ops

# Batch-norm parameters and biases, by the Keras 3 variable paths they appear under
# (e.g. "batch_normalization/gamma", "stage1_block1_bn1/beta", "dense/bias").
DEFAULT_EXCLUSIONS: tuple[str, ...] = ("batch_normalization", "bn", "gamma", "beta", "bias")

# LARS trust-ratio forms (see `LARS`); the first is the default.
TRUST_RATIOS: tuple[str, ...] = ("you2017", "simclr")


def _variable_path(variable) -> str:
    return str(getattr(variable, "path", None) or variable.name)


def _l2_norm(x):
    return ops.sqrt(ops.sum(ops.square(x)))


@keras.saving.register_keras_serializable(package="smear")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise adaptive rate scaling, classic-momentum form (You et al. 2017).

    For each variable w with gradient `grad` (wd = weight_decay, 0 if w is excluded
    from weight decay; eta = trust_coefficient):

    ```
    trust_ratio="you2017" (default; You et al. 2017, TensorFlow's tf.contrib LARSOptimizer):
        ratio = eta * ||w|| / (||grad|| + wd * ||w|| + epsilon)   # if ||w|| > 0 and ||grad|| > 0, else 1
        g = grad + wd * w
    trust_ratio="simclr" (the SimCLR LARSOptimizer; epsilon unused):
        g = grad + wd * w
        ratio = eta * ||w|| / ||g||                                # if ||w|| > 0 and ||g|| > 0, else 1
    then, with ratio = 1 if w is excluded from layer adaptation:
        v = momentum * v + learning_rate * ratio * g
        w = w - v                                # nesterov: w - (momentum * v + lr * ratio * g)
    ```

    Weight decay is folded into the gradient here; Keras' own decoupled
    ``weight_decay`` of the base optimizer is not used.

    Args:
        learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`.
        momentum: in [0, 1).
        weight_decay: >= 0, L2 coefficient added to the gradient.
        trust_coefficient: eta > 0 in the trust ratio.
        nesterov: use Nesterov momentum.
        exclude_from_weight_decay: regexes searched in each variable's path; matching
            variables get no weight decay. None means `DEFAULT_EXCLUSIONS`
            (batch-norm parameters and biases); [] excludes nothing.
        exclude_from_layer_adaptation: likewise for the trust ratio (ratio 1). None
            means the weight-decay exclusions.
        trust_ratio: one of `TRUST_RATIOS`: "you2017" (the decay-free gradient norm plus
            wd * ||w|| in the denominator) or "simclr" (the norm of the decayed gradient).
        epsilon: >= 0, added to the "you2017" denominator (tf.contrib's default 0).
        name: optimizer name.
        **kwargs: other `keras.optimizers.Optimizer` arguments (clipnorm, ...).

    Example:

    >>> optimizer = LARS(WarmupCosineDecay(1.0, total_steps=1000, warmup_steps=50), weight_decay=1e-4)

    References:
        You, Gitman, Ginsburg, "Large batch training of convolutional networks", 2017
        (arXiv:1708.03888); TensorFlow's `tf.contrib.opt.LARSOptimizer`, used by the TPU
        ResNet-50 reference ("you2017"); Chen et al., "A simple framework for contrastive
        learning of visual representations" (SimCLR), 2020, its `LARSOptimizer` ("simclr").
    """

    def __init__(
        self,
        learning_rate=0.001,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        nesterov: bool = False,
        exclude_from_weight_decay: Sequence[str] | None = None,
        exclude_from_layer_adaptation: Sequence[str] | None = None,
        trust_ratio: str = "you2017",
        epsilon: float = 0.0,
        name: str = "LARS",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=None, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1), got {momentum}.")
        if weight_decay is None or weight_decay < 0:
            raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay}.")
        if not trust_coefficient > 0:
            raise ValueError(f"`trust_coefficient` must be > 0, got {trust_coefficient}.")
        if trust_ratio not in TRUST_RATIOS:
            raise ValueError(f"Unknown `trust_ratio` {trust_ratio!r}; one of: {', '.join(TRUST_RATIOS)}.")
        if epsilon is None or not epsilon >= 0:
            raise ValueError(f"`epsilon` must be >= 0, got {epsilon}.")
        self.momentum = float(momentum)
        self.weight_decay_rate = float(weight_decay)
        self.trust_coefficient = float(trust_coefficient)
        self.nesterov = bool(nesterov)
        self.trust_ratio = trust_ratio
        self.epsilon = float(epsilon)
        if exclude_from_weight_decay is None:
            exclude_from_weight_decay = DEFAULT_EXCLUSIONS
        if exclude_from_layer_adaptation is None:
            exclude_from_layer_adaptation = exclude_from_weight_decay
        self.exclude_from_weight_decay_patterns = list(exclude_from_weight_decay)
        self.exclude_from_layer_adaptation_patterns = list(exclude_from_layer_adaptation)

    @staticmethod
    def _matches(variable, patterns: Sequence[str]) -> bool:
        path = _variable_path(variable)
        return any(re.search(pattern, path) for pattern in patterns)

    def uses_weight_decay(self, variable) -> bool:
        """Whether `variable` (a model variable) gets weight decay."""
        return not self._matches(variable, self.exclude_from_weight_decay_patterns)

    def uses_layer_adaptation(self, variable) -> bool:
        """Whether `variable` (a model variable) gets the trust ratio."""
        return not self._matches(variable, self.exclude_from_layer_adaptation_patterns)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = [self.add_variable_from_reference(v, name="momentum") for v in variables]
        # Decided here from the Keras variables' paths: under the TF backend update_step
        # receives the underlying tf.Variable.
        self._use_weight_decay_flags = [self.uses_weight_decay(v) for v in variables]
        self._use_adaptation_flags = [self.uses_layer_adaptation(v) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        velocity = self.momentums[index]

        decays = self._use_weight_decay_flags[index] and self.weight_decay_rate > 0
        weight_decay = ops.cast(self.weight_decay_rate if decays else 0.0, dtype)
        decayed_gradient = gradient + weight_decay * variable if decays else gradient
        if self._use_adaptation_flags[index]:
            weight_norm = _l2_norm(variable)
            if self.trust_ratio == "simclr":
                gradient_norm = _l2_norm(decayed_gradient)
                denominator = gradient_norm
            else:  # you2017
                gradient_norm = _l2_norm(gradient)
                denominator = gradient_norm + weight_decay * weight_norm + ops.cast(self.epsilon, dtype)
            both_positive = ops.logical_and(weight_norm > 0, gradient_norm > 0)
            ratio = ops.where(
                both_positive,
                ops.cast(self.trust_coefficient, dtype)
                * weight_norm
                / ops.where(both_positive, denominator, 1),
                ops.ones_like(weight_norm),
            )
            scaled_learning_rate = learning_rate * ratio
        else:
            scaled_learning_rate = learning_rate
        gradient = decayed_gradient

        momentum = ops.cast(self.momentum, dtype)
        new_velocity = momentum * velocity + scaled_learning_rate * gradient
        self.assign(velocity, new_velocity)
        if self.nesterov:
            self.assign_sub(variable, momentum * new_velocity + scaled_learning_rate * gradient)
        else:
            self.assign_sub(variable, new_velocity)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.weight_decay_rate,
                "trust_coefficient": self.trust_coefficient,
                "nesterov": self.nesterov,
                "trust_ratio": self.trust_ratio,
                "epsilon": self.epsilon,
                "exclude_from_weight_decay": list(self.exclude_from_weight_decay_patterns),
                "exclude_from_layer_adaptation": list(self.exclude_from_layer_adaptation_patterns),
            }
        )
        return config


# ----------------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------------


def _check_schedule_args(base_learning_rate: float, total_steps: int, warmup_steps: int) -> None:
    if not base_learning_rate > 0:
        raise ValueError(f"`base_learning_rate` must be > 0, got {base_learning_rate}.")
    if total_steps < 1:
        raise ValueError(f"`total_steps` must be >= 1, got {total_steps}.")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"`warmup_steps` must be in [0, total_steps), got {warmup_steps}.")


def _warmup(step, base_learning_rate: float, warmup_steps: int, decayed):
    """Linear 0 -> base over warmup_steps, then `decayed`."""
    if warmup_steps == 0:
        return decayed
    warm = base_learning_rate * step / float(warmup_steps)
    return ops.where(step < warmup_steps, warm, decayed)


class _WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up over `warmup_steps`, then `_decay(progress)`, progress from 0 to 1 over the rest."""

    def __init__(self, base_learning_rate: float, total_steps: int, warmup_steps: int):
        _check_schedule_args(base_learning_rate, total_steps, warmup_steps)
        self.base_learning_rate = float(base_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def _decay(self, progress):
        raise NotImplementedError

    def __call__(self, step):
        step = ops.cast(step, "float32")
        progress = ops.clip(
            (step - self.warmup_steps) / float(self.total_steps - self.warmup_steps), 0.0, 1.0
        )
        return _warmup(step, self.base_learning_rate, self.warmup_steps, self._decay(progress))

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
        }


@keras.saving.register_keras_serializable(package="smear")
class WarmupCosineDecay(_WarmupDecay):
    """Linear warm-up then cosine decay to 0.

    ```
    lr(s) = base * s / warmup_steps                                   s < warmup_steps
    lr(s) = base * 0.5 * (1 + cos(pi * (s - warmup) / (total - warmup)))  after, 0 past total
    ```

    Args:
        base_learning_rate: peak learning rate (> 0).
        total_steps: steps of warm-up plus decay.
        warmup_steps: in [0, total_steps).
    """

    def _decay(self, progress):
        return self.base_learning_rate * 0.5 * (1.0 + ops.cos(math.pi * progress))


@keras.saving.register_keras_serializable(package="smear")
class WarmupPolynomialDecay(_WarmupDecay):
    """Linear warm-up then polynomial decay to `end_learning_rate`.

    ```
    lr(s) = base * s / warmup_steps                                                s < warmup_steps
    lr(s) = (base - end) * (1 - (s - warmup) / (total - warmup))^power + end          after, end past total
    ```

    Args:
        base_learning_rate: peak learning rate (> 0).
        total_steps: steps of warm-up plus decay.
        warmup_steps: in [0, total_steps).
        power: decay exponent (> 0); 2 is the usual LARS choice.
        end_learning_rate: final learning rate (>= 0).
    """

    def __init__(
        self,
        base_learning_rate: float,
        total_steps: int,
        warmup_steps: int,
        power: float = 2.0,
        end_learning_rate: float = 0.0,
    ):
        super().__init__(base_learning_rate, total_steps, warmup_steps)
        if not power > 0:
            raise ValueError(f"`power` must be > 0, got {power}.")
        if end_learning_rate < 0:
            raise ValueError(f"`end_learning_rate` must be >= 0, got {end_learning_rate}.")
        self.power = float(power)
        self.end_learning_rate = float(end_learning_rate)

    def _decay(self, progress):
        span = self.base_learning_rate - self.end_learning_rate
        return span * ops.power(1.0 - progress, self.power) + self.end_learning_rate

    def get_config(self):
        return {**super().get_config(), "power": self.power, "end_learning_rate": self.end_learning_rate}


class WarmupThen(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `base_learning_rate` over `warmup_steps`, then `schedule`.

    The training stage puts it before the paper's step decay (`step_decay_schedule`).
    """

    def __init__(self, schedule, base_learning_rate: float, warmup_steps: int):
        self.schedule, self.base_learning_rate, self.warmup_steps = schedule, base_learning_rate, warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.base_learning_rate * step / self.warmup_steps
        return ops.where(step < self.warmup_steps, warm, ops.cast(self.schedule(step), "float32"))

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "base_learning_rate": self.base_learning_rate,
            "warmup_steps": self.warmup_steps,
        }


def step_decay_schedule(
    base_learning_rate: float, boundaries: Sequence[int], factor: float = 0.1
) -> keras.optimizers.schedules.PiecewiseConstantDecay:
    """Learning rate multiplied by `factor` after each boundary.

    Keras' PiecewiseConstantDecay semantics: base for step <= boundaries[0],
    base * factor for boundaries[0] < step <= boundaries[1], ... The paper's CIFAR
    schedule is ``step_decay_schedule(0.1, [32000, 48000])`` over 64k steps.

    Args:
        base_learning_rate: initial learning rate.
        boundaries: increasing step numbers.
        factor: multiplier applied at each boundary.

    Returns:
        A `keras.optimizers.schedules.PiecewiseConstantDecay`.
    """
    boundaries = [int(boundary) for boundary in boundaries]
    if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
        raise ValueError(f"`boundaries` must be strictly increasing, got {boundaries}.")
    values = [base_learning_rate * factor**index for index in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


# ----------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------

OPTIMIZER_NAMES: tuple[str, ...] = ("sgd", "lars")


def build_optimizer(
    name: str,
    learning_rate_schedule,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    trust_ratio: str = "you2017",
) -> keras.optimizers.Optimizer:
    """Builds an optimizer by name.

    Args:
        name: "sgd" (`keras.optimizers.SGD`; `weight_decay` is IGNORED because for SGD
            the models apply it as a kernel regulariser) or "lars" (`LARS` with
            `weight_decay` and the default batch-norm / bias exclusions).
        learning_rate_schedule: float or LearningRateSchedule.
        momentum: momentum coefficient.
        nesterov: Nesterov momentum.
        weight_decay: L2 coefficient for LARS.
        trust_ratio: LARS's trust-ratio form, one of `TRUST_RATIOS` (see `LARS`);
            IGNORED for "sgd".

    Returns:
        A Keras optimizer.
    """
    if name == "sgd":
        return keras.optimizers.SGD(
            learning_rate=learning_rate_schedule, momentum=float(momentum), nesterov=nesterov
        )
    if name == "lars":
        return LARS(
            learning_rate_schedule,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
            trust_ratio=trust_ratio,
        )
    raise ValueError(f"Unknown optimizer name {name!r}; known names: {', '.join(OPTIMIZER_NAMES)}.")
