"""The paper's CIFAR distillation grid (Table 5, Figure 6) and estimated-T teachers (Table 7).

Command:
    smear run --config cifar_distill:cifar100,resnet32 --workdir workdir
    smear run --config cifar_distill:cifar10,resnet56,smoke --workdir workdir   # seconds

The argument is DATASET,MODEL[,smoke]: DATASET cifar10 | cifar100, MODEL resnet32 |
resnet56. Without an argument: cifar100,resnet32 (Figure 6's setting).

What runs, per seed (20% symmetric noise on the train split, test labels clean):
- Table 5, teacher and student the same ResNet, students trained only on the
  teacher's tempered logits: vanilla (ce>ce), LS on teacher (ls:A>ce), LS on
  student (ce>ls:A), FC on teacher (fc:A>ce), FC on student (ce>fc:A);
- Figure 6: students of LS teachers over a grid of teacher alphas, the plain
  teacher being alpha = 0 (ce>ce);
- Table 7's "Patrini" columns: FC and BC teachers with T estimated from the CE
  teacher's exported logits at the 97th percentile (fc:est, bc:est).
The paper's values: CIFAR ResNet v1, batch 128, SGD + Nesterov 0.9, lr 0.1 / 10 at
32k and 48k of 64k steps, weight decay 1e-4, crops (pad 4) + flips, five seeds.
Not recoverable from the paper, ours: alpha A = 0.1 for every Table 5 column (its
caption names a single alpha), the Figure 6 grid, the temperature 2.

Runtime: CIFAR cannot be downloaded on the offline development machines. With
tfds' cifar10/cifar100 this is 8 teachers + 8 students per seed, 5 seeds, each a
64k-step ResNet: weeks on CPU, about 80 GPU-hours. Expected student test accuracy
(Table 5, vanilla / LS teacher / LS student / FC teacher / FC student):
CIFAR-100 ResNet-32 63.98 64.48 63.83 66.65 63.94; ResNet-56 64.31 65.63 64.50
66.35 64.24; CIFAR-10 ResNet-32 80.44 86.95 85.72 86.81 86.92; ResNet-56 77.98
87.10 86.98 86.88 86.82. Estimated-T teachers (Table 7, FC / BC): CIFAR-100
ResNet-32 57.25 / 55.89, ResNet-56 55.09 / 55.00; CIFAR-10 ResNet-32 80.33 /
80.65, ResNet-56 77.97 / 77.66. Figure 6: every LS teacher alpha beats alpha = 0.

`...,smoke` keeps the schema, shrinks data, steps and depth (ResNet-8), runs one
seed, one teacher alpha and no bc:est (a teacher trained for 4 steps gives a
near-singular T, which BC rejects): 24 stages in 2-3 minutes on 2 CPU cores.
"""

import ml_collections

from label_smearing.configs import base
from label_smearing.configs.cifar import DATASETS, MODELS

ALPHA = 0.1  # ours: Table 5's alpha is not recoverable; one value for all its columns, as its caption says
FIGURE6_TEACHER_ALPHAS = (0.1, 0.2, 0.3, 0.5)  # ours: the paper's grid is not recoverable


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    parts, smoke = base.split_arg(arg, "cifar100,resnet32")
    if len(parts) != 2 or parts[0] not in DATASETS or parts[1] not in MODELS:
        raise ValueError(
            f"config arg {arg!r}: expected DATASET,MODEL[,smoke] with DATASET in {tuple(DATASETS)}, "
            f"MODEL in {tuple(MODELS)}"
        )
    dataset, model = parts
    c = base.base_config(smoke)
    c.name = f"{dataset}-{model}-distill"
    c.data.dataset = dataset
    if not smoke:
        c.model.depth = MODELS[model]  # the paper's ResNet-32 / ResNet-56 (smoke: ResNet-8)

    a = f"{ALPHA:g}"
    grid = FIGURE6_TEACHER_ALPHAS[:1] if smoke else FIGURE6_TEACHER_ALPHAS
    ls_teachers = tuple(dict.fromkeys((f"ls:{a}",) + tuple(f"ls:{x:g}" for x in grid)))
    # Smoke leaves out bc:est: a teacher trained for a few steps gives a near-singular T, which BC rejects.
    c.sweep.teachers = ("ce", *ls_teachers, f"fc:{a}", "fc:est") + (() if smoke else ("bc:est",))
    # Table 5's five columns, then Figure 6's LS-teacher grid.
    table5 = ("ce>ce", f"ls:{a}>ce", f"ce>ls:{a}", f"fc:{a}>ce", f"ce>fc:{a}")
    c.sweep.students = tuple(dict.fromkeys(table5 + tuple(f"{t}>ce" for t in ls_teachers)))
    return c
