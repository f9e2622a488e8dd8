"""Benchmark: the Beam noisify job against a plain Python loop writing the same TFRecords.

    .venv/bin/python benchmarks/noisify.py [--examples 15000] [--scale 4]

On the real Fashion-MNIST (Debian's IDX files; a generated IDX set of the same
shape if they are absent). Each case runs in a fresh subprocess, so its peak
resident memory is its own (ru_maxrss of the process, or of its largest worker):

- `loop`: read the IDX files, draw the noisy labels with the same pure function,
  encode the same PNGs, build the same Examples and write them with
  tf.io.TFRecordWriter into the same number of shards: what a plain script does;
- `beam-1`: the noisify stage on the DirectRunner, one worker (in-process);
- `beam-2`: the same with `--direct_num_workers=2 --direct_running_mode=multi_processing`;

at N and at scale x N training examples (plus 10000 clean test examples capped
at N/6). Every case includes reading the source. Prints a table and writes
results/benchmarks/noisify.json. Targets (issue 9): beam-1 >= 0.5x the loop's
examples/s; time at 4N within 4.4x of N; peak memory at 4N within 1.2x of N.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
QUICKSTART = str(ROOT / "label_smearing" / "configs" / "quickstart.py")
DEBIAN_IDX = "/usr/share/datasets/fashion-mnist"
SHARDS = 4


def _loop(idx_dir: str, out_dir: str, n_train: int, n_test: int) -> None:
    import tensorflow as tf

    from label_smearing.beam_core.sources import IdxSource
    from label_smearing.beam_core.tfrecords import encode_png
    from label_smearing.core.schema import make_example
    from label_smearing.modeling import noise

    source = IdxSource("fashion_mnist", idx_dir)
    t = noise.symmetric_transition(10, 0.2)
    for split, n in (("train", n_train), ("test", n_test)):
        images, clean = source.read(split, 0, n)
        ids = [f"fashion_mnist/{split}/{i}" for i in range(n)]
        labels = noise.assign_noisy_labels(ids, clean, t, 0) if split == "train" else clean
        paths = [os.path.join(out_dir, f"{split}-{i:05d}-of-{SHARDS:05d}.tfrecord") for i in range(SHARDS)]
        writers = [tf.io.TFRecordWriter(p) for p in paths]
        for i in range(n):
            writers[i % SHARDS].write(make_example(ids[i], encode_png(images[i]), labels[i], clean[i]))
        for w in writers:
            w.close()


def _beam(idx_dir: str, out_dir: str, n_train: int, n_test: int, workers: int) -> None:
    from label_smearing.core.config import load_config
    from label_smearing.stages import noisify

    config = load_config(QUICKSTART, [
        "data.source=idx", f"data.source_dir={idx_dir}", f"data.max_train_examples={n_train}",
        f"data.max_test_examples={n_test}", "data.chunk_size=2500",
    ])  # fmt: skip
    flags = (
        [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"] if workers > 1 else []
    )
    noisify.noisify_stage(config, Path(out_dir) / "data", beam_args=flags, log=lambda _: None)


def run_case(case: str, idx_dir: str, n_train: int, n_test: int) -> dict:
    """Runs one case in this process; returns seconds and peak RSS (MiB)."""
    import tensorflow  # noqa: F401 - imported before timing, as a script would have it loaded

    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        if case == "loop":
            _loop(idx_dir, out_dir, n_train, n_test)
        else:
            _beam(idx_dir, out_dir, n_train, n_test, workers=int(case.split("-")[1]))
        seconds = time.perf_counter() - start
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return {"seconds": seconds, "peak_rss_mib": peak / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=15000, help="N: training examples at the small size")
    parser.add_argument("--scale", type=int, default=4, help="the large size is scale x N")
    parser.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "noisify.json"))
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    parser.add_argument("--idx-dir", help=argparse.SUPPRESS)
    parser.add_argument("--test-examples", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.idx_dir, args.examples, args.test_examples)))
        return

    idx_dir = DEBIAN_IDX
    if not os.path.isdir(idx_dir):
        from tests.idx_fixture import write_idx_dataset

        idx_dir = write_idx_dataset(tempfile.mkdtemp(), num_train=args.examples * args.scale, num_test=10000)
    rows = []
    for n in (args.examples, args.examples * args.scale):
        n_test = min(10000, n // 6)
        for case in ("loop", "beam-1", "beam-2"):
            cmd = [sys.executable, __file__, "--case", case, "--idx-dir", idx_dir, "--examples", str(n),
                   "--test-examples", str(n_test)]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode:
                raise SystemExit(f"case {case} at N={n} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            total = n + n_test
            rows.append({"case": case, "train_examples": n, "examples": total, **result,
                         "examples_per_second": total / result["seconds"]})  # fmt: skip
            print(f"  {case:<7} N={n:<6} {result['seconds']:7.1f} s  {total / result['seconds']:8.0f} ex/s  "
                  f"{result['peak_rss_mib']:7.0f} MiB", flush=True)  # fmt: skip

    def get(case, n):
        return next(r for r in rows if r["case"] == case and r["train_examples"] == n)

    small, large = args.examples, args.examples * args.scale
    ratios = {
        "beam1_vs_loop_examples_per_second": get("beam-1", large)["examples_per_second"]
        / get("loop", large)["examples_per_second"],
        "beam2_vs_beam1_examples_per_second": get("beam-2", large)["examples_per_second"]
        / get("beam-1", large)["examples_per_second"],
        "beam1_time_large_over_small": get("beam-1", large)["seconds"] / get("beam-1", small)["seconds"],
        "beam1_peak_memory_large_over_small": get("beam-1", large)["peak_rss_mib"]
        / get("beam-1", small)["peak_rss_mib"],
    }
    targets = {
        "beam1_vs_loop_examples_per_second": (">=", 0.5),
        "beam1_time_large_over_small": ("<=", 4.4),
        "beam1_peak_memory_large_over_small": ("<=", 1.2),
    }
    print()
    print(f"{'case':<8}{'N':>8}{'seconds':>10}{'examples/s':>12}{'peak MiB':>10}")
    for r in rows:
        print(f"{r['case']:<8}{r['train_examples']:>8}{r['seconds']:>10.1f}{r['examples_per_second']:>12.0f}"
              f"{r['peak_rss_mib']:>10.0f}")  # fmt: skip
    print()
    for name, value in ratios.items():
        target = targets.get(name)
        verdict = ""
        if target:
            ok = value >= target[1] if target[0] == ">=" else value <= target[1]
            verdict = f"  target {target[0]} {target[1]:.2f}: {'met' if ok else 'MISSED'}"
        print(f"{name:<40} {value:6.2f}{verdict}")
    result = {
        "benchmark": "noisify",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "source": idx_dir,
        "rows": rows,
        "ratios": ratios,
        "targets": {k: list(v) for k, v in targets.items()},
        "command": ("python benchmarks/noisify.py " + " ".join(sys.argv[1:])).replace(f"{ROOT}/", ""),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
