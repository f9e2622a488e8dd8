"""Every config key, declared once with its default: the paper's CIFAR protocol.

An experiment config starts from `base_config(smoke)` and states only what
differs (label_smearing/configs/cifar.py, quickstart.py, ...). `smear` refuses an override of a
key that is not declared here (`--config.train.stepz=3`: "unknown config key"),
and parses an override to the type of the default (`--config.train.steps=5` is
an int, `--config.sweep.seeds=(0,1)` a tuple).

The defaults are the paper's CIFAR-10 ResNet-32 recipe (Section 4, Appendix B):
20% symmetric noise on the train split, batch 128, SGD with Nesterov momentum
0.9, learning rate 0.1 divided by 10 at 32k and 48k of 64k steps, weight decay
1e-4, pad-4 crops and flips, five seeds. Each comment says what the key means,
its allowed values, and where the value comes from: "the paper's", or "ours" (a
choice the paper does not make or does not report). Keys that only say where or
how a run happens (paths, devices, sharding, logging) carry no such mark.

`smoke=True` shrinks data, steps, depth and shards so that any config runs in
seconds on CPU; the same keys either way.
"""

import ml_collections

SMOKE_ARG = "smoke"


def smoke_only(arg: str | None) -> bool:
    """The argument of a config whose only option is smoke: '' or None -> False, 'smoke' -> True."""
    if arg not in (None, "", SMOKE_ARG):
        raise ValueError(f"unknown config arg {arg!r}; expected nothing or {SMOKE_ARG!r}")
    return arg == SMOKE_ARG


def split_arg(arg: str | None, default: str) -> tuple[list[str], bool]:
    """A comma-separated argument (`default` if empty) and its trailing `,smoke`: 'a,smoke' -> ['a'], True."""
    parts = (arg or default).split(",")
    smoke = parts[-1] == SMOKE_ARG
    return (parts[:-1] if smoke else parts), smoke


def base_config(smoke: bool = False) -> ml_collections.ConfigDict:
    """Every key with its default; unlocked, so an experiment config can set its values."""
    c = ml_collections.ConfigDict()
    c.name = "base"  # names the run's report and its directory; every experiment config sets it

    c.data = ml_collections.ConfigDict()
    c.data.dataset = "cifar10"  # cifar10 | cifar100 | fashion_mnist | imagenet2012 (tfds names)
    c.data.source = "tfds"  # auto | idx | tfds; auto = Debian's IDX files for Fashion-MNIST, else tfds
    c.data.source_dir = ""  # IDX directory for source auto/idx; '' = /usr/share/datasets/fashion-mnist
    c.data.tfds_data_dir = ""  # tfds data_dir; '' = tfds' default
    c.data.max_train_examples = 256 if smoke else 0  # the first N train examples; 0 = the whole split
    c.data.max_test_examples = 128 if smoke else 0  # the first N test examples; 0 = the whole split
    c.data.chunk_size = 128 if smoke else 2500  # examples per TFRecord shard (one unit of Beam work); ours
    c.data.image_size = 0  # 0 = the source's size; N > 0 = the model's N x N input (see data.image_encoding)
    # png: decode, resize + centre-crop to data.image_size if set, store PNGs | source: store the tfds images'
    # own encoded bytes (ImageNet's JPEGs); train takes random-resized crops of data.image_size, eval centre crops
    c.data.image_encoding = "png"  # png | source (see above); ours
    c.data.validation_fraction = 0.1  # [0, 1): noisy train share held out (by id) to choose alpha on; ours

    c.noise = ml_collections.ConfigDict()
    # symmetric | uniform | pair_flip | matrix (noise.transition_file) | labels (noise.labels_file) | none |
    # instance (Xia et al. 2020: flips depend on the image) | human (CIFAR-N's annotators: noise.annotation)
    c.noise.model = "symmetric"  # one of the above; the paper's: symmetric
    c.noise.rate = 0.2  # rho, the probability a train label is flipped; the paper's 20%
    c.noise.transition_file = ""  # model=matrix: a .npy or .json L x L row-stochastic T
    c.noise.labels_file = ""  # model=labels: per-example noisy labels (.npy/.csv) in source order
    c.noise.annotation = ""  # model=human: the dataset's human labels, e.g. worse_label (docs: CIFAR-N)
    # model=instance: what the flip scores read: raw (pixel values as stored, Xia et al.'s) | standardized
    # (each image scaled to [0, 1] and standardised on its own: ours, not Xia et al.'s; spreads the flips)
    c.noise.instance_features = "raw"  # raw | standardized (above); Xia et al.'s: raw
    c.noise.seed = 0  # the noise draw: the same seed gives the same noisy labels on any runner

    c.model = ml_collections.ConfigDict()
    c.model.name = "cifar_resnet"  # cifar_resnet (v1, batch norm) | resnet_v2_50; the paper's for CIFAR
    c.model.depth = 8 if smoke else 32  # cifar_resnet depth, 6n + 2 (8, 20, 32, 56); the paper's ResNet-32
    c.model.width = 16  # cifar_resnet filters of the first stage (then 2x, 4x); the paper's 16, 32, 64
    c.model.weight_decay = 1e-4  # L2 on the kernels (with optimizer=lars, LARS applies it); the paper's

    c.loss = ml_collections.ConfigDict()
    c.loss.name = "ce"  # ce | ls | fc | bc (the sweep sets it per teacher)
    c.loss.alpha = 0.0  # ls: any finite alpha < 1 (< 0: negative LS); fc, bc: T_alpha's, [0, 1] (bc: < 1)
    c.loss.transition = "smoothing"  # fc, bc: smoothing (T_alpha, the paper's Sec. 4.1) | file
    c.loss.transition_file = ""  # loss.transition=file: .npy/.json T (e.g. estimate-transition's output)
    # A CE warm-up in the spirit of Wei et al. (they train CE to completion, then fine-tune with a fresh
    # optimiser at a small constant rate; this switches the loss mid-run instead)
    c.loss.ce_warmup_steps = 0  # >= 0: plain CE for the first N steps, then the loss (above)

    c.train = ml_collections.ConfigDict()
    c.train.strategy = "auto"  # auto | default | mirrored | multi_worker | tpu; auto never picks tpu
    c.train.tpu = ""  # TPU name or address for strategy=tpu
    c.train.batch_size = 32 if smoke else 128  # global batch (split over replicas); the paper's 128
    c.train.steps = 4 if smoke else 64_000  # optimiser steps; the paper's 64k
    c.train.optimizer = "sgd"  # sgd | lars; the paper's SGD for CIFAR
    c.train.lars_trust_ratio = "you2017"  # LARS: you2017 (You et al., TF's LARS) | simclr; the paper's
    c.train.schedule = "step"  # step | cosine | polynomial (power 2), after the warm-up; the paper's step
    c.train.learning_rate = 0.1  # peak learning rate; the paper's
    c.train.momentum = 0.9  # the paper's
    c.train.nesterov = True  # Nesterov momentum; the paper's
    c.train.lr_boundaries = (0.5, 0.75)  # schedule=step: fractions of steps; the paper's 32k and 48k of 64k
    c.train.lr_decay = 0.1  # schedule=step: factor at each boundary, in (0, 1]; the paper's "divided by 10"
    c.train.warmup_steps = 0  # linear warm-up steps, in [0, steps); the paper mentions none
    # crop_flip: random crops + left-right flips: pad-4 crops of PNG data; of data.image_encoding=source data
    # (ImageNet), Inception random-resized crops, as the TPU ResNet reference (none: its centre crop)
    c.train.augment = "crop_flip"  # auto (crop_flip for 32x32 colour, source) | crop_flip | none; the paper's
    c.train.shuffle_buffer = 256 if smoke else 50_000  # examples; ours: the whole CIFAR train split
    c.train.steps_per_epoch = 2 if smoke else 1000  # Keras "epoch" = checkpoint + log interval; ours
    c.train.seed = 0  # initialisation and shuffling (the sweep sets it per seed)
    c.train.deterministic = False  # op determinism (slower); tests turn it on
    c.train.jit_compile = False  # XLA: 4x slower on CPU here; worth trying on GPU/TPU
    c.train.precision = "float32"  # float32 | mixed_bfloat16 (TPU) | mixed_float16 (GPU, loss-scaled); ours
    c.train.curve_examples = 300 if smoke else 1000  # learning curves on N examples per split; 0 = off; ours
    c.train.divergence_logit_limit = 1000.0  # a |logit| past this marks a run diverged (as loss < 0); ours

    c.distill = ml_collections.ConfigDict()
    c.distill.enabled = False  # train a student on a teacher's logits (the pipeline sets it for students)
    c.distill.logits_dir = ""  # the teacher's export-logits artifact (the pipeline sets it)
    c.distill.temperature = 2.0  # > 0, softens the teacher's logits; ours: the paper's is not recoverable
    c.distill.smoothing = 0.0  # "LS on student": smooth the teacher's soft targets, in [0, 1]; 0 = off
    c.distill.fc_alpha = 0.0  # "FC on student": forward-correct with T_alpha, in [0, 1]; 0 = off
    c.distill.temperature_squared = False  # loss times temperature^2 (Hinton et al.); off: the paper's
    # The student's targets: exported = the logits export-logits computed once on un-augmented images;
    # online = the frozen teacher's logits on the student's own (augmented) batch; ours
    c.distill.teacher_view = "auto"  # auto | exported | online; auto: online iff train.augment crops

    c.export = ml_collections.ConfigDict()
    c.export.batch_size = 256  # export-logits inference batch
    c.export.num_shards = 2 if smoke else 16  # TFRecord shards of the exported logits, >= 1

    c.estimate = ml_collections.ConfigDict()
    c.estimate.percentile = 97.0  # estimate-transition's anchor percentile, 100 = argmax; Patrini et al.'s

    c.eval = ml_collections.ConfigDict()
    c.eval.num_bins = 15  # ECE bins, >= 1; Guo et al. 2017 (the paper's count is not recoverable)
    c.eval.batch_size = 512  # evaluation batch
    c.eval.projection_classes = (0, 1, 2)  # Figure 4's three classes; ours: the paper's are not recoverable
    c.eval.max_projection_points = 300 if smoke else 1500  # Figure 4's points, >= 1; ours
    c.eval.figures = True  # false: the numbers alone, no plots/ (3.5 s less an evaluation on 2 cores); ours

    c.report = ml_collections.ConfigDict()
    c.report.figures = True  # false: the tables and text alone, no figures/ (about 3 s less a report); ours
    c.report.per_model_figures = True  # also copy every model's own figures into the report; ours

    # Where a `smear run --engine kfp` pipeline's tasks run (Kubeflow / Vertex AI); no fingerprint covers it
    c.resources = ml_collections.ConfigDict()
    c.resources.train_accelerator_type = ""  # a training task's accelerator, e.g. NVIDIA_L4; '' = none (CPU)
    c.resources.train_accelerator_count = 1  # accelerators per training task, >= 1 (with a type)
    c.resources.export_accelerator = False  # export-logits tasks (inference on the train split) get one too
    c.resources.train_cpu = ""  # a training task's CPU request and limit, e.g. '8' or '500m'; '' = default
    c.resources.train_memory = ""  # a training task's memory request and limit, e.g. '32G'; '' = default
    c.resources.cpu = ""  # every other task's CPU request and limit; '' = the platform's default
    c.resources.memory = ""  # every other task's memory request and limit; '' = the platform's default

    c.sweep = ml_collections.ConfigDict()
    c.sweep.teachers = ("ce",)  # METHOD[:ALPHA], METHOD ce | ls | fc | bc; ls:-0.2 negative LS; fc:est est. T
    c.sweep.students = ()  # TEACHER>STUDENT, STUDENT ce | ls:A | fc:A; () = no distillation
    c.sweep.seeds = (0,) if smoke else (0, 1, 2, 3, 4)  # the paper's five repeats
    c.sweep.noise_rates = ()  # one setting per noise rate, each its own data and models; () = noise.rate only
    c.sweep.student_noise_rates = ()  # the noise rates whose students run; () = every rate
    c.sweep.redraw_noise = True  # seed s draws its own noise (noise.seed + s), if seeded; False: one; ours
    # Fresh seeds that test the claims at each method's alpha chosen on the selection seeds (sweep.seeds):
    # CE and every alpha-grid method at its chosen alpha, once the selection runs are evaluated.
    c.sweep.confirm_seeds = ()  # e.g. (3, 4, 5, 6, 7); () = none, the claims read the selection seeds; ours
    return c
