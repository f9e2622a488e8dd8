"""The input pipeline reads what the fixture wrote, normalises, augments and shards it."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from label_smearing.core import tfdata
from label_smearing.core.errors import UserError


def _decoded_examples(artifact_dir):
    """{id: (uint8 image, label)} read straight from the TFRecords, without data.py."""
    manifest = tfdata.read_data_manifest(artifact_dir)
    out = {}
    for name in manifest["splits"]["test"]["files"]:
        for record in tf.data.TFRecordDataset(str(artifact_dir / name)):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            image = tf.io.decode_png(feature["image"].bytes_list.value[0]).numpy()
            out[feature["id"].bytes_list.value[0]] = (image, feature["label"].int64_list.value[0])
    return out


@pytest.mark.parametrize("fixture_name", ["data_artifact", "color_data_artifact"])
def test_decode_and_normalise_round_trip(fixture_name, request):
    artifact_dir = request.getfixturevalue(fixture_name)
    manifest = tfdata.read_data_manifest(artifact_dir)
    mean, std = tfdata.normalization(manifest["dataset"], manifest["image_shape"][-1])
    ds = tfdata.make_dataset(
        artifact_dir, "test", batch_size=10, training=False, num_classes=10, include_metadata=True
    )
    expected = _decoded_examples(artifact_dir)
    seen = 0
    for batch in ds:
        for image, label, example_id in zip(
            batch["image"].numpy(), batch["label"].numpy(), batch["id"].numpy()
        ):
            raw, raw_label = expected[example_id]
            # Undo the normalisation: back to the exact uint8 pixels of the PNG.
            restored = np.round((image * std + mean) * 255.0)
            np.testing.assert_array_equal(restored, raw)
            assert label == raw_label
            seen += 1
    assert seen == 32  # one pass, partial last batch kept
    if manifest["dataset"] == "cifar10":  # known constants are used, not [0, 1] scaling
        assert not np.allclose(mean, 0.0)


def test_labels_and_metadata_keep_noise_information(data_artifact):
    ds = tfdata.make_dataset(
        data_artifact, "train", batch_size=64, training=False, num_classes=10, include_metadata=True
    )
    batch = next(iter(ds))
    noisy = batch["label"].numpy() != batch["clean_label"].numpy()
    np.testing.assert_array_equal(noisy.astype(int), batch["is_noisy"].numpy())
    assert 0 < noisy.sum() < 64


def test_crop_flip_keeps_shape_and_changes_pixels():
    images = tf.random.stateless_uniform([16, 32, 32, 3], [1, 2], 1, 256, dtype=tf.int32)
    out = tfdata.random_crop_flip(images, tf.constant([0, 0], tf.int64))
    assert out.shape == images.shape
    changed = np.any(out.numpy() != images.numpy(), axis=(1, 2, 3))
    assert changed.sum() >= 12  # identity only for no shift and no flip: 1/81 * 1/2 chance each
    # Pixels are moved, never invented: every output row is a shifted/flipped window of zero-padded input.
    padded = np.pad(images.numpy(), [(0, 0), (4, 4), (4, 4), (0, 0)])
    for i in range(16):
        found = any(
            np.array_equal(out[i].numpy(), window) or np.array_equal(out[i].numpy(), window[:, ::-1])
            for dy in range(9)
            for dx in range(9)
            for window in [padded[i, dy : dy + 32, dx : dx + 32]]
        )
        assert found


def test_auto_augment_applies_to_32x32x3_training_only(color_data_artifact, data_artifact):
    assert tfdata.uses_crop_flip("auto", (32, 32, 3)) and not tfdata.uses_crop_flip("auto", (28, 28, 1))
    kwargs = dict(batch_size=32, shuffle_buffer=1, seed=0, num_classes=10)
    plain = next(
        iter(tfdata.make_dataset(color_data_artifact, "train", training=True, augment="none", **kwargs))
    )
    aug = next(
        iter(tfdata.make_dataset(color_data_artifact, "train", training=True, augment="auto", **kwargs))
    )
    np.testing.assert_array_equal(plain[1].numpy(), aug[1].numpy())  # same order, same labels
    assert aug[0].shape == plain[0].shape == (32, 32, 32, 3)
    assert not np.allclose(plain[0].numpy(), aug[0].numpy())
    again = next(
        iter(tfdata.make_dataset(color_data_artifact, "train", training=True, augment="auto", **kwargs))
    )
    np.testing.assert_array_equal(aug[0].numpy(), again[0].numpy())  # seeded: reproducible


def test_training_repeats_and_shuffles_with_seed(data_artifact):
    def labels(seed):
        ds = tfdata.make_dataset(
            data_artifact, "train", batch_size=48, training=True, shuffle_buffer=64, seed=seed, num_classes=10
        )
        return np.concatenate([y.numpy() for _, y in ds.take(4)])  # 192 > 64 examples: repeats

    a, b, c = labels(0), labels(0), labels(1)
    assert len(a) == 192
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_per_replica_batch_and_sharding_with_two_replica_input_context(data_artifact):
    sizes, ids = [], []
    for pipeline_id in range(2):
        ctx = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        ds = tfdata.make_dataset(
            data_artifact,
            "test",
            batch_size=16,
            training=False,
            num_classes=10,
            input_context=ctx,
            include_metadata=True,
        )
        batches = list(ds)
        sizes.append(batches[0]["image"].shape[0])
        ids.append({i for b in batches for i in b["id"].numpy()})
    assert sizes == [8, 8]  # per-replica batch = 16 / 2
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == 32  # disjoint shards covering the split
    ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
    with pytest.raises(UserError, match="batch_size=15 is not divisible by the 2 replicas"):
        tfdata.make_dataset(
            data_artifact, "test", batch_size=15, training=False, num_classes=10, input_context=ctx
        )


def test_missing_feature_is_a_user_error_naming_it_and_the_file(make_data_artifact, tmp_path):
    artifact_dir = make_data_artifact(tmp_path, drop_feature="clean_label", num_train=8, num_test=4)
    with pytest.raises(UserError, match=r"feature 'clean_label' missing from records in .*train-00000"):
        tfdata.make_dataset(artifact_dir, "train", batch_size=4, training=True, num_classes=10)


def test_teacher_logits_are_targets_and_width_is_checked(logits_artifact, data_artifact):
    images, targets = next(
        iter(
            tfdata.make_dataset(
                logits_artifact,
                "train",
                batch_size=8,
                training=False,
                num_classes=10,
                with_teacher_logits=True,
            )
        )
    )
    assert images.shape == (8, 28, 28, 1) and targets.shape == (8, 10) and targets.dtype == tf.float32
    with pytest.raises(UserError, match="feature 'teacher_logits' missing"):
        tfdata.make_dataset(
            data_artifact, "train", batch_size=8, training=True, num_classes=10, with_teacher_logits=True
        )
    with pytest.raises(UserError, match="has 10 classes, but the model expects 5"):
        tfdata.make_dataset(
            logits_artifact, "train", batch_size=8, training=True, num_classes=5, with_teacher_logits=True
        )


def test_image_shape_mismatch_is_a_user_error(make_data_artifact, tmp_path):
    artifact_dir = make_data_artifact(tmp_path, num_train=4, num_test=4)
    manifest = tfdata.read_data_manifest(artifact_dir)
    manifest["image_shape"] = [32, 32, 1]
    with pytest.raises(
        UserError, match=r"have shape \[28, 28, 1\], but the manifest's image_shape is \[32, 32, 1\]"
    ):
        tfdata.make_dataset(
            artifact_dir, "train", batch_size=4, training=True, num_classes=10, manifest=manifest
        )


def test_subset_limits_the_examples(data_artifact):
    ds = tfdata.make_dataset(data_artifact, "train", batch_size=8, training=False, num_classes=10, subset=20)
    assert sum(int(x.shape[0]) for x, _ in ds) == 20
