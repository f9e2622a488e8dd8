"""The report's tables, each built from one `Setting` as a `Table` (None when the setting lacks its cells).

The paper's layouts: Table 7 (test accuracy at the α chosen on validation), Table 2 (test accuracy
per α), Table 3 (the train accuracy breakdown), Table 4 (ECE) and Table 5 (distilled students);
besides them how α was chosen, the paper's claims checked (rules in `claims`), and every teacher
and student. `_cell` formats a cell (mean ± std, the CE baseline or chosen α noted).
"""

from __future__ import annotations

from label_smearing.core.spec import BASELINE, ESTIMATED, SMOOTHING, TEACHER, ModelSpec, teacher_cell
from label_smearing.modeling.losses import CE, FC, LOSSES, LS
from label_smearing.stages.report import claims
from label_smearing.stages.report.evaluations import (
    MISSING,
    TEST_ACCURACY,
    VALIDATION_CLEAN,
    VALIDATION_NOISY,
    Stat,
)
from label_smearing.stages.report.selection import (
    _ORDER,
    ESTIMATED_METHODS,
    Setting,
    _alpha_text,
    _method_name,
    method_column,
)

# Table 5's columns: (teacher method, student method); the first is the vanilla student.
TABLE5_COLUMNS = ((CE, CE), (LS, CE), (CE, LS), (FC, CE), (CE, FC))
TABLE3_ROWS = (
    ("full_true", "full train set, true labels"),
    ("clean_true", "clean part, true labels"),
    ("noisy_true", "noisy part, true labels"),
    ("noisy_noisy", "noisy part, noisy labels"),
)


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


def _cell(stat: Stat, digits: int, baseline: bool = False, alpha: float | None = None) -> str:
    text = stat.format(digits)
    if stat.n and baseline:
        text += f" ({LOSSES[CE].label})"
    if stat.n and alpha is not None:
        text += f" (α = {_alpha_text(alpha)})"
    return text


def table7(setting: Setting) -> Table | None:
    """Test accuracy at each method's chosen α; None when the data have no validation split to choose on."""
    if setting.selection is None:
        return None
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
    _, on = setting.selection
    note = (
        f"Each method's α is chosen on the mean {on} over the selection seeds (the smaller α on ties), and "
        "its test accuracy is reported at that α; the test set plays no part in the choice. CE has no α."
        + (" NLS is LS at α < 0, chosen apart from LS's α > 0." if any(s < 0 for _, s, _ in setting.families())
           else "")
    )  # fmt: skip
    title = "Test accuracy (%) at the α chosen on validation (Table 7 layout)"
    return Table("table7", title, header, [row], note)


def alpha_selection_table(setting: Setting) -> Table | None:
    """Per method, the α chosen on noisy and on clean validation labels and on test (the oracle)."""
    methods = setting.families()
    if not methods or setting.selection is None:
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
        "LS / FC student: CE teacher, the student's soft targets smoothed / forward-corrected. "
        + (
            f"The α of each column is chosen on the students' {setting.selection[1]}."
            if setting.selection is not None
            else "The data have no validation split, so no α is chosen: the tuned columns are left empty."
        )
    )
    return Table("table5", "Distilled students: test accuracy (%) (Table 5 layout)", header, rows, note)


def claims_table(setting: Setting) -> Table | None:
    """The paper's claims 1-6 (and claim 8) checked on this setting.

    The rules are in label_smearing/stages/report/claims.py.
    """
    found, missing = claims.checks(setting), claims.missing(setting)
    if not found and not missing:
        return None
    margins = f"{claims.MARGINS['accuracy']:g} percentage point of accuracy, {claims.MARGINS['ece']:g} of ECE"
    note = (
        "Each row pairs the two cells' runs seed by seed (a seed draws the same noise in every cell): n shared "
        "seeds, the mean of A − B, and its two-sided 95% Student-t interval. A > B holds if the interval lies "
        "above 0, does not hold if it lies below 0, and is inconclusive if it contains 0 (A < B mirrors it). "
        f"A ≥ B (non-inferiority) holds if the interval lies above −margin and does not hold if it lies below "
        f"it; margins (ours): {margins}. Intervals and verdicts are per claim; the last column applies Holm's "
        f"correction over the table's {len(found)} rows at family-wise {claims.FAMILY_LEVEL:g} (one-sided, "
        'one side of the 95% interval): "holds" there survives testing every row at once. '
        'Seeds: "selection" are sweep.seeds, on which each α is chosen; "confirmation" are '
        "sweep.confirm_seeds, fresh seeds run only at the chosen α, so that choosing and testing are "
        "independent. Claim 7 (the 2-D problem) is `smear synthetic`'s."
    )
    for reason in missing:
        note += " " + reason
    title = "The paper's claims 1-6, checked (docs/claims.md states them)"
    if any(check.claim == "8" for check in found):
        title += ", and claim 8 from since"
        note += (
            " Claim 8 is not the paper's: Wei et al. (ICML 2022) report that at high noise rates negative "
            "smoothing (NLS, α < 0) beats LS (α > 0)."
        )
    rows = [check.row(lambda stat, digits: stat.format(digits)) for check in found]
    return Table("claims", title, claims.HEADER, rows, note)


def confirmation_table(setting: Setting) -> Table | None:
    """CE and each method at its chosen α on the confirmation seeds, beside the selection seeds' value."""
    confirmation = setting.confirmation
    if confirmation is None:
        return None
    rows = []
    keys = [(method_column(CE), BASELINE, None)] + [
        (name, chosen, chosen.alpha)
        for method, sign, name in setting.families()
        if (chosen := setting.chosen(method, sign=sign)) is not None
    ]
    for name, key, alpha in keys:
        if not confirmation.has(key):
            continue
        rows.append([
            name, "—" if alpha is None else _alpha_text(alpha),
            _cell(confirmation.stat(key, *TEST_ACCURACY), 2), _cell(setting.stat(key, *TEST_ACCURACY), 2),
        ])  # fmt: skip
    if not rows:
        return None
    seeds = ", ".join(str(s) for s in confirmation.seeds())
    header = ["method", "α (chosen on the selection seeds)", f"test accuracy (%), confirmation seeds {seeds}",
              "test accuracy (%), selection seeds"]  # fmt: skip
    note = (
        "The confirmation seeds (sweep.confirm_seeds) train only CE and each method at the α chosen on the "
        "selection seeds' noisy-label validation accuracy; the claims that compare chosen α's are tested on them. "
        "Every other table reads the selection seeds alone."
    )
    return Table("confirmation", "Confirmation seeds: test accuracy at the chosen α", header, rows, note)


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
