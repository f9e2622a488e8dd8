"""The report's settings, how each method's α is chosen, and how methods are named.

`Setting` holds the evaluations of one experimental setting grouped by model configuration (its
cell) over seeds, with the look-ups the tables, figures and claims read: a cell's `Stat`, a method's
alphas, and the α chosen per method on noisy-label validation accuracy (`Setting.selection`). Data
without a validation split get no choice at all: test accuracy never chooses α. The seeds of
`sweep.confirm_seeds` are kept apart (`Setting.confirmation`): the claims test the chosen α on them,
and the α-grid tables never mix them in. The helpers name methods as the tables do ("Baseline (CE)",
"NLS", "LS α = 0.1") and give the row order of the listings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from label_smearing.core.spec import (
    BASELINE,
    ESTIMATED,
    SMOOTHING,
    STUDENT,
    TEACHER,
    UNKNOWN,
    ModelSpec,
    teacher_cell,
)
from label_smearing.modeling.losses import CE, LOSSES
from label_smearing.stages.report.evaluations import VALIDATION_NOISY, Evaluation, Stat

# The methods with an alpha grid (Tables 2-4, Figure 2) and with an estimated-T column (Table 7), in LOSSES' order.
ALPHA_METHODS = tuple(name for name, entry in LOSSES.items() if entry.uses_alpha)
ESTIMATED_METHODS = tuple(name for name, entry in LOSSES.items() if entry.uses_transition)
_ORDER = {name: i for i, name in enumerate(LOSSES)}  # method order in the tables; unknown methods last


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


def _alpha_text(alpha: float | None) -> str:
    return "?" if alpha is None else f"{alpha:g}"


# ---------------------------------------------------------------- settings
class Setting:
    """The evaluations of one experimental setting, grouped by model configuration over seeds."""

    def __init__(
        self, index: int, setting: tuple, evaluations: list[Evaluation], confirm_seeds: Iterable[int] = ()
    ):
        """`confirm_seeds`: the seeds of `sweep.confirm_seeds`, whose evaluations go to `confirmation`
        (a Setting of their own), never into this one's cells."""
        self.index, self.setting = index, dict(setting)
        confirm = {int(s) for s in confirm_seeds}
        self.groups: dict[ModelSpec, list[Evaluation]] = defaultdict(list)
        for evaluation in evaluations:
            if evaluation.seed not in confirm:
                self.groups[evaluation.key].append(evaluation)
        for runs in self.groups.values():
            runs.sort(key=lambda e: e.seed)
        confirming = [e for e in evaluations if e.seed in confirm]
        # The confirmation seeds' runs: CE and each method at the α chosen here (sweep.confirm_seeds).
        self.confirmation: Setting | None = Setting(index, setting, confirming) if confirming else None

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
        resumed = [
            (e.seed, e.resumed_at) for e, v in zip(runs, values) if v is not None and e.resumed_at is not None
        ]
        negative = [
            (e.seed, e.negative_risk_at)
            for e, v in zip(runs, values)
            if v is not None and e.negative_risk_at is not None
        ]
        seeds = [e.seed for e in runs]
        return Stat(values, diverged, resumed, seeds=seeds, negative_risk=negative)

    def seeds(self) -> list[int]:
        """Every seed of this setting's evaluations."""
        return sorted({e.seed for runs in self.groups.values() for e in runs})

    @property
    def selection(self) -> tuple[tuple[str, ...], str] | None:
        """(metric path, its description) that alpha is chosen on: noisy-label validation accuracy.
        None when some evaluation of the setting has no validation split: then no alpha is chosen,
        and test accuracy never stands in for it."""
        if all(e.value(*VALIDATION_NOISY) is not None for runs in self.groups.values() for e in runs):
            return VALIDATION_NOISY, "validation accuracy on the noisy validation labels"
        return None

    def choose(self, keys: Iterable[tuple[float, ModelSpec]], path: Sequence[str] | None = None):
        """Of (alpha, key) pairs, the one with the highest mean of `path` (default: `selection`), the
        smaller alpha on ties; None if none has a value, or if `path` is not given and the setting
        has no validation split to choose on. Returns (alpha, key)."""
        if path is None:
            if self.selection is None:
                return None
            path = self.selection[0]
        path = tuple(path)
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
