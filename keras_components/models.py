"""ResNets used by the paper: CIFAR ResNet v1 (depth 6n + 2) and ResNet-v2-50.

Every model ends in a layer named ``pre_logits`` (the globally pooled features) and a
Dense layer named ``logits`` without activation, so losses take logits and the
pre-logit plots can read the penultimate features via `pre_logits_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import layers

_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def _regularizer(weight_decay: float) -> keras.regularizers.Regularizer | None:
    """L2 penalty whose gradient is weight_decay * w (classic SGD weight decay).

    Keras' L2(c) adds c * sum(w^2), whose gradient is 2 c w, hence c = weight_decay / 2.
    """
    if weight_decay < 0:
        raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay}.")
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay > 0 else None


def _conv(filters: int, kernel_size: int, strides: int, regularizer, name: str, use_bias: bool = False):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
        name=name,
    )


def _batch_norm(name: str):
    return layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


def _head(features, num_classes: int, regularizer):
    pooled = layers.GlobalAveragePooling2D(name="pre_logits")(features)
    return layers.Dense(
        num_classes,
        activation=None,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
        name="logits",
    )(pooled)


def _basic_block_v1(x, filters: int, strides: int, regularizer, name: str):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, then ReLU (He et al. 2016, v1)."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, strides, regularizer, f"{name}_proj_conv")(x)
        shortcut = _batch_norm(f"{name}_proj_bn")(shortcut)
    y = _conv(filters, 3, strides, regularizer, f"{name}_conv1")(x)
    y = _batch_norm(f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(filters, 3, 1, regularizer, f"{name}_conv2")(y)
    y = _batch_norm(f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def cifar_resnet(
    depth: int,
    num_classes: int,
    input_shape: Sequence[int],
    width: int = 16,
    weight_decay: float = 0.0,
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
    x = _conv(width, 3, 1, regularizer, "stem_conv")(inputs)
    x = _batch_norm("stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, (filters, strides) in enumerate([(width, 1), (2 * width, 2), (4 * width, 2)], start=1):
        for block in range(blocks_per_stage):
            x = _basic_block_v1(
                x, filters, strides if block == 0 else 1, regularizer, name=f"stage{stage}_block{block + 1}"
            )
    outputs = _head(x, num_classes, regularizer)
    return keras.Model(inputs, outputs, name=f"cifar_resnet{depth}")


def _bottleneck_block_v2(x, filters: int, strides: int, regularizer, name: str, project: bool):
    """Pre-activation bottleneck: BN-ReLU, 1x1 (filters), 3x3 (filters, stride), 1x1 (4 filters)."""
    preact = _batch_norm(f"{name}_preact_bn")(x)
    preact = layers.ReLU(name=f"{name}_preact_relu")(preact)
    if project:
        shortcut = _conv(4 * filters, 1, strides, regularizer, f"{name}_proj_conv")(preact)
    else:
        shortcut = x
    y = _conv(filters, 1, 1, regularizer, f"{name}_conv1")(preact)
    y = _batch_norm(f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(filters, 3, strides, regularizer, f"{name}_conv2")(y)
    y = _batch_norm(f"{name}_bn2")(y)
    y = layers.ReLU(name=f"{name}_relu2")(y)
    y = _conv(4 * filters, 1, 1, regularizer, f"{name}_conv3")(y)
    return layers.Add(name=f"{name}_add")([shortcut, y])


_RESNET_V2_50_STAGES = ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2))


def resnet_v2_50(num_classes: int, input_shape: Sequence[int], weight_decay: float = 0.0) -> keras.Model:
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

    Returns:
        An uncompiled `keras.Model` mapping images to (B, L) logits.
    """
    regularizer = _regularizer(weight_decay)
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = _conv(64, 7, 2, regularizer, "stem_conv")(inputs)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (blocks, filters, strides) in enumerate(_RESNET_V2_50_STAGES, start=1):
        for block in range(blocks):
            x = _bottleneck_block_v2(
                x,
                filters,
                strides if block == 0 else 1,
                regularizer,
                name=f"stage{stage}_block{block + 1}",
                project=block == 0,
            )
    x = _batch_norm("final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    outputs = _head(x, num_classes, regularizer)
    return keras.Model(inputs, outputs, name="resnet_v2_50")


_MODELS: dict[str, Callable[..., keras.Model]] = {
    "cifar_resnet": cifar_resnet,
    "resnet_v2_50": resnet_v2_50,
}


def build_model(name: str, num_classes: int, input_shape: Sequence[int], **kwargs) -> keras.Model:
    """Builds a model by name.

    Args:
        name: "cifar_resnet" (kwargs: depth, width, weight_decay) or "resnet_v2_50"
            (kwargs: weight_decay).
        num_classes: number of logits L.
        input_shape: (height, width, channels).
        **kwargs: passed to the builder.

    Returns:
        An uncompiled `keras.Model` producing logits.
    """
    if name not in _MODELS:
        raise ValueError(f"Unknown model name {name!r}; known names: {', '.join(_MODELS)}.")
    return _MODELS[name](num_classes=num_classes, input_shape=input_shape, **kwargs)


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
