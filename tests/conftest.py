"""Shared fixtures: tiny data artifacts in the format `smear noisify` writes.

`write_data_artifact(root, ...)` writes `<root>/data/<name>-<fp10>/` with
`train-0000i-of-0000N.tfrecord`, `test-...` shards of tf.train.Example (`id`,
PNG `image`, `label`, `clean_label`, `is_noisy`, optionally `teacher_logits` and
`pre_logits`), a `noise_report.json` and a `manifest.json` written last. Images
and clean labels are random; 20% of the train labels are flipped to another class.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _bytes(value: bytes):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(value: int):
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _floats(values):
    import tensorflow as tf

    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def write_data_artifact(
    root: str | os.PathLike,
    *,
    name: str = "fixture",
    dataset: str = "synthetic",
    image_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    num_train: int = 64,
    num_test: int = 32,
    num_validation: int = 0,
    num_shards: int = 2,
    noise_rate: float = 0.2,
    seed: int = 0,
    teacher_logits: bool = False,
    drop_feature: str | None = None,
    directory: str | os.PathLike | None = None,
) -> Path:
    """Writes a tiny data (or exported-logits) artifact and returns its directory.

    Args:
      root: the workdir; the artifact goes to root/data/<name>-<fp10> unless
        `directory` is given.
      num_validation: examples of a noisy `validation` split (0 = none, as before).
      teacher_logits: add `teacher_logits` (width num_classes) and `pre_logits` (8).
      drop_feature: leave this feature out of every record (to test checks).
      directory: write exactly here instead.
    """
    import tensorflow as tf

    from label_smearing.core import artifacts

    rng = np.random.default_rng(seed)
    description = {
        "name": name,
        "dataset": dataset,
        "image_shape": list(image_shape),
        "num_classes": num_classes,
        "num_train": num_train,
        "num_test": num_test,
        "num_validation": num_validation,
        "noise_rate": noise_rate,
        "seed": seed,
        "teacher_logits": teacher_logits,
        "drop_feature": drop_feature,
    }
    fp = artifacts.fingerprint("noisify", description)
    out = Path(directory) if directory else artifacts.artifact_dir(root, "data", name, fp)
    out.mkdir(parents=True, exist_ok=True)
    splits, noisy_counts = {}, {}
    sizes = (("train", num_train), ("test", num_test)) + (
        (("validation", num_validation),) if num_validation else ()
    )
    for split, count in sizes:
        images = rng.integers(0, 256, size=(count, *image_shape), dtype=np.uint8)
        clean = rng.integers(0, num_classes, size=count)
        noisy = clean.copy()
        if split != "test":
            flip = rng.random(count) < noise_rate
            noisy[flip] = (clean[flip] + rng.integers(1, num_classes, size=flip.sum())) % num_classes
        files = [f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
        writers = [tf.io.TFRecordWriter(str(out / f)) for f in files]
        for i in range(count):
            feature = {
                "id": _bytes(f"{dataset}/{split}/{i}".encode()),
                "image": _bytes(tf.io.encode_png(images[i]).numpy()),
                "label": _ints(noisy[i]),
                "clean_label": _ints(clean[i]),
                "is_noisy": _ints(noisy[i] != clean[i]),
            }
            if teacher_logits:
                feature["teacher_logits"] = _floats(rng.normal(size=num_classes) * 3)
                feature["pre_logits"] = _floats(rng.normal(size=8))
            if drop_feature:
                feature.pop(drop_feature, None)
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writers[i % num_shards].write(example.SerializeToString())
        for w in writers:
            w.close()
        splits[split] = {"files": files, "num_examples": count}
        noisy_counts[split] = int((noisy != clean).sum())
    artifacts.atomic_write_json(out / "noise_report.json", {"noisy": noisy_counts})
    artifacts.write_manifest(
        out,
        stage="export_logits" if teacher_logits else "noisify",
        fingerprint=fp,
        config=description,
        counts={split: count for split, count in sizes},
        extra={
            "dataset": dataset,
            "num_classes": num_classes,
            "image_shape": list(image_shape),
            "class_names": [f"class_{i}" for i in range(num_classes)],
            "splits": splits,
        },
    )
    return out


@pytest.fixture(scope="session")
def make_data_artifact():
    """The `write_data_artifact` function, for tests that need a custom artifact."""
    return write_data_artifact


@pytest.fixture(scope="session")
def data_artifact(tmp_path_factory) -> Path:
    """64 train + 32 test random 28x28x1 images, 10 classes, 2 shards per split."""
    return write_data_artifact(tmp_path_factory.mktemp("workdir"))


@pytest.fixture(scope="session")
def color_data_artifact(tmp_path_factory) -> Path:
    """64 train + 32 test random 32x32x3 images ("cifar10" normalisation), 10 classes."""
    return write_data_artifact(
        tmp_path_factory.mktemp("workdir"), name="color", dataset="cifar10", image_shape=(32, 32, 3)
    )


@pytest.fixture(scope="session")
def logits_artifact(tmp_path_factory) -> Path:
    """Like `data_artifact` plus `teacher_logits` (10) and `pre_logits` (8) features."""
    return write_data_artifact(tmp_path_factory.mktemp("workdir"), name="logits", teacher_logits=True)


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="session")
def gcs(tmp_path_factory):
    """The GCS stand-in (tests/gcs_standin.py) in its own process, with bucket `bucket`.

    Yields the environment a process needs to reach it (TF's and Beam's gs:// clients);
    in-process tests set it with monkeypatch, whole runs pass it to their subprocess.
    """
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen(
        [sys.executable, os.path.join(root, "tests", "gcs_standin.py"), str(tmp_path_factory.mktemp("gcs")), "bucket"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line, "the GCS stand-in did not start"
        yield json.loads(line)
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def gcs_env(gcs, monkeypatch):
    """`gcs`'s environment set in this process for one test."""
    for key, value in gcs.items():
        monkeypatch.setenv(key, value)
    return gcs


# The longest files first (their tests' seconds summed from `pytest --durations=60` of a quiet
# clean-clone `make test`, 2026-12-07). `make test` hands whole files to its two pytest-xdist workers
# (--dist loadfile), each taking the next file from the front of the queue when it runs low, so the
# longest start first and short files fill the end instead of one long file running alone. It passes
# --no-loadscope-reorder: by default xdist re-sorts the files by their number of tests, which undid
# this order. Only the order changes, never what runs.
LONGEST_FIRST = (
    "test_pipeline.py",  # about 150 s
    "test_parallel.py",  # 120
    "test_kfp.py",  # 85
    "test_remote_workdir.py",  # 80
    "test_integrity.py",  # 66
    "test_os_errors.py",  # 55
    "test_export_logits.py",  # 50
    "test_strategy.py",  # 50
    "test_precision.py",  # 48
    "test_train.py",  # 35
    "test_docs.py",  # 35
    "test_jax_backend.py",  # 28
    "test_noisify.py",  # 28
    "test_protocol.py",  # 26
    "test_paper_configs.py",  # 26
    "test_install.py",  # 22
    "test_faults.py",  # 20
)


def pytest_collection_modifyitems(config, items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order is kept
