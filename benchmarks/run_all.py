"""Run every benchmark in benchmarks/ in sequence and write results/benchmarks.md.

    .venv/bin/python benchmarks/run_all.py            # what `make bench` runs (13-26 minutes on 2 cores; see below)
    .venv/bin/python benchmarks/run_all.py --quick    # small settings, to check the scripts work (JSON + .md in a temp dir)
    .venv/bin/python benchmarks/run_all.py --render   # only re-render the .md from results/benchmarks/*.json
    .venv/bin/python benchmarks/run_all.py --only train,memory

Runs noisify, export, train, train_process and memory (DEFAULT; `--only jobs` adds jobs: each script in its own process,
one after the other, so they do not compete for the 2 cores), then renders one Markdown table
per benchmark from its JSON, with the machine (CPU model, cores, memory, load, date)
at the top, followed by what was profiled and what remains. A benchmark that fails is
reported as failed and the others still run.

Time, measured in two consecutive runs: 26 and 23 minutes on 2026-12-06's AMD EPYC host (noisify
79-93 s, export 38-46 s, train 631 s and less, train_process 557-663 s, memory 113-119 s), 15 and
13 minutes on 2026-12-07's Intel Xeon host (noisify 57-66 s, export 69-80 s, train 277-342 s,
train_process 301-305 s, memory 79-80 s); each run's are in run.json. jobs alone, with
FULL_ARGS' `fmnist_cell` workload, took about 9 minutes on 2026-12-04 (its quickstart workload 28 more).

Verdicts: a target that carries an interval (`low`, `high`: the min-max of per-pair or
per-repeat ratios, or a stated interval of their median) is "met" when the whole interval
satisfies it, **MISSED** when none of it does, and *undecided* when the interval straddles
the threshold; a target with a single value is met or MISSED.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "benchmarks"
MARKDOWN = ROOT / "results" / "benchmarks.md"
# A new benchmark: benchmarks/NAME.py (its docstring's first line is the section's title), then one entry
# here, and in QUICK_ARGS; OUTPUT_FLAG if it does not take --output, RENDER if render_generic (a JSON
# with "table" and "targets") does not fit it, FINDINGS for what was profiled.
BENCHMARKS = ("noisify", "export", "train", "train_process", "memory", "jobs")
# What `make bench` runs: every benchmark but jobs (whole `smear run`s three ways: 15-40 minutes alone;
# `make bench-jobs`, or --only jobs).
DEFAULT = ("noisify", "export", "train", "train_process", "memory")
OUTPUT_FLAG = {"noisify": "--out"}  # the flag naming the JSON file; default --output
# What a full run passes beyond the scripts' defaults: train_process's teacher at 300 of its 800 steps
# (an 800-step process took 160-210 s on 2026-12-06's slow host, and 3 pairs of 400-step ones, whose
# ratios spread over 0.80-0.95, read undecided twice: 5 shorter pairs, judged on each side's best run).
FULL_ARGS = {"jobs": ["--workloads", "fmnist_cell"], "train_process": ["--steps", "300"]}
RUN_RECORD = "run.json"  # in the results directory: each benchmark's status, seconds and load before / after
QUICK_ARGS = {
    "noisify": ["--examples", "3000", "--scale", "2"],
    "export": ["--examples", "1024", "--repeats", "1"],
    "train": ["--steps-per-epoch", "4", "--epochs", "1", "--repeats", "2", "--examples", "512",
              "--matmul-size", "1024", "--loss-rounds", "3", "--loss-chunk-steps", "2"],
    "train_process": ["--pairs", "2", "--steps", "20", "--steps-per-epoch", "10"],
    "memory": ["--steps", "10", "--train-examples", "2000", "--test-examples", "500"],
    "jobs": ["--quick", "--workloads", "quickstart"],
}  # fmt: skip
BUSY_LOAD = 2.5

# What was profiled where a target was missed, what was changed and what remains (issue 9);
# numbers measured on 2026-11-25 on the 2-core machine named at the top of the report.
FINDINGS = {
    "noisify": "",
    "export": """
**Findings.** On 2026-11-25 the stage, then always a Beam job, missed 0.8x at 4096 examples by
the Beam pipeline's fixed start-up (about 0.6 s against a 1 s predict; 0.83x wall at 16384). Now
a split of at most 32,768 examples is exported in the stage's own process, with the
Beam job's functions on the Beam job's batches and byte-identical shards
(tests/test_export_logits.py); the Beam job, the third row, still pays that start-up.
""",
    "train": """
**Findings.**

- Profiled with the TensorFlow profiler (`tf.profiler.experimental` trace of 10 bare-Keras
  ResNet-20 steps; op statistics with xprof's `framework_op_stats`, installed only for this):
  convolutions (oneDNN) took 67% of the busy CPU time and Keras 3's *unfused* BatchNormalization
  (Mean, SquaredDifference, Mul, Sub, Tile, Sum, AddN, forward and backward) about 30%. PyTorch's
  fused batch norm is 19% of its step (`torch.profiler`). Before the fix PyTorch was 1.19x faster
  on ResNet-20 (815 vs 687 images/s; the stage/PyTorch target was missed at 0.85x).
- Changed: `label_smearing.modeling.models.FusedBatchNormalization`, used by both model builders, runs
  TensorFlow's FusedBatchNormV3 in training (same outputs, gradients and moving statistics
  within 1e-5, tested; other cases fall back to Keras' code), and the train stage saves a
  plain-Keras copy (`models.plain_copy`), so `model.keras` still loads without this package.
  Alternating fresh-process A/B runs: ResNet-20 687/663 -> 878/852 images/s, ResNet-32 326/315
  -> 422/414 (1.28-1.31x), for the stage and any user of `label_smearing.modeling.models`.
- Tried, not kept: `TF_ENABLE_ONEDNN_OPTS=0` (384-390 images/s, vs 687), one inter-op thread
  (641-655); XLA is 4x slower on CPU on this machine.
- Remains: the step reaches about 75% of the large-matmul rate (convolutions of 16-64 channels
  on 8-32 pixel maps run below large-GEMM speed; batch-norm, ReLU and add are memory-bound).
- The loss cannot matter: with its gradient it took 13-17 us per batch against a step of about
  150 ms (< 0.02%).
- Noise: this is a shared 2-core VM. While another process took a core (a test suite) one
  default run had the stage at 0.86-0.93x Keras with images per CPU second at 1.01-1.04x, and
  PyTorch's OpenMP threads lost up to 3x. Judge a re-run by its intervals, the CPU-second
  ratios and the load average printed below it.
""",
    "train_process": """
**Findings.** Where `smear train` spent its time outside Keras' own step, profiled after the 2026-12-04
run on the code of then (`python -m cProfile -m label_smearing.cli train ...` with 200 steps, and a
`smear train` of 100 steps timed line by line; a test suite ran beside both): the learning curves took
about 1.6 s per epoch (`curves.measure`: three 1000-example subsamples; 8 epochs here, about 13 s, inside
`fit s`), importing TensorFlow and Beam about 6.5 s, the stage's own reading, checks and saving about
1.4 s, and the interpreter's teardown after the manifest was written 1.4-6.8 s (TensorFlow's objects;
`os._exit` after a flush removes it). Neither bare side does the curves. The two levers found:
`train.curve_examples=0` (no curves) and a hard exit after the manifest (which skips Python's exit
handlers and needs care).

The final training losses differ by the order of the examples alone: the stage repeats its input, then
shuffles across pass boundaries; bare-tfdata shuffles each pass. With the same compiled model in one
process, 800 steps over the stage's `tfdata.make_dataset` ended at loss 0.635, accuracy 0.831 (as `smear
train` does), over bare-tfdata's pipeline at 0.479, 0.885 (measured 2026-12-06).

Why the bare side's time leaves out its iterator's release (found 2026-12-07): in three `make bench`
runs of 2026-12-06 afternoon (300 steps), 9 of 19 bare processes (bare-tfdata and bare-numpy) ran at
1.05-1.26 cores busy instead of about 1.75, each taking 89.7-91.5 s with its CPU seconds in the usual
range; in the two evening runs 6 of 12 bare fits took 83.9-84.4 s, the others 40.4-63.7 s; no `smear
train` process did (its fits 49.7-61.5 s). Sampled once a second, such a process trains as fast as the
others, then sits at 0.0 cores for 19-40 s at the end of `model.fit`. A gdb backtrace during the wait
(2026-12-07, Intel host, where 4 of 8 bare fits in a row took 43.9-44.2 s, 12.8-14.6 s of it this
wait, against 29.8-32.8 s) has the main thread in the destructor of tf.data's root iterator, which
Keras drops when fit returns, waiting for the iterator's autotuning thread; that thread sits in
`Model::OptimizeLoop`'s timed wait, sleeps that double from 10 ms, so fit ends at its next wake-up,
20.5, 40.9 or 81.9 s after it started, whatever the steps took. The four `make bench` runs of
2026-12-06 read 1.012 (met), 0.820 (MISSED), 0.762 (undecided) and 1.154 (met) as that wait fell on
the bare side's best runs or not. Each bare run now records the wait (iterator release s) and the
anchor is judged without it; smear is charged everything. In the two quiet runs of 2026-12-07, 8 of
12 bare fits waited 1.1-2.3 s (ending at 22.0-22.1 s against 20.1-20.9 s); both runs read 0.930,
met, and the second would have read 1.017 with the waits. Whether smear's fits escape it is not
settled: they never showed the long waits, a short one would not show in them, and building the
model and optimizer before `fit`, as the stage does, left 3 of 8 bare fits waiting (10.6-13.3 s).
Also ruled out on 2026-12-06: the input pipeline (the stage's `tfdata.make_dataset` and
bare-tfdata's pipeline took the same CPU seconds in one process, ratio 0.96-1.08; both had epochs
of exactly 10.24 s, 3 of 8 each, which fits a sleep of the same thread, 10 ms x 2^10), and the
per-batch callbacks (a no-op `on_train_batch_end` changed nothing).
What remains in the stage: the learning curves, 4-5% of an epoch (0.7-0.9 s after a 100-step epoch of
19-21 s, measured in process; 1.9 s after the first, which reads the subsamples); the back-ups and
TensorBoard about 1% (cProfile of a 300-step stage: 53.4 s of its 58.3 s fit in Keras' train function).
""",
    "memory": """
**Findings.** Every stage peaks at 0.6-1.3 GiB (export-logits is the largest: TensorFlow, Beam
and the teacher in one process), 3x under the target; nothing to change.
""",
}


# ---------------------------------------------------------------- machine
def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load_average": os.getloadavg(),
    }


# ---------------------------------------------------------------- rendering
def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def _table(columns: list, rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def judge(target: dict) -> str:
    """ "met", "missed" or "undecided": on the interval [low, high] when the target has one, else on its value.

    An interval that straddles the threshold decides nothing; a target with a single value keeps
    the plain met / missed (its stored "met" when it has no comparison to make).
    """
    op, wanted = target.get("op"), target.get("target")
    if op not in (">=", "<=") or wanted is None:
        return "met" if target.get("met") else "missed"
    ok = (lambda v: v >= wanted) if op == ">=" else (lambda v: v <= wanted)
    low, high = target.get("low"), target.get("high")
    if low is None or high is None:
        return "met" if ok(target["value"]) else "missed"
    if ok(low) and ok(high):
        return "met"
    return "missed" if not (ok(low) or ok(high)) else "undecided"


VERDICTS = {"met": "met", "missed": "**MISSED**", "undecided": "*undecided*"}


def _interval(target: dict) -> str:
    if target.get("low") is None or target.get("high") is None:
        return "single value"
    what = f" ({target['interval']})" if target.get("interval") else ""
    return f"{target['low']:.3f}-{target['high']:.3f}{what}"


def _target_lines(targets: list[dict]) -> list[str]:
    rows = [[t["name"], f"{t['value']:.3f}", _interval(t), f"{t['op']} {t['target']}", VERDICTS[judge(t)]]
            for t in targets]  # fmt: skip
    return _table(["target", "measured", "interval", "wanted", ""], rows)


def render_noisify(result: dict) -> list[str]:
    rows = [[r["case"], r["train_examples"], round(r["seconds"], 1), round(r["examples_per_second"]),
             round(r["peak_rss_mib"])] for r in result["rows"]]  # fmt: skip
    lines = _table(["case", "train examples", "seconds", "examples/s", "peak RSS MiB"], rows)
    others = [f"- {k}: {v:.3f}" for k, v in result["ratios"].items() if k not in result["targets"]]
    return lines + [""] + _target_lines(_noisify_targets(result)) + ([""] + others if others else [])


def _noisify_targets(result: dict) -> list[dict]:
    return [{"name": k, "value": v, "op": result["targets"][k][0], "target": result["targets"][k][1],
             "met": v >= result["targets"][k][1] if result["targets"][k][0] == ">=" else v <= result["targets"][k][1]}
            for k, v in result["ratios"].items() if k in result["targets"]]  # fmt: skip


def _min_max_text(n: int, unit: str) -> str:
    """What the min-max of n per-repeat (or per-pair) ratios is: an interval of their median, coverage 1 - 2 / 2^n."""
    return (
        f"min-max of {n} {unit}; a {1 - 2 / 2**n:.0%} interval of the median"
        if n > 1
        else f"a single {unit[:-1]}"
    )


def render_export(result: dict) -> list[str]:
    rows = [[r["method"], round(r["seconds"], 2), round(r["examples_per_second"]), round(r["cpu_seconds"], 2),
             round(r["examples_per_cpu_second"])] for r in result["rows"]]  # fmt: skip
    lines = _table(["method", "wall s", "examples/s", "CPU s", "examples/CPU s"], rows)
    per_repeat = result.get("ratios")
    summary = f"{result['examples']} examples, {result['repeats']} repeats"
    if isinstance(per_repeat, list) and per_repeat:
        summary += "; export_stage / predict examples/s per repeat: " + ", ".join(
            f"{r:.3f}" for r in per_repeat
        )
        if result.get("cpu_ratios"):
            summary += " (CPU: " + ", ".join(f"{r:.3f}" for r in result["cpu_ratios"]) + ")"
        if result.get("beam_ratios"):
            summary += "; the Beam job's: " + ", ".join(f"{r:.3f}" for r in result["beam_ratios"])
        summary += f"; best of each side: {result['ratio']:.3f}"
    else:
        summary += f", best of {result['repeats']}"
    if "cpu_ratio" in result:
        summary += f"; CPU-time ratio (best of each side) {result['cpu_ratio']:.2f}"
    return lines + ["", summary + ".", ""] + _target_lines(_export_targets(result))


def _export_targets(result: dict) -> list[dict]:
    wanted = result.get("target_ratio", 0.8)
    targets = result.get("targets")
    per_repeat = result.get("ratios")
    if isinstance(targets, list):
        return targets
    if isinstance(per_repeat, list) and per_repeat:  # judged on the per-repeat ratios
        return [{"name": "export_vs_predict", "value": statistics.median(per_repeat), "low": min(per_repeat),
                 "high": max(per_repeat), "interval": _min_max_text(len(per_repeat), "repeats"), "op": ">=",
                 "target": wanted}]  # fmt: skip
    # an export.json that states only its best-of ratio
    return [{"name": "export_vs_predict", "value": result["ratio"], "op": ">=", "target": wanted}]


def targets_of(name: str, result: dict) -> list[dict]:
    """A benchmark's targets as dicts (name, value, op, target, optionally low / high), whatever its JSON's shape."""
    if name == "noisify":
        return _noisify_targets(result)
    if name == "export":
        return _export_targets(result)
    return result.get("targets", [])


def render_generic(result: dict) -> list[str]:
    lines = _table(result["table"]["columns"], result["table"]["rows"])
    return lines + [""] + _target_lines(result.get("targets", []))


def render_train(result: dict) -> list[str]:
    lines = render_generic(result)
    extra = [
        "",
        f"Batch 128; {result['steps_per_epoch']} steps per epoch; per repeat the stage runs "
        f"{result['timed_epochs']} + 1 epochs (the first left out) and, from a callback between its epochs "
        "(outside their timing), every bare side runs one epoch next to each timed stage epoch: just after it "
        f"in even repeats, just before it in odd ones; {result['repeats']} repeats. A ratio (stage / keras, "
        "stage / torch) is taken per epoch pair, the bare epoch's seconds over the stage epoch's, and judged "
        "on the median of the pairs and its interval; images/s (mean), images/CPU s "
        "and cores busy use all epochs, images/s (best epoch) is each side's least-disturbed epoch. Limit: "
        f"float32 matmul {result['matmul_size']}^3 at {result['matmul_gflops']:.0f} GFLOP/s; a training "
        "step counts as 3x the forward FLOPs of the convolutions and dense layer.",
        "",
    ]
    for name, net in result["networks"].items():
        line = f"- {name}: {net['forward_flops_per_image'] / 1e6:.1f} MFLOP forward per image"
        stage = next((r for r in result["rows"] if r["network"] == name and r["side"] == "stage"), None)
        if stage:
            line += (f"; the stage spends {stage['gap_seconds_per_epoch']:.2f} s between epochs (back-up, "
                     "TensorBoard; not in images/s)")  # fmt: skip
        extra.append(line)
    per_pair = result.get("ratios_per_pair", {})
    for key, values in per_pair.items():
        if not key.endswith("_cpu"):
            cpu = per_pair.get(f"{key}_cpu")
            extra.append(f"- {key} per epoch pair: " + ", ".join(f"{v:.3f}" for v in values)
                         + (" (images per CPU second: " + ", ".join(f"{v:.3f}" for v in cpu) + ")" if cpu else ""))  # fmt: skip
    for name, net in result["networks"].items():
        chunks = net.get("loss_chunks")
        if not chunks:
            continue
        micro = net.get("loss_microseconds", {})
        ce = statistics.median(chunks["seconds_per_step"]["ce"])
        extra += [
            "",
            f"Losses on {name}. The target: what the loss adds to a step, 1 + (its microseconds alone - the "
            "built-in's, paired repeat by repeat) / the built-in's median time per step. Beside it, the whole "
            f"steps in turns in one process: {chunks['rounds']} rounds, each loss one chunk of "
            f"{chunks['chunk_steps']} steps per round (order rotated every round), the median over the rounds of "
            "the chunk's time per step / the built-in cross-entropy's in the same round, with the interval of "
            "that median: the machine's noise sets its width.",
            "",
        ]
        loss_rows = [["ce (Keras built-in)", f"{micro['ce']:.0f}" if "ce" in micro else "", "1", "",
                      f"{1000 * ce:.1f}", "1", "", "1", f"{chunks['final_loss']['ce']:.3f}"]]  # fmt: skip
        targets = {t["name"]: t for t in result.get("targets", [])}
        for loss_name, values in chunks["ratios"].items():
            t = targets.get(f"{name}/loss_overhead_{loss_name}")
            steps_interval = (chunks.get("intervals") or {}).get(loss_name)
            loss_rows.append([
                loss_name, f"{micro[loss_name]:.0f}" if loss_name in micro else "",
                f"{t['value']:.5f}" if t else "", VERDICTS[judge(t)] if t else "",
                f"{1000 * statistics.median(chunks['seconds_per_step'][loss_name]):.1f}",
                f"{statistics.median(values):.3f}",
                f"{steps_interval[0]:.3f}-{steps_interval[1]:.3f}" if steps_interval else f"{min(values):.3f}-{max(values):.3f}",
                f"{statistics.median(chunks['cpu_ratios'][loss_name]):.3f}", f"{chunks['final_loss'][loss_name]:.3f}",
            ])  # fmt: skip
        extra += _table(["loss", "loss + gradient alone, us", "added to a step (target <= 1.03)", "",
                         "ms per step in turns (median)", "/ ce (median)", "its interval", "/ ce, CPU s (median)",
                         "last chunk's loss"], loss_rows)  # fmt: skip
    shown = {t["name"] for t in result.get("targets", [])}
    others = [f"- {k}: {v:.3f}" for k, v in result["ratios"].items() if k not in shown]
    extra += [""] + others if others else []
    load = result.get("load_average_before"), result.get("load_average_after")
    if all(load):
        extra.append(f"- load average before / after: {load[0][0]:.1f} / {load[1][0]:.1f}")
    return lines + extra


def render_train_process(result: dict) -> list[str]:
    lines = render_generic(result)
    pairs = "; ".join(f"{p['ratio']:.3f} (CPU {p['cpu_ratio']:.3f})" for p in result["pair_ratios"])
    numpy_pairs = [p for p in result["pair_ratios"] if "numpy_ratio" in p]
    threads = {json.dumps(r["threads"], sort_keys=True) for r in result["rows"] if "threads" in r}
    lines += [
        "",
        f"One teacher, `{result['config']}`: ResNet-{result['depth']}, {result['steps']} steps of batch "
        f"{result['batch_size']} ({result['steps_per_epoch']} per epoch) on {result['train_examples']} examples. "
        "Each side is a fresh process timed from start to exit (first epoch included; a bare side less its "
        "input iterator's release wait, iterator release s, which is TensorFlow's: see below); alternating pairs: "
        f"{result['pairs']}. smear: `" + result["smear_command"] + "` (the data artifact made once before, "
        "untimed). bare-tfdata (the target's anchor): `model.fit` over tf.data reading the same TFRecords "
        "(parse, PNG decode, cache, shuffle, repeat, batch, the stage's normalisation, prefetch), the same "
        "model, optimizer and steps, TensorFlow's thread settings left as the stage leaves them. bare-numpy "
        f"(not a target; in {result.get('numpy_pairs', 0)} pair(s)): the same fit on in-memory NumPy arrays. "
        "fit s is the fit as timed inside each process (for smear, with its per-epoch learning curves and "
        "back-ups); the rest is start-up, input preparation and, for smear, saving. The target is judged on "
        "each side's best run (its time with the host out of the way, as `timeit` takes the least of its "
        "repeats), with the interval that replacing either side's best by its second best gives.",
        "",
        f"- {result.get('target_side', 'bare')} / smear wall time per pair (not judged: the host slows whole "
        f"processes of either side): {pairs}; median {result['ratio']:.3f}"
        + (
            f" (min-max {result['ratio_low']:.3f}-{result['ratio_high']:.3f})"
            if "ratio_low" in result
            else ""
        )
        + f"; median CPU-time ratio {result['cpu_ratio']:.3f}",
    ]
    if "release_waits" in result:
        lines.append(
            f"- iterator release s: fit's last callback to its return, when Keras drops fit's input iterator and "
            f"its destructor can wait out a sleep of tf.data's autotuning thread (fit then ends near 20.5, 40.9 or "
            f"81.9 s after the thread started, whatever the steps took). {result['release_waits']} of "
            f"{result['bare_runs']} bare runs waited over 1 s; the anchor is judged without the wait and smear, "
            f"charged everything, is not adjusted. With the wait, best bare-tfdata / best smear would read "
            f"{result['best_ratio_with_release_wait']:.3f}."
        )
    if numpy_pairs:
        lines.append(
            "- bare-numpy / smear wall time (not a target): "
            + "; ".join(f"pair {p['pair']} {p['numpy_ratio']:.3f} (CPU {p['numpy_cpu_ratio']:.3f})" for p in numpy_pairs)
        )  # fmt: skip
    if any(r.get("host_idle_seconds") is not None for r in result["rows"]):
        lines.append(
            "- host idle s, host steal s, others' CPU s: what the machine's cores did during each run "
            "(/proc/stat, summed over the cores): a run slowed by another process shows others' CPU, one "
            "slowed by the hypervisor shows steal, one waiting inside its own process shows idle"
        )
    if threads:
        lines.append(f"- TensorFlow intra-/inter-op threads in the bare processes: {', '.join(sorted(threads))} "
                     "(0: TensorFlow's default, as in `smear train`)")  # fmt: skip
    lines.append(
        f"- load average before / after: {result['load_average_before'][0]:.1f} / "
        f"{result['load_average_after'][0]:.1f} (each run's in the table)"
    )
    return lines


RENDER = {
    "noisify": render_noisify,
    "export": render_export,
    "train": render_train,
    "train_process": render_train_process,
    "memory": render_generic,
}


def _load_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def verdicts(results_dir: Path) -> dict[str, dict]:
    """{target name: the target with its "verdict"} over every benchmark's JSON in results_dir."""
    out = {}
    for name in BENCHMARKS:
        result = _load_json(results_dir / f"{name}.json")
        for target in targets_of(name, result) if result else []:
            out[target["name"]] = dict(target, verdict=judge(target), benchmark=name)
    return out


def _verdict_cell(target: dict | None) -> str:
    if target is None:
        return "not run"
    interval = f" ({target['low']:.3f}-{target['high']:.3f})" if target.get("low") is not None else ""
    return f"{target['value']:.3f}{interval} {VERDICTS[target['verdict']]}"


def compare_lines(results_dir: Path, previous_dir: Path, label: str) -> list[str]:
    """A table of every target's verdict in this run and in the run kept in previous_dir."""
    now, before = verdicts(results_dir), verdicts(previous_dir)
    before_run = _load_json(previous_dir / RUN_RECORD) or {}
    ran = [
        set((_load_json(d / RUN_RECORD) or {}).get("benchmarks") or BENCHMARKS)
        for d in (results_dir, previous_dir)
    ]
    # A benchmark that one of the runs did not run (its JSON is from an earlier day) is left out.
    both = ran[0] & ran[1]
    now = {k: v for k, v in now.items() if v["benchmark"] in both}
    before = {k: v for k, v in before.items() if v["benchmark"] in both}
    names = (
        [n for n in now if n in before]
        + [n for n in now if n not in before]
        + [n for n in before if n not in now]
    )
    rows, same = [], 0
    for name in names:
        a, b = now.get(name), before.get(name)
        agree = a is not None and b is not None and a["verdict"] == b["verdict"]
        same += agree
        rows.append([name, _verdict_cell(b), _verdict_cell(a), "yes" if agree else "**no**"])
    lines = [
        "## Verdicts of two consecutive runs",
        "",
        f"The previous run's JSON is kept in `{label}/` (started {before_run.get('date', 'at an unrecorded time')}); "
        f"this run's is beside this file. {same} of {len(names)} targets have the same verdict in both.",
        "",
    ]
    return lines + _table(["target", "previous run", "this run", "same verdict"], rows)


def render(results_dir: Path, previous: tuple[Path, str] | None = None) -> str:
    m = machine()
    run = _load_json(results_dir / RUN_RECORD) or {"benchmarks": {}}
    started = run.get("load_average_at_start")
    lines = [
        "# Benchmarks",
        "",
        "Written by `benchmarks/run_all.py` (`make bench`); the JSON of each is in `results/benchmarks/`.",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory_gib']:.1f} GiB; Python {m['python']}",
        f"- run started {run.get('date', 'at an unrecorded time')}"
        + (f", load average {started[0]:.1f}" if started else "")
        + (f"; {run['total_seconds'] / 60:.0f} minutes in all" if run.get("total_seconds") else "")
        + " (a shared machine: every benchmark alternates its sides in one run and reports ratios)",
        "- verdicts: met, **MISSED**, or *undecided* when a target's interval (what it is is stated beside "
        "it: an interval of a median, a min-max, or a best run's sensitivity) straddles the threshold",
    ]
    if previous:
        lines += [""] + compare_lines(results_dir, *previous)
    for name in BENCHMARKS:
        path = results_dir / f"{name}.json"
        record = run["benchmarks"].get(name, {})
        status = record.get("status", "")
        lines += ["", f"## {name}", ""]
        if not path.is_file():
            lines.append(f"not run ({status or 'no results'})")
            continue
        result = json.loads(path.read_text())
        if status.startswith("failed"):
            lines += [f"**{status}**; the table below is from an earlier run.", ""]
        elif not status:
            lines += ["Not run by the run above: the table is from the earlier run that wrote "
                      f"`results/benchmarks/{name}.json`.", ""]  # fmt: skip
        else:
            lines += [f"{status} ({record['date']}); load average before / after: {record['load_before'][0]:.1f} / "
                      f"{record['load_after'][0]:.1f}.", ""]  # fmt: skip
        doc = (ROOT / "benchmarks" / f"{name}.py").read_text().split('"""')[1].strip().splitlines()
        command = next((line.strip() for line in doc if line.strip().startswith(".venv/bin/python")), "")
        if "command" in result:
            command = result["command"].replace(f"{ROOT}/", "").strip()
        lines += [f"{doc[0]}", "", f"`{command}`", ""]
        try:
            lines += RENDER.get(name, render_generic)(result)
        except (KeyError, TypeError, ValueError) as e:
            lines.append(f"(could not render {path.name}: {type(e).__name__}: {e})")
        if FINDINGS.get(name):
            lines += ["", FINDINGS[name].strip()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small settings; results go to a temporary directory"
    )
    parser.add_argument("--render", action="store_true", help="do not run; re-render from the JSON files")
    parser.add_argument("--only", default=",".join(DEFAULT), help=f"default: {','.join(DEFAULT)}")
    parser.add_argument("--results-dir", help="where the JSON files go (default results/benchmarks)")
    parser.add_argument("--markdown", help="the report (default results/benchmarks.md)")
    parser.add_argument("--previous", metavar="DIR",
                        help="the results directory of an earlier run: the report adds a table of both runs' verdicts")  # fmt: skip
    args = parser.parse_args(argv)
    if args.previous and not (Path(args.previous) / RUN_RECORD).is_file():
        parser.error(
            f"--previous {args.previous}: no {RUN_RECORD} there (not a results directory of run_all.py)"
        )
    only = [b for b in args.only.split(",") if b]
    for b in only:
        if b not in BENCHMARKS:
            parser.error(f"unknown benchmark {b!r}; one of: {', '.join(BENCHMARKS)}")
    default_dir = Path(tempfile.mkdtemp(prefix="bench-quick-")) if args.quick else RESULTS
    results_dir = Path(args.results_dir).resolve() if args.results_dir else default_dir
    markdown = (
        Path(args.markdown) if args.markdown else (results_dir / "benchmarks.md" if args.quick else MARKDOWN)
    )
    started_load = os.getloadavg()
    if started_load[0] > BUSY_LOAD and not args.render:
        print(f"warning: load average {started_load[0]:.1f} > {BUSY_LOAD}: other processes share the CPU; "
              "wall-time ratios will be noisy", flush=True)  # fmt: skip

    failed = False
    if not args.render:
        results_dir.mkdir(parents=True, exist_ok=True)
        run = {"date": machine()["date"], "load_average_at_start": started_load, "benchmarks": {}}
        if set(only) != set(DEFAULT):  # a part: this run's records join those of the last whole run
            run = _load_json(results_dir / RUN_RECORD) or run
        begin = time.perf_counter()
        for name in only:
            output = results_dir / f"{name}.json"  # the JSON records its command: relative inside the repo
            if output.is_relative_to(ROOT):
                output = output.relative_to(ROOT)
            cmd = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"),
                   OUTPUT_FLAG.get(name, "--output"), str(output)]  # fmt: skip
            cmd += QUICK_ARGS.get(name, []) if args.quick else FULL_ARGS.get(name, [])
            print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
            load_before, start = os.getloadavg(), time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT)
            seconds = time.perf_counter() - start
            status = (
                f"ran in {seconds:.0f} s" if proc.returncode == 0 else f"failed (status {proc.returncode})"
            )
            failed |= proc.returncode != 0
            run["benchmarks"][name] = {"status": status, "seconds": round(seconds, 1), "date": machine()["date"],
                                       "load_before": load_before, "load_after": os.getloadavg()}  # fmt: skip
            print(f"== {name}: {status}", flush=True)
        if set(only) == set(DEFAULT):
            run["total_seconds"] = round(time.perf_counter() - begin, 1)
        (results_dir / RUN_RECORD).write_text(json.dumps(run, indent=2) + "\n")
    markdown.parent.mkdir(parents=True, exist_ok=True)
    previous = None
    if args.previous:
        previous = (
            Path(args.previous),
            os.path.relpath(Path(args.previous).resolve(), markdown.parent.resolve()),
        )
    markdown.write_text(render(results_dir, previous))
    print(f"wrote {markdown}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
