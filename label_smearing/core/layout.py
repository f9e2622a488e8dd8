"""Where every artifact lives and what identifies it: one function per artifact kind.

    <workdir>/data/<dataset>-<noise>-s<seed>-<fp10>/            noisify
    <workdir>/models/<spec name>-<fp10>/                        train (teacher or student)
    <workdir>/logits/<model name>-<split>-<fp10>/               export-logits
    <workdir>/transition/<baseline teacher>-p<percentile>-<fp10>/   estimate-transition
    <workdir>/eval/<model name>-<fp10>/                         evaluate
    <workdir>/report/<config name>-<fp10>/                      report

A fingerprint covers the config section that determines an artifact's content
(`*_section`), the fingerprints of its inputs and its stage kind's compute
version (`artifacts.fingerprint`; the kinds and their folders are in `registry`). The stage CLIs and `smear run` both take their paths
from here, so a standalone `smear <stage>` and `smear run` agree by construction.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ml_collections

from label_smearing.core import artifacts, registry
from label_smearing.core.config import to_plain
from label_smearing.core.registry import ESTIMATE_TRANSITION, EVALUATE, EXPORT_LOGITS, NOISIFY, REPORT, TRAIN
from label_smearing.core.spec import ModelSpec
from label_smearing.modeling.losses import LOSSES
from label_smearing.modeling.noise import HUMAN, INSTANCE, NOISE_MODELS

TRANSITION_FILE = "transition.json"

# Config keys (or whole sections) that change no number an artifact holds, so no fingerprint covers them,
# with the reason. `smear run` refuses an override of any other key that changes no fingerprint of its
# plan (label_smearing.pipeline.plan.check_overrides; tests/test_overrides.py checks every key).
OUTPUT_NEUTRAL = {
    "train.strategy": "where training runs: a model trained under another strategy is reused",
    "train.tpu": "which TPU trains",
    "export.batch_size": "how the export is split into batches, not what it writes",
    "eval.batch_size": "how evaluation is split into batches, not what it measures",
    "resources": "the CPU, memory and accelerators a Kubeflow task asks for",
}


def is_output_neutral(key: str) -> bool:
    """Whether OUTPUT_NEUTRAL declares the dotted `key` (or its whole section)."""
    return key in OUTPUT_NEUTRAL or key.split(".")[0] in OUTPUT_NEUTRAL


def _neutral_keys(section: str) -> list[str]:
    """The keys of `section` that OUTPUT_NEUTRAL leaves out of fingerprints."""
    return [key.split(".", 1)[1] for key in OUTPUT_NEUTRAL if key.startswith(f"{section}.")]


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One artifact directory: the stage kind that writes it, its name, fingerprint and path."""

    kind: str
    name: str
    fingerprint: str
    path: Path | str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "fingerprint": self.fingerprint, "path": str(self.path)}


def _artifact(kind: str, workdir: str | os.PathLike, name: str, fp: str) -> Artifact:
    return Artifact(kind, name, fp, artifacts.artifact_dir(workdir, registry.kind(kind).folder, name, fp))


def base_name(directory: str | os.PathLike) -> str:
    """An artifact directory's name without its `-<fp10>` suffix: "teacher-ce-s0-1a2b3c4d5e" -> "teacher-ce-s0"."""
    return re.sub(r"-[0-9a-f]{10}$", "", artifacts.path(directory).name)


# ---------------------------------------------------------------- noisify
def _file_digest(path: str) -> str:
    return artifacts.sha256_file(path) if path and artifacts.path(path).is_file() else ""


def data_section(config: ml_collections.ConfigDict) -> dict:
    """What determines the dataset's content: sections data and noise, with the noise files' digests."""
    noise = to_plain(config.noise)
    noise["transition_file_sha256"] = _file_digest(config.noise.transition_file)
    noise["labels_file_sha256"] = _file_digest(config.noise.labels_file)
    if config.noise.model != HUMAN:  # only human noise reads it: data named before it existed keep their name
        noise.pop("annotation", None)
    if config.noise.model != INSTANCE:  # only instance noise reads it: other data keep their fingerprint
        noise.pop("instance_features", None)
    data = to_plain(config.data)
    if data.get("image_encoding") == "png":  # the default: PNG data keep the name they had before the key
        data.pop("image_encoding")
    return {"data": data, "noise": noise}


def data_fingerprint(config: ml_collections.ConfigDict) -> str:
    return artifacts.fingerprint(NOISIFY, data_section(config))


def data(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> Artifact:
    n = config.noise
    noise_name = (
        NOISE_MODELS[n.model].data_label(n.rate, n.annotation)
        if n.model in NOISE_MODELS
        else f"{n.model}{n.rate:g}"
    )
    return _artifact(
        NOISIFY, workdir, f"{config.data.dataset}-{noise_name}-s{n.seed}", data_fingerprint(config)
    )


# ---------------------------------------------------------------- train
def model_section(config: ml_collections.ConfigDict) -> dict:
    """The config that determines a trained model, apart from its inputs.

    Leaves out where it runs (strategy, tpu), and input paths (the input
    fingerprints identify them): for a teacher the distillation section and
    loss.transition_file, for a student the loss section and distill.logits_dir.
    A mixed train.precision changes the model and is kept; float32 is left out, so
    a float32 model has the fingerprint it had before the key existed.
    """
    train = to_plain(config.train)
    for key in _neutral_keys("train"):  # strategy, tpu
        train.pop(key, None)
    if train.get("precision", "float32") == "float32":  # so that float32 models keep their fingerprints
        train.pop("precision", None)
    section = {"model": to_plain(config.model), "train": train}
    if config.distill.enabled:
        section["distill"] = to_plain(config.distill)
        section["distill"].pop("logits_dir", None)
    else:
        section["loss"] = to_plain(config.loss)
        section["loss"].pop("transition_file", None)
        # A warm-up of plain CE changes nothing for CE itself, and none is no warm-up: either way the
        # key is left out, so such a model is the one trained before the key existed.
        entry = LOSSES.get(config.loss.name)
        if not config.loss.ce_warmup_steps or (entry is not None and not entry.uses_alpha):
            section["loss"].pop("ce_warmup_steps", None)
    return section


def uses_transition_file(config: ml_collections.ConfigDict) -> bool:
    """Whether a teacher config trains with a transition matrix read from loss.transition_file."""
    loss = config.loss
    return not config.distill.enabled and loss.transition == "file" and LOSSES[loss.name].uses_transition


def transition_fingerprint(path: str | os.PathLike) -> str:
    """A transition file's identity: its estimate artifact's fingerprint, else the file's SHA-256."""
    directory = artifacts.path(path).parent
    if artifacts.path(path).name == TRANSITION_FILE and artifacts.is_complete(directory):
        return artifacts.read_manifest(directory, what="transition artifact", verify=False)["fingerprint"]
    return artifacts.sha256_file(path)


def model_fingerprint(
    config: ml_collections.ConfigDict, input_fp: str, transition_fp: str | None = None
) -> str:
    """A model's fingerprint: its section, its input's fingerprint and, for a file T, that T's.

    Args:
      config: the model's config (`ModelSpec.apply`'d).
      input_fp: the data artifact's fingerprint (a student: the logits artifact's).
      transition_fp: the T's fingerprint when it is not yet on disk (a planned
        estimate); by default read from loss.transition_file.
    """
    inputs = {"input": input_fp}
    if uses_transition_file(config):
        inputs["transition"] = transition_fp or transition_fingerprint(config.loss.transition_file)
    return artifacts.fingerprint(TRAIN, model_section(config), inputs)


def model(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    spec: ModelSpec,
    input_fp: str,
    transition_fp: str | None = None,
) -> Artifact:
    return _artifact(TRAIN, workdir, spec.name, model_fingerprint(config, input_fp, transition_fp))


# ---------------------------------------------------------------- export-logits
def export_section(config: ml_collections.ConfigDict, split: str) -> dict:
    """What determines the exported records besides the model and data (batch size does not)."""
    section = to_plain(config.export)
    for key in _neutral_keys("export"):  # batch_size: changes how work is split, not what is written
        section.pop(key, None)
    return {"export": section, "split": split}


def logits_fingerprint(config: ml_collections.ConfigDict, model_fp: str, data_fp: str, split: str) -> str:
    inputs = {"model": model_fp, "data": data_fp}
    return artifacts.fingerprint(EXPORT_LOGITS, export_section(config, split), inputs)


def logits(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    model_name: str,
    model_fp: str,
    data_fp: str,
    split: str = "train",
) -> Artifact:
    fp = logits_fingerprint(config, model_fp, data_fp, split)
    return _artifact(EXPORT_LOGITS, workdir, f"{model_name}-{split}", fp)


# ---------------------------------------------------------------- estimate-transition
def estimate_section(config: ml_collections.ConfigDict) -> dict:
    return {"estimate": to_plain(config.estimate)}


def transition_fingerprint_of(config: ml_collections.ConfigDict, logits_fp: str) -> str:
    """An estimated-transition artifact's fingerprint: the estimate section and the logits' fingerprint."""
    return artifacts.fingerprint(ESTIMATE_TRANSITION, estimate_section(config), {"logits": logits_fp})


def transition(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike, teacher_name: str, logits_fp: str
) -> Artifact:
    fp = transition_fingerprint_of(config, logits_fp)
    return _artifact(ESTIMATE_TRANSITION, workdir, f"{teacher_name}-p{config.estimate.percentile:g}", fp)


# ---------------------------------------------------------------- evaluate
def eval_section(config: ml_collections.ConfigDict) -> dict:
    """The eval config that determines the artifact (the batch size does not).

    `figures` at its default (on) is left out, so evaluations keep the fingerprints they had
    before the key existed; off (no plots/) is another artifact, with another fingerprint.
    """
    section = to_plain(config.eval)
    for key in _neutral_keys("eval"):  # batch_size
        section.pop(key, None)
    return _without_default_figures(section)


def _without_default_figures(section: dict) -> dict:
    """`figures` left out at its default (on): artifacts keep the fingerprints they had before the key."""
    if section.get("figures", True) is True:
        section.pop("figures", None)
    return section


def evaluation_fingerprint(config: ml_collections.ConfigDict, model_fp: str, data_fp: str) -> str:
    return artifacts.fingerprint(EVALUATE, eval_section(config), {"model": model_fp, "data": data_fp})


def evaluation(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    model_name: str,
    model_fp: str,
    data_fp: str,
) -> Artifact:
    return _artifact(EVALUATE, workdir, model_name, evaluation_fingerprint(config, model_fp, data_fp))


# ---------------------------------------------------------------- report
def report_section(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The report section, and sweep.confirm_seeds when there are any (they decide which evaluations
    the claims test; a report without them keeps the fingerprint it had before the key). `figures` at
    its default (on) is left out, as eval's is, so reports keep the fingerprints they had before it."""
    section = _without_default_figures(to_plain(config.report))
    confirm = list(config.sweep.get("confirm_seeds", ()) or ())
    if confirm:
        section["confirm_seeds"] = confirm
    return section


def report_fingerprint(config: ml_collections.ConfigDict, eval_fps: Iterable[str]) -> str:
    """A report's fingerprint covers its config section and the set of evaluation fingerprints."""
    inputs = {f"eval{i:05d}": fp for i, fp in enumerate(sorted(eval_fps))}
    return artifacts.fingerprint(REPORT, report_section(config), inputs)


def report(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike, eval_fps: Iterable[str]
) -> Artifact:
    return _artifact(REPORT, workdir, config.name, report_fingerprint(config, eval_fps))


# ---------------------------------------------------------------- a stage CLI's default input
def configured_model(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> tuple[Artifact, Path]:
    """The model artifact this config trains under `workdir`, and its input (data or logits) artifact.

    A student's name carries its teacher's sweep string when the logits artifact
    leads back to the teacher's config, as `smear run` names it.
    """
    from label_smearing.core.tfdata import read_data_manifest, teacher_config_of

    if config.distill.enabled:
        input_dir = artifacts.path(config.distill.logits_dir)
        teacher_config = teacher_config_of(input_dir)
    else:
        input_dir, teacher_config = artifacts.path(data(config, workdir).path), None
    input_manifest = read_data_manifest(
        input_dir, verify=False
    )  # missing or partial: a UserError; the stage verifies
    spec = ModelSpec.from_config(to_plain(config), teacher_config)
    return model(config, workdir, spec, input_manifest["fingerprint"]), input_dir
