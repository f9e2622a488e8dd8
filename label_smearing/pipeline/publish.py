"""Stage wall times, and copying a finished run's report to a results directory.

`smear run` appends one line per stage it runs to `<workdir>/stage_times.jsonl`
(`record_time`): the stage's label, kind, output directory and wall seconds. A
cached stage adds nothing, so the file keeps the time each artifact took when it
was made, across resumed and re-run invocations.

`smear run ... --publish DIR` then copies the report (report.md, tables/,
figures/, tensorboard/ and its manifest) into DIR and writes beside it
`stage_times.json` and `stage_times.md`: every stage of the plan with the time
its artifact took, summed per cell (a model and its evaluation and logit export,
and a transition estimated from that export, over seeds) and in total. Files of
DIR that the report does not own (a COMMAND.txt, say) are left alone; DIR must
be new, empty or a previous publish.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from pathlib import Path

from label_smearing.core import artifacts, registry
from label_smearing.core.errors import UserError
from label_smearing.core.registry import ESTIMATE_TRANSITION, EVALUATE, EXPORT_LOGITS, NOISIFY, REPORT, TRAIN

TIMES_FILE = "stage_times.jsonl"
REPORT_ENTRIES = ("report.md", "tables", "figures", "tensorboard", artifacts.MANIFEST)
KIND_COLUMNS = tuple(name for name, kind in registry.STAGES.items() if kind.planned)  # a column per kind


def record_time(workdir: str | Path, node, seconds: float) -> None:
    """Appends one plan node's wall time to <workdir>/stage_times.jsonl."""
    line = {
        "label": node.label,
        "kind": node.kind,
        "out_dir": str(node.out_dir),
        "seconds": round(seconds, 2),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(line) + "\n"
    path = artifacts.join(workdir, TIMES_FILE)
    if artifacts.is_url(workdir):  # an object cannot be appended to: rewritten whole (one run writes it)
        artifacts.atomic_write_bytes(
            path, (path.read_text() if path.exists() else "").encode() + text.encode()
        )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(text)


def read_times(workdir: str | Path) -> dict[str, float]:
    """{out_dir: seconds} from <workdir>/stage_times.jsonl, the latest record of each; {} if absent."""
    path = artifacts.join(workdir, TIMES_FILE)
    if not path.exists():
        return {}
    times = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            times[record["out_dir"]] = float(record["seconds"])
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path}:{number}: not a stage time record ({e})") from None
    return times


def cell_of(node) -> str:
    """The cell a plan node belongs to: its model's cell (no seed), with its noise setting.

    A model, its evaluation and its logit export share a cell ("teacher-ls0.1 @rho0.2"), and
    so does a transition estimated from that export; data and report nodes are cells of their own.
    """
    name = node.spec.cell.name if node.spec is not None else node.name
    return name + (f" @{node.tag}" if node.tag else "")


def times_summary(nodes: list, times: dict[str, float]) -> dict:
    """Per-node and per-cell wall times of a plan; nodes with no record count as unknown."""
    rows, cells = [], defaultdict(lambda: {"seeds": set(), "unknown": 0, **{k: 0.0 for k in KIND_COLUMNS}})
    for node in nodes:
        seconds = times.get(str(node.out_dir))
        cell = cell_of(node)
        rows.append({"label": node.label, "kind": node.kind, "cell": cell, "seconds": seconds})
        entry = cells[cell]
        if node.kind == TRAIN:
            entry["seeds"].add(node.spec.seed)
        if seconds is None:
            entry["unknown"] += 1
        else:
            entry[node.kind] += seconds
    cell_rows = []
    for cell, entry in cells.items():
        total = sum(entry[k] for k in KIND_COLUMNS)
        runs = len(entry["seeds"])
        cell_rows.append({
            "cell": cell, "runs": runs, **{k: round(entry[k], 2) for k in KIND_COLUMNS},
            "total": round(total, 2), "per_run": round(total / runs, 2) if runs else None,
            "unknown_stages": entry["unknown"],
        })  # fmt: skip
    known = [r["seconds"] for r in rows if r["seconds"] is not None]
    return {
        "total_seconds": round(sum(known), 2),
        "stages": len(rows),
        "stages_without_time": len(rows) - len(known),
        "cells": cell_rows,
        "per_stage": rows,
    }


def times_markdown(summary: dict) -> str:
    def s(x):
        return "" if not x else f"{x:.0f}"

    lines = [
        "# Wall time per cell",
        "",
        f"{summary['stages']} stages, {summary['total_seconds']:.0f} s "
        f"({summary['total_seconds'] / 3600:.2f} h) in all"
        + (
            f"; {summary['stages_without_time']} stages have no recorded time"
            if summary["stages_without_time"]
            else ""
        )
        + ". A cell is one model (teacher or student) over its seeds with its evaluations and logit"
        ' exports; seconds are sums over seeds, "per run" is the cell\'s total over its seeds.',
        "",
        "| cell | runs | train s | export s | evaluate s | other s | total s | per run s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["cells"]:
        other = row[NOISIFY] + row[ESTIMATE_TRANSITION] + row[REPORT]
        per_run = "" if row["per_run"] is None else f"{row['per_run']:.0f}"
        lines.append(
            f"| {row['cell']} | {row['runs'] or ''} | {s(row[TRAIN])} | {s(row[EXPORT_LOGITS])} | "
            f"{s(row[EVALUATE])} | {s(other)} | {row['total']:.0f} | {per_run} |"
        )
    return "\n".join(lines) + "\n"


def check_destination(dest: str | Path) -> Path:
    """Refuses a destination that is a file, or a non-empty directory that holds no published report."""
    if artifacts.is_url(dest):
        raise UserError(f"--publish {dest}: publish to a local directory")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise UserError(f"--publish {dest}: exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / artifacts.MANIFEST).exists():
        raise UserError(f"--publish {dest}: not empty and holds no published report; choose a new directory")
    if (dest / artifacts.MANIFEST).exists():
        manifest = json.loads((dest / artifacts.MANIFEST).read_text())
        if manifest.get("stage") != REPORT:
            raise UserError(f"--publish {dest}: holds a {manifest.get('stage')} artifact, not a report")
    return dest


def _copy(source, target: Path) -> None:
    """Copies a file or a directory tree from the workdir (local or a URL) to a local path."""
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for child in source.iterdir():
            _copy(child, target / child.name)
    else:
        artifacts.copy_file(source, target)


def publish(report_dir: str | Path, dest: str | Path, nodes: list, workdir: str | Path) -> Path:
    """Copies the report's entries into dest (replacing earlier copies) and writes the stage times."""
    dest = check_destination(dest)
    report_dir = artifacts.path(report_dir)  # local or remote; dest is local
    if not artifacts.is_complete(report_dir):
        raise UserError(f"{report_dir}: no complete report to publish")
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / ".publish-tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in REPORT_ENTRIES:
        source = report_dir / name
        if source.exists():
            _copy(source, staging / name)
    summary = times_summary(nodes, read_times(workdir))
    (staging / "stage_times.json").write_text(json.dumps(summary, indent=1) + "\n")
    (staging / "stage_times.md").write_text(times_markdown(summary))
    for name in REPORT_ENTRIES:  # what the new report lacks goes too (figures/ under report.figures=false)
        stale = dest / name
        if (staging / name).exists() or not stale.exists():
            continue
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    for entry in sorted(staging.iterdir(), key=lambda p: p.name == artifacts.MANIFEST):  # manifest last
        target = dest / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        entry.replace(target)
    staging.rmdir()
    return dest
