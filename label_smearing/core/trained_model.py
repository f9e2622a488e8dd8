"""A model artifact's trained network: read, load (safe mode, cached in process) and check against data.

`smear evaluate` and `smear export-logits` load teachers and students the same
way: `model.keras` of a complete, checksum-verified artifact, with Keras' safe
mode on and this package's serialisable classes registered; a model that does
not load, lacks the `pre_logits` / `logits` layers, or does not fit the data is
a one-line UserError.

`forward_function` gives a network's forward pass traced exactly once, for any
batch size: a process that runs many models in a row (a long-lived worker)
pays one trace per model and sees no TensorFlow retracing warning.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from label_smearing.core import artifacts
from label_smearing.core.errors import UserError

MODEL_FILE = "model.keras"
LAYERS = ("pre_logits", "logits")
_LOADED: dict[tuple, object] = {}  # (path, mtime, size) -> model: a DirectRunner worker reuses the launcher's


def read(model_dir: str | os.PathLike) -> tuple[dict, Path]:
    """The model artifact's verified manifest and its `model.keras` path.

    Raises:
      UserError: the directory is missing, partial, corrupt or has no model.keras.
    """
    manifest = artifacts.read_manifest(model_dir, what="model artifact")
    path = artifacts.join(model_dir, MODEL_FILE)
    if not path.is_file():
        raise UserError(f"model artifact {model_dir} has no {MODEL_FILE}")
    return manifest, path


def load(path: str | os.PathLike, *, keep: bool = False):
    """Loads a saved network safely; the package's registered objects resolve by name.

    Args:
      path: the `model.keras` file.
      keep: remember the model so that a later load of the same unchanged file in
        this process (the DirectRunner's in-process worker) reuses it; `forget`
        drops it.

    Raises:
      UserError: the file does not load (e.g. it holds a Lambda layer, refused in safe mode).
    """
    import keras

    from label_smearing.modeling import losses, metrics, models, optimizers  # noqa: F401 - registers serialisables

    path = str(path)
    try:
        stat = os.stat(path)
        key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
    except OSError:  # a remote path: no local cache
        key = None
    if key in _LOADED:
        return _LOADED[key]
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # noqa: BLE001 - any failure to load a user's file is a user error
        raise UserError(
            f"cannot load {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e
    if keep and key is not None:
        _LOADED.clear()
        _LOADED[key] = model
    return model


def forget() -> None:
    _LOADED.clear()


def check_fits(
    model, path: str | os.PathLike, data_dir: str | os.PathLike, num_classes: int, image_shape: Sequence[int]
) -> int:
    """Checks the network has the pre-logit and logit layers and fits the data; returns the pre-logit width.

    Raises:
      UserError: a layer is missing, or the class count or input shape differs from the data's.
    """
    for layer in LAYERS:
        try:
            model.get_layer(layer)
        except ValueError:
            raise UserError(
                f"model {path} has no layer named {layer!r} (needed for logits and pre-logits)"
            ) from None
    classes = int(model.output_shape[-1])
    if classes != num_classes:
        raise UserError(f"model {path} has {classes} classes, but the data {data_dir} have {num_classes}")
    shape = tuple(model.input_shape[1:])
    if shape != tuple(image_shape):
        raise UserError(
            f"model {path} takes images of shape {list(shape)}, but the data {data_dir} have {list(image_shape)}"
        )
    return int(model.get_layer("pre_logits").output.shape[-1])


class TracedOnce:
    """`fn` as one concrete TensorFlow function, traced when made; a call never retraces.

    Calls go straight to the concrete function of `input_signature`, whose None
    dimensions (the batch) take any size, so a short last batch runs the same
    graph and an input of another dtype or shape is a TypeError, not a new trace.
    This is also why a process that makes one of these per model (a worker that
    evaluates, exports or trains many models in a row) stays quiet: a
    `tf.function` called through its own dispatch counts the traces of every
    `tf.function` made from the same Python code together, and after five models
    warns "N out of the last M calls to ... triggered tf.function retracing",
    although each model was traced once.

    Args:
      fn: a Python function of tensors returning tensors (or a nest of them).
      input_signature: one `tf.TensorSpec` per argument of `fn`.
    """

    def __init__(self, fn: Callable, input_signature: Sequence):
        import tensorflow as tf

        self.function = tf.function(fn, input_signature=list(input_signature))
        self._concrete = self.function.get_concrete_function()
        self._specs = list(input_signature)
        self._tensor = tf.Tensor

    def __call__(self, *args):
        # A concrete function checks the shapes of Python and NumPy inputs but not of tensors.
        for spec, value in zip(self._specs, args):
            if isinstance(value, self._tensor) and not spec.is_compatible_with(value):
                raise TypeError(
                    f"{self.function.__name__} takes {spec.dtype.name} {spec.shape}, got {value.dtype.name} "
                    f"{value.shape}"
                )
        return self._concrete(*args)

    @property
    def tracing_count(self) -> int:
        """How often `fn` was traced: 1, whatever the calls since."""
        return int(self.function.experimental_get_tracing_count())


def forward_function(model, image_shape: Sequence[int], *, pre_logits: bool = True) -> TracedOnce:
    """A network's inference forward pass (`training=False`), traced once for any batch size.

    Args:
      model: the network; with `pre_logits`, one with the layers `pre_logits` and `logits`.
      image_shape: its input shape without the batch dimension, e.g. (28, 28, 1).
      pre_logits: return (logits, pre-logits) instead of the logits alone.

    Returns:
      float32 images [B, *image_shape] -> logits [B, L], or [logits, pre-logits [B, D]].
    """
    import tensorflow as tf

    if pre_logits:
        from label_smearing.modeling.models import pre_logits_model

        network = pre_logits_model(model)
    else:
        network = model

    def forward(images):
        return network(images, training=False)

    return TracedOnce(forward, [tf.TensorSpec([None, *(int(d) for d in image_shape)], tf.float32)])
