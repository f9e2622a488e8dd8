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
      annotations: the features of human noisy labels (noise.model=human, noise.annotation), in
        tfds' names; () = none. The clean label is "label".
      manual_download: what to do when tfds has not prepared it (its files need a manual download).
    """

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    idx_dir: str = ""
    idx_package: str = ""
    class_names: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()
    manual_download: str = ""


def _cifar_n_steps(name: str, classes: str) -> str:
    return (
        f'{name} needs a manual download (docs/guides/noisy-data.md, "Real human noise: CIFAR-N"): put side_info_cifar{classes}N.csv, '
        f"image_order_c{classes}.npy and CIFAR-{classes}_human_annotations.csv (converted from "
        f"CIFAR-{classes}_human_ordered.npy) in ~/tensorflow_datasets/downloads/manual and run `tfds build {name}`"
    )


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
        Dataset("imagenet2012", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), manual_download=(
            "ImageNet needs a manual download: put the archives in ~/tensorflow_datasets/downloads/manual "
            "and run `tfds build imagenet2012`")),
        # CIFAR-N (Wei et al., ICLR 2022): CIFAR's train images with human labels; the images' statistics are CIFAR's.
        Dataset("cifar10_n", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                annotations=("aggre_label", "worse_label", "random_label1", "random_label2", "random_label3"),
                manual_download=_cifar_n_steps("cifar10_n", "10")),
        Dataset("cifar100_n", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), annotations=("noise_label",),
                manual_download=_cifar_n_steps("cifar100_n", "100")),
    )
}  # fmt: skip
