"""Loading the evaluation artifacts the report aggregates, and their statistics over seeds.

`find_evaluations` lists the complete evaluation artifacts (`smear evaluate`) under a workdir,
`load_evaluation` reads one (manifest verified) into an `Evaluation`, and `_deduplicate` keeps the
newest evaluation of each (setting, model configuration, seed). `Stat` is a metric's mean, sample
standard deviation (ddof = 1) and count over seeds, with the seeds that diverged; `TEST_ACCURACY`
and the validation paths address a metric in metrics.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from label_smearing.core import artifacts
from label_smearing.core.errors import UserError
from label_smearing.core.registry import EVALUATE
from label_smearing.core.spec import ModelSpec

TEST_ACCURACY = ("test", "accuracy")
VALIDATION_NOISY = ("validation", "accuracy_noisy")  # what a practitioner can measure: the report's choice
VALIDATION_CLEAN = ("validation", "accuracy_clean")
NO_STD = "—"  # one seed: the standard deviation is undefined
MISSING = "—"


# ---------------------------------------------------------------- statistics
class Stat:
    """Mean, sample standard deviation (None for one value) and count of a list of values.

    `diverged` lists the (seed, step) of runs whose training diverged (train stage's
    divergence check): such a cell is shown as "diverged", never silently averaged.
    `resumed` lists the (seed, step) of runs resumed from a back-up in a way that is not
    bit-identical to an uninterrupted run: the cell says "resumed at step N".
    `negative_risk` lists the (seed, step) of runs whose mean training loss went below 0 (a loss
    with negative weights, BC or NLS, that fits the noise): an annotation, not divergence.
    `by_seed` maps each seed to its value (given `seeds`, one per value): the claims pair them.
    """

    def __init__(
        self, values: Sequence[float], diverged: Sequence[tuple[int, int]] = (),
        resumed: Sequence[tuple[int, int]] = (), *, seeds: Sequence[int] | None = None,
        negative_risk: Sequence[tuple[int, int]] = (),
    ):  # fmt: skip
        if seeds is not None and len(seeds) != len(values):
            raise ValueError(f"{len(seeds)} seeds for {len(values)} values")
        self.by_seed = {
            int(s): float(v) for s, v in zip(seeds if seeds is not None else [], values) if v is not None
        }
        values = [float(v) for v in values if v is not None]
        self.n = len(values)
        self.mean = float(np.mean(values)) if values else None
        self.std = float(np.std(values, ddof=1)) if self.n >= 2 else None
        self.diverged = sorted(diverged)
        self.resumed = sorted(resumed)
        self.negative_risk = sorted(negative_risk)

    def format(self, digits: int) -> str:
        if self.n == 0:
            return MISSING
        if self.diverged:
            steps = ", ".join(f"seed {seed} at step {step}" for seed, step in self.diverged)
            return f"diverged ({len(self.diverged)} of {self.n} runs: {steps})"
        std = NO_STD if self.std is None else f"{self.std:.{digits}f}"
        text = f"{self.mean:.{digits}f} ± {std}"
        if self.resumed:
            text += (
                " (" + ", ".join(f"seed {seed} resumed at step {step}" for seed, step in self.resumed) + ")"
            )
        if self.negative_risk:
            steps = sorted({step for _, step in self.negative_risk})
            where = f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}–{steps[-1]}"
            text += f" (negative training risk from step {where}, {len(self.negative_risk)} of {self.n} runs)"
        return text

    def band(self) -> tuple[float, float]:
        return self.mean, (self.std or 0.0)


# ---------------------------------------------------------------- loading
class Evaluation:
    """One evaluation artifact: its model (`spec`; `key` its cell, the seeds to average), metrics and figures."""

    def __init__(self, path: Path, manifest: dict, metrics: dict):
        self.path, self.manifest, self.metrics = path, manifest, metrics
        try:
            self.spec = ModelSpec.from_description(metrics.get("description") or {})
        except (UserError, TypeError, ValueError) as e:
            raise UserError(f"evaluation {path}: metrics.json {e}") from None
        self.key = self.spec.cell
        self.seed = int(self.spec.seed)
        setting = metrics.get("setting") or {}
        self.setting = tuple(sorted((str(k), str(v)) for k, v in setting.items()))
        self.created = str(manifest.get("created", ""))
        diverged = (metrics.get("training") or {}).get("diverged")
        self.diverged_at: int | None = int(diverged["step"]) if diverged else None
        negative = (metrics.get("training") or {}).get("negative_risk_from_step")
        self.negative_risk_at: int | None = int(negative) if negative is not None else None
        resumed = (metrics.get("training") or {}).get("resumed")  # recorded by the train stage
        self.resumed_at: int | None = int(resumed["step"]) if resumed and not resumed.get("exact") else None

    def value(self, *path: str) -> float | None:
        node: Any = self.metrics
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return None if node is None else float(node)


def load_evaluation(path: str | os.PathLike) -> Evaluation:
    """Reads a complete evaluation artifact (manifest verified) and its metrics.json."""
    path = artifacts.path(path)
    manifest = artifacts.read_manifest(path, what="evaluation")
    if manifest.get("stage") != EVALUATE:
        raise UserError(f"{path} is a {manifest.get('stage')!r} artifact, not an evaluation")
    try:
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"evaluation {path}: cannot read metrics.json: {e}") from e
    return Evaluation(path, manifest, metrics)


def find_evaluations(workdir: str | os.PathLike, log: Callable[[str], None] = print) -> list[Path]:
    """Every complete evaluation directory under `<workdir>/eval/`, sorted by name."""
    root = artifacts.join(workdir, "eval")
    if not root.is_dir():
        raise UserError(f"no evaluations: {root} does not exist; run `smear evaluate` first")
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if artifacts.is_complete(path):
            found.append(path)
        else:
            log(f"report: skipping incomplete evaluation {path}")
    if not found:
        raise UserError(f"no complete evaluation under {root}")
    return found


def _deduplicate(
    evaluations: list[Evaluation], log: Callable[[str], None]
) -> tuple[list[Evaluation], list[str]]:
    """Keeps the newest evaluation of each (setting, model configuration, seed)."""
    newest: dict[tuple, Evaluation] = {}  # (setting, cell, seed) -> evaluation
    dropped = []
    for e in sorted(evaluations, key=lambda e: (e.created, e.path.name)):
        slot = (e.setting, e.key, e.seed)
        if slot in newest:
            dropped.append(newest[slot].path.name)
            log(
                f"report: {newest[slot].path.name} is superseded by the newer {e.path.name} (same model and seed)"
            )
        newest[slot] = e
    return sorted(newest.values(), key=lambda e: e.path.name), sorted(dropped)
