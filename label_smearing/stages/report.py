"""Aggregate evaluations into the paper's tables and figures.

    smear report --config quickstart --workdir W [--force]

Reads every complete evaluation (`smear evaluate`) and writes
`<workdir>/report/<config name>-<fp10>/` with

- `report.md`: per experimental setting (data and noise, architecture,
  training schedule) the tables of the paper: test accuracy at the alpha each
  method chooses on noisy-label validation accuracy (Table 7 layout; the
  validation protocol, `Setting.selection`) and how that choice compares with
  the clean-label and the test (oracle) choice, test accuracy per alpha
  (Table 2 layout), the train accuracy breakdown (Table 3), ECE (Table 4),
  distilled students (Table 5), tables of every teacher and student, and the
  paper's claims 1-6 checked one by one with a verdict each (holds / does not
  hold / inconclusive; label_smearing/stages/claims.py), with claim 8 (Wei et al.
  2022: NLS vs LS) where LS has alphas < 0. Negative smoothing sits on the same
  alpha axis as LS in the tables and Figure 2, alpha 0 being the CE baseline,
  and its alpha is chosen apart ("NLS"). A cell with a diverged training run
  reads "diverged" with the step, never a silent average;
- `tables/*.csv`: the same tables, cell for cell, plus `summary.csv` with the
  unformatted mean, standard deviation and count of every metric (and the
  seeds that diverged, as seed@step);
- `figures/`: test accuracy against alpha (Figure 2), student accuracy against
  the teacher's alpha (Figure 6), the learning curves of CE and each method at
  its smallest alpha and, per model, the reliability diagram, logit-gap
  densities and pre-logit projection of one representative seed (the smallest);
- `tensorboard/`: a TensorBoard HParams summary with one run per evaluation.

Numbers over seeds are mean ± sample standard deviation (ddof = 1). A cell with
one seed shows "± —" (no standard deviation; the figures draw it with zero
spread). Accuracies are in percent with 2 decimals, ECE and NLL with 3.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from label_smearing.core import artifacts, layout
from label_smearing.core.cli_common import command_parser, parse_stage_args
from label_smearing.core.errors import UserError
from label_smearing.core.lifecycle import run_standalone
from label_smearing.core.registry import EVALUATE, REPORT, StageRequest
from label_smearing.core.spec import (
    BASELINE,
    ESTIMATED,
    SMOOTHING,
    STUDENT,
    TEACHER,
    UNKNOWN,
    ModelSpec,
    student_cell,
    teacher_cell,
)
from label_smearing.modeling.losses import CE, FC, LOSSES, LS

# The methods with an alpha grid (Tables 2-4, Figure 2) and with an estimated-T column (Table 7), in LOSSES' order.
ALPHA_METHODS = tuple(name for name, entry in LOSSES.items() if entry.uses_alpha)
ESTIMATED_METHODS = tuple(name for name, entry in LOSSES.items() if entry.uses_transition)
_ORDER = {name: i for i, name in enumerate(LOSSES)}  # method order in the tables; unknown methods last
# Table 5's columns: (teacher method, student method); the first is the vanilla student.
TABLE5_COLUMNS = ((CE, CE), (LS, CE), (CE, LS), (FC, CE), (CE, FC))
TABLE3_ROWS = (
    ("full_true", "full train set, true labels"),
    ("clean_true", "clean part, true labels"),
    ("noisy_true", "noisy part, true labels"),
    ("noisy_noisy", "noisy part, noisy labels"),
)
PER_MODEL_PLOTS = (
    ("reliability", "reliability"),
    ("logit_gaps_noisy_part", "logit gaps, mislabelled"),
    ("logit_gaps_all", "logit gaps, all"),
    ("projection", "pre-logit projection"),
)
DIGITS = {"accuracy": 2, "ece": 3, "nll": 3}
TEST_ACCURACY = ("test", "accuracy")
VALIDATION_NOISY = ("validation", "accuracy_noisy")  # what a practitioner can measure: the report's choice
VALIDATION_CLEAN = ("validation", "accuracy_clean")
NO_STD = "—"  # one seed: the standard deviation is undefined
MISSING = "—"


# ---------------------------------------------------------------- keys and names
def method_column(method: str) -> str:
    """A teacher method's name in the tables: "Baseline (CE)", "LS", "FC (smoothing T)"."""
    label = LOSSES[method].label
    if method == CE:
        return f"Baseline ({label})"
    return f"{label} (smoothing T)" if LOSSES[method].uses_transition else label


def negative_column(method: str) -> str:
    """A method's name at alpha < 0 in the tables: "NLS" (negative label smoothing, Wei et al. 2022)."""
    return f"N{LOSSES[method].label}"


def _method_name(spec: ModelSpec | None) -> str:
    """A teacher's or student's own method: "CE", "LS α = 0.1", "FC (estimated T)"; None is "unknown"."""
    if spec is None:
        return UNKNOWN
    label = LOSSES[spec.method].label
    if spec.method == CE:
        return label
    if spec.transition == ESTIMATED:
        return f"{label} (estimated T)"
    return f"{label} α = {_alpha_text(spec.alpha)}"


def _teacher_fields(key: ModelSpec) -> tuple[str, str, float | None]:
    """A student's teacher as (method, transition, alpha); ("unknown", smoothing, None) if unknown."""
    t = key.teacher
    return (UNKNOWN, SMOOTHING, None) if t is None else (t.method, t.transition, t.alpha)


def _listing_order(key: ModelSpec) -> str:
    """Row order of summary.csv and the per-model figures (as in earlier reports): the text of
    (role, method, transition, alpha) for a teacher and (role, teacher method, transition, alpha,
    student method, alpha, temperature) for a student."""
    if key.role == TEACHER:
        return str((key.role, key.method, key.transition, key.alpha))
    return str((key.role, *_teacher_fields(key), key.method, key.alpha, key.temperature))


# ---------------------------------------------------------------- statistics
class Stat:
    """Mean, sample standard deviation (None for one value) and count of a list of values.

    `diverged` lists the (seed, step) of runs whose training diverged (train stage's
    divergence check): such a cell is shown as "diverged", never silently averaged.
    """

    def __init__(self, values: Sequence[float], diverged: Sequence[tuple[int, int]] = ()):
        values = [float(v) for v in values if v is not None]
        self.n = len(values)
        self.mean = float(np.mean(values)) if values else None
        self.std = float(np.std(values, ddof=1)) if self.n >= 2 else None
        self.diverged = sorted(diverged)

    def format(self, digits: int) -> str:
        if self.n == 0:
            return MISSING
        if self.diverged:
            steps = ", ".join(f"seed {seed} at step {step}" for seed, step in self.diverged)
            return f"diverged ({len(self.diverged)} of {self.n} runs: {steps})"
        std = NO_STD if self.std is None else f"{self.std:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {std}"

    def band(self) -> tuple[float, float]:
        return self.mean, (self.std or 0.0)


def _alpha_text(alpha: float | None) -> str:
    return "?" if alpha is None else f"{alpha:g}"


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


# ---------------------------------------------------------------- tables
class Table:
    """A titled table; rendered as Markdown and as CSV rows."""

    def __init__(self, name: str, title: str, header: list[str], rows: list[list[str]], note: str = ""):
        self.name, self.title, self.header, self.rows, self.note = name, title, header, rows, note

    def markdown(self) -> list[str]:
        lines = [
            f"### {self.title}",
            "",
            "| " + " | ".join(self.header) + " |",
            "|" + "---|" * len(self.header),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return lines + [""]


class Setting:
    """The evaluations of one experimental setting, grouped by model configuration over seeds."""

    def __init__(self, index: int, setting: tuple, evaluations: list[Evaluation]):
        self.index, self.setting = index, dict(setting)
        self.groups: dict[ModelSpec, list[Evaluation]] = defaultdict(list)
        for evaluation in evaluations:
            self.groups[evaluation.key].append(evaluation)
        for runs in self.groups.values():
            runs.sort(key=lambda e: e.seed)

    @property
    def title(self) -> str:
        s = self.setting
        parts = [s.get("data", ""), s.get("model", "")]
        text = "; ".join(p for p in parts if p) or "evaluations"
        ids = [f"{k} {s[k + '_fingerprint']}" for k in ("data", "training") if s.get(k + "_fingerprint")]
        if ids:
            text += f" ({', '.join(ids)})"
        return text

    @property
    def short_title(self) -> str:
        return self.setting.get("data") or f"setting {self.index}"

    def suffix(self) -> str:
        return "" if self.index == 1 else f"-{self.index}"

    # -- look-ups
    def stat(self, key: ModelSpec, *path: str) -> Stat:
        runs = self.groups.get(key, [])
        values = [e.value(*path) for e in runs]
        diverged = [
            (e.seed, e.diverged_at)
            for e, v in zip(runs, values)
            if v is not None and e.diverged_at is not None
        ]
        return Stat(values, diverged)

    @property
    def selection(self) -> tuple[tuple[str, ...], str]:
        """(metric path, its description) that alpha is chosen on: noisy-label validation accuracy,
        or test accuracy when some evaluation of the setting has no validation split (older data)."""
        if all(e.value(*VALIDATION_NOISY) is not None for runs in self.groups.values() for e in runs):
            return VALIDATION_NOISY, "validation accuracy on the noisy validation labels"
        return TEST_ACCURACY, "test accuracy (the data have no validation split: an optimistic choice)"

    def choose(self, keys: Iterable[tuple[float, ModelSpec]], path: Sequence[str] | None = None):
        """Of (alpha, key) pairs, the one with the highest mean of `path` (default: `selection`), the
        smaller alpha on ties; None if none has a value. Returns (alpha, key)."""
        path = tuple(path or self.selection[0])
        best = None
        for alpha, key in sorted(keys, key=lambda pair: pair[0]):
            stat = self.stat(key, *path)
            if stat.n and (best is None or stat.mean > best[0]):
                best = (stat.mean, alpha, key)
        return None if best is None else best[1:]

    def chosen(self, method: str, path: Sequence[str] | None = None, sign: int = 1) -> ModelSpec | None:
        """The method's teacher cell (smoothing T) at the alpha chosen on `path` (default: `selection`),
        among its alphas of `sign` (+1: the paper's alpha > 0; -1: negative smoothing)."""
        keys = [(a, teacher_cell(method, a)) for a in self.teacher_alphas(method, sign)]
        found = self.choose(keys, path)
        return None if found is None else found[1]

    def teacher_alphas(self, method: str, sign: int = 0) -> list[float]:
        """The alphas of the method's teachers with a smoothing T: all, or (sign +1 / -1) those > 0 / < 0."""
        alphas = {
            k.alpha
            for k in self.groups
            if k.role == TEACHER and k.method == method and k.transition == SMOOTHING
        }
        return sorted(a for a in alphas if sign == 0 or a * sign > 0)

    def families(self) -> list[tuple[str, int, str]]:
        """(method, sign, column name) of every alpha grid an alpha is chosen over: each method's alpha > 0
        ("LS"), and apart from it its alpha < 0 ("NLS", negative smoothing). Alpha 0 is CE, the baseline."""
        out = []
        for method, name in self.alpha_methods():
            for sign in (1, -1):
                if self.teacher_alphas(method, sign):
                    out.append((method, sign, name if sign > 0 else negative_column(method)))
        return out

    def has(self, key: ModelSpec) -> bool:
        return key in self.groups

    def students(self) -> list[ModelSpec]:
        """The student cells, by temperature, then teacher and student (method order, alpha)."""

        def order(key: ModelSpec) -> tuple:
            method, transition, alpha = _teacher_fields(key)
            return (key.temperature, _ORDER.get(method, len(_ORDER)), transition, alpha or 0.0,
                    _ORDER.get(key.method, len(_ORDER)), key.alpha)  # fmt: skip

        return sorted((k for k in self.groups if k.role == STUDENT), key=order)

    def alpha_cell(self, method: str, alpha: float, *path: str) -> tuple[Stat, bool]:
        """(stat, from_baseline): the method's own runs at alpha, else at alpha 0 the CE baseline."""
        if alpha in self.teacher_alphas(method):  # (a cell outside the method's range is never built)
            return self.stat(teacher_cell(method, alpha), *path), False
        if alpha == 0.0 and self.has(BASELINE):
            return self.stat(BASELINE, *path), True
        return Stat([]), False

    def alpha_methods(self) -> list[tuple[str, str]]:
        """(method, column name) of every alpha-grid method this setting has teachers of."""
        return [(m, method_column(m)) for m in ALPHA_METHODS if self.teacher_alphas(m)]

    def alpha_columns(self) -> list[float]:
        alphas = {a for m, _ in self.alpha_methods() for a in self.teacher_alphas(m)}
        if self.has(BASELINE):
            alphas.add(0.0)
        return sorted(alphas)


def _cell(stat: Stat, digits: int, baseline: bool = False, alpha: float | None = None) -> str:
    text = stat.format(digits)
    if stat.n and baseline:
        text += f" ({LOSSES[CE].label})"
    if stat.n and alpha is not None:
        text += f" (α = {_alpha_text(alpha)})"
    return text


def table7(setting: Setting) -> Table | None:
    header, row = [], []
    if setting.has(BASELINE):
        header.append(method_column(CE))
        row.append(_cell(setting.stat(BASELINE, *TEST_ACCURACY), 2))
    for method, sign, name in setting.families():
        chosen = setting.chosen(method, sign=sign)
        header.append(name)
        row.append(_cell(setting.stat(chosen, *TEST_ACCURACY), 2, alpha=chosen.alpha))
    for method in ESTIMATED_METHODS:
        key = teacher_cell(method, transition=ESTIMATED)
        if setting.has(key):
            header.append(_method_name(key))
            row.append(_cell(setting.stat(key, *TEST_ACCURACY), 2))
    if not header:
        return None
    path, on = setting.selection
    where = "validation" if path == VALIDATION_NOISY else "test"
    note = (
        f"Each method's α is chosen on the mean {on} over seeds (the smaller α on ties), and its test "
        "accuracy is reported at that α"
        + ("; the test set plays no part in the choice." if where == "validation" else ".")
        + " CE has no α."
        + (" NLS is LS at α < 0, chosen apart from LS's α > 0." if any(s < 0 for _, s, _ in setting.families())
           else "")
    )  # fmt: skip
    title = f"Test accuracy (%) at the α chosen on {where} (Table 7 layout)"
    return Table("table7", title, header, [row], note)


def alpha_selection_table(setting: Setting) -> Table | None:
    """Per method, the α chosen on noisy and on clean validation labels and on test (the oracle)."""
    methods = setting.families()
    path, _ = setting.selection
    if not methods or path != VALIDATION_NOISY:
        return None
    rows, differ = [], 0
    for method, sign, name in methods:
        picks = [setting.chosen(method, p, sign) for p in (VALIDATION_NOISY, VALIDATION_CLEAN, TEST_ACCURACY)]
        differ += picks[0] != picks[1]
        rows.append([
            name, *(_alpha_text(k.alpha) for k in picks),
            _cell(setting.stat(picks[0], *TEST_ACCURACY), 2), _cell(setting.stat(picks[2], *TEST_ACCURACY), 2),
        ])  # fmt: skip
    header = ["method", "α (noisy val.)", "α (clean val.)", "α (test, oracle)", "test acc. at chosen α",
              "test acc. at oracle α"]  # fmt: skip
    note = (
        f"The report uses the first column. Chosen on the clean validation labels instead, the α would differ "
        f"for {differ} of {len(methods)} methods; the oracle column shows what choosing on test would have gained."
    )
    return Table("alpha_selection", "How α was chosen", header, rows, note)


def table2(setting: Setting) -> Table | None:
    methods, alphas = setting.alpha_methods(), setting.alpha_columns()
    if not methods:
        return None
    rows = []
    for method, name in methods:
        row = [name]
        for alpha in alphas:
            stat, from_baseline = setting.alpha_cell(method, alpha, "test", "accuracy")
            row.append(_cell(stat, 2, baseline=from_baseline))
        rows.append(row)
    header = ["method"] + [f"α = {_alpha_text(a)}" for a in alphas]
    return Table("table2", "Test accuracy (%) by α (Table 2 layout)", header, rows)


def table3(setting: Setting) -> list[Table]:
    tables = []
    alphas_all = setting.alpha_columns()
    for method, name in setting.alpha_methods():
        alphas = [a for a in alphas_all if a in setting.teacher_alphas(method) or a == 0.0]
        rows = []
        for field, label in TABLE3_ROWS:
            row = [label]
            for alpha in alphas:
                stat, from_baseline = setting.alpha_cell(method, alpha, "train", "accuracy", field)
                row.append(_cell(stat, 2, baseline=from_baseline))
            rows.append(row)
        header = [name] + [f"α = {_alpha_text(a)}" for a in alphas]
        title = f"Train accuracy (%) on the noisy training split, {name} (Table 3 layout)"
        tables.append(Table(f"table3_{method}", title, header, rows))
    return tables


def table4(setting: Setting) -> Table | None:
    methods, alphas = setting.alpha_methods(), setting.alpha_columns()
    if not methods:
        return None
    rows = []
    for alpha in alphas:
        row = [_alpha_text(alpha)]
        for method, _ in methods:
            stat, from_baseline = setting.alpha_cell(method, alpha, "test", "ece")
            row.append(_cell(stat, 3, baseline=from_baseline))
        rows.append(row)
    header = ["α"] + [name for _, name in methods]
    return Table("table4", "Test ECE (Table 4 layout)", header, rows)


def _table5_cell(
    setting: Setting, students: list[ModelSpec], temperature: float, teacher: str, student: str
) -> str:
    """One Table 5 cell: students of (teacher method, student method) at `temperature`, best alpha."""
    keys = [
        k for k in students
        if k.temperature == temperature and k.teacher is not None and k.teacher.method == teacher
        and k.teacher.transition == SMOOTHING and k.method == student
    ]  # fmt: skip
    if teacher == CE and student == CE:
        return _cell(setting.stat(keys[0], "test", "accuracy"), 2) if keys else MISSING
    # The tuned alpha: the teacher's for a CE student, else the student's.
    tuned = [(k.teacher.alpha if student == CE else k.alpha, k) for k in keys]
    found = setting.choose([(a, k) for a, k in tuned if a > 0])
    return _cell(setting.stat(found[1], *TEST_ACCURACY), 2, alpha=found[0]) if found else MISSING


def _table5_header(teacher: str, student: str) -> str:
    if teacher == student == CE:
        return "vanilla teacher"
    return f"{LOSSES[student].label} student" if teacher == CE else f"{LOSSES[teacher].label} teacher"


def table5(setting: Setting) -> Table | None:
    students = setting.students()
    if not students:
        return None
    rows = [
        [f"{t:g}", *(_table5_cell(setting, students, t, *column) for column in TABLE5_COLUMNS)]
        for t in sorted({k.temperature for k in students})
    ]
    header = ["temperature", *(_table5_header(*column) for column in TABLE5_COLUMNS)]
    note = (
        "Vanilla: CE teacher, CE student. LS / FC teacher: the teacher trained with LS / FC, CE student. "
        "LS / FC student: CE teacher, the student's soft targets smoothed / forward-corrected. The α of each "
        f"column is chosen on the students' {setting.selection[1]}."
    )
    return Table("table5", "Distilled students: test accuracy (%) (Table 5 layout)", header, rows, note)


def claims_table(setting: Setting) -> Table | None:
    """The paper's claims 1-6 (and claim 8) checked on this setting (rules in label_smearing/stages/claims.py)."""
    from label_smearing.stages import claims

    found = claims.checks(setting)
    if not found:
        return None
    note = (
        "A and B are means over seeds; s is the larger of their sample standard deviations. "
        "A > B holds if A − B > s, does not hold if A − B < −s, and is inconclusive otherwise; "
        "A ≥ B holds unless A − B < −s. Claim 7 (the 2-D problem) is `smear synthetic`'s."
    )
    title = "The paper's claims, checked (NOTES.md claims 1-6)"
    if any(check.claim == "8" for check in found):
        title += ", and claim 8 from since"
        note += (
            " Claim 8 is not the paper's: Wei et al. (ICML 2022) report that at high noise rates negative "
            "smoothing (NLS, α < 0) beats LS (α > 0)."
        )
    rows = [check.row(lambda stat, digits: stat.format(digits)) for check in found]
    return Table("claims", title, claims.HEADER, rows, note)


def _metric_cells(setting: Setting, key: ModelSpec) -> list[str]:
    runs = setting.groups[key]
    return [
        str(len(runs)),
        _cell(setting.stat(key, "test", "accuracy"), 2),
        _cell(setting.stat(key, "test", "nll"), 3),
        _cell(setting.stat(key, "test", "ece"), 3),
    ]


def teachers_table(setting: Setting) -> Table | None:
    keys = sorted(
        (k for k in setting.groups if k.role == TEACHER),
        key=lambda k: (_ORDER.get(k.method, len(_ORDER)), k.transition, k.alpha),
    )
    if not keys:
        return None
    rows = []
    for key in keys:
        estimated = key.transition == ESTIMATED
        name = _method_name(key) if estimated else method_column(key.method)
        rows.append([name, "—" if estimated else _alpha_text(key.alpha), *_metric_cells(setting, key)])
    header = ["method", "α", "seeds", "test accuracy (%)", "test NLL", "test ECE"]
    return Table("teachers", "All teachers", header, rows)


def students_table(setting: Setting) -> Table | None:
    keys = setting.students()
    if not keys:
        return None
    rows = []
    for key in keys:
        rows.append([_method_name(key.teacher), _method_name(key), f"{key.temperature:g}",
                     *_metric_cells(setting, key)])  # fmt: skip
    header = ["teacher", "student", "temperature", "seeds", "test accuracy (%)", "test NLL", "test ECE"]
    return Table("students", "All students", header, rows)


# ---------------------------------------------------------------- figures
def _figure_series(setting: Setting) -> tuple[dict, tuple[float, float] | None]:
    series = {}
    for method, name in setting.alpha_methods():
        points = [(a, *setting.alpha_cell(method, a, "test", "accuracy")) for a in setting.alpha_columns()]
        points = [(a, s) for a, s, _ in points if s.n]
        series[name] = {
            "alpha": [a for a, _ in points],
            "mean": [s.mean for _, s in points],
            "std": [s.band()[1] for _, s in points],
        }
    ce = setting.stat(BASELINE, "test", "accuracy")
    return series, (ce.band() if ce.n else None)


def _curve_series(setting: Setting) -> dict:
    """CE and each alpha method at its smallest alpha > 0 (and, for negative smoothing, its alpha < 0
    nearest 0): per-epoch curves, mean and std over seeds."""
    from label_smearing.core.curves import CURVE_KEYS

    keys = (
        [BASELINE]
        + [teacher_cell(m, alphas[0]) for m in ALPHA_METHODS if (alphas := setting.teacher_alphas(m, 1))]
        + [teacher_cell(m, alphas[-1]) for m in ALPHA_METHODS if (alphas := setting.teacher_alphas(m, -1))]
    )
    series = {}
    for key in keys:
        runs = [e.metrics.get("training", {}).get("curves") or [] for e in setting.groups.get(key, [])]
        runs = [r for r in runs if r]
        if not runs:
            continue
        steps = sorted(set.intersection(*(set(point["step"] for point in run) for run in runs)))
        if not steps:
            continue
        values: dict[str, list[float]] = {"step": steps}
        for curve in CURVE_KEYS:
            by_step = [
                [p[curve] for run in runs for p in run if p["step"] == step and curve in p] for step in steps
            ]
            if all(len(v) == len(runs) for v in by_step):
                values[curve] = [float(np.mean(v)) for v in by_step]
                values[f"{curve}_std"] = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in by_step]
        series[_method_name(key)] = values
    return series


def _student_series(setting: Setting) -> dict:
    """Teacher method x temperature -> CE-student accuracy against the teacher's alpha (0 = vanilla teacher)."""
    students = setting.students()
    temperatures = sorted({k.temperature for k in students})
    series = {}
    for method in ALPHA_METHODS:
        for temperature in temperatures:
            points = {}
            vanilla = student_cell(BASELINE, CE, 0.0, temperature)
            if vanilla in setting.groups:
                points[0.0] = setting.stat(vanilla, "test", "accuracy")
            for key in students:
                teacher = key.teacher
                if (teacher is not None and teacher.method == method and teacher.transition == SMOOTHING
                        and key.method == CE and key.temperature == temperature):  # fmt: skip
                    points[teacher.alpha] = setting.stat(key, "test", "accuracy")
            points = {a: s for a, s in points.items() if s.n}
            if len(points) >= 2 and any(a > 0 for a in points):
                name = f"{LOSSES[method].label} teacher" + (
                    f", temperature {temperature:g}" if len(temperatures) > 1 else ""
                )
                alphas = sorted(points)
                series[name] = {
                    "alpha": alphas,
                    "mean": [points[a].mean for a in alphas],
                    "std": [points[a].band()[1] for a in alphas],
                }
    return series


def _panel(setting: Setting, key: ModelSpec, plot_key: str) -> Path | None:
    """The smallest seed's `plot_key` PNG of one model configuration, if it was drawn."""
    runs = setting.groups.get(key)
    rel = ((runs[0].metrics.get("plots") or {}).get(plot_key)) if runs else None
    return runs[0].path / rel if rel and (runs[0].path / rel).is_file() else None


def _paper_figures(setting: Setting, out_dir: Path) -> list[tuple[str, str]]:
    """Figures 3 and 4 as montages of the per-model figures (smallest seed); [(caption, relative path)]."""
    from label_smearing.core import plots

    figures = []
    smallest = [teacher_cell(m, alphas[0]) for m in ALPHA_METHODS if (alphas := setting.teacher_alphas(m, 1))]
    gap_keys = [(key, _method_name(key)) for key in (BASELINE, *smallest)]
    projection_keys = [(BASELINE, f"{_method_name(BASELINE)} (α = 0)")] + [
        (key, _method_name(key)) for key in (teacher_cell(LS, a) for a in setting.teacher_alphas(LS))
    ]
    specs = (
        ("figure3", "logit_gaps_noisy_part", gap_keys,
         "Figure 3: z_label − mean(z) on the mislabelled training examples, true and noisy label"),
        ("figure4", "projection", projection_keys,
         "Figure 4: pre-logit projections as α grows (mislabelled examples in black)"),
    )  # fmt: skip
    for name, plot_key, keys, caption in specs:
        panels = [(p, label) for key, label in keys if (p := _panel(setting, key, plot_key))]
        if len(panels) < 2:
            continue
        rel = f"figures/{name}{setting.suffix()}.png"
        plots.montage(
            panels, out_dir / rel, f"{caption.split(':')[0]}: {setting.short_title} (smallest seed)"
        )
        figures.append((caption, rel))
    return figures


def _copy_model_figures(setting: Setting, out_dir: Path) -> list[list[str]]:
    """Copies each model configuration's figures of its smallest seed; returns table rows."""
    rows = []
    for _, runs in sorted(setting.groups.items(), key=lambda item: _listing_order(item[0])):
        run = runs[0]
        plots = run.metrics.get("plots") or {}
        cells, found = [], False
        for plot_key, _ in PER_MODEL_PLOTS:
            rel = plots.get(plot_key)
            source = run.path / rel if rel else None
            if source is None or not source.is_file():
                cells.append(MISSING)
                continue
            target = out_dir / "figures" / "models" / run.path.name / source.name
            artifacts.copy_file(source, target)
            svg = source.with_suffix(".svg")
            if svg.is_file():
                artifacts.copy_file(svg, target.with_suffix(".svg"))
            rel_target = target.relative_to(out_dir).as_posix()
            cells.append(f"[png]({rel_target})")
            found = True
        if found:
            rows.append([run.path.name, str(run.seed), *cells])
    return rows


# ---------------------------------------------------------------- TensorBoard HParams
def _write_hparams(out_dir: Path, evaluations: list[Evaluation]) -> None:
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    def teacher(e: Evaluation) -> str:
        if e.key.role != STUDENT:
            return "none"
        return f"{_method_name(e.key.teacher)}, temperature {e.key.temperature:g}"

    domains = {
        "role": hp.HParam("role", hp.Discrete(sorted({e.key.role for e in evaluations}))),
        "method": hp.HParam("method", hp.Discrete(sorted({e.key.method for e in evaluations}))),
        "alpha": hp.HParam("alpha", hp.Discrete(sorted({e.key.alpha for e in evaluations}))),
        "seed": hp.HParam("seed", hp.Discrete(sorted({e.seed for e in evaluations}))),
        "transition": hp.HParam("transition", hp.Discrete(sorted({e.key.transition for e in evaluations}))),
        "teacher": hp.HParam("teacher", hp.Discrete(sorted({teacher(e) for e in evaluations}))),
    }
    metrics = [
        hp.Metric("test/accuracy", display_name="test accuracy (%)"),
        hp.Metric("test/ece", display_name="test ECE"),
        hp.Metric("test/nll", display_name="test NLL"),
    ]
    root = out_dir / "tensorboard"
    writer = tf.summary.create_file_writer(str(root))
    with writer.as_default():
        hp.hparams_config(hparams=list(domains.values()), metrics=metrics)
    writer.close()
    for e in evaluations:
        values = {
            domains["role"]: e.key.role,
            domains["method"]: e.key.method,
            domains["alpha"]: e.key.alpha,
            domains["seed"]: e.seed,
            domains["transition"]: e.key.transition,
            domains["teacher"]: teacher(e),
        }
        writer = tf.summary.create_file_writer(str(root / e.path.name))
        with writer.as_default():
            hp.hparams(values, trial_id=e.path.name)
            for name, path in (("test/accuracy", ("test", "accuracy")), ("test/ece", ("test", "ece")),
                               ("test/nll", ("test", "nll"))):  # fmt: skip
                value = e.value(*path)
                if value is not None:
                    tf.summary.scalar(name, value, step=0)
        writer.close()


# ---------------------------------------------------------------- the stage
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


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _summary_rows(settings: list[Setting]) -> list[list[str]]:
    rows = []
    metrics = [
        ("test/accuracy", ("test", "accuracy")),
        ("test/nll", ("test", "nll")),
        ("test/ece", ("test", "ece")),
        ("validation/accuracy_noisy", VALIDATION_NOISY),
        ("validation/accuracy_clean", VALIDATION_CLEAN),
    ]
    metrics += [(f"train/accuracy_{f}", ("train", "accuracy", f)) for f, _ in TABLE3_ROWS]
    for setting in settings:
        for key in sorted(setting.groups, key=_listing_order):
            if key.role == TEACHER:
                fields = [key.role, key.method, key.transition, key.alpha, "", "", "", "", ""]
            else:
                fields = [
                    key.role,
                    key.method,
                    "",
                    key.alpha,
                    *_teacher_fields(key),
                    key.alpha,
                    key.temperature,
                ]
            seeds = " ".join(str(e.seed) for e in setting.groups[key])
            for name, path in metrics:
                stat = setting.stat(key, *path)
                if stat.n:
                    std = "" if stat.std is None else repr(stat.std)
                    rows.append([setting.title, *map(lambda x: "" if x is None else str(x), fields), seeds, name,
                                 str(stat.n), repr(stat.mean), std,
                                 " ".join(f"{seed}@{step}" for seed, step in stat.diverged)])  # fmt: skip
    return rows


def render_report(
    evaluations: list[Evaluation],
    out_dir: Path,
    *,
    dropped: Sequence[str] = (),
    per_model_figures: bool = True,
) -> tuple[str, dict[str, str]]:
    """The Markdown report and the CSV files (name -> text); draws the figures into out_dir/figures.

    per_model_figures: also copy every model's own figures (smallest seed) and list them.
    """
    from label_smearing.core import plots

    by_setting: dict[tuple, list[Evaluation]] = defaultdict(list)
    for e in evaluations:
        by_setting[e.setting].append(e)
    settings = [Setting(i, s, by_setting[s]) for i, s in enumerate(sorted(by_setting), start=1)]
    teachers = sum(e.key.role == TEACHER for e in evaluations)
    lines = [
        "# Report: does label smoothing mitigate label noise?",
        "",
        f"{len(evaluations)} evaluations ({teachers} teachers, {len(evaluations) - teachers} students) "
        f"in {len(settings)} setting{'s' if len(settings) != 1 else ''}.",
        "",
        'Cells are mean ± sample standard deviation (ddof = 1) over seeds; "± —" marks a single seed '
        "(no standard deviation; the figures draw it with zero spread). Accuracies in %, NLL in nats, "
        'ECE as a fraction. "(CE)" marks an α = 0 cell filled with the cross-entropy baseline: at α = 0 '
        "LS, FC and BC all reduce to cross-entropy.",
        "",
    ]
    if dropped:
        lines += [
            f"Superseded by newer evaluations of the same model and seed (ignored): {', '.join(dropped)}.",
            "",
        ]
    csv_tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    for setting in settings:
        lines += [f"## Setting {setting.index}: {setting.title}", ""]
        figure2 = figure6 = None
        series, baseline = _figure_series(setting)
        if series:
            figure2 = f"figures/accuracy_vs_alpha{setting.suffix()}.png"
            plots.accuracy_vs_alpha(
                series, baseline, out_dir / figure2, f"Test accuracy against α: {setting.short_title}"
            )
        curves_figure = None
        curve_series = _curve_series(setting)
        if curve_series:
            curves_figure = f"figures/learning_curves{setting.suffix()}.png"
            plots.learning_curves(
                curve_series,
                out_dir / curves_figure,
                f"Learning curves (mean ± std over seeds): {setting.short_title}",
            )
        student_series = _student_series(setting)
        if student_series:
            figure6 = f"figures/student_vs_teacher_alpha{setting.suffix()}.png"
            plots.student_vs_teacher_alpha(
                student_series,
                out_dir / figure6,
                f"CE students against the teacher's α: {setting.short_title}",
            )
        tables = [claims_table(setting), table7(setting), alpha_selection_table(setting), table2(setting),
                  *table3(setting), table4(setting), table5(setting), teachers_table(setting),
                  students_table(setting)]  # fmt: skip
        for table in tables:
            if table is None:
                continue
            lines += table.markdown()
            if table.name == "table2" and figure2:
                lines += [f"![Figure 2: test accuracy against α]({figure2})", ""]
            if table.name == "table5" and figure6:
                lines += [f"![Figure 6: student accuracy against the teacher's α]({figure6})", ""]
            if table.name == "table4":
                for caption, rel in _paper_figures(setting, out_dir):
                    lines += [f"![{caption}]({rel})", ""]
                if curves_figure:
                    lines += [
                        "Learning curves, measured after every epoch on fixed subsamples (train.curve_examples): "
                        "how accuracy, calibration and the fit of the mislabelled examples move as training "
                        "gets longer.",
                        "",
                        f"![Learning curves]({curves_figure})",
                        "",
                    ]
            header, rows = csv_tables.setdefault(table.name, (["setting", *table.header], []))
            rows += [[str(setting.index), *row] for row in table.rows]
        if figure2 and not table2(setting):
            lines += [f"![Figure 2: test accuracy against α]({figure2})", ""]
        figure_rows = _copy_model_figures(setting, out_dir) if per_model_figures else []
        if figure_rows:
            header = ["evaluation", "seed", *(label for _, label in PER_MODEL_PLOTS)]
            lines += Table(
                "figures", "Per-model figures (smallest seed of each model)", header, figure_rows
            ).markdown()
    csv_files = {f"{name}.csv": _csv_text(header, rows) for name, (header, rows) in csv_tables.items()}
    summary_header = ["setting", "role", "method", "transition", "alpha", "teacher_method", "teacher_transition",
                      "teacher_alpha", "student_alpha", "temperature", "seeds", "metric", "n", "mean", "std",
                      "diverged"]  # fmt: skip
    csv_files["summary.csv"] = _csv_text(summary_header, _summary_rows(settings))
    return "\n".join(lines).rstrip() + "\n", csv_files


def report_stage(
    config: ml_collections.ConfigDict,
    eval_dirs: list,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Aggregates evaluation artifacts into report.md, CSV tables, figures and TensorBoard HParams.

    Args:
      config: the resolved config (its `report` section is fingerprinted).
      eval_dirs: complete evaluation artifact directories.
      out_dir: the report artifact directory to write.
      force: rewrite even if `out_dir` holds a complete report.
      log: where progress lines go.

    Returns:
      The report's manifest (read back if cached).

    Raises:
      UserError: no evaluations, or one that is missing, partial or corrupt.
    """
    if not eval_dirs:
        raise UserError("report: no evaluations to aggregate")
    evaluations = [load_evaluation(p) for p in eval_dirs]
    fp = layout.report_fingerprint(config, [e.manifest["fingerprint"] for e in evaluations])
    out_dir = artifacts.path(out_dir)
    if artifacts.is_complete(out_dir) and not force:
        cached = artifacts.read_manifest(out_dir, what="report")
        if cached.get("fingerprint") == fp:
            log(f"report: cached {out_dir}")
            return cached
        raise UserError(f"{out_dir} holds a different report; pass --force to replace it")
    evaluations, dropped = _deduplicate(evaluations, log)
    out_dir = artifacts.prepare_output(out_dir, force=force)
    per_model = bool(config.report.per_model_figures)
    markdown, csv_files = render_report(evaluations, out_dir, dropped=dropped, per_model_figures=per_model)
    (out_dir / "tables").mkdir(exist_ok=True)
    for name, text in csv_files.items():
        artifacts.atomic_write_bytes(out_dir / "tables" / name, text.encode())
    artifacts.atomic_write_bytes(out_dir / "report.md", markdown.encode())
    _write_hparams(out_dir, evaluations)
    manifest = artifacts.write_manifest(
        out_dir,
        stage=REPORT,
        fingerprint=fp,
        config=layout.report_section(config),
        inputs={e.path.name: artifacts.input_ref(e.path, e.manifest) for e in evaluations},
        counts={"evaluations": len(evaluations), "superseded": len(dropped)},
        exclude=("tensorboard",),
    )
    log(f"report: {len(evaluations)} evaluations -> {out_dir / 'report.md'}")
    return manifest


# ---------------------------------------------------------------- CLI
def compute_planned(request: StageRequest) -> dict:
    """A plan's report over every evaluation (`registry.STAGES`' entry point)."""
    return report_stage(
        request.config, list(request.inputs[EVALUATE]), request.out_dir, force=request.force, log=request.log
    )


def run(argv=None) -> None:
    args, config, _ = parse_stage_args(command_parser(REPORT), argv)
    eval_dirs = args.evaluations or find_evaluations(args.workdir)
    evaluations = [load_evaluation(p) for p in eval_dirs]
    report = layout.report(config, args.workdir, [e.manifest["fingerprint"] for e in evaluations])
    out_dir = artifacts.path(report.path)
    run_standalone(report, config, compute_planned, inputs={EVALUATE: eval_dirs}, force=args.force)
    print(f"report: {out_dir / 'report.md'}")
    print(f"report: TensorBoard HParams: tensorboard --logdir {out_dir / 'tensorboard'}")


__all__ = [
    "find_evaluations",
    "load_evaluation",
    "render_report",
    "report_stage",
    "run",
]
