"""The example schema (DESIGN.md), written once: feature names, the writer, the parser's spec.

A record is a `tf.train.Example` with `id` (bytes, stable: dataset/split/index),
`image` (PNG bytes), `label` (int64: the label training sees, noisy in train),
`clean_label` (int64) and `is_noisy` (int64 0/1). Exported logits add
`teacher_logits` (float list, L) and `pre_logits` (float list, D).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FEATURES = ("id", "image", "label", "clean_label", "is_noisy")
LOGIT_FEATURES = ("teacher_logits", "pre_logits")


def make_example(
    example_id: str,
    png: bytes,
    label: int,
    clean_label: int,
    extra_floats: Mapping[str, Sequence[float]] | None = None,
) -> bytes:
    """A serialised tf.train.Example in the schema; `extra_floats` adds float-list features (e.g. logits)."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    feature = example.features.feature
    feature["id"].bytes_list.value.append(example_id.encode())
    feature["image"].bytes_list.value.append(png)
    feature["label"].int64_list.value.append(int(label))
    feature["clean_label"].int64_list.value.append(int(clean_label))
    feature["is_noisy"].int64_list.value.append(int(label != clean_label))
    for name, values in (extra_floats or {}).items():
        feature[name].float_list.value.extend(values)
    return example.SerializeToString(deterministic=True)  # map entries sorted: same bytes in any process


def parse_spec(num_classes: int, *, with_teacher_logits: bool = False) -> dict:
    """The `tf.io.parse_*example` spec of the schema (with the teacher's logits for a student)."""
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
