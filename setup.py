"""label-smearing: label smoothing and loss correction under label noise.

A reproduction toolkit for "Does label smoothing mitigate label noise?"
(Lukasik et al., ICML 2020): Beam jobs that make noisy-label TFRecords and
export teacher logits, Keras losses of the label-smearing family, training
under tf.distribute, evaluation and a report with the paper's tables.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

# The version is written once, in pipeline/__init__.py (artifact fingerprints cover it).
__version__ = re.search(
    r'__version__ = "([^"]+)"', (Path(__file__).parent / "pipeline" / "__init__.py").read_text()
)[1]

setup(
    name="label-smearing",
    version=__version__,
    description="Label smoothing and loss correction under label noise (Lukasik et al. 2020).",
    long_description=__doc__,
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["pipeline*", "keras_components*", "beam_jobs*", "configs*"]),
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorboard>=2.21,<2.22",  # the TF wheel does not pull it in; the TensorBoard callback needs it
        "keras>=3.10,<4",
        "apache-beam[tfrecord]>=2.60,<3",
        "google-crc32c>=1.5",
        "tensorflow-datasets>=4.9,<5",
        "ml-collections>=1.0,<2",
        "etils[epath]>=1.5",  # pathlib's API over tf.io.gfile: a workdir may be gs://
        "matplotlib>=3.8,<4",
        "numpy>=1.26",
        "scipy>=1.11",
    ],
    extras_require={
        # ruff pinned: its formatting changes between releases; jax (CPU) runs tests/test_jax_backend.py;
        # apache-beam[gcp] and the emulator (pinned: tests/gcs_standin.py patches it) run the gs:// tests
        "dev": [
            "pytest>=8",
            "ruff==0.17.*",
            "jax>=0.10",
            "apache-beam[gcp]>=2.60,<3",
            "gcp-storage-emulator==2026.7.19",
            "kfp==2.17.*",  # tests/test_kfp.py
        ],
        "gcp": ["apache-beam[gcp]>=2.60,<3"],
        # `smear run --engine kfp` (pipeline/kfp_engine.py); the image (Dockerfile) installs it for its tasks
        "kfp": ["kfp==2.17.*"],
        # benchmarks/train.py's PyTorch side; pinned: this release is the CPU build available here,
        # a range admitting newer releases would fetch a multi-GB CUDA build
        "bench": ["torch==2.13.0"],
    },
    entry_points={"console_scripts": ["smear=pipeline.cli:main"]},
)
