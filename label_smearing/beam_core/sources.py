"""Clean-data sources for the noisify job: tfds datasets and local IDX files.

A source is a small picklable object: Beam ships it to workers, and each worker
reads only its own slice `[start, end)` of a split. Nothing is collected on the
launcher except split sizes.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
from collections.abc import Sequence

import numpy as np

from label_smearing.core.datasets import DATASETS
from label_smearing.core.errors import UserError

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    dataset: str
    num_classes: int
    class_names: tuple[str, ...]
    split_sizes: dict[str, int]
    origin: str  # human-readable: where the data came from


def _find_idx(directory: str, stem: str) -> str | None:
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


@functools.lru_cache(maxsize=4)
def _read_idx(path: str) -> np.ndarray:
    """Reads an IDX file (optionally gzipped) into a uint8 array; cached per worker."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise UserError(f"IDX file {path} is truncated or corrupt: {e}") from e
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise UserError(f"{path} is truncated or corrupt: {len(data)} bytes, header says {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


@dataclasses.dataclass(frozen=True)
class IdxSource:
    """MNIST-format IDX files of a dataset registered with an `idx_dir` (Fashion-MNIST from Debian)."""

    dataset: str
    directory: str

    def info(self) -> SourceInfo:
        sizes = {}
        for split, (images, labels) in _IDX_FILES.items():
            image_path = _find_idx(self.directory, images)
            label_path = _find_idx(self.directory, labels)
            if image_path is None or label_path is None:
                raise UserError(
                    f"{self.dataset} IDX files missing in {self.directory}: need {images}[.gz] and {labels}[.gz] "
                    f"(apt-get install {DATASETS[self.dataset].idx_package}, or set data.source_dir)"
                )
            n_images, n_labels = _read_idx(image_path).shape[0], _read_idx(label_path).shape[0]
            if n_images != n_labels:
                raise UserError(f"{image_path} has {n_images} images but {label_path} has {n_labels} labels")
            sizes[split] = n_images
        names = DATASETS[self.dataset].class_names
        return SourceInfo(self.dataset, len(names), names, sizes, f"IDX files in {self.directory}")

    def read(self, split: str, start: int, end: int, annotations: Sequence[str] = ()) -> tuple:
        if annotations:
            raise UserError(
                f"IDX files of {self.dataset} carry no human annotations ({', '.join(annotations)})"
            )
        images_stem, labels_stem = _IDX_FILES[split]
        images = _read_idx(_find_idx(self.directory, images_stem))[start:end]
        labels = _read_idx(_find_idx(self.directory, labels_stem))[start:end].astype(np.int64)
        return images[..., None], labels


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A tensorflow-datasets dataset, read by split slices (`train[start:end]`)."""

    dataset: str
    data_dir: str = ""
    image_size: int = 0  # >0: resize (shorter side) and centre-crop to a square, e.g. ImageNet
    keep_encoded: bool = False  # read each image's encoded bytes as the source stores them, undecoded

    def _builder(self):
        import tensorflow_datasets as tfds

        try:
            return tfds.builder(self.dataset, data_dir=self.data_dir or None)
        except Exception as e:  # noqa: BLE001 - tfds raises many kinds
            raise UserError(f"tfds cannot load dataset {self.dataset!r}: {e}") from e

    def _as_dataset(self, builder, split: str):
        import tensorflow_datasets as tfds

        decoders = {"image": tfds.decode.SkipDecoding()} if self.keep_encoded else None
        try:
            return builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
        except Exception as e:  # noqa: BLE001
            known = DATASETS.get(self.dataset)
            hint = (
                known.manual_download
                if known is not None and known.manual_download
                else f"run `tfds build {self.dataset}` on a machine with internet access and point "
                "data.tfds_data_dir at the result"
            )
            raise UserError(f"dataset {self.dataset} is not prepared in {builder.data_dir}: {hint}") from e

    def _source_split(self, split: str) -> str:
        """ImageNet has no labelled test split: its validation split is our test split."""
        return "validation" if split == "test" and self.dataset.startswith("imagenet") else split

    def info(self) -> SourceInfo:
        builder = self._builder()
        names = tuple(builder.info.features["label"].names)
        sizes = {}
        for split in ("train", "test"):
            name = self._source_split(split)
            if name in builder.info.splits:
                sizes[split] = builder.info.splits[name].num_examples
            else:  # metadata absent (e.g. under tfds.testing.mock_data): count the records
                sizes[split] = int(self._as_dataset(builder, name).reduce(0, lambda n, _: n + 1))
        return SourceInfo(
            self.dataset, len(names), names, sizes, f"tfds {self.dataset} in {builder.data_dir}"
        )

    def channels(self) -> int:
        """The channels of the dataset's images (its image feature's last dimension)."""
        return int(self._builder().info.features["image"].shape[-1])

    def read(self, split: str, start: int, end: int, annotations: Sequence[str] = ()) -> tuple:
        """(images, clean labels) of `split[start:end]`, and {feature: labels} of the `annotations` if any.

        The images are a uint8 array [N, H, W, C]; with `keep_encoded` an object array [N] of
        their encoded bytes, exactly as the source stores them.
        """
        import tensorflow as tf

        builder = self._builder()
        ds = self._as_dataset(builder, f"{self._source_split(split)}[{start}:{end}]").take(end - start)
        if self.image_size and not self.keep_encoded:
            size = self.image_size

            def resize(example):
                image = example["image"]
                shape = tf.shape(image)[:2]
                scale = tf.cast(size, tf.float32) / tf.cast(tf.reduce_min(shape), tf.float32)
                new = tf.cast(tf.math.ceil(tf.cast(shape, tf.float32) * scale), tf.int32)
                image = tf.image.resize(image, new, antialias=True)
                image = tf.image.resize_with_crop_or_pad(image, size, size)
                return {
                    **example, "image": tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8),
                }  # fmt: skip

            ds = ds.map(resize)
        images, labels, annotated = [], [], {name: [] for name in annotations}
        for example in ds.as_numpy_iterator():
            images.append(example["image"])
            labels.append(example["label"])
            for name, values in annotated.items():
                if name not in example:
                    raise UserError(f"{self.dataset} has no feature {name!r}")
                values.append(example[name])
        extra = (
            ({k: np.asarray(v, dtype=np.int64).reshape(-1) for k, v in annotated.items()},)
            if annotations
            else ()
        )
        if self.keep_encoded:
            encoded = np.empty(len(images), dtype=object)
            encoded[:] = images
            return encoded, np.asarray(labels, dtype=np.int64).reshape(-1), *extra
        if not images:
            return np.zeros((0, 1, 1, 1), np.uint8), np.zeros((0,), np.int64), *extra
        try:
            stacked = np.stack(images)
        except ValueError:
            raise UserError(
                f"{self.dataset} images differ in size; set data.image_size to resize them (e.g. 224)"
            ) from None
        return stacked, np.asarray(labels, dtype=np.int64), *extra


def resolve_source(data_config) -> IdxSource | TfdsSource:
    """The source a config's data section names.

    data.source: "auto" reads a dataset's IDX files (Fashion-MNIST: Debian's) when present,
    otherwise through tfds; "idx" insists on IDX files; "tfds" on tfds.
    """
    dataset = data_config.dataset
    if dataset not in DATASETS:
        raise UserError(f"unknown data.dataset {dataset!r}; one of {', '.join(DATASETS)}")
    source = data_config.source
    if source not in ("auto", "idx", "tfds"):
        raise UserError(f"unknown data.source {source!r}; one of auto, idx, tfds")
    known = DATASETS[dataset]
    idx_dir = data_config.source_dir or known.idx_dir
    if source == "idx" or (source == "auto" and known.idx_dir and os.path.isdir(idx_dir)):
        if data_config.image_encoding == "source":
            raise UserError(
                "data.image_encoding=source keeps a tfds dataset's encoded images: IDX files hold none "
                "(set data.source=tfds, or data.image_encoding=png)"
            )
        if not known.idx_dir:
            readable = ", ".join(name for name, d in DATASETS.items() if d.idx_dir)
            raise UserError(f"data.source=idx reads {readable} only, not {dataset}")
        if not os.path.isdir(idx_dir):
            raise UserError(
                f"{dataset} IDX directory {idx_dir} not found: apt-get install {known.idx_package} "
                "or set data.source_dir"
            )
        return IdxSource(dataset, idx_dir)
    keep_encoded = data_config.image_encoding == "source"
    return TfdsSource(dataset, data_config.tfds_data_dir, int(data_config.image_size), keep_encoded)
