"""The report's figures and its TensorBoard HParams summary.

The series of Figure 2 (test accuracy against α), Figure 6 (CE students against the teacher's α)
and the learning curves (which `render` draws), Figures 3 and 4 as montages of the per-model
figures, the copies of each model's own figures (smallest seed), and one HParams run per evaluation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from label_smearing.core import artifacts
from label_smearing.core.spec import BASELINE, SMOOTHING, STUDENT, ModelSpec, student_cell, teacher_cell
from label_smearing.modeling.losses import CE, LOSSES, LS
from label_smearing.stages.report.evaluations import MISSING, Evaluation
from label_smearing.stages.report.selection import ALPHA_METHODS, Setting, _listing_order, _method_name

PER_MODEL_PLOTS = (
    ("reliability", "reliability"),
    ("logit_gaps_noisy_part", "logit gaps, mislabelled"),
    ("logit_gaps_all", "logit gaps, all"),
    ("projection", "pre-logit projection"),
)


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
            "diverged": [bool(s.diverged) for _, s in points],  # drawn apart, as the tables show them
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
        title = f"{caption.split(':')[0]}: {setting.short_title} (smallest seed)"
        data = [p.with_suffix(".npz") for p, _ in panels]
        if plot_key == "logit_gaps_noisy_part" and all(d.is_file() for d in data):
            # Redrawn from each evaluation's data on one x-axis, so that the models' gaps compare;
            # evaluations from before the data were kept are tiled as they were drawn.
            series = [(label, plots.load_series(d)) for (_, label), d in zip(panels, data)]
            plots.logit_gap_panels(series, out_dir / rel, title)
        else:
            plots.montage(panels, out_dir / rel, title)
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
