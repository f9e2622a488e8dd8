"""Estimate the noise transition matrix T from exported logits (Patrini et al. 2017).

    smear estimate-transition --config quickstart --workdir W [--logits DIR] [--force]
        [Beam flags]

Input: the exported logits (`smear export-logits`) of a model trained with plain
cross-entropy on the noisy training labels, so p(x) = softmax(teacher_logits)
estimates the noisy class probabilities. For each class i, take the example x_i
whose p_i(x) is at the q-th percentile of p_i over all examples
(config.estimate.percentile; Patrini's 97, 100 = the argmax) and set row i of T
to p(x_i). Rows are probability vectors, renormalised against float error.

Distributed in two passes, nothing collected on one worker: (1) Beam's
ApproximateQuantiles per class, 1001 quantiles so the percentile is resolved to
0.1% of the examples (exact while the data fit its buffers); (2) per class, the
example whose p_i is closest to that value (ties: the smallest id), by a
combiner that carries p(x). Writes `transition.npy` and `transition.json`
({"transition", "percentile", "rows_from_ids", ...}; `label_smearing.modeling.noise.
load_transition` reads either, as does `--config.loss.transition_file`), then the
manifest.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.stats import ApproximateQuantiles

from label_smearing.beam_core.runners import make_pipeline, pipeline_options
from label_smearing.core import artifacts, layout
from label_smearing.core.cli_common import command_parser, parse_stage_args
from label_smearing.core.errors import UserError
from label_smearing.core.lifecycle import run_standalone
from label_smearing.core.registry import ESTIMATE_TRANSITION, EXPORT_LOGITS, StageRequest
from label_smearing.core.schema import read_features
from label_smearing.modeling.losses import CE

NUM_QUANTILES = 1001  # quantile k / 1000 for k = 0..1000: percentiles in steps of 0.1
DEAD_LETTER = "dead_letter"
RESULT_FILE = ".estimate-rows.json"
BATCH_SIZE = 1024


# ---------------------------------------------------------------- transforms
class ToProbabilities(beam.DoFn):
    """Serialised Example -> (id, p(x) float64 [L]); unreadable records go to `dead_letter`."""

    def __init__(self, num_classes: int):
        self._num_classes = num_classes
        self._bad = Metrics.counter(ESTIMATE_TRANSITION, "dead_letter")

    def process(self, record: bytes):
        example_id, feature = read_features(record)
        reason = "not a serialised tf.train.Example" if feature is None else None
        if reason is None:
            logits = np.asarray(
                feature["teacher_logits"].float_list.value if "teacher_logits" in feature else []
            )
            if logits.shape != (self._num_classes,):
                reason = f"teacher_logits has {logits.size} values, expected {self._num_classes}"
            elif example_id == "?":
                reason = "missing feature id"
            elif not np.all(np.isfinite(logits)):
                reason = "teacher_logits not finite"
        if reason is not None:
            self._bad.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, f"{example_id}\t{reason}")
            return
        z = logits.astype(np.float64) - logits.max()
        p = np.exp(z)
        yield example_id, p / p.sum()


def _stack(batch: Sequence[tuple[str, np.ndarray]]) -> tuple[list[str], np.ndarray]:
    return [example_id for example_id, _ in batch], np.stack([p for _, p in batch])


def class_columns(batch):
    """A batch of (id, p) -> (class i, [p_i of each example]) for every class."""
    _, probs = _stack(batch)
    for i in range(probs.shape[1]):
        yield i, probs[:, i].tolist()


def closest_in_batch(batch, targets: dict):
    """A batch of (id, p) -> per class i, (|p_i - target_i|, id, p) of its closest example."""
    ids, probs = _stack(batch)
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable")  # ties go to the smallest id
    ids, probs = [ids[k] for k in order], probs[order]
    for i, target in targets.items():
        distance = np.abs(probs[:, i] - target)
        k = int(np.argmin(distance))  # the first minimum: the smallest id among ties
        yield i, (float(distance[k]), ids[k], probs[k].tolist())


class ClosestFn(beam.CombineFn):
    """Keeps the (distance, id, p) with the smallest distance, then the smallest id: order-free."""

    def create_accumulator(self):
        return None

    def add_input(self, best, candidate):
        return candidate if best is None or tuple(candidate[:2]) < tuple(best[:2]) else best

    def merge_accumulators(self, accumulators):
        best = None
        for candidate in accumulators:
            if candidate is not None:
                best = self.add_input(best, candidate)
        return best

    def extract_output(self, best):
        return best


def _row(item, targets):
    i, (distance, example_id, p) = item
    return i, {"quantile": targets[i], "distance": distance, "id": example_id, "p": p}


class EstimateRows(beam.PTransform):
    """(id, p(x)) -> one (class i, {"quantile", "distance", "id", "p"}) per class.

    Args:
      percentile: q in [0, 100]; resolved to the nearest 0.1.
    """

    def __init__(self, percentile: float):
        super().__init__()
        self._index = int(round(percentile / 100.0 * (NUM_QUANTILES - 1)))

    def expand(self, probabilities):
        batches = probabilities | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=BATCH_SIZE)
        targets = (
            batches
            | "Columns" >> beam.FlatMap(class_columns)
            | "Quantiles" >> ApproximateQuantiles.PerKey(NUM_QUANTILES, input_batched=True)
            | "AtPercentile" >> beam.MapTuple(lambda i, quantiles, k=self._index: (i, quantiles[k]))
        )
        return (
            batches
            | "ClosestInBatch" >> beam.FlatMap(closest_in_batch, beam.pvalue.AsDict(targets))
            | "Closest" >> beam.CombinePerKey(ClosestFn())
            | "WithTarget" >> beam.Map(_row, beam.pvalue.AsDict(targets))
        )


def _write_json(obj, path: str) -> None:
    with FileSystems.create(path) as f:
        f.write(json.dumps(obj).encode())


def build_pipeline(p, *, files, num_classes, percentile, out_dir):
    """Wires the job: TFRecords -> p(x) -> per-class rows and a count -> one JSON file + dead letters."""
    reads = [p | f"Read-{i}" >> beam.io.ReadFromTFRecord(path) for i, path in enumerate(files)]
    probabilities = (
        reads
        | "Inputs" >> beam.Flatten()
        | "Probabilities" >> beam.ParDo(ToProbabilities(num_classes)).with_outputs(DEAD_LETTER, main="valid")
    )
    rows = probabilities.valid | "Estimate" >> EstimateRows(percentile)
    count = probabilities.valid | "Count" >> beam.combiners.Count.Globally()
    _ = (
        rows
        | "AllRows" >> beam.combiners.ToDict()  # L small records, not the data
        | "WithCount" >> beam.Map(lambda r, n: {"rows": r, "records": n}, beam.pvalue.AsSingleton(count))
        | "WriteRows" >> beam.Map(_write_json, os.path.join(out_dir, RESULT_FILE))
    )
    _ = probabilities[DEAD_LETTER] | "WriteDeadLetter" >> beam.io.WriteToText(
        os.path.join(out_dir, DEAD_LETTER), file_name_suffix=".txt", shard_name_template=""
    )
    return rows


# ---------------------------------------------------------------- launcher
def validate_config(config) -> None:
    q = config.estimate.percentile
    if not 0.0 <= q <= 100.0:
        raise UserError(f"estimate.percentile must be in [0, 100], got {q}")


def estimate_stage(
    config,
    logits_dir,
    out_dir,
    *,
    force: bool = False,
    beam_args: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> dict:
    """Estimates T from the exported logits in `logits_dir` into `out_dir`; returns the manifest.

    Raises:
      UserError: missing or incomplete logits artifact, a bad percentile, a
        complete `out_dir` without `force`, or records lost during the job.
    """
    from label_smearing.core import tfdata

    validate_config(config)
    artifacts.read_manifest(logits_dir, what="logits artifact", verify=False)  # names a missing input aptly
    manifest = tfdata.read_data_manifest(logits_dir)
    split = "train" if "train" in manifest["splits"] else next(iter(manifest["splits"]))
    files = tfdata.split_files(logits_dir, manifest, split)
    num_classes, expected = int(manifest["num_classes"]), int(manifest["splits"][split]["num_examples"])
    percentile = float(config.estimate.percentile)
    log(f"estimate-transition: {percentile:g}th percentile over {expected} {split} examples of {logits_dir}")

    started = time.time()
    out_dir = artifacts.prepare_output(out_dir, force=force)
    with make_pipeline(beam_args) as p:
        build_pipeline(p, files=files, num_classes=num_classes, percentile=percentile, out_dir=str(out_dir))
    elapsed = time.time() - started

    result_path = out_dir / RESULT_FILE
    result = json.loads(result_path.read_text()) if result_path.exists() else {"rows": {}, "records": 0}
    result_path.unlink(missing_ok=True)
    dead_path = out_dir / f"{DEAD_LETTER}.txt"
    dead = len(dead_path.read_text().splitlines()) if dead_path.exists() else 0
    if dead_path.exists() and dead == 0:
        dead_path.unlink()
    if result["records"] + dead != expected:
        raise UserError(
            f"read {result['records']} records and {dead} bad ones, but {logits_dir} lists {expected}; "
            "no manifest written"
        )
    rows = {int(i): row for i, row in result["rows"].items()}
    if sorted(rows) != list(range(num_classes)):
        raise UserError(f"no usable records in {logits_dir} (see {dead_path}); no manifest written")

    transition = np.array([rows[i]["p"] for i in range(num_classes)], np.float64)
    transition /= transition.sum(axis=1, keepdims=True)
    buffer = io.BytesIO()
    np.save(buffer, transition)
    artifacts.atomic_write_bytes(out_dir / "transition.npy", buffer.getvalue())
    condition = float(np.linalg.cond(transition))
    summary = {
        "transition": transition.tolist(),
        "condition_number": condition,
        "percentile": percentile,
        "rows_from_ids": [rows[i]["id"] for i in range(num_classes)],
        "quantile_values": [rows[i]["quantile"] for i in range(num_classes)],
        "num_examples": result["records"],
        "dead_letter_records": dead,
    }
    artifacts.atomic_write_json(out_dir / "transition.json", summary)
    out = artifacts.write_manifest(
        out_dir,
        stage=ESTIMATE_TRANSITION,
        fingerprint=layout.transition_fingerprint_of(config, manifest["fingerprint"]),
        config=layout.estimate_section(config),
        inputs={"logits": artifacts.input_ref(logits_dir, manifest)},
        counts={"examples": result["records"], DEAD_LETTER: dead},
        extra={
            "num_classes": num_classes,
            "percentile": percentile,
            "transition": transition.tolist(),
            "condition_number": condition,
            "seconds": round(elapsed, 2),
        },
    )
    diagonal = ", ".join(f"{v:.3f}" for v in np.diag(transition)[:10])
    log(
        f"estimate-transition: T ({num_classes}x{num_classes}) in {elapsed:.1f} s; diagonal [{diagonal}"
        + (", ...]" if num_classes > 10 else "]")
        + f"; condition number {condition:.3g}"
        + (" (too ill-conditioned for backward correction)" if not condition < 1e8 else "")
        + (f"; {dead} bad records in {dead_path}" if dead else "")
    )
    return out


def default_logits_dir(config, workdir) -> Path:
    """The exported train-split logits of this config's baseline (cross-entropy) teacher under `workdir`."""
    from label_smearing.core import tfdata
    from label_smearing.core.spec import TEACHER, ModelSpec

    baseline = ModelSpec(TEACHER, CE, seed=config.train.seed)
    model, data_dir = layout.configured_model(baseline.apply(config), workdir)
    if not artifacts.is_complete(model.path):
        raise UserError(
            f"no cross-entropy teacher at {model.path}; train one, export its logits, or pass --logits"
        )
    model_fp = artifacts.read_manifest(model.path, what="model artifact", verify=False)["fingerprint"]
    data_fp = tfdata.read_data_manifest(data_dir, verify=False)["fingerprint"]
    return artifacts.path(layout.logits(config, workdir, model.name, model_fp, data_fp, "train").path)


def compute_planned(request: StageRequest) -> dict:
    """A plan node's T, from its baseline teacher's exported logits (`registry.STAGES`' entry point)."""
    return estimate_stage(
        request.config, request.input(EXPORT_LOGITS), request.out_dir, force=request.force,
        beam_args=request.beam_args, log=request.log,
    )  # fmt: skip


def run(argv=None) -> None:
    args, config, beam_args = parse_stage_args(
        command_parser(ESTIMATE_TRANSITION), argv, known_only=True, validate=validate_config,
        extra_flags=pipeline_options,
    )  # fmt: skip
    logits_dir = artifacts.path(args.logits) if args.logits else default_logits_dir(config, args.workdir)
    manifest = artifacts.read_manifest(logits_dir, what="logits artifact", verify=False)
    teacher = manifest.get("teacher", {}).get("path") or logits_dir
    transition = layout.transition(config, args.workdir, layout.base_name(teacher), manifest["fingerprint"])
    inputs = {EXPORT_LOGITS: [logits_dir]}
    run_standalone(transition, config, compute_planned, inputs=inputs, force=args.force, beam_args=beam_args)
    print(f"estimate-transition: {artifacts.join(transition.path, layout.TRANSITION_FILE)}")
