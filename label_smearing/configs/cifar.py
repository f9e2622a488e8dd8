"""The paper's CIFAR experiments (Section 4, Table 7; Appendix B): 20% label noise, ResNet-32/56.

Command (one teacher; `smear run` runs the sweep: CE baseline, this method, students):
    smear train --config cifar:cifar100,resnet32,ls --workdir workdir
    smear run   --config cifar:cifar10,resnet56,fc --workdir workdir

The argument is DATASET,MODEL,METHOD[,smoke]: DATASET cifar10 | cifar100, MODEL
resnet32 | resnet56, METHOD ce | ls | fc | bc. Without an argument:
cifar100,resnet32,ls.

The paper's values: 20% symmetric noise on the train split only; batch 128; SGD with
Nesterov momentum 0.9; learning rate 0.1, divided by 10 at 32k and 48k steps of 64k;
weight decay 1e-4; random crops (pad 4) and left-right flips; five repeats (seeds).
alpha (ours, chosen from the paper): LS 0.1, the smaller of the two values of
Tables 3 and 4 and the one that keeps ECE (Table 4); FC and BC use the noise's own
T_alpha, alpha = L rho / (L - 1) (Table 1: the optimal BC alpha for this noise), i.e.
0.2222 on CIFAR-10 and 0.2020 on CIFAR-100.

Runtime: CIFAR cannot be downloaded on the offline development machines; on a
machine with tfds' cifar10/cifar100 a 64k-step ResNet-32 takes hours on CPU and
about an hour on one GPU. Expected test accuracy (Table 7, ResNet-32): CIFAR-100 CE
57.06, LS 60.70, FC 61.29, BC 53.91; CIFAR-10 CE 80.44, LS 83.95, FC 80.78, BC 77.23.

`...,smoke` keeps the schema and shrinks data, steps and depth (ResNet-8) so every
CLI runs in seconds on CPU; the tests run every combination this way.
"""

import ml_collections

from label_smearing.configs import base

DATASETS = {"cifar10": 10, "cifar100": 100}
MODELS = {"resnet32": 32, "resnet56": 56}
METHODS = ("ce", "ls", "fc", "bc")
NOISE_RATE = 0.2  # the paper's rho


def default_alpha(method: str, num_classes: int) -> float:
    """LS: 0.1; FC, BC: the symmetric noise's T_alpha, alpha = L rho / (L - 1); CE: 0."""
    if method == "ls":
        return 0.1
    if method in ("fc", "bc"):
        return round(num_classes * NOISE_RATE / (num_classes - 1), 4)
    return 0.0


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    parts, smoke = base.split_arg(arg, "cifar100,resnet32,ls")
    if len(parts) != 3 or parts[0] not in DATASETS or parts[1] not in MODELS or parts[2] not in METHODS:
        raise ValueError(
            f"config arg {arg!r}: expected DATASET,MODEL,METHOD[,smoke] with DATASET in {tuple(DATASETS)}, "
            f"MODEL in {tuple(MODELS)}, METHOD in {METHODS}"
        )
    dataset, model, method = parts
    alpha = default_alpha(method, DATASETS[dataset])

    c = base.base_config(smoke)
    c.name = f"{dataset}-{model}-{method}"
    c.data.dataset = dataset
    c.noise.rate = NOISE_RATE  # default_alpha assumes it
    if not smoke:
        c.model.depth = MODELS[model]  # the paper's ResNet-32 / ResNet-56 (smoke: ResNet-8)
    c.loss.name = method
    c.loss.alpha = alpha  # ours, from the paper's tables (module docstring)
    teacher = "ce" if method == "ce" else f"{method}:{alpha:g}"
    c.sweep.teachers = ("ce",) if method == "ce" else ("ce", teacher)
    c.sweep.students = ("ce>ce",) if method == "ce" else ("ce>ce", f"{teacher}>ce")
    return c
