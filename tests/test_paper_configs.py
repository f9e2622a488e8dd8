"""The paper configs carry the paper's values and every one trains in its smoke form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from label_smearing.core.config import load_config
from label_smearing.stages import train

ROOT = Path(__file__).resolve().parents[1]
CIFAR = str(ROOT / "label_smearing" / "configs" / "cifar.py")
IMAGENET = str(ROOT / "label_smearing" / "configs" / "imagenet.py")
FMNIST_PAPER = str(ROOT / "label_smearing" / "configs" / "fmnist_paper.py")


@pytest.mark.parametrize("dataset, classes", [("cifar10", 10), ("cifar100", 100)])
@pytest.mark.parametrize("model, depth", [("resnet32", 32), ("resnet56", 56)])
def test_cifar_configs_carry_the_papers_values(dataset, classes, model, depth):
    c = load_config(f"{CIFAR}:{dataset},{model},ls")
    assert (c.data.dataset, c.model.name, c.model.depth, c.model.width) == (
        dataset,
        "cifar_resnet",
        depth,
        16,
    )
    assert (c.noise.model, c.noise.rate) == ("symmetric", 0.2)
    t = c.train
    assert (t.batch_size, t.optimizer, t.momentum, t.nesterov, t.learning_rate) == (
        128,
        "sgd",
        0.9,
        True,
        0.1,
    )
    assert t.steps == 64_000 and [round(b * t.steps) for b in t.lr_boundaries] == [32_000, 48_000]
    assert t.lr_decay == 0.1 and c.model.weight_decay == 1e-4 and t.augment == "crop_flip"
    assert c.loss.alpha == 0.1 and len(c.sweep.seeds) == 5
    fc = load_config(f"{CIFAR}:{dataset},{model},fc")
    assert fc.loss.alpha == pytest.approx(classes * 0.2 / (classes - 1), abs=1e-4)  # T_alpha of the noise
    assert load_config(f"{CIFAR}:{dataset},{model},ce").sweep.teachers == ("ce",)


def test_bad_config_args_are_rejected():
    from label_smearing.core.errors import UserError

    for spec in (f"{CIFAR}:cifar10,resnet20,ls", f"{CIFAR}:svhn,resnet32,ls", f"{IMAGENET}:focal"):
        with pytest.raises(UserError, match="expected"):
            load_config(spec)


def test_imagenet_config_uses_lars_with_warmup_and_no_automatic_tpu():
    c = load_config(IMAGENET)
    assert (c.model.name, c.train.optimizer, c.train.schedule) == ("resnet_v2_50", "lars", "polynomial")
    assert (
        c.train.strategy == "auto" and c.train.batch_size >= 1024 and 0 < c.train.warmup_steps < c.train.steps
    )


SMOKE = [
    (f"{CIFAR}:cifar10,resnet32,ce,smoke", "cifar10", 10),
    (f"{CIFAR}:cifar10,resnet32,ls,smoke", "cifar10", 10),
    (f"{CIFAR}:cifar10,resnet56,fc,smoke", "cifar10", 10),
    (f"{CIFAR}:cifar100,resnet32,bc,smoke", "cifar100", 100),
    (f"{IMAGENET}:fc,smoke", "imagenet2012", 10),
]


@pytest.mark.slow
@pytest.mark.parametrize("spec, dataset, classes", SMOKE, ids=[s[0].split(":")[1] for s in SMOKE])
def test_every_paper_config_trains_in_its_smoke_form(spec, dataset, classes, make_data_artifact, tmp_path):
    config = load_config(spec, ["train.steps=2", "train.steps_per_epoch=1"])
    data_dir = make_data_artifact(tmp_path, dataset=dataset, num_classes=classes, image_shape=(32, 32, 3),
                                  num_train=32, num_test=8)  # fmt: skip
    manifest = train.train_stage(config, data_dir, tmp_path / "model", log=lambda _: None)
    assert manifest["counts"]["steps"] == 2
    losses = [e["loss"] for e in json.loads((tmp_path / "model" / "history.json").read_text())["epochs"]]
    assert len(losses) == 2 and all(loss == loss and abs(loss) < 1e4 for loss in losses)  # finite


def test_fmnist_paper_config_keeps_the_papers_recipe_and_its_documented_grid():
    c = load_config(FMNIST_PAPER)
    assert (c.train.batch_size, c.train.learning_rate, c.train.momentum, c.train.nesterov) == (
        128,
        0.1,
        0.9,
        True,
    )
    assert (
        tuple(c.train.lr_boundaries) == (0.5, 0.75)
        and c.train.lr_decay == 0.1
        and c.model.weight_decay == 1e-4
    )
    assert c.noise.model == "symmetric" and tuple(c.sweep.noise_rates) == (0.2, 0.4)
    teachers, students, seeds = len(c.sweep.teachers), len(c.sweep.students), len(c.sweep.seeds)
    # the docstring's "19 trainings at rho = 0.2, 12 at rho = 0.4; 93 in all"
    assert (teachers + students, teachers, (2 * teachers + students) * seeds) == (19, 12, 93)
    assert {"fc:est", "bc:est"} <= set(c.sweep.teachers)
