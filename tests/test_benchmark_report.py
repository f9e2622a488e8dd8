"""benchmarks/run_all.py's verdicts: met / MISSED / undecided from an interval, and two runs set side by side."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    """benchmarks/NAME.py as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_all():
    return _script("run_all")


def _target(value, low=None, high=None, op=">=", wanted=0.9):
    return {"name": "t", "value": value, "low": low, "high": high, "op": op, "target": wanted}


def test_an_interval_that_straddles_the_threshold_is_undecided(run_all):
    assert run_all.judge(_target(0.95, 0.91, 0.99)) == "met"
    assert run_all.judge(_target(0.85, 0.80, 0.89)) == "missed"
    assert run_all.judge(_target(0.92, 0.88, 0.96)) == "undecided"
    assert run_all.judge(_target(1.01, 0.97, 1.04, op="<=", wanted=1.03)) == "undecided"
    assert run_all.judge(_target(1.01, op="<=", wanted=1.03)) == "met"  # a single value


def _results(
    directory: Path, export_ratios: list[float], loss: tuple[float, float, float], date: str
) -> Path:
    directory.mkdir()
    (directory / "export.json").write_text(json.dumps({"ratios": export_ratios, "target_ratio": 0.8}))
    value, low, high = loss
    train = {"targets": [{"name": "resnet20/loss_overhead_fc", "value": value, "low": low, "high": high,
                          "op": "<=", "target": 1.03}]}  # fmt: skip
    (directory / "train.json").write_text(json.dumps(train))
    (directory / "run.json").write_text(json.dumps({"date": date, "benchmarks": {}}))
    return directory


def test_two_runs_verdicts_side_by_side_count_what_agrees(run_all, tmp_path):
    before = _results(tmp_path / "before", [0.9, 0.95, 1.0], (1.00, 0.98, 1.02), "2026-12-06 12:00 UTC")
    now = _results(tmp_path / "now", [0.85, 0.9, 0.92], (1.01, 0.97, 1.04), "2026-12-06 12:30 UTC")
    lines = run_all.compare_lines(now, before, "before")
    text = "\n".join(lines)
    assert "kept in `before/` (started 2026-12-06 12:00 UTC)" in text
    assert "1 of 2 targets have the same verdict in both" in text
    rows = {
        line.split(" | ")[0].strip("| "): line
        for line in lines
        if line.startswith("| ") and "---" not in line
    }
    assert rows["export_vs_predict"].endswith("| yes |")
    assert "1.000 (0.980-1.020) met" in rows["resnet20/loss_overhead_fc"]
    assert "1.010 (0.970-1.040) *undecided*" in rows["resnet20/loss_overhead_fc"]
    assert rows["resnet20/loss_overhead_fc"].endswith("| **no** |")


def test_previous_must_be_a_results_directory(run_all, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_all.main(["--render", "--previous", str(tmp_path), "--markdown", str(tmp_path / "b.md")])
    assert exit_info.value.code == 2
    assert f"--previous {tmp_path}: no run.json there" in capsys.readouterr().err
    assert not (tmp_path / "b.md").exists()


@pytest.fixture(scope="module")
def train_process():
    return _script("train_process")


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="the host's CPU time comes from /proc/stat")
def test_a_timed_process_records_what_the_machine_did_beside_it(train_process, tmp_path):
    import sys

    # A process that burns 0.4 s of CPU, then sleeps 0.6 s: one core at most is busy with it.
    code = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\ntime.sleep(0.6)"
    row = train_process.run_timed([sys.executable, "-c", code], tmp_path / "log")
    assert row["cpu_seconds"] >= 0.4 and row["seconds"] >= 1.0
    host = (
        row["host_idle_seconds"] + row["host_steal_seconds"] + row["others_cpu_seconds"] + row["cpu_seconds"]
    )
    cores = os.cpu_count()
    # The machine's seconds add up to its cores times the wall time (ticks of 10 ms, and our own start-up aside).
    assert host == pytest.approx(cores * row["seconds"], rel=0.15, abs=0.2)
    assert row["host_idle_seconds"] >= 0 and row["host_steal_seconds"] >= 0 and row["others_cpu_seconds"] >= 0


def test_the_anchor_is_judged_without_its_iterators_release_wait(train_process):
    # Two bare fits whose input iterator's destructor waited 30 s for tf.data's autotuning thread.
    smear = [{"side": "smear", "seconds": 63.0}, {"side": "smear", "seconds": 64.0}]
    bare = [
        {"side": "bare-tfdata", "seconds": 86.0, "iterator_release_seconds": 30.0},
        {"side": "bare-tfdata", "seconds": 88.0, "iterator_release_seconds": 30.0},
    ]
    assert [train_process.judged_seconds(r) for r in smear] == [63.0, 64.0]  # smear is charged everything
    assert [train_process.judged_seconds(r) for r in bare] == [56.0, 58.0]

    def verdict(anchor, smear):
        return train_process.judged("t", anchor, smear, ">=", 0.9)

    # Whole wall times would read 86 / 63, met; without the waits, 56 / 63 (0.875-0.921), undecided.
    assert verdict([r["seconds"] for r in bare], [r["seconds"] for r in smear])["verdict"] == "met"
    judged = verdict([train_process.judged_seconds(r) for r in bare], [r["seconds"] for r in smear])
    assert judged["value"] == pytest.approx(56.0 / 63.0) and judged["verdict"] == "undecided"
