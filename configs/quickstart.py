"""Quickstart: Fashion-MNIST with 20% symmetric label noise, small ResNet, CPU.

Command (what `make demo` runs):
    smear run --config configs/quickstart.py --workdir demo_workdir

Teachers: cross-entropy baseline, label smoothing (LS) and forward correction
(FC, smoothing-form T), each alpha = 0.1; a distilled student from each; the
evaluation of all six; a report with the paper's tables. Offline it reads the
Fashion-MNIST IDX files of Debian's `dataset-fashion-mnist`.

Runtime here: 668 s for the 17 stages on 2 shared cores (a second run: ~10 s, all
cached). Result (one seed; results/quickstart/report.md): test accuracy CE 85.6%,
LS 85.7%, FC 86.3%; test ECE 0.204 / 0.264 / 0.101; students 81.6 / 80.6 / 83.6%.

`configs/quickstart.py:smoke` shrinks everything to a few hundred examples and
a few steps so the whole pipeline runs in well under a minute (tests use it).
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    smoke = base.smoke_only(arg)
    c = base.base_config(smoke)
    c.name = "quickstart"
    c.data.dataset = "fashion_mnist"
    c.data.source = "auto"  # offline: Debian's IDX files
    # ours: a 20k-example training subset keeps `make demo` under 15 minutes on 2 cores.
    c.data.max_train_examples = 512 if smoke else 20000
    c.data.max_test_examples = 256 if smoke else 0
    c.model.depth = 8  # ours: ResNet-8 keeps the demo under 15 minutes on 2 cores
    c.train.batch_size = 128  # the paper's, smoke too
    c.train.steps = 20 if smoke else 600  # ours: about 4 epochs of the subset (the paper: 64k steps on CIFAR)
    c.train.augment = "auto"  # crop+flip for 32x32 colour data only: none on Fashion-MNIST
    c.train.shuffle_buffer = 512 if smoke else 10000  # ours
    c.train.steps_per_epoch = 10 if smoke else 150
    c.export.num_shards = 2 if smoke else 4
    c.eval.projection_classes = (0, 2, 6)  # ours: T-shirt, pullover, shirt (often confused)
    c.sweep.teachers = ("ce", "ls:0.1", "fc:0.1")
    c.sweep.students = ("ce>ce", "ls:0.1>ce", "fc:0.1>ce")
    c.sweep.seeds = (0,)
    return c
