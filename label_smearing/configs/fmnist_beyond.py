"""Beyond the paper: negative label smoothing, under symmetric and instance-dependent noise.

Commands (results/fashion_mnist_beyond/: a publish directory per noise model, and per rate for instance):
    smear run --config fmnist_beyond:symmetric --workdir beyond_workdir \
        --publish results/fashion_mnist_beyond/symmetric
    smear run --config fmnist_beyond:instance,rho0.2 --workdir beyond_workdir \
        --publish results/fashion_mnist_beyond/instance/rho0.2
    smear run --config fmnist_beyond:instance,rho0.4 --workdir beyond_workdir \
        --publish results/fashion_mnist_beyond/instance/rho0.4
    smear run --config fmnist_beyond:symmetric,direct --workdir beyond_workdir \
        --publish results/fashion_mnist_beyond/symmetric_direct
    smear run --config fmnist_beyond:instance,direct,rho0.2 --workdir beyond_workdir \
        --config.sweep.teachers="('ce', 'ls:0.2', 'ls:0.4')" \
        --publish results/fashion_mnist_beyond/instance_direct/rho0.2    # and rho0.4 likewise
    smear run --config fmnist_beyond:instance,smoke --workdir W    # tiny: a few minutes

The argument is MODEL[,direct][,RATE][,smoke], MODEL symmetric | instance (noise.model);
`direct` trains every loss from the first step, without the CE warm-up below; RATE
rho0.2 | rho0.4 plans one noise rate (default: both, in one report). A rate alone
plans the same artifacts as both together, so the two halves of a grid can run in
separate sessions and publish directories.

Two questions asked since the paper, under its protocol (fmnist_paper:
the 5,000-example Fashion-MNIST subset with its 10% noisy validation hold-out,
ResNet-8, 800 steps of batch 128, noise drawn per seed, alpha chosen on the
noisy validation labels):

- Wei et al., ICML 2022, "To Smooth or Not?": LS's advantage vanishes as the
  noise rate grows, and negative smoothing (alpha < 0, NLS) is then the better
  choice. The report's claim 8 compares NLS and LS, each at the alpha chosen on
  validation, at each noise rate.
- Does claim 1 (LS beats CE) survive noise that depends on the image (Xia et
  al., NeurIPS 2020: noise.model=instance), the kind real annotators make?

Per noise rate (0.2 and 0.4) and selection seed (3): CE; LS at alpha -0.4,
-0.2, 0.2, 0.4; FC at 0.2 and 0.4. 7 trainings, 21 per rate. Then, on the five
confirmation seeds (as fmnist_paper): CE, and NLS, LS and FC each at its alpha
chosen on validation: 20 more per rate, 41 per rate in all.

Every LS and FC model first trains 400 steps with plain CE, then with its own
loss (loss.ce_warmup_steps; CE is unchanged): a CE warm-up in the spirit of Wei et
al. (they train CE to completion, then fine-tune with a fresh optimiser at a small
constant rate; this switches the loss mid-run instead). Negative smoothing needs
it here: from scratch, ls:-0.4 at 20% noise had a logit of 1,335 after 100 steps
and ended at 45% training accuracy, while with the warm-up its largest logit
stayed below 20 (a trial at 40% noise).
400 steps is the first learning-rate phase, so the smoothing trains at 0.01 and
then 0.001. So the LS and FC cells here are not those of label_smearing/configs/fmnist_paper.py,
which train with their loss from the first step; `direct` trains so, and its LS
and FC cells are those of label_smearing/configs/fmnist_paper.py (the same artifacts, when run
in the same workdir).

Ours: the alpha grids (symmetric around 0, within Wei et al.'s range), the
warm-up length, three seeds; the rest as label_smearing/configs/fmnist_paper.py.
"""

import ml_collections

from label_smearing.configs import base, fmnist_paper

NOISE_MODELS = ("symmetric", "instance")
LS_ALPHAS = (-0.4, -0.2, 0.2, 0.4)  # ours: NLS and LS at equal |alpha|
FC_ALPHAS = (0.2, 0.4)  # ours: FC's better alpha is chosen on validation
NOISE_RATES = (0.2, 0.4)  # the paper's 20%, and 40% where Wei et al. expect NLS to win


RATE_ARGS = {f"rho{rate:g}": rate for rate in NOISE_RATES}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    parts, smoke = base.split_arg(arg, "")
    rate = parts.pop() if len(parts) > 1 and parts[-1] in RATE_ARGS else None
    direct = parts[1:] == ["direct"]
    if len(parts) != 1 + direct or parts[0] not in NOISE_MODELS:
        raise ValueError(
            f"config arg {arg!r}: expected MODEL[,direct][,RATE][,smoke] with MODEL one of "
            f"{', '.join(NOISE_MODELS)} and RATE one of {', '.join(RATE_ARGS)}"
        )
    model = parts[0]
    rates = (RATE_ARGS[rate],) if rate else NOISE_RATES
    c = fmnist_paper.get_config("smoke" if smoke else None)
    c.name = f"fmnist-beyond-{model}" + ("-direct" if direct else "") + (f"-{rate}" if rate else "")
    c.noise.model = model
    c.noise.rate = rates[0]
    c.sweep.noise_rates = rates
    c.sweep.student_noise_rates = ()
    ls = LS_ALPHAS[1:3] if smoke else LS_ALPHAS
    fc = FC_ALPHAS[:1] if smoke else FC_ALPHAS
    c.sweep.teachers = ("ce", *(f"ls:{a:g}" for a in ls), *(f"fc:{a:g}" for a in fc))
    c.sweep.students = ()
    c.loss.ce_warmup_steps = (
        0 if direct else c.train.steps // 2
    )  # ours: the first lr phase (400 of 800 steps)
    return c
