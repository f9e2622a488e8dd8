"""Evaluate one trained model: the per-model numbers and figures of the paper.

    smear evaluate --config quickstart --workdir W [--model DIR] [--force]

One forward pass per split gives logits and pre-logits (batches of
config.eval.batch_size, decoded and normalised by label_smearing.core.tfdata exactly
as in training). From them:

- clean test split: accuracy, NLL, top-label ECE (config.eval.num_bins bins) and
  a reliability diagram;
- validation split (held out of the noisy training split by noisify, when the
  data have one): accuracy against its noisy labels (what a practitioner can
  measure, and what the report chooses alpha on) and against its clean labels;
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
`plots/*.png|svg` (unless config.eval.figures is off: the numbers alone, about
3.5 s less per evaluation on 2 CPU cores), `tensorboard/` (scalars, histograms and
the figures; not checksummed) and, last, `manifest.json`.

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

from label_smearing.core import artifacts, layout, trained_model
from label_smearing.core.cli_common import command_parser, parse_stage_args
from label_smearing.core.config import to_plain
from label_smearing.core.errors import UserError
from label_smearing.core.lifecycle import run_standalone
from label_smearing.core.registry import EVALUATE, NOISIFY, TRAIN, StageRequest
from label_smearing.core.spec import ModelSpec

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


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _checked(dataset, data_dir: Path, files: list[str], num_classes: int):
    """Yields `dataset`'s batches; corrupt records or labels outside [0, L) become a one-line UserError."""
    import tensorflow as tf

    from label_smearing.core import tfdata

    iterator = iter(dataset)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            explained = tfdata.explain_input_error(e, data_dir, files, num_classes)
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
    from label_smearing.core import tfdata
    from label_smearing.modeling.metrics import ReliabilityBins

    dataset = tfdata.make_dataset(
        data_dir, split, batch_size=batch_size, training=False, num_classes=num_classes,
        include_metadata=True, manifest=data_manifest, cache=False,
    )  # fmt: skip
    columns: dict[str, list] = {
        k: [] for k in ("prediction", "label", "clean", "is_noisy", "nll", "gap_true", "gap_label")
    }
    pre_logits, pre_rows = [], []
    bins = ReliabilityBins(num_bins) if num_bins else None
    offset = 0
    for batch in _checked(dataset, data_dir, tfdata.split_files(data_dir, data_manifest, split), num_classes):
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
            bins.update(probs, clean)
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
        result["bins"] = bins.result()
    if keep_pre_logits_of:
        result["pre_logits"] = np.concatenate(pre_logits)
        result["pre_logit_rows"] = np.concatenate(pre_rows)
    return result


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
        f"{noise_cfg['model']} noise {noise_cfg.get('annotation') or noise_cfg.get('rate', '')}".strip()
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
def _check_eval_config(e: ml_collections.ConfigDict, num_classes: int) -> tuple[int, int, int]:
    """The projection classes, after checking every eval value; a one-line UserError names a bad one."""
    if e.num_bins < 1:
        raise UserError(f"eval.num_bins must be >= 1, got {e.num_bins}")
    if e.batch_size < 1:
        raise UserError(f"eval.batch_size must be >= 1, got {e.batch_size}")
    classes = tuple(int(c) for c in e.projection_classes)
    if len(classes) != 3 or len(set(classes)) != 3 or not all(0 <= c < num_classes for c in classes):
        raise UserError(
            f"eval.projection_classes must be 3 distinct classes in [0, {num_classes}), got {classes}"
        )
    if e.max_projection_points < 1:
        raise UserError(f"eval.max_projection_points must be >= 1, got {e.max_projection_points}")
    return classes


def validation_numbers(passed: dict) -> dict:
    """Validation accuracy (%) against the split's noisy labels and against its clean labels."""
    return {
        "num_examples": passed["num_examples"],
        "noise_rate": float(passed["is_noisy"].mean()),
        "accuracy_noisy": float(100.0 * np.mean(passed["prediction"] == passed["label"])),
        "accuracy_clean": float(100.0 * np.mean(passed["prediction"] == passed["clean"])),
    }


def _numbers(test: dict, train: dict, num_bins: int) -> tuple[dict, dict, dict]:
    """(test metrics, train metrics, logit gaps by series) from the two forward passes."""
    bins = test["bins"]
    test_metrics = {
        "num_examples": test["num_examples"],
        "accuracy": float(100.0 * np.mean(test["prediction"] == test["clean"])),
        "nll": float(np.mean(test["nll"])),
        "ece": bins["ece"],
        "num_bins": num_bins,
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
    return test_metrics, train_metrics, gaps


def _figures(
    model, name: str, test: dict, train: dict, gaps: dict, class_names: list[str], classes: tuple[int, ...],
    max_points: int, out_dir: Path,
) -> tuple[dict[str, str], dict[str, Any]]:  # fmt: skip
    """Draws the reliability diagram, logit-gap densities and pre-logit projection into out_dir/plots.

    Returns:
      ({figure key: path relative to out_dir}, the projection's description).
    """
    from label_smearing.core import plots

    bins, noisy = test["bins"], train["is_noisy"]
    plot_dir = out_dir / "plots"
    written: dict[str, str] = {}

    def keep(key: str, paths: list[Path]) -> None:
        written[key] = str(paths[0].relative_to(out_dir))

    keep(
        "reliability", plots.reliability_diagram(bins, plot_dir / "reliability", f"{name}: clean test split")
    )
    if noisy.any():
        noisy_part = {
            "true label": gaps["noisy_part/true_label"],
            "noisy label": gaps["noisy_part/noisy_label"],
        }
        keep("logit_gaps_noisy_part", plots.logit_gap_densities(
            noisy_part, plot_dir / "logit_gaps_noisy_part", f"{name}: mislabelled training examples",
        ))  # fmt: skip
        # The figure's data beside it: the report redraws Figure 3's panels from them on one x-axis.
        plots.save_series(noisy_part, plot_dir / "logit_gaps_noisy_part.npz")
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
        return written, projection
    if len(rows) > max_points:
        chosen = np.sort(np.random.default_rng(0).choice(len(rows), int(max_points), replace=False))
        features, rows = features[chosen], rows[chosen]
    kernel = np.asarray(model.get_layer("logits").kernel)  # (D, L): column c is class c's template
    try:
        points = plots.project_pre_logits(features, kernel[:, list(classes)].T)
    except ValueError as error:
        projection["skipped"] = str(error)
        return written, projection
    mislabelled = train["is_noisy"][rows]
    keep("projection", plots.pre_logit_projection(
        points, train["clean"][rows], mislabelled, class_names, plot_dir / "projection",
        f"{name}: pre-logits of training examples",
    ))  # fmt: skip
    projection.update(num_points=int(len(rows)), num_mislabelled=int(mislabelled.sum()))
    return written, projection


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
        projection_classes, max_projection_points, figures).
      model_dir: a complete model artifact (`model.keras`, manifest).
      data_dir: the noisify data artifact (clean test split; train split with
        noisy `label`, `clean_label`, `is_noisy`).
      out_dir: the evaluation artifact directory to write.
      description: what the pipeline knows about the model (`ModelSpec.describe`);
        stored in metrics.json, and the report groups by it.
      force: recompute even if `out_dir` holds a complete evaluation.
      log: where progress lines go.

    Returns:
      The manifest of `out_dir` (read back if the evaluation was cached).

    Raises:
      UserError: missing or incomplete inputs, a model whose classes or input
        shape differ from the data's, bad eval config values.
    """
    from label_smearing.core import tfdata

    ModelSpec.from_description(description)  # a UserError unless the report can group by it
    e = config.eval
    model_dir, data_dir, out_dir = (
        artifacts.path(model_dir),
        artifacts.path(data_dir),
        artifacts.path(out_dir),
    )
    model_manifest, model_path = trained_model.read(model_dir)
    data_manifest = tfdata.read_data_manifest(data_dir)
    fp = layout.evaluation_fingerprint(config, model_manifest["fingerprint"], data_manifest["fingerprint"])
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
    classes = _check_eval_config(e, num_classes)
    model = trained_model.load(model_path)
    trained_model.check_fits(model, model_dir, data_dir, num_classes, image_shape)

    # Compute: one pass over each split.
    out_dir = artifacts.prepare_output(out_dir, force=force)
    name = str(model_manifest.get("model_name") or model_dir.name)
    log(f"evaluate: {name} on {tfdata.describe(data_manifest)} -> {out_dir}")
    forward = trained_model.forward_function(model, image_shape)  # one trace, all splits and batch sizes
    common = {"batch_size": int(e.batch_size), "num_classes": num_classes}
    test = _forward_pass(forward, data_dir, data_manifest, "test", num_bins=int(e.num_bins), **common)
    train = _forward_pass(
        forward, data_dir, data_manifest, "train", num_bins=0, keep_pre_logits_of=classes, **common
    )
    test_metrics, train_metrics, gaps = _numbers(test, train, int(e.num_bins))
    validation_metrics = None
    if "validation" in data_manifest["splits"]:
        validation_metrics = validation_numbers(
            _forward_pass(forward, data_dir, data_manifest, "validation", num_bins=0, **common)
        )

    # Draw.
    class_names = list(data_manifest.get("class_names") or [str(i) for i in range(num_classes)])
    if e.get("figures", True):
        written, projection = _figures(
            model, name, test, train, gaps, class_names, classes, int(e.max_projection_points), out_dir
        )
    else:
        written = {}
        projection = {"classes": list(classes), "class_names": [class_names[c] for c in classes],
                      "skipped": "eval.figures is off"}  # fmt: skip

    # Write: metrics.json, TensorBoard, the manifest last.
    manifest = _write(
        config, out_dir, fp, description, model_dir, model_manifest, data_dir, data_manifest,
        test_metrics, train_metrics, validation_metrics, gaps, projection, written,
    )  # fmt: skip
    acc = train_metrics["accuracy"]

    def pct(v):
        return "n/a" if v is None else f"{v:.2f}"

    log(
        f"evaluate: test accuracy {test_metrics['accuracy']:.2f}%, NLL {test_metrics['nll']:.4f}, "
        f"ECE {test_metrics['ece']:.4f}; train (true labels) full {pct(acc['full_true'])}%, clean "
        f"{pct(acc['clean_true'])}%, noisy {pct(acc['noisy_true'])}%; noisy part vs noisy labels {pct(acc['noisy_noisy'])}%"
        + (
            f"; validation {validation_metrics['accuracy_noisy']:.2f}% (noisy labels), "
            f"{validation_metrics['accuracy_clean']:.2f}% (clean labels)"
            if validation_metrics
            else ""
        )
    )
    return manifest


def _write(
    config, out_dir: Path, fp: str, description: dict, model_dir: Path, model_manifest: dict, data_dir: Path,
    data_manifest: dict, test_metrics: dict, train_metrics: dict, validation_metrics: dict | None, gaps: dict,
    projection: dict, written: dict,
) -> dict:  # fmt: skip
    """metrics.json, the TensorBoard summaries and, last, the manifest; returns the manifest."""
    name = str(model_manifest.get("model_name") or model_dir.name)
    num_classes = int(data_manifest["num_classes"])
    scalars = {
        "test/accuracy": test_metrics["accuracy"],
        "test/nll": test_metrics["nll"],
        "test/ece": test_metrics["ece"],
        "train/nll_true": train_metrics["nll_true"],
    }
    scalars.update({f"train/accuracy_{k}": v for k, v in train_metrics["accuracy"].items() if v is not None})
    if validation_metrics:
        scalars.update(
            {f"validation/{k}": validation_metrics[k] for k in ("accuracy_noisy", "accuracy_clean")}
        )
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
        "training": _training(model_dir, model_manifest),
        "test": test_metrics,
        "train": train_metrics,
        "validation": validation_metrics,
        "projection": projection,
        "scalars": scalars,
        "plots": written,
    }
    artifacts.atomic_write_json(out_dir / "metrics.json", metrics)
    _write_tensorboard(out_dir, scalars, gaps, written, step=metrics["model"]["train_steps"])
    manifest = artifacts.write_manifest(
        out_dir,
        stage=EVALUATE,
        fingerprint=fp,
        config=to_plain(config.eval),
        inputs={
            "model": artifacts.input_ref(model_dir, model_manifest),
            "data": artifacts.input_ref(data_dir, data_manifest),
        },
        counts={"test": test_metrics["num_examples"], "train": train_metrics["num_examples"]}
        | ({"validation": validation_metrics["num_examples"]} if validation_metrics else {}),
        exclude=("tensorboard",),
        extra={"model_name": name, "description": dict(description), "scalars": scalars},
    )
    return manifest


def _training(model_dir: Path, model_manifest: dict) -> dict:
    """What the model's training recorded: whether (and where) it diverged and from which step its
    training risk was negative (both by today's rule, `core/curves.py`, applied to its history.json,
    whatever the train stage recorded when it ran), whether it resumed from a back-up (and whether
    bit-identically), and its per-epoch curves."""
    from label_smearing.core.curves import curves_of, first_divergence, first_negative_risk

    try:
        history = json.loads((model_dir / "history.json").read_text())
    except (OSError, ValueError):
        history = {}
    epochs = history.get("epochs") or []
    limit = ((model_manifest.get("config") or {}).get("train") or {}).get("divergence_logit_limit")
    return {
        "diverged": first_divergence(epochs, float(limit))
        if limit is not None
        else model_manifest.get("diverged"),
        "negative_risk_from_step": first_negative_risk(epochs),
        "resumed": model_manifest.get("resumed"),
        "curves": curves_of(epochs),
    }


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
def compute_planned(request: StageRequest) -> dict:
    """A plan node's evaluation of its model on its data (`registry.STAGES`' entry point)."""
    return evaluate_stage(
        request.config, request.input(TRAIN), request.input(NOISIFY), request.out_dir,
        description=request.description, force=request.force, log=request.log,
    )  # fmt: skip


def run(argv=None) -> None:
    args, config, _ = parse_stage_args(command_parser(EVALUATE), argv)
    from label_smearing.core import tfdata

    # Paths and fingerprints only: evaluate_stage verifies both artifacts' checksums when it reads them.
    data_dir = artifacts.path(layout.data(config, args.workdir).path)
    data_manifest = tfdata.read_data_manifest(data_dir, verify=False)
    model_dir = (
        artifacts.path(args.model)
        if args.model
        else artifacts.path(layout.configured_model(config, args.workdir)[0].path)
    )
    model_manifest = artifacts.read_manifest(model_dir, what="model artifact", verify=False)
    trained_on = (model_manifest.get("inputs") or {}).get("data", {}).get("fingerprint")
    if trained_on and trained_on != data_manifest["fingerprint"]:
        print(
            f"evaluate: warning: {model_dir} was trained on data {trained_on[:10]}, "
            f"evaluating on {data_manifest['fingerprint'][:10]} ({data_dir})"
        )
    config_path = model_dir / "config.json"
    model_config = json.loads(config_path.read_text()) if config_path.is_file() else to_plain(config)
    teacher_config = tfdata.teacher_config_of((model_config.get("distill") or {}).get("logits_dir"))
    spec = ModelSpec.from_config(model_config, teacher_config)
    # Named as `smear run` names it: after the model's directory, else the name its manifest records.
    named = model_dir.name.endswith(f"-{model_manifest['fingerprint'][:10]}")
    name = layout.base_name(model_dir) if named else str(model_manifest.get("model_name") or spec.name)
    evaluation = layout.evaluation(
        config, args.workdir, name, model_manifest["fingerprint"], data_manifest["fingerprint"]
    )
    out_dir = artifacts.path(evaluation.path)
    print(f"evaluate: model {model_dir}")
    inputs = {TRAIN: [model_dir], NOISIFY: [data_dir]}
    run_standalone(
        evaluation, config, compute_planned, inputs=inputs, force=args.force, description=spec.describe()
    )
    print(f"evaluate: metrics {out_dir / 'metrics.json'}")
    print(f"evaluate: TensorBoard: tensorboard --logdir {out_dir / 'tensorboard'}")
