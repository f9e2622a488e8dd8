"""Train a teacher on noisy labels, or a student on a teacher's exported logits.

    smear train --config quickstart:smoke --workdir workdir
    smear train --config cifar:cifar100,resnet32,ls --workdir workdir
    smear train --config quickstart --workdir workdir \\
        --config.distill.enabled=true --config.distill.logits_dir=workdir/logits/<teacher>

Reads a data artifact (`smear noisify`) or, for a student, an exported-logits
artifact (`smear export-logits`); writes `models/<name>-<fp10>/` with
`model.keras` (the trained network, uncompiled, logits out), `config.json`,
`history.json`, `tensorboard/` and, last, `manifest.json`.

Training is step-based (config.train.steps); a Keras "epoch" is
train.steps_per_epoch steps and is the unit of logging, learning curves and
back-up. After every epoch the learning curves (test accuracy and ECE,
validation accuracy, the fit of the mislabelled examples) are measured on fixed
subsamples, and a run whose loss, logits or validation accuracy run away is
recorded as diverged (label_smearing/core/curves.py; a negative training risk
is an annotation, not divergence); history.json keeps both. A killed run
resumes from its last back-up (`backup/`) when rerun with the same config.
Batch-norm statistics are synchronised across replicas (ours), so the model
trained does not depend on the number of devices.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from label_smearing.core import artifacts, curves, layout, resources, schema, tfdata, trained_model
from label_smearing.core.cli_common import command_parser, parse_stage_args
from label_smearing.core.config import to_plain
from label_smearing.core.errors import UserError
from label_smearing.core.lifecycle import run_standalone
from label_smearing.core.registry import EXPORT_LOGITS, NOISIFY, TRAIN, StageRequest
from label_smearing.core.spec import ModelSpec
from label_smearing.core.strategy import STRATEGIES, build_for_multi_worker, is_chief, make_strategy
from label_smearing.modeling import losses, models, noise, optimizers
from label_smearing.modeling.distillation import (
    AgainstOnlineTeacher,
    OnlineTeacher,
    network_of,
    online_teacher_agreement,
)
from label_smearing.modeling.losses import LOSSES


# ---------------------------------------------------------------- validation
def validate_config(config: ml_collections.ConfigDict, *, inputs: bool = True) -> None:
    """Checks the values training uses; raises a one-line UserError naming the key.

    With `inputs` False (a plan's check, before earlier stages ran) the files that earlier
    stages make (the teacher's logits, an estimated transition matrix) are not looked for.
    """
    t, loss, d = config.train, config.loss, config.distill

    def check(condition: bool, message: str) -> None:
        if not condition:
            raise UserError(message)

    model_names = tuple(models.MODELS)
    check(
        config.model.name in model_names,
        f"unknown model.name {config.model.name!r}; one of: {', '.join(model_names)}",
    )
    check(t.strategy in STRATEGIES, f"unknown train.strategy {t.strategy!r}; one of: {', '.join(STRATEGIES)}")
    names = optimizers.OPTIMIZER_NAMES
    check(t.optimizer in names, f"unknown train.optimizer {t.optimizer!r}; one of: {', '.join(names)}")
    check(
        t.precision in models.PRECISIONS,
        f"unknown train.precision {t.precision!r}; one of: {', '.join(models.PRECISIONS)}",
    )
    ratios = optimizers.TRUST_RATIOS
    check(
        t.lars_trust_ratio in ratios,
        f"unknown train.lars_trust_ratio {t.lars_trust_ratio!r}; one of: {', '.join(ratios)}",
    )
    schedule = t.schedule
    check(schedule in SCHEDULES, f"unknown train.schedule {schedule!r}; one of: {', '.join(SCHEDULES)}")
    check(t.steps > 0, f"train.steps must be > 0, got {t.steps}")
    check(t.steps_per_epoch > 0, f"train.steps_per_epoch must be > 0, got {t.steps_per_epoch}")
    check(t.batch_size > 0, f"train.batch_size must be > 0, got {t.batch_size}")
    check(t.learning_rate > 0, f"train.learning_rate must be > 0, got {t.learning_rate}")
    check(
        0 <= t.warmup_steps < t.steps, f"train.warmup_steps must be in [0, train.steps), got {t.warmup_steps}"
    )
    check(t.shuffle_buffer > 0, f"train.shuffle_buffer must be > 0, got {t.shuffle_buffer}")
    check(t.curve_examples >= 0, f"train.curve_examples must be >= 0 (0 = no curves), got {t.curve_examples}")
    check(
        t.divergence_logit_limit > 0,
        f"train.divergence_logit_limit must be > 0, got {t.divergence_logit_limit}",
    )
    check(0 < t.lr_decay <= 1, f"train.lr_decay must be in (0, 1], got {t.lr_decay}")
    bounds = list(t.lr_boundaries)
    check(
        all(0 < b < 1 for b in bounds) and bounds == sorted(set(bounds)),
        f"train.lr_boundaries must be increasing fractions of train.steps in (0, 1), got {tuple(bounds)}",
    )
    check(
        t.augment in tfdata.AUGMENTATIONS,
        f"train.augment must be one of {', '.join(tfdata.AUGMENTATIONS)}, got {t.augment!r}",
    )
    if d.enabled:
        check(bool(d.logits_dir), "distill.enabled=true needs distill.logits_dir (an export-logits artifact)")
        check(d.temperature > 0, f"distill.temperature must be > 0, got {d.temperature}")
        check(0 <= d.smoothing <= 1, f"distill.smoothing must be in [0, 1], got {d.smoothing}")
        check(0 <= d.fc_alpha <= 1, f"distill.fc_alpha must be in [0, 1], got {d.fc_alpha}")
        check(
            d.teacher_view in TEACHER_VIEWS,
            f"unknown distill.teacher_view {d.teacher_view!r}; one of: {', '.join(TEACHER_VIEWS)}",
        )
        if d.teacher_view == "online" and inputs:
            teacher_model_dir(d.logits_dir)
        return
    check(loss.name in LOSSES, f"unknown loss.name {loss.name!r}; one of: {', '.join(LOSSES)}")
    alphas = LOSSES[loss.name].alphas
    check(loss.alpha in alphas, f"loss.alpha must be in {alphas} for {loss.name}, got {loss.alpha}")
    check(
        0 <= loss.ce_warmup_steps < t.steps,
        f"loss.ce_warmup_steps must be in [0, train.steps), got {loss.ce_warmup_steps}",
    )
    check(
        loss.transition in ("smoothing", "file"),
        f"loss.transition must be smoothing or file, got {loss.transition!r}",
    )
    if layout.uses_transition_file(config) and inputs:
        check(
            artifacts.path(loss.transition_file).is_file(),
            f"loss.transition=file but loss.transition_file {loss.transition_file!r} does not exist",
        )


# distill.teacher_view: a student's targets are the exported logits or the teacher's on each batch.
TEACHER_VIEWS = ("auto", "exported", "online")


def teacher_view(config: ml_collections.ConfigDict, image_shape, encoding: str = "png") -> str:
    """distill.teacher_view resolved: "auto" is "online" when training crops and flips the images."""
    view = config.distill.teacher_view
    if view != "auto":
        return view
    crops = tfdata.uses_crop_flip(config.train.augment, tuple(image_shape), encoding)
    return "online" if crops else "exported"


def teacher_model_dir(logits_dir: str | os.PathLike) -> Path:
    """The model artifact an exported-logits artifact was exported from (its inputs.model): the online teacher.

    Raises:
      UserError: one line naming the path: the logits artifact, or the model artifact its
        manifest names, is missing or incomplete, or has no model.keras.
    """
    try:
        manifest = artifacts.read_manifest(logits_dir, what="teacher logits", verify=False)
        path = ((manifest.get("inputs") or {}).get("model") or {}).get("path")
        if not path:
            raise UserError("its manifest names no teacher model (inputs.model.path)")
        artifacts.read_manifest(path, what="teacher model artifact", verify=False)
        if not artifacts.join(path, trained_model.MODEL_FILE).is_file():
            raise UserError(f"teacher model artifact {path} has no {trained_model.MODEL_FILE}")
    except UserError as e:
        raise UserError(
            f"the online teacher (distill.teacher_view) of the logits {logits_dir}: {e}"
        ) from None
    return artifacts.path(path)


# ---------------------------------------------------------------- components
def _step_schedule(train: ml_collections.ConfigDict):
    """The paper's CIFAR decay: / lr_decay at fractions lr_boundaries of the steps, after an optional warm-up."""
    boundaries = [int(round(f * train.steps)) for f in train.lr_boundaries]
    step = optimizers.step_decay_schedule(train.learning_rate, boundaries, train.lr_decay)
    return (
        optimizers.WarmupThen(step, train.learning_rate, train.warmup_steps) if train.warmup_steps else step
    )


# train.schedule name -> builder(config.train): the one list of schedules.
SCHEDULES = {
    "step": _step_schedule,
    "cosine": lambda t: optimizers.WarmupCosineDecay(t.learning_rate, t.steps, t.warmup_steps),
    "polynomial": lambda t: optimizers.WarmupPolynomialDecay(t.learning_rate, t.steps, t.warmup_steps),
}


def learning_rate_schedule(train: ml_collections.ConfigDict):
    """The schedule named by train.schedule."""
    return SCHEDULES[train.schedule](train)


def build_loss(config: ml_collections.ConfigDict, num_classes: int, step=None) -> keras.losses.Loss:
    """The teacher's loss from config.loss, or the student's distillation loss.

    Args:
      step: the optimizer's step variable; needed for a teacher with loss.ce_warmup_steps > 0.
    """
    if config.distill.enabled:
        d = config.distill
        transition = noise.smoothing_matrix(num_classes, d.fc_alpha) if d.fc_alpha > 0 else None
        return losses.DistillationCrossEntropy(
            temperature=d.temperature,
            smoothing=d.smoothing,
            transition=transition,
            temperature_squared=d.temperature_squared,
        )
    transition = None
    if layout.uses_transition_file(config):
        try:
            transition = noise.load_transition(config.loss.transition_file, num_classes)
        except ValueError as e:
            raise UserError(f"loss.transition_file: {e}") from None
    try:
        loss = losses.get_loss(config.loss.name, num_classes, alpha=config.loss.alpha, transition=transition)
    except ValueError as e:
        where = f"loss.transition_file {config.loss.transition_file}" if transition is not None else "loss"
        raise UserError(f"{where}: {e}") from None
    if config.loss.ce_warmup_steps and losses.LOSSES[config.loss.name].uses_alpha:
        if step is None:
            raise ValueError("loss.ce_warmup_steps needs the optimizer's step variable")
        loss = losses.CrossEntropyWarmup(loss, config.loss.ce_warmup_steps, step)
    return loss


def build_model(config: ml_collections.ConfigDict, num_classes: int, image_shape) -> keras.Model:
    """The network config.model names, computing in config.train.precision (its logits in float32).

    The precision is each layer's own dtype policy, not Keras' process-global one, so models
    built one after another in the same process each keep their own.
    """
    m = config.model
    kwargs = {k: m[k] for k in models.model_options(m.name) if k in m}  # the builder's keys of config.model
    kwargs["dtype"] = config.train.precision
    if config.train.optimizer == "lars":
        kwargs["weight_decay"] = 0.0  # LARS applies the decay itself
    try:
        model = models.build_model(m.name, num_classes, tuple(image_shape), **kwargs)
    except ValueError as e:
        raise UserError(f"model: {e}") from None
    return model


def _set_batch_norm_sync(model: keras.Model, synchronized: bool) -> None:
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = synchronized


class TrainingLog(keras.callbacks.Callback):
    """Says where training resumes, stops at exactly `total_steps`, records each epoch.

    Put it before BackupAndRestore: an epoch's record is then written before its
    back-up, and records newer than the back-up are dropped on resumption.
    """

    def __init__(
        self, *, total_steps: int, global_batch: int, history_path: Path, log: Callable[[str], None],
        start_step: int = 0,
    ):  # fmt: skip
        super().__init__()
        self.total_steps, self.global_batch, self.start_step = total_steps, global_batch, start_step
        self.history_path, self.log = history_path, log
        self.epochs: list[dict] = []  # all epochs, including those before a resumption
        self.this_run: list[dict] = []
        self.resumed_from_step: int | None = None

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        if self.resumed_from_step is None:  # after every on_train_begin: the back-up is restored
            self.resumed_from_step = self._step()
            if self.resumed_from_step != self.start_step:  # the input would not continue where training does
                raise RuntimeError(
                    f"the back-up restored step {self.resumed_from_step}, but the input was built to "
                    f"start at step {self.start_step}"
                )
            if self.resumed_from_step > 0:
                self.log(
                    f"train: resuming from step {self.resumed_from_step} of {self.total_steps} "
                    f"(back-up in {self.history_path.parent})"
                )
                if self.history_path.is_file():
                    previous = json.loads(self.history_path.read_text())
                    self.epochs = [e for e in previous if e["step"] <= self.resumed_from_step]
        self.epoch_start, self.epoch_first_step = time.perf_counter(), self._step()

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch_first_step + batch + 1 >= self.total_steps:  # one step per batch; no device read
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.epoch_start
        step = self._step()
        steps = step - self.epoch_first_step
        record = {
            "epoch": epoch + 1,
            "step": step,
            "seconds": round(seconds, 3),
            "images_per_second": round(steps * self.global_batch / seconds, 1),
        }
        record.update({k: float(v) for k, v in (logs or {}).items() if np.size(v) == 1})
        self.epochs.append(record)
        self.this_run.append(dict(record, steps=steps))
        self.history_path.parent.mkdir(parents=True, exist_ok=True)
        artifacts.atomic_write_json(self.history_path, self.epochs)

    def images_per_second(self) -> float:
        """Throughput of this run, leaving out its first epoch (tracing) when there are others."""
        timed = self.this_run[1:] or self.this_run
        seconds = sum(e["seconds"] for e in timed)
        return sum(e["steps"] for e in timed) * self.global_batch / seconds if seconds else 0.0


def _backup_metadata(backup_dir: Path) -> dict:
    """The back-up's training_metadata.json ({} when there is none): its epoch and environment."""
    try:
        metadata = json.loads((backup_dir / "training_metadata.json").read_text())
    except (OSError, ValueError):
        return {}
    return metadata if isinstance(metadata, dict) else {}


def resume_step(backup_dir: Path, config) -> int:
    """The step a training resumes at: the epochs its back-up completed times train.steps_per_epoch."""
    epochs = int(_backup_metadata(backup_dir).get("epoch") or 0)
    return min(epochs * min(config.train.steps_per_epoch, config.train.steps), config.train.steps)


def environment(config, strategy) -> dict:
    """What a training's arithmetic depends on beside its config: devices, threads, op determinism.

    A run resumed in the same environment with op determinism on gives the uninterrupted run's
    weights bit for bit; in another one it is marked "resumed at step N" (manifest, metrics, report).
    """
    try:
        devices = [str(d) for d in strategy.extended.worker_devices]
    except RuntimeError:
        devices = [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or ["CPU"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "deterministic": bool(config.train.deterministic),
        "devices": devices,
        "replicas": int(strategy.num_replicas_in_sync),
        "cpus": cores,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "tensorflow": tf.__version__,
    }


def resumption(backup_dir: Path, step: int, now: dict) -> dict | None:
    """None for a run that did not resume; else {"step", "exact", "why"}: whether the result is the
    uninterrupted run's, and if not, why not (op determinism off, or what changed)."""
    if not step:
        return None
    then = _backup_metadata(backup_dir).get("environment") or {}
    changed = sorted(k for k in now if then.get(k) != now[k])
    if changed:
        why = "the environment changed since the back-up: " + ", ".join(
            f"{k} {then.get(k, '?')} -> {now[k]}" for k in changed
        )
    elif not now["deterministic"]:
        why = "train.deterministic is off, so the steps after the back-up may differ in the last bits"
    else:
        why = ""
    return {"step": step, "exact": not why, "why": why}


def _read_inputs(data_dir, logits_dir) -> tuple[Path, dict, dict]:
    """(the directory training reads, its manifest, the manifest's input records).

    A student reads its teacher's exported logits, which must match the data's classes and image shape.
    """
    data_manifest = tfdata.read_data_manifest(data_dir)
    train_dir, train_manifest = artifacts.path(data_dir), data_manifest
    inputs = {"data": artifacts.input_ref(data_dir, data_manifest)}
    if logits_dir is not None:
        train_dir = artifacts.path(logits_dir)
        train_manifest = (
            data_manifest if train_dir == artifacts.path(data_dir) else tfdata.read_data_manifest(logits_dir)
        )
        inputs["logits"] = artifacts.input_ref(logits_dir, train_manifest)
        for key in ("num_classes", "image_shape"):
            if train_manifest[key] != data_manifest[key]:
                raise UserError(
                    f"teacher logits {logits_dir} have {key} {train_manifest[key]}, "
                    f"but the data {data_dir} have {data_manifest[key]}"
                )
    return train_dir, train_manifest, inputs


def _compiled_model(
    config, num_classes: int, image_shape, replicas: int, *, student: bool, teacher_dir: Path | None = None
) -> keras.Model:
    """The network with its optimizer, loss and accuracy metric; call it inside `strategy.scope()`.

    With `teacher_dir` (distill.teacher_view online) the model is an `OnlineTeacher`: the
    network beside the frozen teacher loaded from there, whose logits are the targets.
    """
    t = config.train
    model = build_model(config, num_classes, image_shape)
    _set_batch_norm_sync(model, replicas > 1)
    optimizer = optimizers.build_optimizer(
        t.optimizer,
        learning_rate_schedule(t),
        momentum=t.momentum,
        nesterov=t.nesterov,
        weight_decay=config.model.weight_decay,
        trust_ratio=t.lars_trust_ratio,
    )
    if t.precision == "mixed_float16":
        # float16 gradients underflow without loss scaling. compile() adds it only to a model whose
        # own policy is mixed_float16, and a functional model's is float32 whatever its layers'.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    # Teachers: accuracy on the (noisy) training labels; students: agreement with the teacher's top label.
    accuracy_class = keras.metrics.CategoricalAccuracy if student else keras.metrics.SparseCategoricalAccuracy
    loss, accuracy = build_loss(config, num_classes, optimizer.iterations), accuracy_class(name="accuracy")
    if teacher_dir is not None:  # built after the student, so that the student's initialisation is the same
        teacher = trained_model.load(trained_model.read(teacher_dir)[1])
        model = OnlineTeacher(model, teacher, name=f"{model.name}_with_online_teacher")
        loss = AgainstOnlineTeacher(loss)
        accuracy = keras.metrics.MeanMetricWrapper(online_teacher_agreement, name="accuracy")
    model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy], jit_compile=bool(t.jit_compile))
    return model


def _write_model(
    config, model, out_dir: Path, training_log: TrainingLog, strategy, *, wall_time: float, fingerprint: str,
    name: str, inputs: dict, train_manifest: dict, num_classes: int, image_shape, backup_dir: Path,
    resumed: dict | None = None,
) -> dict:  # fmt: skip
    """model.keras (uncompiled, plain Keras), config.json, history.json and, last, the manifest."""
    replicas = strategy.num_replicas_in_sync
    # An uncompiled copy of the network (no optimizer state or custom objects needed to load it).
    inference = models.plain_copy(network_of(model))
    _set_batch_norm_sync(inference, False)
    inference.save(str(out_dir / "model.keras"))
    artifacts.atomic_write_json(out_dir / "config.json", to_plain(config))
    epochs, images_per_second = training_log.epochs, training_log.images_per_second()
    diverged = curves.first_divergence(epochs, config.train.divergence_logit_limit)
    negative_risk = curves.first_negative_risk(epochs)
    history = {
        "epochs": epochs,
        "diverged": diverged,
        "negative_risk_from_step": negative_risk,
        "steps": int(model.optimizer.iterations.numpy()),
        "resumed_from_step": training_log.resumed_from_step or 0,
        "resumed": resumed,
        "wall_time_seconds": round(wall_time, 2),
        "images_per_second": round(images_per_second, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "replicas": replicas,
        "strategy": type(strategy).__name__,
    }
    artifacts.atomic_write_json(out_dir / "history.json", history)
    artifacts.remove_tree(backup_dir)
    last = epochs[-1] if epochs else {}
    manifest = artifacts.write_manifest(
        out_dir,
        stage=TRAIN,
        fingerprint=fingerprint,
        config=layout.model_section(config),
        inputs=inputs,
        counts={"steps": history["steps"], "train_examples": int(train_manifest["counts"]["train"])},
        exclude=("tensorboard",),
        extra={
            "model_name": name,
            "role": "student" if config.distill.enabled else "teacher",
            "dataset": train_manifest["dataset"],
            "num_classes": num_classes,
            "image_shape": list(image_shape),
            "class_names": train_manifest.get("class_names", []),
            "final": {k: last[k] for k in ("loss", "accuracy") if k in last},
            "diverged": diverged,
            "negative_risk_from_step": negative_risk,  # an annotation, not divergence (core/curves.py)
            # {"step", "exact", "why"} if it resumed from a back-up: "exact" when bit-identical to an
            # uninterrupted run (same environment, op determinism on); else the report marks the cell.
            "resumed": resumed,
            "images_per_second": history["images_per_second"],
            "seconds": history["wall_time_seconds"],
        },
    )
    return manifest


def _distributed_dataset(
    config, strategy, model, train_dir: Path, train_manifest: dict, start_step: int, *, student: bool
):  # fmt: skip
    """The training input, one pipeline per worker under `strategy`, from step `start_step` on.

    The stream is a pure function of train.seed: a run resumed at step N reads the batches an
    uninterrupted run reads from step N on.
    """
    t = config.train
    num_classes, image_shape = int(train_manifest["num_classes"]), tuple(train_manifest["image_shape"])

    def dataset_fn(input_context=None):
        return tfdata.make_dataset(
            train_dir, "train", batch_size=t.batch_size, training=True, augment=t.augment,
            shuffle_buffer=t.shuffle_buffer, seed=t.seed, num_classes=num_classes,
            with_teacher_logits=student, input_context=input_context, manifest=train_manifest,
            start_step=start_step,
        )  # fmt: skip

    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    distributed = strategy.num_replicas_in_sync > 1 or multi_worker
    dataset = strategy.distribute_datasets_from_function(dataset_fn) if distributed else dataset_fn()
    image_spec = tf.TensorSpec((None, *image_shape), tf.float32)
    target_spec = tf.TensorSpec(
        (None, num_classes) if student else (None,), tf.float32 if student else tf.int32
    )
    if multi_worker:
        build_for_multi_worker(model, strategy, (image_spec, target_spec))
    elif not distributed:
        # Under the default strategy Keras builds the metrics' and optimizer's state inside the
        # first trace of the train step, and so traces it twice; building it here saves that trace.
        model._symbolic_build(data_batch=(image_spec, target_spec))
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    return dataset


def _fit(
    config, model, dataset, training_log: TrainingLog, backup_dir: Path, tensorboard_dir: Path | None,
    train_dir: Path, train_manifest: dict, learning_curves: curves.LearningCurves, environment: dict,
) -> None:  # fmt: skip
    """model.fit for train.steps, backing up every epoch; logs to TensorBoard on the chief (`tensorboard_dir`).

    The learning curves run first at each epoch's end, so the training log and TensorBoard record them.

    Raises:
      UserError: a corrupt record or a label outside [0, L), naming the file.
    """
    t = config.train
    callbacks = [
        learning_curves,
        training_log,
        WholeFileBackup(str(backup_dir), save_freq="epoch", environment=environment),
    ]
    callbacks.append(ShortProgbar())
    if tensorboard_dir is not None:
        callbacks.append(
            keras.callbacks.TensorBoard(
                str(tensorboard_dir / "tensorboard"), write_graph=False, profile_batch=0
            )
        )
    steps_per_epoch = min(t.steps_per_epoch, t.steps)
    try:
        model.fit(
            dataset,
            steps_per_epoch=steps_per_epoch,
            epochs=math.ceil(t.steps / steps_per_epoch),
            callbacks=callbacks,
            shuffle=False,
            verbose=(1 if sys.stdout.isatty() else 2) if tensorboard_dir is not None else 0,
        )
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:  # corrupt records, bad labels
        files = tfdata.split_files(train_dir, train_manifest, "train")
        explained = tfdata.explain_input_error(e, train_dir, files, int(train_manifest["num_classes"]))
        if explained is None:
            raise
        raise explained from e


def _check_batch_fits(config, strategy, network: keras.Model, train_dir: Path, train_manifest: dict) -> None:
    """Refuses, in one line naming train.batch_size, a batch larger than the training split or than memory.

    Memory (label_smearing/core/resources.py): `network`'s layer outputs per example times the
    examples this host trains on at once, plus weights, gradients and optimizer slots, against
    the memory available; checked on CPU hosts only (a GPU's or TPU's memory is not reported).
    """
    t = config.train
    examples = int(train_manifest["counts"]["train"])
    if t.batch_size > examples:
        raise UserError(
            f"train.batch_size={t.batch_size} is larger than the training split "
            f"({examples} train examples in {train_dir}); lower it to at most {examples}"
        )
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy: one replica, on a GPU if there is one
        devices = ["GPU" if tf.config.list_logical_devices("GPU") else "CPU"]
    if any("GPU" in d.upper() or "TPU" in d.upper() for d in devices):
        return
    per_host = t.batch_size // strategy.num_replicas_in_sync * len(devices)  # CPU replicas share its memory
    resources.check_fits(
        resources.training_memory(network, per_host), resources.available_memory(), key="train.batch_size",
        value=t.batch_size, hosts=t.batch_size // per_host,
    )  # fmt: skip


class ShortProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress line with the training metrics alone: the learning curves (`curve_*`), which
    share the epoch's logs, go to history.json and TensorBoard, not into a 400-character line."""

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, _without_curves(logs))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, _without_curves(logs))


def _without_curves(logs: dict | None) -> dict:
    return {k: v for k, v in (logs or {}).items() if not k.startswith(curves.PREFIX)}


class WholeFileBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose files are written whole or not at all.

    Keras' own writes latest.weights.h5 with HDF5 straight to the disk: when a write fails (a
    full disk) the file is left half-written, and HDF5, which can no longer close it, crashes
    the process when it exits (SIGSEGV in H5_term_library; h5py 3.14, HDF5 1.14.6). Here HDF5
    writes the same file into memory and `artifacts.atomic_write_bytes` puts it on the disk: a
    failure is a plain OSError (one line from the CLI) and the previous back-up stays whole.
    Its metadata also records the training's `environment`, against which a resumption is judged.
    """

    def __init__(self, backup_dir: str, *, environment: dict | None = None, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.environment = environment or {}

    def _save_model(self):
        from keras.src.saving import saving_lib  # what model.save_weights runs, into a buffer

        buffer = io.BytesIO()
        store = saving_lib.H5IOStore(buffer, mode="w")
        saving_lib._save_state(
            self.model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set()
        )
        store.close()
        artifacts.path(self.backup_dir).mkdir(parents=True, exist_ok=True)
        artifacts.atomic_write_bytes(self._weights_path, buffer.getvalue())
        metadata = {
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            "environment": self.environment,
        }
        artifacts.atomic_write_json(self._training_metadata_path, metadata)


def _discard_unfinished_backup(backup_dir: Path, log: Callable[[str], None]) -> None:
    """Removes a back-up whose metadata does not match its weights, so training starts over.

    The back-up writes the weights, then training_metadata.json. Weights without a readable
    metadata file as new as they are were cut short (a full disk, a kill while saving; or a
    half-written file of Keras' own BackupAndRestore): resuming from them would fail or
    restart the wrong epoch.
    """
    weights, metadata = backup_dir / "latest.weights.h5", backup_dir / "training_metadata.json"
    if not weights.exists():
        return
    try:
        json.loads(metadata.read_text())
        complete = artifacts.mtime_ns(metadata) >= artifacts.mtime_ns(weights)
    except (OSError, ValueError):
        complete = False
    if not complete:
        log(f"train: the back-up in {backup_dir} was not completely written; training starts over")
        for path in (weights, metadata):
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------- the stage
def train_stage(
    config: ml_collections.ConfigDict,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    logits_dir: str | os.PathLike | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
    fingerprint: str | None = None,
    name: str | None = None,
) -> dict:
    """Trains one model and writes its artifact; returns the manifest.

    Args:
      config: the resolved config (sections model, loss, train, distill).
      data_dir: the data artifact (for a student it may be the logits artifact).
      out_dir: the model artifact directory to write.
      logits_dir: an exported-logits artifact: train a distilled student on its
        train split with the teacher's logits as targets.
      force: retrain even if `out_dir` holds a complete artifact.
      log: where progress lines go.
      fingerprint: the artifact's fingerprint; default `layout.model_fingerprint` of the input.
      name: the model's name in its manifest; default the name of the config's `ModelSpec`.

    Returns:
      The manifest written to out_dir/manifest.json (an empty dict on
      non-chief workers of a multi-worker run, which write nothing).
    """
    validate_config(config)
    if logits_dir is None and config.distill.enabled:
        raise UserError("distill.enabled=true: train_stage needs logits_dir (distill.logits_dir)")
    t = config.train
    train_dir, train_manifest, inputs = _read_inputs(data_dir, logits_dir)
    num_classes, image_shape = int(train_manifest["num_classes"]), tuple(train_manifest["image_shape"])
    encoding = schema.image_encoding(train_manifest)
    view = teacher_view(config, image_shape, encoding) if logits_dir is not None else None
    teacher_dir = teacher_model_dir(logits_dir) if view == "online" else None
    fingerprint = fingerprint or layout.model_fingerprint(config, train_manifest["fingerprint"])
    out_dir = artifacts.path(out_dir)
    if name is None:
        name = ModelSpec.from_config(to_plain(config), tfdata.teacher_config_of(logits_dir)).name

    if artifacts.is_complete(out_dir) and not force:  # checked by every worker, so none waits for the others
        raise UserError(f"{out_dir} already holds a complete artifact; pass --force to recompute it")

    # The strategy comes first: multi-worker collectives must be set up before any op runs.
    strategy = make_strategy(t.strategy, t.tpu)
    replicas, chief = strategy.num_replicas_in_sync, is_chief(strategy)
    if t.batch_size % replicas:
        raise UserError(f"train.batch_size={t.batch_size} is not divisible by the {replicas} replicas")
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(t.seed)
    log(
        f"train: {name}: {config.model.name} on {tfdata.describe(train_manifest)}; "
        f"{t.steps} steps of batch {t.batch_size} on {replicas} replica(s) ({type(strategy).__name__})"
    )
    if view is not None:
        targets = (
            f"the frozen teacher {teacher_dir} on each training batch"
            if teacher_dir
            else "the logits exported from un-augmented images"
        )
        log(f"train: teacher view {view} (distill.teacher_view={config.distill.teacher_view}): {targets}")

    with strategy.scope():
        model = _compiled_model(
            config,
            num_classes,
            image_shape,
            replicas,
            student=logits_dir is not None,
            teacher_dir=teacher_dir,
        )
    _check_batch_fits(config, strategy, network_of(model), train_dir, train_manifest)  # nothing written yet
    if chief:
        artifacts.prepare_output(out_dir, force=force, keep_partial=True)
        backup_dir = out_dir / "backup"
    else:  # other workers keep their own back-up (same state) and write nothing else
        task_id = strategy.cluster_resolver.task_id
        backup_dir = out_dir.parent / ".workers" / f"{out_dir.name}-worker{task_id}"
    _discard_unfinished_backup(backup_dir, log)
    start_step, now = resume_step(backup_dir, config), environment(config, strategy)
    resumed = resumption(backup_dir, start_step, now)
    if resumed and not resumed["exact"]:
        log(
            f"train: resumed at step {start_step}, not bit-identical to an uninterrupted run: {resumed['why']}"
        )

    dataset = _distributed_dataset(
        config, strategy, model, train_dir, train_manifest, start_step, student=logits_dir is not None
    )
    training_log = TrainingLog(
        total_steps=t.steps, global_batch=t.batch_size, history_path=backup_dir / "history.json", log=log,
        start_step=start_step,
    )  # fmt: skip
    learning_curves = curves.LearningCurves(
        network_of(model), data_dir, tfdata.read_data_manifest(data_dir, verify=False),
        num_examples=0 if isinstance(strategy, tf.distribute.TPUStrategy) else t.curve_examples,
        num_bins=config.eval.num_bins, batch_size=config.eval.batch_size, logit_limit=t.divergence_logit_limit,
        log=log,
    )  # fmt: skip
    started = time.time()
    _fit(
        config,
        model,
        dataset,
        training_log,
        backup_dir,
        out_dir if chief else None,
        train_dir,
        train_manifest,
        learning_curves,
        now,
    )
    wall_time = time.time() - started
    if not chief:
        artifacts.remove_tree(backup_dir)
        with contextlib.suppress(OSError):
            backup_dir.parent.rmdir()  # .workers/, once empty
        return {}

    manifest = _write_model(
        config, model, out_dir, training_log, strategy, wall_time=wall_time, fingerprint=fingerprint, name=name,
        inputs=inputs, train_manifest=train_manifest, num_classes=num_classes, image_shape=image_shape,
        backup_dir=backup_dir, resumed=resumed,
    )  # fmt: skip
    last, images_per_second = manifest["final"], manifest["images_per_second"]
    if manifest["diverged"]:
        d = manifest["diverged"]
        log(f"train: this run diverged at step {d['step']} ({d['reason']}); the report marks it")
    log(
        f"train: done in {wall_time:.1f} s ({images_per_second:.0f} images/s); final loss "
        f"{last.get('loss', float('nan')):.4f}, accuracy {last.get('accuracy', float('nan')):.4f}"
    )
    return manifest


# ---------------------------------------------------------------- CLI
def compute_planned(request: StageRequest) -> dict:
    """A plan node's teacher or student (`registry.STAGES`' entry point): the data and, for a student,
    its teacher's exported logits."""
    return train_stage(
        request.config, request.input(NOISIFY), request.out_dir,
        logits_dir=request.optional_input(EXPORT_LOGITS), force=request.force, log=request.log,
        fingerprint=request.fingerprint, name=request.name,
    )  # fmt: skip


def run(argv=None) -> None:
    args, config, _ = parse_stage_args(command_parser(TRAIN), argv, validate=validate_config)
    model, input_dir = layout.configured_model(config, args.workdir)
    logits_dir = input_dir if config.distill.enabled else None
    data_dir = input_dir
    if logits_dir is not None:  # the data the teacher's logits were exported from, as `smear run` passes it
        logits_manifest = tfdata.read_data_manifest(logits_dir)  # verified before its records lead anywhere
        data_ref = (logits_manifest.get("inputs") or {}).get("data") or {}
        data_dir = artifacts.path(data_ref.get("path") or logits_dir)
    out_dir = artifacts.path(model.path)
    print(f"train: input {input_dir}")
    print(f"train: model artifact {out_dir}")
    print(f"train: TensorBoard: tensorboard --logdir {out_dir / 'tensorboard'}")
    inputs = {NOISIFY: [data_dir], **({EXPORT_LOGITS: [logits_dir]} if logits_dir is not None else {})}
    _, manifest = run_standalone(model, config, compute_planned, inputs=inputs, force=args.force)
    if manifest:
        print(f"train: model {out_dir / 'model.keras'}")
