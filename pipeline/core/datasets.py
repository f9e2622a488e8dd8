"""The datasets the toolkit reads, registered once: name -> normalisation and offline source.

A name is the tensorflow-datasets name (`data.dataset`). Configs, the noisify
source and the input pipeline read the names and statistics from `DATASETS`.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One dataset.

    Args:
      name: the tfds name.
      mean, std: per-channel statistics of the training split, pixel values in [0, 1].
      idx_dir: where Debian installs its IDX files (read offline with data.source=auto|idx);
        "" = read through tfds only.
      idx_package: the Debian package that installs them.
      class_names: the class names, for the IDX source (tfds gives its own).
    """

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    idx_dir: str = ""
    idx_package: str = ""
    class_names: tuple[str, ...] = ()


DATASETS: dict[str, Dataset] = {
    dataset.name: dataset
    for dataset in (
        Dataset("cifar10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        Dataset("cifar100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
        Dataset(
            "fashion_mnist", (0.2860,), (0.3530,), "/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist",
            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
             "Ankle boot"),
        ),
        Dataset("imagenet2012", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    )
}  # fmt: skip
