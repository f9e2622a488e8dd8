"""ImageNet as the paper trains it: the source's JPEG bytes kept, random-resized crops at training.

On tfds mock data for imagenet2012: its image feature has shape (None, None, 3),
which the mock fills with images of random sizes (5 to 49 pixels a side here),
JPEG-encoded as the real dataset is.
"""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from label_smearing import cli
from label_smearing.beam_core.sources import TfdsSource, resolve_source
from label_smearing.core import layout, schema, tfdata
from label_smearing.core.config import load_config
from label_smearing.stages import export_logits

tfds = pytest.importorskip("tensorflow_datasets")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGENET = os.path.join(ROOT, "label_smearing", "configs", "imagenet.py")
QUICKSTART = os.path.join(ROOT, "label_smearing", "configs", "quickstart.py")
NUM_EXAMPLES = 24  # per split of the mock
SIZE = 32  # the crops' size: small, so the smoke training takes seconds
# One chunk per split: the mock generates a split's examples afresh for every read, so one read
# of 24 gives 24 different images (chunks of 8 would give the same 8 three times).
DATA_FLAGS = [f"--config.data.image_size={SIZE}", f"--config.data.chunk_size={NUM_EXAMPLES}"]
MODEL_FLAGS = [  # a tiny model for the smoke run: the path under test is the data's, not ResNet-50's
    "--config.model.name=cifar_resnet", "--config.model.depth=8", "--config.model.width=4",
    "--config.train.learning_rate=0.1", "--config.train.deterministic=true", "--config.train.curve_examples=0",
]  # fmt: skip


def _source_images(split):
    """The mock source's encoded image bytes and labels of `split`, read straight from tfds."""
    builder = tfds.builder("imagenet2012")
    name = "validation" if split == "test" else split
    ds = builder.as_dataset(split=name, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
    return [(ex["image"], int(ex["label"])) for ex in ds.as_numpy_iterator()]


def _records(directory, split):
    out = {}
    for path in sorted(glob.glob(os.path.join(directory, f"{split}-*.tfrecord"))):
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(raw).features.feature
            out[feature["id"].bytes_list.value[0].decode()] = (feature, raw)
    return out


@pytest.fixture(scope="module")
def noisified(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("imagenet")
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        code = cli.main(["noisify", "--config", f"{IMAGENET}:smoke", "--workdir", str(workdir), *DATA_FLAGS])
        source = {split: _source_images(split) for split in ("train", "test")}
    assert code == 0
    (data_dir,) = glob.glob(os.path.join(workdir, "data", "*"))
    manifest = json.load(open(os.path.join(data_dir, "manifest.json")))
    return {"workdir": workdir, "data": data_dir, "manifest": manifest, "source": source}


def _batches(data_dir, n, **kwargs):
    ds = tfdata.make_dataset(data_dir, "train", num_classes=1000, include_metadata=True, **kwargs)
    return [{k: v.numpy() for k, v in batch.items()} for batch in ds.take(n)]


@pytest.mark.slow
def test_the_mock_images_vary_in_size(noisified):
    shapes = {tuple(tf.image.extract_jpeg_shape(image).numpy()) for image, _ in noisified["source"]["train"]}
    assert len(shapes) > 10 and len({s[:2] for s in shapes}) > 10  # not one size: the crops must cope


@pytest.mark.slow
def test_records_hold_the_sources_encoded_bytes_and_their_format(noisified):
    records = {**_records(noisified["data"], "train"), **_records(noisified["data"], "validation")}
    tests = _records(noisified["data"], "test")
    assert len(records) == len(tests) == NUM_EXAMPLES
    for split, found in (("train", records), ("test", tests)):
        for i, (image, label) in enumerate(noisified["source"][split]):
            feature, raw = found[f"imagenet2012/{split}/{i}"]
            assert feature["image"].bytes_list.value[0] == image  # byte for byte, never decoded
            assert len(raw) - len(image) < 200  # a record is its JPEG plus id, labels and format
            assert feature[schema.IMAGE_FORMAT].bytes_list.value == [b"jpeg"]
            assert feature["clean_label"].int64_list.value[0] == label
            assert set(feature) == set(schema.required_features("source"))
    manifest = noisified["manifest"]
    assert manifest["image_encoding"] == "source" and manifest["image_shape"] == [SIZE, SIZE, 3]


@pytest.mark.slow
def test_training_crops_are_random_resized_and_reproducible(noisified):
    data_dir = noisified["data"]
    common = dict(batch_size=4, training=True, augment="crop_flip", shuffle_buffer=64)
    first, again = _batches(data_dir, 15, seed=3, **common), _batches(data_dir, 15, seed=3, **common)
    other = _batches(data_dir, 15, seed=4, **common)
    for a, b in zip(first, again):  # the same seed: the same examples, crops and flips
        np.testing.assert_array_equal(a["id"], b["id"])
        np.testing.assert_array_equal(a["image"], b["image"])
    assert first[0]["image"].shape == (4, SIZE, SIZE, 3) and first[0]["image"].dtype == np.float32
    # 60 crops of 20 training examples: each example seen in several epochs, cropped anew each time.
    seen = {}
    for batch in first:
        for example_id, image in zip(batch["id"], batch["image"]):
            seen.setdefault(example_id, []).append(image)
    repeated = [views for views in seen.values() if len(views) > 1]
    assert len(repeated) >= 10
    # A crop can repeat only by chance: an image too small for any sampled box falls back to
    # its centre crop, then only the flip differs.
    assert np.mean([not np.array_equal(views[0], views[1]) for views in repeated]) >= 0.8
    crops = [image for batch in first for image in batch["image"]]
    assert len({image.tobytes() for image in crops}) >= 0.9 * len(crops)
    by_id = {}
    for batch in other:
        for example_id, image in zip(batch["id"], batch["image"]):
            by_id.setdefault(example_id, image)
    common_ids = [i for i in by_id if i in seen]
    assert common_ids and any(not np.array_equal(seen[i][0], by_id[i]) for i in common_ids)  # another seed


def _reference_centre_crops(image_bytes, size, dataset="imagenet2012"):
    """The TPU ResNet reference's evaluation crop, its window computed here independently: a
    size/(size+32) square of the shorter side from the middle, resized bicubic, normalised.

    Returns the crop as the reference decodes it (`decode_and_crop_jpeg`, the window only) and as a
    whole decode gives it: JPEG's chroma upsampling can differ at the window's edge between the two.
    """
    h, w = tf.image.extract_jpeg_shape(image_bytes).numpy()[:2]
    side = max(int(size / (size + 32) * min(h, w)), 1)
    top, left = (h - side + 1) // 2, (w - side + 1) // 2
    windowed = tf.image.decode_and_crop_jpeg(image_bytes, [top, left, side, side], channels=3).numpy()
    whole = tf.io.decode_jpeg(image_bytes, channels=3).numpy()[top : top + side, left : left + side]
    mean, std = tfdata.normalization(dataset, 3)
    out = []
    for crop in (windowed, whole):
        resized = tf.image.resize(crop[None].astype(np.float32), [size, size], method="bicubic")[0].numpy()
        out.append((np.round(np.clip(resized, 0, 255)) / 255.0 - mean) / std)
    return out


@pytest.mark.slow
def test_evaluation_takes_the_centre_crop(noisified):
    batches = _batches(noisified["data"], 6, batch_size=4, training=False)
    assert batches[0]["image"].shape == (4, SIZE, SIZE, 3)
    source = {f"imagenet2012/train/{i}": image for i, (image, _) in enumerate(noisified["source"]["train"])}
    checked = 0
    for batch in batches:
        for example_id, image in zip(batch["id"], batch["image"]):
            windowed, whole = _reference_centre_crops(source[example_id.decode()], SIZE)
            np.testing.assert_allclose(image, windowed, atol=1e-5)
            assert np.mean(np.abs(image - whole) < 1e-5) > 0.7  # the same pixels, bar the window's edge
            checked += 1
    assert checked >= 20
    # Training without augmentation sees the same centre crops.
    plain = _batches(noisified["data"], 1, batch_size=4, training=True, augment="none", seed=0)[0]
    by_id = {i: x for b in batches for i, x in zip(b["id"], b["image"])}
    for example_id, image in zip(plain["id"], plain["image"]):
        np.testing.assert_array_equal(image, by_id[example_id])


@pytest.mark.slow
def test_export_preprocessing_is_the_evaluation_centre_crop(noisified):
    import keras

    from label_smearing.modeling import models

    raw = {i.encode(): r for i, (_, r) in _records(noisified["data"], "test").items()}
    ds = tfdata.make_dataset(
        noisified["data"], "test", batch_size=12, training=False, num_classes=1000, include_metadata=True
    )
    batch = next(iter(ds))
    keras.utils.set_random_seed(0)
    model = models.cifar_resnet(8, 1000, (SIZE, SIZE, 3), width=4)
    teacher = export_logits.TeacherModel(
        model, (SIZE, SIZE, 3), *tfdata.normalization("imagenet2012", 3), encoding="source"
    )
    ours = teacher.preprocess([raw[i] for i in batch["id"].numpy()]).numpy()
    np.testing.assert_array_equal(ours, batch["image"].numpy())  # bit for bit


@pytest.mark.slow
def test_noisify_train_export_smoke(noisified):
    workdir = str(noisified["workdir"])
    flags = ["--config", f"{IMAGENET}:smoke", "--workdir", workdir, *DATA_FLAGS, *MODEL_FLAGS]
    assert cli.main(["train", *flags]) == 0
    assert cli.main(["export-logits", *flags, "--split", "test"]) == 0
    (logits_dir,) = glob.glob(os.path.join(workdir, "logits", "*"))
    manifest = json.load(open(os.path.join(logits_dir, "manifest.json")))
    assert manifest["image_encoding"] == "source" and manifest["counts"]["test"] == NUM_EXAMPLES
    exported, original = _records(logits_dir, "test"), _records(noisified["data"], "test")
    assert set(exported) == set(original)
    for example_id, (feature, _) in exported.items():
        assert feature["image"] == original[example_id][0]["image"]  # the JPEG passes through untouched
        assert feature[schema.IMAGE_FORMAT].bytes_list.value == [b"jpeg"]
        assert len(feature["teacher_logits"].float_list.value) == 1000


def test_png_datasets_keep_their_fingerprints_and_imagenets_changes():
    quickstart = layout.data_section(load_config(f"{QUICKSTART}:smoke"))
    assert "image_encoding" not in quickstart["data"]  # as before the key existed: same fingerprint
    imagenet = load_config(IMAGENET)
    assert layout.data_section(imagenet)["data"]["image_encoding"] == "source"
    png = load_config(IMAGENET, ["data.image_encoding=png"])
    assert layout.data_fingerprint(png) != layout.data_fingerprint(imagenet)
    assert resolve_source(imagenet.data) == TfdsSource("imagenet2012", "", 224, keep_encoded=True)
    assert resolve_source(png.data).keep_encoded is False


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--config.data.image_encoding=webp"], "unknown data.image_encoding 'webp'; one of png, source"),
        (["--config.data.image_size=0"], "data.image_encoding=source needs data.image_size > 0"),
        (["--config.noise.model=instance"], "noise.model=instance reads the images' pixels"),
        (
            ["--config.data.dataset=fashion_mnist", "--config.data.source=idx"],
            "data.image_encoding=source keeps a tfds dataset's encoded images: IDX files hold none",
        ),
    ],
)
def test_bad_image_encoding_is_one_line_exit_2_nothing_written(tmp_path, capsys, extra, message):
    code = cli.main(["noisify", "--config", f"{IMAGENET}:smoke", "--workdir", str(tmp_path / "w"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_a_record_whose_bytes_are_not_its_format_is_refused(noisified, tmp_path):
    import shutil

    from label_smearing.core.errors import UserError

    copy = tmp_path / "data"
    shutil.copytree(noisified["data"], copy)
    (name,) = noisified["manifest"]["splits"]["test"]["files"]
    feature, _ = next(iter(_records(copy, "test").values()))
    example = tf.train.Example()
    for key in feature:
        example.features.feature[key].CopyFrom(feature[key])
    example.features.feature[schema.IMAGE_FORMAT].bytes_list.value[0] = b"png"
    with tf.io.TFRecordWriter(str(copy / name)) as writer:
        writer.write(example.SerializeToString())
    manifest = dict(noisified["manifest"])
    with pytest.raises(UserError, match="are jpeg, but their image_format says png"):
        tfdata.make_dataset(copy, "test", batch_size=2, training=False, num_classes=1000, manifest=manifest)
