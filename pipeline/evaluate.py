"""Evaluate one trained model: the per-model numbers and figures of the paper.

    smear evaluate --config configs/quickstart.py --workdir W [--model DIR] [--force]

One forward pass per split gives logits and pre-logits (batches of
config.eval.batch_size, decoded and normalised by keras_components.data exactly
as in training). From them:

- clean test split: accuracy, NLL, top-label ECE (config.eval.num_bins bins) and
  a reliability diagram;
- noisy training split, with each record's clean_label and is_noisy: the paper's
  Table 3 breakdown (full / clean part / noisy part against the true labels, and
  the noisy part against its noisy labels);
- Figure 3 / 7: z_label - mean(z) for the true and the noisy label on the
  mislabelled part (and on all and on the clean data): summary statistics and
  density plots;
- Figure 4: pre-logits of training examples of config.eval.projection_classes
  projected onto the plane through those classes' templates (the `logits`
  layer's kernel columns), mislabelled examples in black.

Writes `<workdir>/eval/<model name>-<fp10>/` with `metrics.json`,
`plots/*.png|svg`, `tensorboard/` (scalars, histograms and the figures; not
checksummed) and, last, `manifest.json`.

metrics.json units: accuracies in percent, NLL in nats per example, ECE as a
fraction in [0, 1], logit gaps in logit units.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from pipeline import artifacts
from pipeline.cli_common import parse_stage_args, stage_parser
from pipeline.config import to_plain
from pipeline.errors import UserError

ROLES = ("teacher", "student")
METHODS = ("ce", "ls", "fc", "bc")
TRANSITIONS = ("smoothing", "estimated")
GAP_SERIES = (
    "noisy_part/true_label",
    "noisy_part/noisy_label",
    "clean_part/true_label",
    "all/true_label",
    "all/train_label",
)
UNITS = {
    "accuracy": "percent",
    "nll": "nats per example",
    "ece": "fraction in [0, 1]",
    "logit_gaps": "logits: z_label - mean(z)",
}
# Config keys that change neither a model nor an evaluation's numbers.
_RUN_ONLY_TRAIN_KEYS = ("seed", "deterministic", "jit_compile", "strategy", "tpu")


# ---------------------------------------------------------------- names and fingerprints
def eval_section(config: ml_collections.ConfigDict) -> dict:
    """The eval config that determines the numbers (the batch size does not)."""
    section = to_plain(config.eval)
    section.pop("batch_size", None)
    return section


def evaluate_fingerprint(config: ml_collections.ConfigDict, model_fp: str, data_fp: str) -> str:
    """Fingerprint of an evaluation: the eval section plus the model's and the data's fingerprints."""
    return artifacts.fingerprint("evaluate", eval_section(config), {"model": model_fp, "data": data_fp})


def eval_artifact_path(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    model_dir: str | os.PathLike,
    model_manifest: Mapping,
    data_fp: str,
) -> Path:
    """`<workdir>/eval/<model name>-<fp10>`, the model name as in its directory's name.

    `smear run` names evaluations after their model directories (e.g.
    `student-T2-ce-s0-from-ls0.1`), so a standalone `smear evaluate` of the same
    model lands in the same place.
    """
    model_fp = model_manifest["fingerprint"]
    name = Path(model_dir).name
    suffix = f"-{model_fp[:10]}"
    name = name[: -len(suffix)] if name.endswith(suffix) else str(model_manifest.get("model_name") or name)
    return artifacts.artifact_dir(workdir, "eval", name, evaluate_fingerprint(config, model_fp, data_fp))


# ---------------------------------------------------------------- descriptions
def _student_method(distill: Mapping) -> tuple[str, float]:
    if float(distill.get("fc_alpha", 0.0)) > 0:
        return "fc", float(distill["fc_alpha"])
    if float(distill.get("smoothing", 0.0)) > 0:
        return "ls", float(distill["smoothing"])
    return "ce", 0.0


def _teacher_method(loss: Mapping) -> tuple[str, float, str]:
    method = str(loss.get("name", "ce"))
    if method in ("fc", "bc") and loss.get("transition") == "file":
        return method, 0.0, "estimated"
    return method, (0.0 if method == "ce" else float(loss.get("alpha", 0.0))), "smoothing"


def describe_model(model_config: Mapping[str, Any], teacher_config: Mapping[str, Any] | None = None) -> dict:
    """What the pipeline knows about a model, from its resolved config (plain dicts).

    Args:
      model_config: the model's config (`config.json` of a model artifact, or
        `to_plain(config)`): sections loss, train, distill.
      teacher_config: for a student, its teacher's config; None if unknown.

    Returns:
      {"role", "method", "alpha", "seed", "transition"} and, for a student,
      "teacher_method", "teacher_alpha", "teacher_transition", "student_method",
      "student_alpha", "temperature". A CE model has alpha 0; an estimated-T
      FC/BC model has alpha 0 (its T comes from a file, not from alpha).
    """
    seed = int(model_config.get("train", {}).get("seed", 0))
    distill = model_config.get("distill", {}) or {}
    if not distill.get("enabled", False):
        method, alpha, transition = _teacher_method(model_config.get("loss", {}))
        return {"role": "teacher", "method": method, "alpha": alpha, "seed": seed, "transition": transition}
    student_method, student_alpha = _student_method(distill)
    if teacher_config is not None:
        teacher_method, teacher_alpha, teacher_transition = _teacher_method(teacher_config.get("loss", {}))
    else:
        teacher_method, teacher_alpha, teacher_transition = "unknown", None, "unknown"
    return {
        "role": "student",
        "method": student_method,
        "alpha": student_alpha,
        "seed": seed,
        "transition": "smoothing",
        "teacher_method": teacher_method,
        "teacher_alpha": teacher_alpha,
        "teacher_transition": teacher_transition,
        "student_method": student_method,
        "student_alpha": student_alpha,
        "temperature": float(distill.get("temperature", 1.0)),
    }


def validate_description(description: Mapping[str, Any]) -> None:
    """Raises UserError unless `description` has the keys the report groups by."""
    for key in ("role", "method", "alpha", "seed"):
        if key not in description:
            raise UserError(f"evaluation description has no {key!r}: {dict(description)}")
    if description["role"] not in ROLES:
        raise UserError(f"description role must be one of {ROLES}, got {description['role']!r}")
    if description["method"] not in METHODS:
        raise UserError(f"description method must be one of {METHODS}, got {description['method']!r}")
    if description["role"] == "student":
        for key in ("teacher_method", "teacher_alpha", "student_method", "student_alpha", "temperature"):
            if key not in description:
                raise UserError(f"student description has no {key!r}: {dict(description)}")


def _teacher_config_of(model_config: Mapping[str, Any]) -> dict | None:
    """A student's teacher config: distill.logits_dir's manifest -> teacher model -> config.json."""
    logits_dir = (model_config.get("distill") or {}).get("logits_dir")
    if not logits_dir or not artifacts.is_complete(logits_dir):
        return None
    try:
        manifest = json.loads((Path(logits_dir) / artifacts.MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    for key in ("teacher_config", "teacher"):
        if isinstance(manifest.get(key), dict) and "loss" in manifest[key]:
            return manifest[key]
    for key in ("model", "teacher"):
        ref = manifest.get("inputs", {}).get(key)
        path = Path(ref["path"]) / "config.json" if isinstance(ref, dict) and "path" in ref else None
        if path is not None and path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:
                return None
    return None


# ---------------------------------------------------------------- numerics
def summarize(values: np.ndarray) -> dict:
    """count, mean, std (population), min, q05, q25, median, q75, q95, max of a 1-D array."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return {"count": 0}
    q05, q25, median, q75, q95 = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "q05": float(q05),
        "q25": float(q25),
        "median": float(median),
        "q75": float(q75),
        "q95": float(q95),
        "max": float(values.max()),
    }


def _percent(correct: np.ndarray) -> float | None:
    return float(100.0 * np.mean(correct)) if correct.size else None


def train_breakdown(
    predictions: np.ndarray, clean: np.ndarray, labels: np.ndarray, is_noisy: np.ndarray
) -> dict:
    """The paper's Table 3: train accuracy (%) on the full / clean / noisy parts.

    Returns:
      {"full_true", "clean_true", "noisy_true", "noisy_noisy"}; a part without
      examples gives None.
    """
    noisy = np.asarray(is_noisy).astype(bool)
    hit_true = np.asarray(predictions) == np.asarray(clean)
    hit_label = np.asarray(predictions) == np.asarray(labels)
    return {
        "full_true": _percent(hit_true),
        "clean_true": _percent(hit_true[~noisy]),
        "noisy_true": _percent(hit_true[noisy]),
        "noisy_noisy": _percent(hit_label[noisy]),
    }


def _merge_bins(total: dict | None, part: dict) -> dict:
    """Adds one batch's reliability bins to the running per-bin sums."""
    counts = np.asarray(part["counts"], dtype=np.float64)
    sums = {
        "counts": counts,
        "correct": np.asarray(part["accuracy"]) * counts,
        "confidence": np.asarray(part["confidence"]) * counts,
    }
    if total is None:
        return {"edges": np.asarray(part["edges"]), **sums}
    return {"edges": total["edges"], **{k: total[k] + v for k, v in sums.items()}}


def _finish_bins(total: dict) -> dict:
    counts = total["counts"]
    nonempty = counts > 0
    accuracy = np.divide(total["correct"], counts, out=np.zeros_like(counts), where=nonempty)
    confidence = np.divide(total["confidence"], counts, out=np.zeros_like(counts), where=nonempty)
    num_examples = float(counts.sum())
    return {
        "edges": total["edges"],
        "counts": counts.round().astype(np.int64),
        "accuracy": accuracy,
        "confidence": confidence,
        "num_examples": int(round(num_examples)),
        "ece": float(np.sum(np.abs(total["correct"] - total["confidence"])) / num_examples),
    }


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _checked(dataset, data_dir: Path, files: list[str], num_classes: int):
    """Yields `dataset`'s batches; corrupt records or labels outside [0, L) become a one-line UserError."""
    import tensorflow as tf

    from keras_components import data

    iterator = iter(dataset)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            explained = data.explain_input_error(e, data_dir, files, num_classes)
            if explained is None:
                raise
            raise explained from e
        yield batch


def _forward_pass(
    forward: Callable,
    data_dir: Path,
    data_manifest: dict,
    split: str,
    *,
    batch_size: int,
    num_classes: int,
    num_bins: int,
    keep_pre_logits_of: tuple[int, ...] = (),
) -> dict:
    """One ordered pass over a split, reduced per batch to per-example scalars.

    Only the scalars the metrics need are kept (predictions, logit gaps, NLL), and
    pre-logits only for examples whose clean label is in `keep_pre_logits_of`, so
    memory stays small on ImageNet-sized splits.
    """
    from keras_components import data
    from keras_components.metrics import reliability_bins

    dataset = data.make_dataset(
        data_dir, split, batch_size=batch_size, training=False, num_classes=num_classes,
        include_metadata=True, manifest=data_manifest, cache=False,
    )  # fmt: skip
    columns: dict[str, list] = {
        k: [] for k in ("prediction", "label", "clean", "is_noisy", "nll", "gap_true", "gap_label")
    }
    pre_logits, pre_rows, bins = [], [], None
    offset = 0
    for batch in _checked(dataset, data_dir, data.split_files(data_dir, data_manifest, split), num_classes):
        logits, features = (np.asarray(t) for t in forward(batch["image"]))
        logits = logits.astype(np.float64)
        clean = batch["clean_label"].numpy().astype(np.int64)
        label = batch["label"].numpy().astype(np.int64)
        rows = np.arange(len(clean))
        mean_logit = logits.mean(axis=1)
        columns["prediction"].append(logits.argmax(axis=1))
        columns["label"].append(label)
        columns["clean"].append(clean)
        columns["is_noisy"].append(batch["is_noisy"].numpy().astype(bool))
        columns["nll"].append(-_log_softmax(logits)[rows, clean])
        columns["gap_true"].append(logits[rows, clean] - mean_logit)
        columns["gap_label"].append(logits[rows, label] - mean_logit)
        if num_bins:
            probs = np.exp(_log_softmax(logits))
            bins = _merge_bins(bins, reliability_bins(probs, clean, num_bins))
        if keep_pre_logits_of:
            keep = np.isin(clean, keep_pre_logits_of)
            pre_logits.append(np.asarray(features, dtype=np.float32)[keep])
            pre_rows.append(offset + np.flatnonzero(keep))
        offset += len(clean)
    if offset == 0:
        raise UserError(f"the {split} split of {data_dir} holds no examples")
    result = {k: np.concatenate(v) for k, v in columns.items()}
    result["num_examples"] = offset
    if num_bins:
        result["bins"] = _finish_bins(bins)
    if keep_pre_logits_of:
        result["pre_logits"] = np.concatenate(pre_logits)
        result["pre_logit_rows"] = np.concatenate(pre_rows)
    return result


# ---------------------------------------------------------------- loading
def load_model(model_dir: str | os.PathLike):
    """Loads `model.keras` of a complete model artifact with Keras' safe mode on.

    Raises:
      UserError: missing or partial artifact, a file that fails its checksum, a
        model that does not load or lacks the `pre_logits` / `logits` layers.
    """
    import keras

    import keras_components.losses  # noqa: F401 - registers the serialisable classes
    import keras_components.metrics  # noqa: F401
    import keras_components.models  # noqa: F401
    import keras_components.optimizers  # noqa: F401

    model_dir = Path(model_dir)
    manifest = artifacts.read_manifest(model_dir, what="model artifact")
    path = model_dir / "model.keras"
    if not path.is_file():
        raise UserError(f"model artifact {model_dir} has no model.keras")
    try:
        model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except Exception as e:  # noqa: BLE001 - any failure to load a user's file is a user error
        raise UserError(
            f"cannot load {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e
    for layer in ("pre_logits", "logits"):
        try:
            model.get_layer(layer)
        except ValueError:
            raise UserError(
                f"model {path} has no layer named {layer!r} (needed for logits and pre-logits)"
            ) from None
    return model, manifest


def _setting(model_manifest: Mapping, data_manifest: Mapping) -> dict:
    """Names the experimental setting a model belongs to; the report groups seeds by it."""
    section = model_manifest.get("config") or {}
    model_cfg = section.get("model") or {}
    arch = str(model_cfg.get("name", "model"))
    arch += "".join(f" {k} {model_cfg[k]}" for k in ("depth", "width") if k in model_cfg)
    train = {k: v for k, v in (section.get("train") or {}).items() if k not in _RUN_ONLY_TRAIN_KEYS}
    data_cfg = json.loads(json.dumps(data_manifest.get("config") or {}))
    noise_cfg = data_cfg.get("noise") or {}
    noise_cfg.pop("seed", None)  # repeats may redraw the noise
    noise_name = (
        f"{noise_cfg['model']} noise {noise_cfg.get('rate', '')}".strip()
        if "model" in noise_cfg
        else "noise ?"
    )

    def short(obj: Any) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]

    return {
        "data": f"{data_manifest.get('dataset', '?')}, {noise_name}",
        "data_fingerprint": short(data_cfg),
        "model": arch,
        "training_fingerprint": short({"model": model_cfg, "train": train}),
    }


# ---------------------------------------------------------------- the stage
def evaluate_stage(
    config: ml_collections.ConfigDict,
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    description: dict,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Evaluates a model artifact on a data artifact; returns the evaluation's manifest.

    Args:
      config: the resolved config (section eval: num_bins, batch_size,
        projection_classes, max_projection_points).
      model_dir: a complete model artifact (`model.keras`, manifest).
      data_dir: the noisify data artifact (clean test split; train split with
        noisy `label`, `clean_label`, `is_noisy`).
      out_dir: the evaluation artifact directory to write.
      description: what the pipeline knows about the model (see `describe_model`);
        stored in metrics.json, and the report groups by it.
      force: recompute even if `out_dir` holds a complete evaluation.
      log: where progress lines go.

    Returns:
      The manifest of `out_dir` (read back if the evaluation was cached).

    Raises:
      UserError: missing or incomplete inputs, a model whose classes or input
        shape differ from the data's, bad eval config values.
    """
    from keras_components import data

    validate_description(description)
    e = config.eval
    if e.num_bins < 1:
        raise UserError(f"eval.num_bins must be >= 1, got {e.num_bins}")
    if e.batch_size < 1:
        raise UserError(f"eval.batch_size must be >= 1, got {e.batch_size}")
    model_dir, data_dir, out_dir = Path(model_dir), Path(data_dir), Path(out_dir)
    model_manifest = artifacts.read_manifest(model_dir, what="model artifact")
    data_manifest = data.read_data_manifest(data_dir)
    fp = evaluate_fingerprint(config, model_manifest["fingerprint"], data_manifest["fingerprint"])
    if artifacts.is_complete(out_dir) and not force:
        cached = artifacts.read_manifest(out_dir, what="evaluation")
        if cached.get("fingerprint") == fp:
            log(f"evaluate: cached {out_dir}")
            return cached
        raise UserError(
            f"{out_dir} holds a different evaluation (fingerprint {cached.get('fingerprint', '?')[:10]}); "
            "pass --force to replace it"
        )

    num_classes = int(data_manifest["num_classes"])
    image_shape = tuple(int(d) for d in data_manifest["image_shape"])
    classes = tuple(int(c) for c in e.projection_classes)
    if len(classes) != 3 or len(set(classes)) != 3 or not all(0 <= c < num_classes for c in classes):
        raise UserError(
            f"eval.projection_classes must be 3 distinct classes in [0, {num_classes}), got {classes}"
        )
    if e.max_projection_points < 1:
        raise UserError(f"eval.max_projection_points must be >= 1, got {e.max_projection_points}")

    model, _ = load_model(model_dir)
    model_classes = int(model.output_shape[-1])
    if model_classes != num_classes:
        raise UserError(
            f"model {model_dir} has {model_classes} classes, but the data {data_dir} have {num_classes}"
        )
    model_shape = tuple(model.input_shape[1:])
    if model_shape != image_shape:
        raise UserError(
            f"model {model_dir} takes images of shape {list(model_shape)}, "
            f"but the data {data_dir} have {list(image_shape)}"
        )

    import tensorflow as tf

    from keras_components.models import pre_logits_model

    extractor = pre_logits_model(model)

    @tf.function(input_signature=[tf.TensorSpec([None, *image_shape], tf.float32)], reduce_retracing=True)
    def forward(images):
        return extractor(images, training=False)

    out_dir = artifacts.prepare_output(out_dir, force=force)
    log(
        f"evaluate: {model_manifest.get('model_name', model_dir.name)} on {data.describe(data_manifest)} -> {out_dir}"
    )
    common = {"batch_size": int(e.batch_size), "num_classes": num_classes}
    test = _forward_pass(forward, data_dir, data_manifest, "test", num_bins=int(e.num_bins), **common)
    train = _forward_pass(
        forward, data_dir, data_manifest, "train", num_bins=0, keep_pre_logits_of=classes, **common
    )

    # ---- numbers
    bins = test["bins"]
    test_metrics = {
        "num_examples": test["num_examples"],
        "accuracy": float(100.0 * np.mean(test["prediction"] == test["clean"])),
        "nll": float(np.mean(test["nll"])),
        "ece": bins["ece"],
        "num_bins": int(e.num_bins),
        "reliability": {
            k: np.asarray(bins[k]).tolist() for k in ("edges", "counts", "accuracy", "confidence")
        },
    }
    noisy = train["is_noisy"]
    gaps = {
        "noisy_part/true_label": train["gap_true"][noisy],
        "noisy_part/noisy_label": train["gap_label"][noisy],
        "clean_part/true_label": train["gap_true"][~noisy],
        "all/true_label": train["gap_true"],
        "all/train_label": train["gap_label"],
    }
    train_metrics = {
        "num_examples": train["num_examples"],
        "num_noisy": int(noisy.sum()),
        "noise_rate": float(noisy.mean()),
        "accuracy": train_breakdown(train["prediction"], train["clean"], train["label"], noisy),
        "nll_true": float(np.mean(train["nll"])),
        "logit_gaps": {name: summarize(values) for name, values in gaps.items()},
    }

    # ---- figures
    from pipeline import plots

    class_names = list(data_manifest.get("class_names") or [str(i) for i in range(num_classes)])
    name = str(model_manifest.get("model_name") or model_dir.name)
    plot_dir = out_dir / "plots"
    written: dict[str, str] = {}

    def keep(key: str, paths: list[Path]) -> None:
        written[key] = str(paths[0].relative_to(out_dir))

    keep(
        "reliability", plots.reliability_diagram(bins, plot_dir / "reliability", f"{name}: clean test split")
    )
    if noisy.any():
        keep("logit_gaps_noisy_part", plots.logit_gap_densities(
            {"true label": gaps["noisy_part/true_label"], "noisy label": gaps["noisy_part/noisy_label"]},
            plot_dir / "logit_gaps_noisy_part", f"{name}: mislabelled training examples",
        ))  # fmt: skip
    series = {"all, true label": gaps["all/true_label"], "all, training label": gaps["all/train_label"]}
    if (~noisy).any():
        series["clean part, true label"] = gaps["clean_part/true_label"]
    keep(
        "logit_gaps_all",
        plots.logit_gap_densities(series, plot_dir / "logit_gaps_all", f"{name}: training split"),
    )

    projection: dict[str, Any] = {"classes": list(classes), "class_names": [class_names[c] for c in classes]}
    features, rows = train["pre_logits"], train["pre_logit_rows"]
    if len(rows) == 0:
        projection["skipped"] = "no training example of these classes"
    else:
        if len(rows) > e.max_projection_points:
            chosen = np.sort(
                np.random.default_rng(0).choice(len(rows), int(e.max_projection_points), replace=False)
            )
            features, rows = features[chosen], rows[chosen]
        kernel = np.asarray(model.get_layer("logits").kernel)  # (D, L): column c is class c's template
        templates = kernel[:, list(classes)].T
        try:
            points = plots.project_pre_logits(features, templates)
        except ValueError as error:
            projection["skipped"] = str(error)
        else:
            mislabelled = train["is_noisy"][rows]
            keep("projection", plots.pre_logit_projection(
                points, train["clean"][rows], mislabelled, class_names, plot_dir / "projection",
                f"{name}: pre-logits of training examples",
            ))  # fmt: skip
            projection.update(num_points=int(len(rows)), num_mislabelled=int(mislabelled.sum()))

    # ---- metrics.json, TensorBoard, manifest
    scalars = {
        "test/accuracy": test_metrics["accuracy"],
        "test/nll": test_metrics["nll"],
        "test/ece": test_metrics["ece"],
        "train/nll_true": train_metrics["nll_true"],
    }
    scalars.update({f"train/accuracy_{k}": v for k, v in train_metrics["accuracy"].items() if v is not None})
    metrics = {
        "description": dict(description),
        "units": UNITS,
        "model": {
            "name": name,
            "path": str(model_dir),
            "fingerprint": model_manifest["fingerprint"],
            "train_steps": int((model_manifest.get("counts") or {}).get("steps", 0)),
        },
        "data": {
            "path": str(data_dir),
            "fingerprint": data_manifest["fingerprint"],
            "dataset": data_manifest["dataset"],
            "num_classes": num_classes,
        },
        "setting": _setting(model_manifest, data_manifest),
        "test": test_metrics,
        "train": train_metrics,
        "projection": projection,
        "scalars": scalars,
        "plots": written,
    }
    artifacts.atomic_write_json(out_dir / "metrics.json", metrics)
    _write_tensorboard(out_dir, scalars, gaps, written, step=metrics["model"]["train_steps"])
    manifest = artifacts.write_manifest(
        out_dir,
        stage="evaluate",
        fingerprint=fp,
        config=to_plain(config.eval),
        inputs={
            "model": artifacts.input_ref(model_dir, model_manifest),
            "data": artifacts.input_ref(data_dir, data_manifest),
        },
        counts={"test": test["num_examples"], "train": train["num_examples"]},
        exclude=("tensorboard",),
        extra={"model_name": name, "description": dict(description), "scalars": scalars},
    )
    acc = train_metrics["accuracy"]

    def pct(v):
        return "n/a" if v is None else f"{v:.2f}"

    log(
        f"evaluate: test accuracy {test_metrics['accuracy']:.2f}%, NLL {test_metrics['nll']:.4f}, "
        f"ECE {test_metrics['ece']:.4f}; train (true labels) full {pct(acc['full_true'])}%, clean "
        f"{pct(acc['clean_true'])}%, noisy {pct(acc['noisy_true'])}%; noisy part vs noisy labels {pct(acc['noisy_noisy'])}%"
    )
    return manifest


def _write_tensorboard(out_dir: Path, scalars: dict, gaps: dict, plot_files: dict, *, step: int) -> None:
    """Scalars (split/metric), logit-gap histograms and the figures, in out_dir/tensorboard."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(out_dir / "tensorboard"))
    with writer.as_default():
        for key, value in scalars.items():
            tf.summary.scalar(key, value, step=step)
        for key, values in gaps.items():
            if len(values):
                tf.summary.histogram(f"train/logit_gap/{key}", values, step=step)
        for key, rel in plot_files.items():
            image = tf.io.decode_png(tf.io.read_file(str(out_dir / rel)), channels=4)
            tf.summary.image(f"plots/{key}", image[None], step=step)
    writer.close()


# ---------------------------------------------------------------- CLI
def run(argv=None) -> None:
    parser = stage_parser("evaluate", __doc__.splitlines()[0])
    parser.add_argument("--model", help="model artifact directory; default: the one this config trains")
    args, config, _ = parse_stage_args(parser, argv)
    from beam_jobs.noisify import data_artifact_path
    from keras_components import data

    data_dir = data_artifact_path(config, args.workdir)
    data_manifest = data.read_data_manifest(data_dir)
    if args.model:
        model_dir = Path(args.model)
    else:
        from pipeline import train

        input_fp = data_manifest["fingerprint"]
        if config.distill.enabled:
            input_fp = data.read_data_manifest(config.distill.logits_dir)["fingerprint"]
        model_dir = train.model_artifact_path(config, args.workdir, input_fp)
    model_manifest = artifacts.read_manifest(model_dir, what="model artifact")
    trained_on = (model_manifest.get("inputs") or {}).get("data", {}).get("fingerprint")
    if trained_on and trained_on != data_manifest["fingerprint"]:
        print(
            f"evaluate: warning: {model_dir} was trained on data {trained_on[:10]}, "
            f"evaluating on {data_manifest['fingerprint'][:10]} ({data_dir})"
        )
    config_path = model_dir / "config.json"
    model_config = json.loads(config_path.read_text()) if config_path.is_file() else to_plain(config)
    description = describe_model(model_config, _teacher_config_of(model_config))
    out_dir = eval_artifact_path(
        config, args.workdir, model_dir, model_manifest, data_manifest["fingerprint"]
    )
    print(f"evaluate: model {model_dir}")
    evaluate_stage(config, model_dir, data_dir, out_dir, description=description, force=args.force)
    print(f"evaluate: metrics {out_dir / 'metrics.json'}")
    print(f"evaluate: TensorBoard: tensorboard --logdir {out_dir / 'tensorboard'}")
