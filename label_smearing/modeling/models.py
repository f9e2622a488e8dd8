"""ResNets used by the paper: CIFAR ResNet v1 (depth 6n + 2) and ResNet-v2-50.

Every model ends in a layer named ``pre_logits`` (the globally pooled features) and a
Dense layer named ``logits`` without activation, so losses take logits and the
pre-logit plots can read the penultimate features via `pre_logits_model`.

Precision: each builder takes `dtype`, a Keras dtype policy for every layer but
``logits`` (one of `PRECISIONS`, e.g. "mixed_bfloat16": bfloat16 computation on
float32 weights). The ``logits`` layer always computes in float32, so the logits,
the softmax and the losses on them keep float32 numerics under any policy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import keras
from keras import layers

_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5

# The Keras dtype policies a model may compute in (train.precision): full float32, bfloat16
# computation (TPUs), float16 computation (GPUs; training then needs loss scaling).
PRECISIONS: tuple[str, ...] = ("float32", "mixed_bfloat16", "mixed_float16")


def _regularizer(weight_decay: float) -> keras.regularizers.Regularizer | None:
    """L2 penalty whose gradient is weight_decay * w (classic SGD weight decay).

    Keras' L2(c) adds c * sum(w^2), whose gradient is 2 c w, hence c = weight_decay / 2.
    """
    if weight_decay < 0:
        raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay}.")
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay > 0 else None


def _conv(
    filters: int, kernel_size: int, strides: int, regularizer, name: str, use_bias: bool = False, dtype=None
):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
        name=name,
        dtype=dtype,
    )


@keras.saving.register_keras_serializable(package="smear")
class FusedBatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training step uses TensorFlow's fused kernel.

    Keras 3 computes a training-mode batch norm from separate mean, variance and
    normalisation ops, and their gradients likewise: on CPU about a third of a
    CIFAR ResNet's training step here. For 4-D channels-last inputs in training on
    the TensorFlow backend, without cross-replica synchronisation, a mask or renorm,
    this layer calls FusedBatchNormV3 (oneDNN on CPU, cuDNN on GPU) instead: 1.3x the
    training images/s of ResNet-20 and ResNet-32 on 2 CPU cores (benchmarks/train.py).
    Inputs may be float32 or a mixed policy's bfloat16 / float16: the kernel computes
    the statistics in float32 on the float32 weights, as Keras does, and returns the
    input's dtype. Same weights, same normalisation, same moving-statistics
    update (from the biased batch variance, as Keras); inference and every other
    case, including every backend other than TensorFlow, is Keras' own code.
    `plain_copy` turns it back into Keras' layer for saving.
    """

    def call(self, inputs, training=None, mask=None):
        if (
            training is True
            and self.trainable
            and mask is None
            and not self.synchronized
            and not self.renorm
            and self.center
            and self.scale
            and keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and inputs.dtype in ("float32", "bfloat16", "float16")
        ):
            import tensorflow as tf

            empty = tf.constant([], tf.float32)
            outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=self.gamma, offset=self.beta, mean=empty, variance=empty,
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True,
            )  # fmt: skip
            # The kernel returns the unbiased (Bessel-corrected) variance; Keras averages the biased one.
            count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
            variance = variance * tf.maximum(count - 1.0, 0.0) / count
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
            return outputs
        return super().call(inputs, training=training, mask=mask)


def _batch_norm(name: str, dtype=None):
    return FusedBatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name, dtype=dtype)


def plain_copy(model: keras.Model) -> keras.Model:
    """A float32 copy of `model` (same weights) with Keras' BatchNormalization: loads without this package.

    Every layer of the copy computes in float32, whatever policy `model` trained in: mixed
    policies keep their weights in float32, so the copy is the same network at full precision,
    and it runs at full speed on the CPUs that evaluate and export it.
    """

    def clone(layer):
        config = dict(layer.get_config(), dtype="float32")
        if isinstance(layer, FusedBatchNormalization):
            return layers.BatchNormalization.from_config(config)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _head(features, num_classes: int, regularizer, dtype=None):
    """``pre_logits`` pooling in `dtype`, then the ``logits`` layer in float32 under any policy."""
    pooled = layers.GlobalAveragePooling2D(name="pre_logits", dtype=dtype)(features)
    return layers.Dense(
        num_classes,
        activation=None,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
        name="logits",
        dtype="float32",
    )(pooled)


def _basic_block_v1(x, filters: int, strides: int, regularizer, name: str, dtype=None):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, then ReLU (He et al. 2016, v1)."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, strides, regularizer, f"{name}_proj_conv", dtype=dtype)(x)
        shortcut = _batch_norm(f"{name}_proj_bn", dtype)(shortcut)
    y = _conv(filters, 3, strides, regularizer, f"{name}_conv1", dtype=dtype)(x)
    y = _batch_norm(f"{name}_bn1", dtype)(y)
    y = layers.ReLU(name=f"{name}_relu1", dtype=dtype)(y)
    y = _conv(filters, 3, 1, regularizer, f"{name}_conv2", dtype=dtype)(y)
    y = _batch_norm(f"{name}_bn2", dtype)(y)
    y = layers.Add(name=f"{name}_add", dtype=dtype)([shortcut, y])
    return layers.ReLU(name=f"{name}_out", dtype=dtype)(y)


def cifar_resnet(
    depth: int,
    num_classes: int,
    input_shape: Sequence[int],
    width: int = 16,
    weight_decay: float = 0.0,
    dtype: str | None = None,
) -> keras.Model:
    """CIFAR ResNet v1 with batch norm (He et al. 2016, Section 4.2).

    A 3x3 stem convolution, three stages of n basic blocks with width, 2 width,
    4 width filters and strides 1, 2, 2, global average pooling (``pre_logits``) and a
    Dense ``logits`` layer: 6n + 1 3x3 convolutions plus the dense layer make
    depth = 6n + 2. Shortcuts are identities, or a 1x1 convolution + BN where the
    shape changes (these are not counted in the depth).

    Args:
        depth: 6n + 2 with n >= 1, e.g. 8, 14, 20, 32, 56.
        num_classes: number of logits L.
        input_shape: (height, width, channels), e.g. (32, 32, 3) or (28, 28, 1).
        width: filters of the first stage.
        weight_decay: L2 on conv and dense kernels with gradient weight_decay * w;
            0 adds no regulariser.
        dtype: the dtype policy of every layer but ``logits`` (float32 always), one of
            `PRECISIONS`; None = Keras' global policy.

    Returns:
        An uncompiled `keras.Model` mapping images to (B, L) logits.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"`depth` must be 6n + 2 with n >= 1 (8, 14, 20, 32, 56, ...), got {depth}.")
    if width < 1:
        raise ValueError(f"`width` must be >= 1, got {width}.")
    blocks_per_stage = (depth - 2) // 6
    regularizer = _regularizer(weight_decay)

    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = _conv(width, 3, 1, regularizer, "stem_conv", dtype=dtype)(inputs)
    x = _batch_norm("stem_bn", dtype)(x)
    x = layers.ReLU(name="stem_relu", dtype=dtype)(x)
    for stage, (filters, strides) in enumerate([(width, 1), (2 * width, 2), (4 * width, 2)], start=1):
        for block in range(blocks_per_stage):
            x = _basic_block_v1(
                x, filters, strides if block == 0 else 1, regularizer, f"stage{stage}_block{block + 1}", dtype
            )
    outputs = _head(x, num_classes, regularizer, dtype)
    return keras.Model(inputs, outputs, name=f"cifar_resnet{depth}")


def _bottleneck_block_v2(x, filters: int, strides: int, regularizer, name: str, project: bool, dtype=None):
    """Pre-activation bottleneck: BN-ReLU, 1x1 (filters), 3x3 (filters, stride), 1x1 (4 filters)."""
    preact = _batch_norm(f"{name}_preact_bn", dtype)(x)
    preact = layers.ReLU(name=f"{name}_preact_relu", dtype=dtype)(preact)
    if project:
        shortcut = _conv(4 * filters, 1, strides, regularizer, f"{name}_proj_conv", dtype=dtype)(preact)
    else:
        shortcut = x
    y = _conv(filters, 1, 1, regularizer, f"{name}_conv1", dtype=dtype)(preact)
    y = _batch_norm(f"{name}_bn1", dtype)(y)
    y = layers.ReLU(name=f"{name}_relu1", dtype=dtype)(y)
    y = _conv(filters, 3, strides, regularizer, f"{name}_conv2", dtype=dtype)(y)
    y = _batch_norm(f"{name}_bn2", dtype)(y)
    y = layers.ReLU(name=f"{name}_relu2", dtype=dtype)(y)
    y = _conv(4 * filters, 1, 1, regularizer, f"{name}_conv3", dtype=dtype)(y)
    return layers.Add(name=f"{name}_add", dtype=dtype)([shortcut, y])


_RESNET_V2_50_STAGES = ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2))


def resnet_v2_50(
    num_classes: int, input_shape: Sequence[int], weight_decay: float = 0.0, dtype: str | None = None
) -> keras.Model:
    """Pre-activation ResNet-v2-50 with bottleneck blocks (He et al. 2016, "Identity mappings").

    7x7 stride-2 stem convolution and 3x3 stride-2 max pool; stages of
    (blocks, bottleneck width, stride) = (3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2),
    each block's output 4x its bottleneck width; the stride and a 1x1 projection
    shortcut (on the pre-activation) are in each stage's first block; final BN + ReLU,
    global average pool ``pre_logits`` (2048 features) and Dense ``logits``.

    Args:
        num_classes: number of logits L.
        input_shape: (height, width, channels), e.g. (224, 224, 3).
        weight_decay: L2 on conv and dense kernels with gradient weight_decay * w.
        dtype: the dtype policy of every layer but ``logits`` (float32 always), one of
            `PRECISIONS`; None = Keras' global policy.

    Returns:
        An uncompiled `keras.Model` mapping images to (B, L) logits.
    """
    regularizer = _regularizer(weight_decay)
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = _conv(64, 7, 2, regularizer, "stem_conv", dtype=dtype)(inputs)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool", dtype=dtype)(x)
    for stage, (blocks, filters, strides) in enumerate(_RESNET_V2_50_STAGES, start=1):
        for block in range(blocks):
            x = _bottleneck_block_v2(
                x,
                filters,
                strides if block == 0 else 1,
                regularizer,
                name=f"stage{stage}_block{block + 1}",
                project=block == 0,
                dtype=dtype,
            )
    x = _batch_norm("final_bn", dtype)(x)
    x = layers.ReLU(name="final_relu", dtype=dtype)(x)
    outputs = _head(x, num_classes, regularizer, dtype)
    return keras.Model(inputs, outputs, name="resnet_v2_50")


# Model name -> builder(num_classes=, input_shape=, **its own keyword arguments): the one list of models.
MODELS: dict[str, Callable[..., keras.Model]] = {
    "cifar_resnet": cifar_resnet,
    "resnet_v2_50": resnet_v2_50,
}


def build_model(name: str, num_classes: int, input_shape: Sequence[int], **kwargs) -> keras.Model:
    """Builds a model by name.

    Args:
        name: "cifar_resnet" (kwargs: depth, width, weight_decay, dtype) or "resnet_v2_50"
            (kwargs: weight_decay, dtype).
        num_classes: number of logits L.
        input_shape: (height, width, channels).
        **kwargs: passed to the builder.

    Returns:
        An uncompiled `keras.Model` producing logits.
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model name {name!r}; known names: {', '.join(MODELS)}.")
    return MODELS[name](num_classes=num_classes, input_shape=input_shape, **kwargs)


def pre_logits_model(model: keras.Model) -> keras.Model:
    """A model on the same inputs returning (logits, pre_logits) and sharing all weights.

    Args:
        model: a model built here (it has layers named ``pre_logits`` and ``logits``).

    Returns:
        `keras.Model` whose outputs are [(B, L) logits, (B, D) pooled features].
    """
    return keras.Model(
        model.input,
        [model.get_layer("logits").output, model.get_layer("pre_logits").output],
        name=f"{model.name}_with_pre_logits",
    )


def model_options(name: str) -> tuple[str, ...]:
    """The keyword arguments model `name`'s builder takes besides num_classes and input_shape."""
    parameters = inspect.signature(MODELS[name]).parameters
    return tuple(p for p in parameters if p not in ("num_classes", "input_shape"))
