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


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    smoke = arg == "smoke"
    if arg not in (None, "", "smoke"):
        raise ValueError(f"unknown config arg {arg!r}; expected nothing or 'smoke'")
    c = ml_collections.ConfigDict()
    c.name = "quickstart"

    c.data = ml_collections.ConfigDict()
    c.data.dataset = "fashion_mnist"  # a tfds name: cifar10, cifar100, fashion_mnist, imagenet2012
    c.data.source = "auto"  # auto | idx | tfds; auto = Debian's IDX files when present, else tfds
    c.data.source_dir = ""  # IDX directory; '' = /usr/share/datasets/fashion-mnist
    c.data.tfds_data_dir = ""  # tfds data_dir; '' = tfds' default
    # ours: a 20k-example training subset keeps `make demo` under 15 minutes on 2 cores.
    c.data.max_train_examples = 512 if smoke else 20000  # 0 = the whole split
    c.data.max_test_examples = 256 if smoke else 0
    c.data.chunk_size = 128 if smoke else 2500  # examples per TFRecord shard (one unit of Beam work)

    c.noise = ml_collections.ConfigDict()
    c.noise.model = "symmetric"  # symmetric | uniform | pair_flip | matrix | labels | none
    c.noise.rate = 0.2  # rho: the paper's 20%
    c.noise.transition_file = ""  # model=matrix: a .npy or .json L x L row-stochastic T
    c.noise.labels_file = ""  # model=labels: per-example noisy labels (.npy/.csv) in source order
    c.noise.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.name = "cifar_resnet"
    c.model.depth = 8  # ours: ResNet-8 keeps the demo under 15 minutes on 2 cores
    c.model.width = 16
    c.model.weight_decay = 1e-4  # the paper's

    c.loss = ml_collections.ConfigDict()
    c.loss.name = "ce"  # ce | ls | fc | bc
    c.loss.alpha = 0.0
    c.loss.transition = "smoothing"  # smoothing (T_alpha, the paper's Sec. 4.1) | file
    c.loss.transition_file = ""  # loss.transition=file: .npy/.json T (e.g. estimate-transition's output)

    c.train = ml_collections.ConfigDict()
    c.train.strategy = "auto"  # auto | default | mirrored | multi_worker | tpu
    c.train.tpu = ""  # TPU name or address for strategy=tpu
    c.train.batch_size = 128  # global batch, the paper's
    c.train.steps = 20 if smoke else 600  # ours: about 4 epochs of the subset (the paper: 64k steps on CIFAR)
    c.train.optimizer = "sgd"  # sgd | lars
    c.train.schedule = "step"  # step (the paper's) | cosine | polynomial
    c.train.learning_rate = 0.1  # the paper's
    c.train.momentum = 0.9
    c.train.nesterov = True
    c.train.lr_boundaries = (0.5, 0.75)  # fractions of steps: the paper's 32k and 48k of 64k
    c.train.lr_decay = 0.1
    c.train.warmup_steps = 0
    c.train.augment = "auto"  # auto (crop+flip for 32x32 colour data) | crop_flip | none
    c.train.shuffle_buffer = 512 if smoke else 10000
    c.train.steps_per_epoch = 10 if smoke else 150  # Keras "epoch" = checkpoint + log interval
    c.train.seed = 0
    c.train.deterministic = False  # op determinism (slower); tests turn it on
    c.train.jit_compile = False  # XLA: 4x slower on CPU here; worth trying on GPU/TPU

    c.distill = ml_collections.ConfigDict()
    c.distill.enabled = False  # the pipeline sets this for students
    c.distill.logits_dir = ""  # exported teacher logits artifact (smear train --config.distill.enabled=true)
    c.distill.temperature = 2.0  # ours: the paper's value is not recoverable
    c.distill.smoothing = 0.0  # "LS on student": smooth the teacher's soft targets
    c.distill.fc_alpha = 0.0  # "FC on student": forward-correct with T_alpha (0 = off)

    c.export = ml_collections.ConfigDict()
    c.export.batch_size = 256
    c.export.num_shards = 2 if smoke else 4

    c.estimate = ml_collections.ConfigDict()
    c.estimate.percentile = 97.0  # Patrini et al.'s choice; 100 = argmax

    c.eval = ml_collections.ConfigDict()
    c.eval.num_bins = 15
    c.eval.batch_size = 512
    c.eval.projection_classes = (0, 2, 6)  # ours: T-shirt, pullover, shirt (often confused)
    c.eval.max_projection_points = 300 if smoke else 1500

    c.sweep = ml_collections.ConfigDict()
    c.sweep.teachers = ("ce", "ls:0.1", "fc:0.1")  # METHOD[:ALPHA]
    c.sweep.students = ("ce>ce", "ls:0.1>ce", "fc:0.1>ce")  # TEACHER>STUDENT; STUDENT ce | ls:A | fc:A
    c.sweep.seeds = (0,)
    return c
