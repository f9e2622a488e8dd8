"""Rendering the report: the Markdown text (report.md) and its CSV tables.

`render_report` groups the evaluations into settings, draws each setting's figures and lays out its
tables as Markdown sections and, cell for cell, as CSV files, plus summary.csv with the unformatted
mean, standard deviation and count of every metric (and the seeds that diverged, as seed@step).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from label_smearing.core.spec import TEACHER
from label_smearing.stages.report.evaluations import VALIDATION_CLEAN, VALIDATION_NOISY, Evaluation
from label_smearing.stages.report.figures import (
    PER_MODEL_PLOTS,
    _copy_model_figures,
    _curve_series,
    _figure_series,
    _paper_figures,
    _student_series,
)
from label_smearing.stages.report.selection import Setting, _listing_order, _teacher_fields
from label_smearing.stages.report.tables import (
    TABLE3_ROWS,
    Table,
    alpha_selection_table,
    claims_table,
    confirmation_table,
    students_table,
    table2,
    table3,
    table4,
    table5,
    table7,
    teachers_table,
)


# ---------------------------------------------------------------- rendering
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
    figures: bool = True,
    per_model_figures: bool = True,
    confirm_seeds: Sequence[int] = (),
) -> tuple[str, dict[str, str]]:
    """The Markdown report and the CSV files (name -> text); draws the figures into out_dir/figures.

    figures: draw the report's figures (off: the tables and text alone, and no per-model figures).
    per_model_figures: also copy every model's own figures (smallest seed) and list them.
    confirm_seeds: sweep.confirm_seeds, kept apart from the selection seeds (`Setting.confirmation`).
    """
    from label_smearing.core import plots

    by_setting: dict[tuple, list[Evaluation]] = defaultdict(list)
    for e in evaluations:
        by_setting[e.setting].append(e)
    settings = [
        Setting(i, s, by_setting[s], confirm_seeds) for i, s in enumerate(sorted(by_setting), start=1)
    ]
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
        series, baseline = _figure_series(setting) if figures else ([], None)
        if series:
            figure2 = f"figures/accuracy_vs_alpha{setting.suffix()}.png"
            plots.accuracy_vs_alpha(
                series, baseline, out_dir / figure2, f"Test accuracy against α: {setting.short_title}"
            )
        curves_figure = None
        curve_series = _curve_series(setting) if figures else None
        if curve_series:
            curves_figure = f"figures/learning_curves{setting.suffix()}.png"
            plots.learning_curves(
                curve_series,
                out_dir / curves_figure,
                f"Learning curves (mean ± std over seeds): {setting.short_title}",
            )
        student_series = _student_series(setting) if figures else None
        if student_series:
            figure6 = f"figures/student_vs_teacher_alpha{setting.suffix()}.png"
            plots.student_vs_teacher_alpha(
                student_series,
                out_dir / figure6,
                f"CE students against the teacher's α: {setting.short_title}",
            )
        tables = [claims_table(setting), confirmation_table(setting), table7(setting), alpha_selection_table(setting), table2(setting),
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
            if table.name == "table4" and figures:
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
