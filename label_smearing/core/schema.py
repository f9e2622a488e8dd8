"""The example schema (docs/concepts.md), written once: feature names, the writer, the parser's spec.

A record is a `tf.train.Example` with `id` (bytes, stable: dataset/split/index),
`image` (encoded image bytes), `label` (int64: the label training sees, noisy in train),
`clean_label` (int64) and `is_noisy` (int64 0/1). Exported logits add
`teacher_logits` (float list, L) and `pre_logits` (float list, D).

How the images are encoded is the data artifact's `image_encoding` (manifest):
- "png" (Fashion-MNIST, CIFAR; and data written before the key existed): every
  `image` is a PNG of exactly the manifest's `image_shape`, and records carry no
  `image_format`.
- "source" (ImageNet): every `image` holds the source's original encoded bytes, of
  any size, and the record adds `image_format` (bytes: "jpeg" or "png"), the format
  of those bytes. The manifest's `image_shape` is then the model's input, which the
  input pipeline crops and resizes every image to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FEATURES = ("id", "image", "label", "clean_label", "is_noisy")
LOGIT_FEATURES = ("teacher_logits", "pre_logits")
IMAGE_FORMAT = "image_format"  # the format of a source-encoded record's image bytes
IMAGE_ENCODINGS = ("png", "source")  # a data artifact's image_encoding (manifest), see the module docstring
IMAGE_FORMATS = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}  # format -> its bytes' signature


def image_format_of(image: bytes) -> str | None:
    """The format of encoded image bytes, from their signature: "jpeg", "png", or None for anything else."""
    return next((name for name, magic in IMAGE_FORMATS.items() if image.startswith(magic)), None)


def image_encoding(manifest: Mapping[str, Any]) -> str:
    """A data artifact's image encoding: "png" or "source" ("png" for artifacts written before the key)."""
    return str(manifest.get("image_encoding", "png"))


def required_features(encoding: str) -> tuple[str, ...]:
    """The features every record of a data artifact with this image encoding carries."""
    return FEATURES + ((IMAGE_FORMAT,) if encoding == "source" else ())


def make_example(
    example_id: str,
    png: bytes,
    label: int,
    clean_label: int,
    extra_floats: Mapping[str, Sequence[float]] | None = None,
    image_format: str = "",
) -> bytes:
    """A serialised tf.train.Example in the schema; `extra_floats` adds float-list features (e.g. logits).

    `png` is the encoded image; `image_format` ("jpeg", "png") is set for source-encoded images only,
    so a PNG-encoded dataset's records keep the bytes they had before the feature existed.
    """
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    feature = example.features.feature
    feature["id"].bytes_list.value.append(example_id.encode())
    feature["image"].bytes_list.value.append(png)
    if image_format:
        feature[IMAGE_FORMAT].bytes_list.value.append(image_format.encode())
    feature["label"].int64_list.value.append(int(label))
    feature["clean_label"].int64_list.value.append(int(clean_label))
    feature["is_noisy"].int64_list.value.append(int(label != clean_label))
    for name, values in (extra_floats or {}).items():
        feature[name].float_list.value.extend(values)
    return example.SerializeToString(deterministic=True)  # map entries sorted: same bytes in any process


def parse_spec(num_classes: int, *, with_teacher_logits: bool = False, encoding: str = "png") -> dict:
    """The `tf.io.parse_*example` spec of the schema (with the teacher's logits for a student).

    A "source" image encoding adds the records' `image_format`.
    """
    import tensorflow as tf

    spec = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "clean_label": tf.io.FixedLenFeature([], tf.int64),
        "is_noisy": tf.io.FixedLenFeature([], tf.int64),
    }
    if with_teacher_logits:
        spec["teacher_logits"] = tf.io.FixedLenFeature([num_classes], tf.float32)
    if encoding == "source":
        spec[IMAGE_FORMAT] = tf.io.FixedLenFeature([], tf.string)
    return spec


def read_features(record: bytes) -> tuple[str, Any]:
    """(the record's id or "?", its feature map, or None when it is not a serialised tf.train.Example)."""
    from tensorflow.core.example import example_pb2

    try:
        feature = example_pb2.Example.FromString(record).features.feature
    except Exception:  # noqa: BLE001 - any undecodable record is a bad record
        return "?", None
    if "id" in feature and feature["id"].bytes_list.value:
        return feature["id"].bytes_list.value[0].decode(errors="replace"), feature
    return "?", feature
