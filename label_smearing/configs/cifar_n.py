"""Real human noise: the paper's CIFAR setup on CIFAR-10N and CIFAR-100N (Wei et al., ICLR 2022).

Commands (each needs the manual download of the CIFAR-N label files: docs/guides/noisy-data.md, "Real human noise: CIFAR-N"):
    smear run --config cifar_n:cifar10_n,worse_label --workdir cifar_n_workdir
    smear run --config cifar_n:cifar10_n,aggre_label --workdir cifar_n_workdir
    smear run --config cifar_n:cifar100_n --workdir cifar_n_workdir
    smear run --config cifar_n:cifar10_n,worse_label,smoke --workdir W    # tiny, on tfds mock data

The argument is DATASET[,ANNOTATION][,smoke]: DATASET cifar10_n | cifar100_n;
ANNOTATION the human labels to train on, a feature tfds gives the dataset
(cifar10_n: aggre_label, worse_label, random_label1, random_label2,
random_label3; cifar100_n: noise_label, its default). Without an argument:
cifar10_n,worse_label.

The noisy labels are the annotators' (noise.model=human): CIFAR-10N's
worse_label is wrong on 40.2% of the training images, aggre_label (majority
vote) on 9.0%, random_label1-3 on about 17%; CIFAR-100N's noise_label on
40.2% (Wei et al.). The clean label is CIFAR's, and an example is noisy where
they disagree. noisify's noise_report.json gives every annotation's realised
rate on the examples used.

The paper's CIFAR protocol (label_smearing/configs/cifar.py): ResNet-32, batch 128, SGD with
Nesterov momentum 0.9, learning rate 0.1 divided by 10 at 32k and 48k of 64k
steps, weight decay 1e-4, crops and flips, five seeds, the test split clean.
Under this toolkit's validation protocol 10% of the noisy training images are
held out to choose alpha on (data.validation_fraction).

Teachers: CE; LS at the paper's alpha 0.1 and 0.2 and negative smoothing at
-0.2 (Wei et al. 2022: NLS is the better choice at high noise rates; every LS
model starts with 4,000 steps of CE, a warm-up in the spirit of theirs: they
train CE to completion, then fine-tune with a fresh optimiser); FC and BC with T estimated
from the CE teacher (Patrini et al.; T_alpha assumes symmetric noise, which
human noise is not). Ours: the alpha grid, the estimated T for FC and BC, the
warm-up length.

Runtime: CIFAR-N cannot be downloaded on the offline development machines; on
a machine with the files, each 64k-step ResNet-32 takes about an hour on one
GPU, and a run trains 6 teachers x 5 seeds.
"""

import ml_collections

from label_smearing.configs import base
from label_smearing.core.datasets import DATASETS

NAMES = ("cifar10_n", "cifar100_n")
LS_ALPHAS = (-0.2, 0.1, 0.2)  # ours: the paper's 0.1 and 0.2 (Tables 3, 4) and NLS at -0.2
WARMUP_STEPS = (
    4000  # ours: CE before smoothing (1/16 of the steps), in the spirit of Wei et al.'s CE-first protocol
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    parts, smoke = base.split_arg(arg, "cifar10_n,worse_label")
    if not 1 <= len(parts) <= 2 or parts[0] not in NAMES:
        raise ValueError(
            f"config arg {arg!r}: expected DATASET[,ANNOTATION][,smoke] with DATASET one of {', '.join(NAMES)}"
        )
    dataset = parts[0]
    annotations = DATASETS[dataset].annotations
    annotation = parts[1] if len(parts) == 2 else annotations[-1]
    if annotation not in annotations:
        raise ValueError(f"config arg {arg!r}: {dataset}'s annotations are {', '.join(annotations)}")

    c = base.base_config(smoke)
    c.name = f"{dataset}-{annotation}"
    c.data.dataset = dataset
    c.noise.model = "human"
    c.noise.annotation = annotation  # the annotators' labels to train on
    if not smoke:
        c.model.depth = 32  # the paper's ResNet-32 (smoke: ResNet-8)
    c.loss.ce_warmup_steps = 2 if smoke else WARMUP_STEPS
    c.sweep.teachers = ("ce", *(f"ls:{a:g}" for a in LS_ALPHAS), "fc:est", "bc:est")
    return c
