"""Benchmark: `smear run --jobs 1` against `--jobs 2`, whole runs from nothing, with their metrics compared.

    .venv/bin/python benchmarks/jobs.py [--workloads quickstart,fmnist_cell] [--output FILE]

About 37 minutes on 2 cores (measured 2026-12-04). Each workload runs from an empty workdir
(noisy data, trainings, exports, evaluations, report) three ways, one after the
other, each a fresh `smear run` process timed from start to exit:

- `jobs1`: `--jobs 1`, every stage in one process (TensorFlow's threads: all cores);
- `jobs2`: `--jobs 2`, two worker processes, each with its share of the cores
  (`--threads` default: cores // 2);
- `jobs2-all-cores`: `--jobs 2 --threads <cores>`: each worker with as many
  TensorFlow threads as `jobs1`.

Workloads:
- `quickstart`: `quickstart`, what `make demo` runs (27 stages: 10
  trainings, 4 logit exports, 10 evaluations, 2 noisy data sets, the report);
- `fmnist_cell`: two cells of `fmnist_paper:rho0.2` (the CE baseline and
  LS alpha 0.2, seed 0, no students): the paper-grid trainings at full size.

Metrics: every evaluation's test accuracy, NLL and ECE, compared with `jobs1`'s.
On a CPU a training's numbers depend on how many threads TensorFlow uses (its
parallel reductions split the work by thread), so `jobs2-all-cores` must equal
`jobs1` exactly (checked), and `jobs2`'s largest difference is reported.
Ratio = jobs1 wall / jobs2 wall; target: >= 1 (`--jobs 2` is not slower).
Writes results/benchmarks/jobs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# name -> (config file and argument, overrides); --quick adds the config's smoke variant.
WORKLOADS = {
    "quickstart": ("quickstart", []),
    "fmnist_cell": (
        "fmnist_paper:rho0.2",
        [
            "--config.sweep.teachers=('ce', 'ls:0.2')",
            "--config.sweep.students=()",
            "--config.sweep.seeds=(0,)",
        ],
    ),
}


def workload_args(name: str, quick: bool) -> list[str]:
    config, overrides = WORKLOADS[name]
    if quick:
        config += ",smoke" if ":" in config else ":smoke"
    return ["--config", config, *overrides]


TARGET = 1.0


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def modes() -> dict[str, list[str]]:
    return {
        "jobs1": ["--jobs", "1"],
        "jobs2": ["--jobs", "2"],
        "jobs2-all-cores": ["--jobs", "2", "--threads", str(_cores())],
    }


def _metrics(workdir: Path) -> dict[str, dict[str, float]]:
    out = {}
    for path in sorted(workdir.glob("eval/*/metrics.json")):
        test = json.loads(path.read_text())["test"]
        out[path.parent.name] = {k: test[k] for k in ("accuracy", "nll", "ece") if k in test}
    return out


def _run(argv: list[str], workdir: Path) -> dict:
    before, load = resource.getrusage(resource.RUSAGE_CHILDREN), os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "smear"), "run", *argv, "--workdir", str(workdir)],
        cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"smear run {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stages = sum(1 for line in proc.stdout.splitlines() if line.startswith("[") and ": done in" in line)
    return {
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "stages": stages,
        "load_before": load,
    }


def _largest_difference(a: dict, b: dict) -> dict[str, float]:
    if set(a) != set(b):
        raise SystemExit(f"the runs evaluated different models: {sorted(set(a) ^ set(b))}")
    return {
        key: max(abs(a[m][key] - b[m][key]) for m in a)
        for key in ("accuracy", "nll", "ece")
        if key in next(iter(a.values()))
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated, of: " + ", ".join(WORKLOADS)
    )
    parser.add_argument("--quick", action="store_true", help="the smoke variants (to check the script works)")
    parser.add_argument("--output", default=str(ROOT / "results" / "benchmarks" / "jobs.json"))
    args = parser.parse_args(argv)
    names = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; of: {', '.join(WORKLOADS)}")
    rows, targets, workloads = [], [], {}
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        for name in names:
            config = workload_args(name, args.quick)
            runs = {}
            for mode, flags in modes().items():
                workdir = Path(tmp) / f"{name}-{mode}"
                print(f"== {name} {mode}: smear run {' '.join(config + flags)}", flush=True)
                runs[mode] = _run(config + flags, workdir)
                runs[mode]["metrics"] = _metrics(workdir)
                print(
                    f"   {runs[mode]['wall_seconds']} s wall, {runs[mode]['cpu_seconds']} CPU s", flush=True
                )
                shutil.rmtree(workdir, ignore_errors=True)
            reference = runs["jobs1"]["metrics"]
            same = _largest_difference(reference, runs["jobs2-all-cores"]["metrics"])
            share = _largest_difference(reference, runs["jobs2"]["metrics"])
            if any(same.values()):
                raise SystemExit(f"{name}: --jobs 2 --threads {_cores()} differs from --jobs 1: {same}")
            for mode, run in runs.items():
                ratio = runs["jobs1"]["wall_seconds"] / run["wall_seconds"]
                rows.append([name, mode, run["stages"], run["wall_seconds"], run["cpu_seconds"], round(ratio, 3),
                             "identical" if mode != "jobs2" else f"largest accuracy difference {share.get('accuracy', 0):.2f} pt",
                             round(run["load_before"], 1)])  # fmt: skip
                if mode != "jobs1":
                    targets.append({"name": f"{name}: jobs1 / {mode} wall", "value": ratio, "op": ">=",
                                    "target": TARGET, "met": ratio >= TARGET})  # fmt: skip
            workloads[name] = {"config": config, "runs": runs, "largest_difference_jobs2": share}
    columns = ["workload", "mode", "stages run", "wall s", "CPU s", "jobs1/this wall", "metrics vs jobs1",
               "load before"]  # fmt: skip
    for row in rows:
        print("  ".join(str(c) for c in row))
    result = {
        "benchmark": "jobs",
        "cores": _cores(),
        "modes": modes(),
        "workloads": workloads,
        "targets": targets,
        "table": {"columns": columns, "rows": rows},
        "command": "python benchmarks/jobs.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
