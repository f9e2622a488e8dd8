"""Benchmark: peak resident memory of each quickstart stage, each in a fresh process.

    .venv/bin/python benchmarks/memory.py [--steps 100] [--train-examples 0] [--stages noisify,train,...]

Runs the quickstart pipeline's stages one after another with the `smear` command
(`python -m label_smearing.cli STAGE --config quickstart --workdir TMP`, the
same overrides for all, so each stage finds the artifact the previous one wrote):
noisify (Beam DirectRunner, in process), train (the CE teacher, --steps steps),
export-logits (Beam RunInference over the training split), evaluate and report.
The data are the real Fashion-MNIST from Debian's IDX files (60k train, 10k test;
generated IDX files of the same size if they are absent); --train-examples caps
the training split (0 = all).

Each stage's peak resident set size is ru_maxrss of its process (and any child
processes it waited for) from os.wait4; wall and CPU seconds are reported too.
Prints a table and writes results/benchmarks/memory.json. Target (issue 9): every
stage <= 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUICKSTART = str(ROOT / "label_smearing" / "configs" / "quickstart.py")
DEBIAN_IDX = "/usr/share/datasets/fashion-mnist"
STAGES = ("noisify", "train", "export-logits", "evaluate", "report")
TARGET_MIB = 4 * 1024


def run_stage(stage: str, workdir: str, overrides: list[str], log_path: Path) -> dict:
    """Runs one `smear` stage in a fresh process; returns its peak RSS, wall and CPU seconds."""
    cmd = [
        sys.executable,
        "-m",
        "label_smearing.cli",
        stage,
        "--config",
        QUICKSTART,
        "--workdir",
        workdir,
        *overrides,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(log_path, "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        tail = log_path.read_text()[-3000:]
        raise SystemExit(f"stage {stage} failed with status {proc.returncode}:\n{tail}")
    return {
        "stage": stage,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "command": " ".join(["smear", stage, "--config", "quickstart", "--workdir", "WORKDIR", *overrides]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps (train.steps)")
    parser.add_argument(
        "--train-examples", type=int, default=0, help="cap on training examples (0 = all 60k)"
    )
    parser.add_argument("--test-examples", type=int, default=0, help="cap on test examples (0 = all 10k)")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--workdir", help="keep the artifacts here (default: a temporary directory)")
    parser.add_argument("--output", default=str(ROOT / "results" / "benchmarks" / "memory.json"))
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    for s in stages:
        if s not in STAGES:
            parser.error(f"unknown stage {s!r}; one of: {', '.join(STAGES)}")

    with tempfile.TemporaryDirectory() as tmp:
        idx_dir = DEBIAN_IDX
        if not os.path.isdir(idx_dir):
            from tests.idx_fixture import write_idx_dataset

            idx_dir = write_idx_dataset(os.path.join(tmp, "idx"), num_train=60000, num_test=10000)
        workdir = args.workdir or os.path.join(tmp, "work")
        overrides = [
            "--config.data.source=idx",
            f"--config.data.source_dir={idx_dir}",
            f"--config.data.max_train_examples={args.train_examples}",
            f"--config.data.max_test_examples={args.test_examples}",
            f"--config.train.steps={args.steps}",
        ]
        rows = []
        for stage in stages:
            row = run_stage(stage, workdir, overrides, Path(tmp) / f"{stage}.log")
            row["met"] = row["peak_rss_mib"] <= TARGET_MIB
            rows.append(row)
            print(f"  {stage:<14} {row['peak_rss_mib']:7.0f} MiB  {row['seconds']:6.1f} s  "
                  f"{row['cpu_seconds']:6.1f} CPU s", flush=True)  # fmt: skip

    columns = ["stage", "peak RSS MiB", "wall s", "CPU s", "target <= 4096 MiB"]
    table = [[r["stage"], round(r["peak_rss_mib"]), round(r["seconds"], 1), round(r["cpu_seconds"], 1),
              "met" if r["met"] else "MISSED"] for r in rows]  # fmt: skip
    print()
    print(f"{'stage':<14}{'peak RSS MiB':>14}{'wall s':>9}{'CPU s':>9}  target <= {TARGET_MIB} MiB")
    for row in table:
        print(f"{row[0]:<14}{row[1]:>14}{row[2]:>9}{row[3]:>9}  {row[4]}")
    targets = [{"name": f"{r['stage']}/peak_rss_mib", "value": r["peak_rss_mib"], "op": "<=", "target": TARGET_MIB,
                "met": r["met"]} for r in rows]  # fmt: skip
    result = {
        "benchmark": "memory",
        "config": "quickstart",
        "source": idx_dir,
        "train_steps": args.steps,
        "train_examples": args.train_examples or 60000,
        "test_examples": args.test_examples or 10000,
        "rows": rows,
        "targets": targets,
        "table": {"columns": columns, "rows": table},
        "load_average": os.getloadavg(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": (
            "python benchmarks/memory.py " + " ".join(sys.argv[1:] if argv is None else argv)
        ).replace(f"{ROOT}/", ""),
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
