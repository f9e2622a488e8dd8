"""Input pipeline: tf.data over a data artifact's TFRecords.

A data artifact (made by `smear noisify`, or `smear export-logits` for
distillation) is a directory of `train-*.tfrecord` / `test-*.tfrecord` (and, held
out of the noisy training examples, `validation-*.tfrecord`) shards of
`tf.train.Example` with the features `id`, `image` (PNG; or, for image_encoding
"source", the source's encoded bytes, with `image_format`), `label`, `clean_label`,
`is_noisy` (exported logits add `teacher_logits` and `pre_logits`) and a
`manifest.json` that lists the shards, the image shape and the class count.

Speed: training must not wait for its input on a 2-core machine. So

- PNG decoding happens once: when the decoded split fits in `CACHE_LIMIT_BYTES`
  (Fashion-MNIST 47 MB, CIFAR 150 MB) the uint8 images are cached in memory after
  the first pass, and later epochs only shuffle, batch and augment;
- augmentation (random crop with zero padding + left-right flip) and
  normalisation run once per *batch*, vectorised, with stateless random numbers
  keyed by (seed, batch index, input pipeline), so they are cheap and
  reproducible and need no per-example Python-level map;
- larger data (ImageNet) are shuffled as serialised records, then decoded with
  parallel maps, never cached;
- data that keep the source's encoded images of any size (image_encoding "source",
  ImageNet) are decoded and cropped per example (`label_smearing.core.crops`): training
  takes Inception-style random-resized crops and flips, keyed by (seed, the
  example's position in the shuffled stream, input pipeline), so the same seed
  gives the same crops and every epoch new ones; evaluation takes the centre crop.

Example:
    ds = make_dataset(artifact_dir, "train", batch_size=128, training=True,
                      augment="auto", shuffle_buffer=10000, seed=0, num_classes=10)
    model.fit(ds, steps_per_epoch=200, epochs=6)
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np
import tensorflow as tf

from label_smearing.core import artifacts, crops, schema
from label_smearing.core.artifacts import read_manifest
from label_smearing.core.datasets import DATASETS
from label_smearing.core.errors import UserError

MANIFEST_KEYS = ("dataset", "num_classes", "image_shape", "splits", "counts", "fingerprint")

CACHE_LIMIT_BYTES = 2 << 30  # decoded uint8 splits up to 2 GiB are cached in memory
CROP_PADDING = 4  # the paper's "random crops (pad 4)"; zero padding as in TF's official CIFAR ResNet (ours)


def read_data_manifest(artifact_dir: str | os.PathLike, *, verify: bool = True) -> dict:
    """Reads a data (or exported-logits) artifact's manifest and checks its keys.

    Raises:
      UserError: the artifact is missing, partial, corrupt, or its manifest lacks a key.
    """
    manifest = read_manifest(artifact_dir, what="data artifact", verify=verify)
    for key in MANIFEST_KEYS:
        if key not in manifest:
            raise UserError(
                f"data artifact manifest {artifacts.join(artifact_dir, artifacts.MANIFEST)} has no {key!r}"
            )
    return manifest


def normalization(dataset: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std) for `dataset`; unknown datasets are scaled to [0, 1]."""
    known = DATASETS.get(dataset)
    mean, std = (known.mean, known.std) if known else ((0.0,) * channels, (1.0,) * channels)
    if len(mean) != channels:
        mean, std = (0.0,) * channels, (1.0,) * channels
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


# train.augment name -> whether it crops and flips images of a shape and encoding: the one list of
# augmentations. The crops are pad-4 crops of PNG data, random-resized crops of source-encoded data.
AUGMENTATIONS = {
    # the paper's CIFAR recipe, only for CIFAR; ImageNet's, for source-encoded images
    "auto": lambda image_shape, encoding="png": encoding == "source" or tuple(image_shape) == (32, 32, 3),
    "crop_flip": lambda image_shape, encoding="png": True,
    "none": lambda image_shape, encoding="png": False,
}


def uses_crop_flip(augment: str, image_shape: tuple[int, ...], encoding: str = "png") -> bool:
    """Whether `augment` means random crop + flip for images of `image_shape` and `encoding`."""
    if augment not in AUGMENTATIONS:
        raise UserError(f"train.augment must be one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
    return AUGMENTATIONS[augment](image_shape, encoding)


def split_files(artifact_dir: str | os.PathLike, manifest: dict, split: str) -> list[str]:
    """The TFRecord shards of `split`, as listed in the manifest."""
    splits = manifest["splits"]
    if split not in splits:
        raise UserError(f"data artifact {artifact_dir} has no split {split!r} (has {', '.join(splits)})")
    files = [str(artifacts.join(artifact_dir, name)) for name in splits[split]["files"]]
    if not files:
        raise UserError(f"data artifact {artifact_dir} lists no files for split {split!r}")
    return files


def _first_example(path: str) -> tf.train.Example | None:
    for record in tf.data.TFRecordDataset(path).take(1):
        return tf.train.Example.FromString(record.numpy())
    return None


def _check_records(
    files: list[str], required: tuple[str, ...], image_shape: tuple[int, ...], encoding: str = "png"
) -> int:
    """Checks the first record of every shard; returns the teacher-logit width (0 if absent).

    Raises:
      UserError: a required feature is missing, a PNG image's shape differs from the
        manifest's image_shape, or a source-encoded image's bytes are not the format
        its `image_format` names.
    """
    logits_width = 0
    for path in files:
        example = _first_example(path)
        if example is None:
            continue  # an empty shard (more shards than examples) is fine
        feature = example.features.feature
        for name in required:
            if name not in feature:
                raise UserError(f"feature {name!r} missing from records in {path}")
        if encoding == "source":
            declared = feature[schema.IMAGE_FORMAT].bytes_list.value[0].decode(errors="replace")
            found = schema.image_format_of(feature["image"].bytes_list.value[0])
            if declared != found:
                raise UserError(
                    f"images in {path} are {found or 'neither JPEG nor PNG'}, but their image_format says {declared}"
                )
            if "teacher_logits" in required:
                logits_width = len(feature["teacher_logits"].float_list.value)
            continue
        shape = tuple(tf.io.decode_png(feature["image"].bytes_list.value[0]).shape)
        if shape != image_shape:
            raise UserError(
                f"images in {path} have shape {list(shape)}, but the manifest's "
                f"image_shape is {list(image_shape)}"
            )
        if "teacher_logits" in required:
            logits_width = len(feature["teacher_logits"].float_list.value)
    return logits_width


_LABEL_RANGE_MESSAGE = "smear: labels outside [0, num_classes)"


def _first_bad_record(files: list[str], num_classes: int | None = None) -> str | None:
    """`FILE: reason` for the first corrupt record or (given num_classes) label outside [0, num_classes)."""
    for path in files:
        try:
            for index, record in enumerate(tf.data.TFRecordDataset(path)):
                if num_classes is None:
                    continue
                feature = tf.train.Example.FromString(record.numpy()).features.feature
                for name in ("label", "clean_label"):
                    value = feature[name].int64_list.value[0] if name in feature else 0
                    if not 0 <= value < num_classes:
                        example = feature["id"].bytes_list.value[0].decode() if "id" in feature else index
                        return f"{path}: example {example} has {name} {value}, outside [0, {num_classes})"
        except tf.errors.DataLossError as e:
            reason = next(iter(re.findall(r"(?:truncated|corrupted) record at \d+", e.message)), "unreadable")
            return f"TFRecord file {path} is corrupt ({reason})"
    return None


def explain_input_error(
    error: Exception, artifact_dir: str | os.PathLike, files: list[str], num_classes: int
) -> UserError | None:
    """A one-line UserError naming the file, if reading `files` caused `error`; else None.

    Readers call this after the artifact's checksums verified, so the records were
    written this way: a corrupt TFRecord (truncated, bad CRC; TF's DataLossError,
    or Beam's "Not a valid TFRecord") or, from `make_dataset`'s check, a label
    outside [0, num_classes). The files are scanned to name the first culprit.
    """
    if isinstance(error, tf.errors.DataLossError) or "Not a valid TFRecord" in str(error):
        culprit = _first_bad_record(files)
    elif isinstance(error, tf.errors.InvalidArgumentError) and _LABEL_RANGE_MESSAGE in str(error):
        culprit = _first_bad_record(files, num_classes)
    else:
        return None
    if culprit is None:
        return None
    return UserError(f"{culprit}; the artifact {artifact_dir} cannot be used: rerun the stage that made it")


def random_crop_flip(images: tf.Tensor, seed: tf.Tensor, padding: int = CROP_PADDING) -> tf.Tensor:
    """Random crops of a zero-padded batch plus random left-right flips, vectorised.

    Args:
      images: [B, H, W, C] batch (any dtype).
      seed: int64 [2] stateless seed.
      padding: pixels of zero padding on each side before cropping back to H x W.

    Returns:
      The augmented [B, H, W, C] batch.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    seeds = tf.random.experimental.stateless_split(seed, 3)
    dy = tf.random.stateless_uniform([batch], seeds[0], 0, 2 * padding + 1, dtype=tf.int32)
    dx = tf.random.stateless_uniform([batch], seeds[1], 0, 2 * padding + 1, dtype=tf.int32)
    rows = dy[:, None] + tf.range(height)[None, :]  # [B, H]
    cols = dx[:, None] + tf.range(width)[None, :]  # [B, W]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)  # [B, H, W + 2p, C]
    cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)  # [B, H, W, C]
    flip = tf.random.stateless_uniform([batch], seeds[2]) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(cropped, axis=[2]), cropped)


def make_dataset(
    artifact_dir: str | os.PathLike,
    split: str,
    *,
    batch_size: int,
    training: bool,
    augment: str = "auto",
    shuffle_buffer: int = 10000,
    seed: int = 0,
    num_classes: int,
    with_teacher_logits: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    subset: int = 0,
    include_metadata: bool = False,
    manifest: dict | None = None,
    cache: str | bool = "auto",
    start_step: int = 0,
) -> tf.data.Dataset:
    """A batched tf.data pipeline over one split of a data artifact.

    Args:
      artifact_dir: the artifact directory (with manifest.json).
      split: "train" or "test".
      batch_size: the global batch size; with `input_context` each input
        pipeline yields per-replica batches of batch_size / num_replicas.
      training: shuffle, repeat forever, drop the last partial batch, augment.
        Otherwise one ordered pass with a partial last batch and no augmentation.
      augment: "auto" (crop + flip for 32x32x3 images and source-encoded ones), "crop_flip"
        or "none". Source-encoded images (manifest image_encoding "source") are always cropped
        to image_shape: random-resized crops and flips when training augments, else the centre crop.
      shuffle_buffer: shuffle buffer size in examples.
      seed: seeds shuffling and augmentation.
      num_classes: the model's class count; must equal the artifact's.
      with_teacher_logits: targets are the records' `teacher_logits` (distillation).
      input_context: from `strategy.distribute_datasets_from_function`; the data
        are sharded across its input pipelines.
      subset: use only the first `subset` examples of the split (0 = all).
      include_metadata: yield dicts with image, label, clean_label, is_noisy, id
        (and teacher_logits) instead of (image, target) pairs.
      manifest: the artifact's manifest if already read (skips re-verification).
      cache: cache decoded uint8 images in memory: True, False or "auto" (when
        training and the decoded split is at most CACHE_LIMIT_BYTES).
      start_step: training only: the stream begins after the examples of this many global
        steps, with the same augmentation they would have had: a training resumed at step N
        sees exactly the batches an uninterrupted one sees from step N on.

    Returns:
      A dataset of (image float32 [B, H, W, C], label int32 [B]) or
      (image, teacher_logits float32 [B, L]), or metadata dicts.

    Raises:
      UserError: missing artifact, split or feature; image shape or class count
        that disagrees with the manifest; a batch size not divisible by the replicas.
    """
    if manifest is None:
        manifest = read_data_manifest(artifact_dir)
    image_shape = tuple(int(d) for d in manifest["image_shape"])
    files = _checked_files(artifact_dir, manifest, split, num_classes, with_teacher_logits)
    if start_step and not training:
        raise ValueError(
            "start_step is for a training stream; an evaluation pass starts at its first example"
        )
    # Each step takes global_batch / num_pipelines examples from every pipeline, in per-replica batches.
    global_batch = batch_size
    num_pipelines, pipeline_id, batch_size = _input_pipeline(input_context, batch_size)
    skipped = start_step * global_batch // num_pipelines  # examples of this pipeline already trained on
    num_examples = int(manifest["splits"][split].get("num_examples", manifest["counts"].get(split, 0)))
    if subset:
        num_examples = min(num_examples, subset)
    encoding = schema.image_encoding(manifest)
    crop_flip = training and uses_crop_flip(augment, image_shape, encoding)
    random_crops = crop_flip and encoding == "source"  # per example, before batching: sizes differ
    if cache == "auto":  # only training reads the data more than once
        cache = training and num_examples * int(np.prod(image_shape)) <= CACHE_LIMIT_BYTES
    cache = cache and not random_crops  # a cached random crop would be the same crop every epoch

    ds = _records(files, num_pipelines, pipeline_id, subset)
    decode = _decoder(image_shape, num_classes, with_teacher_logits, encoding)
    # repeat() before shuffle(): every iterator of this dataset yields the same seeded stream
    # (a reshuffling shuffle would change with the number of iterators made, e.g. by
    # tf.distribute), and no epoch boundary drains the buffer.
    if random_crops:  # each crop keyed by the example's position in the (seeded) stream
        ds = ds.repeat().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
        ds = (
            ds.enumerate()
            .skip(skipped)
            .map(
                lambda index, record: decode(
                    record, tf.stack([tf.cast(seed, tf.int64), index * num_pipelines + pipeline_id])
                ),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        )
    elif cache:
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).cache()
        if training:
            ds = ds.repeat().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False).skip(skipped)
    else:
        if training:
            ds = ds.repeat().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False).skip(skipped)
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=training, num_parallel_calls=tf.data.AUTOTUNE)

    finish = _batch_finisher(
        num_classes, normalization(str(manifest["dataset"]), image_shape[-1]),
        crop_flip=crop_flip and not random_crops, seed=seed, num_pipelines=num_pipelines,
        pipeline_id=pipeline_id, include_metadata=include_metadata, with_teacher_logits=with_teacher_logits,
    )  # fmt: skip
    # Each batch's augmentation is keyed by its position in the whole stream, skipped batches included.
    ds = ds.enumerate(start=skipped // batch_size).map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    if input_context is None:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    else:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _checked_files(
    artifact_dir, manifest: dict, split: str, num_classes: int, with_teacher_logits: bool
) -> list[str]:
    """The split's files, after checking the class count, the features and the teacher logits' width."""
    if int(manifest["num_classes"]) != num_classes:
        raise UserError(
            f"data artifact {artifact_dir} has {manifest['num_classes']} classes, "
            f"but the model expects {num_classes}"
        )
    files = split_files(artifact_dir, manifest, split)
    encoding = schema.image_encoding(manifest)
    if encoding not in schema.IMAGE_ENCODINGS:
        raise UserError(
            f"data artifact {artifact_dir} has image_encoding {encoding!r}; this version reads "
            f"{', '.join(schema.IMAGE_ENCODINGS)}"
        )
    required = schema.required_features(encoding) + (("teacher_logits",) if with_teacher_logits else ())
    logits_width = _check_records(files, required, tuple(int(d) for d in manifest["image_shape"]), encoding)
    if with_teacher_logits and logits_width and logits_width != num_classes:
        raise UserError(
            f"teacher logits in {artifact_dir} have width {logits_width}, "
            f"but the student has {num_classes} classes (model.num_classes)"
        )
    return files


def _input_pipeline(input_context, batch_size: int) -> tuple[int, int, int]:
    """(number of input pipelines, this one's id, its batch size) under tf.distribute, or (1, 0, batch_size)."""
    if input_context is None:
        return 1, 0, batch_size
    try:
        per_replica = input_context.get_per_replica_batch_size(batch_size)
    except ValueError:
        raise UserError(
            f"train.batch_size={batch_size} is not divisible by the {input_context.num_replicas_in_sync} replicas"
        ) from None
    return input_context.num_input_pipelines, input_context.input_pipeline_id, per_replica


def _records(files: list[str], num_pipelines: int, pipeline_id: int, subset: int) -> tf.data.Dataset:
    """Serialised records in file order; sharded by file across input pipelines when there are enough files."""
    shard_files = num_pipelines > 1 and not subset and len(files) >= num_pipelines
    file_ds = tf.data.Dataset.from_tensor_slices(files)
    if shard_files:
        file_ds = file_ds.shard(num_pipelines, pipeline_id)
    ds = file_ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if subset:
        ds = ds.take(subset)
    if num_pipelines > 1 and not shard_files:
        ds = ds.shard(num_pipelines, pipeline_id)
    return ds


def _decoder(
    image_shape: tuple[int, ...], num_classes: int, with_teacher_logits: bool, encoding: str = "png"
):
    """(record, crop seed or None) -> {image uint8, label, clean_label, is_noisy, id (, teacher_logits)}.

    A PNG is decoded as it is; a source-encoded image is cropped to image_shape: a random-resized
    crop and flip given a seed, else the centre crop.
    """
    features = schema.parse_spec(num_classes, with_teacher_logits=with_teacher_logits, encoding=encoding)
    size, channels = int(image_shape[0]), int(image_shape[-1])

    def decode(record, seed=None):
        parsed = tf.io.parse_single_example(record, features)
        if encoding != "source":
            image = tf.ensure_shape(tf.io.decode_png(parsed["image"], channels=channels), image_shape)
        elif seed is None:
            image = crops.eval_crop(parsed["image"], parsed[schema.IMAGE_FORMAT], size, channels)
        else:
            image = crops.train_crop(parsed["image"], parsed[schema.IMAGE_FORMAT], size, channels, seed)
        example = {
            "image": image,
            "label": tf.cast(parsed["label"], tf.int32),
            "clean_label": tf.cast(parsed["clean_label"], tf.int32),
            "is_noisy": tf.cast(parsed["is_noisy"], tf.int32),
            "id": parsed["id"],
        }
        if with_teacher_logits:
            example["teacher_logits"] = parsed["teacher_logits"]
        return example

    return decode


def _batch_finisher(
    num_classes: int, mean_std, *, crop_flip: bool, seed: int, num_pipelines: int, pipeline_id: int,
    include_metadata: bool, with_teacher_logits: bool,
):  # fmt: skip
    """(batch index, batch) -> checked labels, augmented and normalised images, and the model's target."""
    mean_t, std_t = (tf.constant(v) for v in mean_std)

    def finish(index, batch):
        for name in ("label", "clean_label"):  # a label outside [0, L) would be silently mislearned
            tf.debugging.assert_non_negative(batch[name], message=_LABEL_RANGE_MESSAGE)
            tf.debugging.assert_less(batch[name], num_classes, message=_LABEL_RANGE_MESSAGE)
        images = batch["image"]
        if crop_flip:
            images = random_crop_flip(
                images, tf.stack([tf.cast(seed, tf.int64), index * num_pipelines + pipeline_id])
            )
        images = (tf.cast(images, tf.float32) / 255.0 - mean_t) / std_t
        if include_metadata:
            return dict(batch, image=images)
        target = batch["teacher_logits"] if with_teacher_logits else batch["label"]
        return images, target

    return finish


def describe(manifest: dict[str, Any]) -> str:
    """One line naming the data: dataset, shape, classes, counts."""
    counts = ", ".join(f"{k} {v}" for k, v in manifest.get("counts", {}).items())
    return (
        f"{manifest['dataset']} {'x'.join(map(str, manifest['image_shape']))}, "
        f"{manifest['num_classes']} classes ({counts})"
    )


def teacher_config_of(logits_dir: str | os.PathLike | None) -> dict | None:
    """A student's teacher config: the logits artifact's manifest -> the teacher model -> its config.json.

    None when the artifact or the teacher's config cannot be found.
    """
    if not logits_dir or not artifacts.is_complete(logits_dir):
        return None
    try:
        manifest = json.loads(artifacts.join(logits_dir, artifacts.MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    for key in ("teacher_config", "teacher"):
        if isinstance(manifest.get(key), dict) and "loss" in manifest[key]:
            return manifest[key]
    for key in ("model", "teacher"):
        ref = manifest.get("inputs", {}).get(key)
        path = artifacts.join(ref["path"], "config.json") if isinstance(ref, dict) and "path" in ref else None
        if path is not None and path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:
                return None
    return None
