"""A model artifact's trained network: read, load (safe mode, cached in process) and check against data.

`smear evaluate` and `smear export-logits` load teachers and students the same
way: `model.keras` of a complete, checksum-verified artifact, with Keras' safe
mode on and this package's serialisable classes registered; a model that does
not load, lacks the `pre_logits` / `logits` layers, or does not fit the data is
a one-line UserError.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pipeline.core import artifacts
from pipeline.core.errors import UserError

MODEL_FILE = "model.keras"
LAYERS = ("pre_logits", "logits")
_LOADED: dict[tuple, object] = {}  # (path, mtime, size) -> model: a DirectRunner worker reuses the launcher's


def read(model_dir: str | os.PathLike) -> tuple[dict, Path]:
    """The model artifact's verified manifest and its `model.keras` path.

    Raises:
      UserError: the directory is missing, partial, corrupt or has no model.keras.
    """
    manifest = artifacts.read_manifest(model_dir, what="model artifact")
    path = Path(model_dir) / MODEL_FILE
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

    from keras_components import losses, metrics, models, optimizers  # noqa: F401 - registers serialisables

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
