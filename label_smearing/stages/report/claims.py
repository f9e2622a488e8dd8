"""The paper's claims 1-6, and claim 8 from since, checked against one setting.

The claims of Lukasik et al. (ICML 2020), in our words (docs/claims.md states them for a reader):
1. Under label noise, LS improves clean test accuracy over the CE baseline.
2. FC with the smoothing-form T is competitive with or better than LS; BC is worse than
   the baseline for small alpha.
3. LS raises train accuracy against the true labels on the mislabelled part more than it
   lowers the fit to the noisy labels (Table 3).
4. LS lowers confidence in the noisy label; FC and BC raise it (Figure 3).
5. Small-alpha LS keeps or improves ECE; larger alpha, and FC/BC, worsen it (Table 4).
6. Distilling from an LS (or FC) teacher trained on noisy data beats distilling from a
   vanilla teacher; smoothing on the student helps less (Table 5, Figure 6).
7. On the 2-D problem LS and L2 both move the noisy separator back toward the Bayes
   separator (Figure 5), and Theorem 1 holds numerically: `smear synthetic` checks it.

Every check compares two cells of the report, A and B, in the direction the
paper claims, on the seeds both cells have. The runs are paired: seed s draws
the same noise, initialisation and data order in every cell (with
sweep.redraw_noise, its own noise draw). So a check is a paired comparison:
with d_s = A_s - B_s over the n shared seeds, the row shows n, the mean of d,
and its two-sided 95% confidence interval mean(d) ± t(0.975, n - 1) sd(d) / sqrt(n)
(Student's t, sd with ddof = 1).

- "A > B": holds if the interval lies above 0; does not hold if it lies below 0;
  inconclusive if it contains 0. "A < B" is the mirror image.
- "A ≥ B" ("competitive with or better", "keeps"): non-inferiority with the
  margin `MARGINS` (ours: 1 percentage point of accuracy, 0.01 of ECE): holds
  if the interval lies above -margin; does not hold if it lies below -margin;
  inconclusive otherwise. "A ≤ B" is the mirror image.
- Fewer than two shared seeds: "inconclusive (one seed)"; there is no interval.

Several claims are tested at once. Each row's interval and verdict are per claim
(95% each). The last column applies Holm's step-down correction over the
table's rows: each row's one-sided p-value in the claimed direction (against
-margin for non-inferiority) is compared with 0.025 / (m - i + 1) in
increasing order, i = 1..m, stopping at the first that fails, so that the
family-wise error of the rows marked "holds" is at most 0.025 (one side of the
95% interval).

Where a claim is about a method at its chosen alpha (claims 1, 2's FC vs LS, and
8), the alpha is the one chosen on noisy-label validation accuracy
(`Setting.chosen`) with the selection seeds (sweep.seeds), never on test. When
the plan has confirmation seeds (sweep.confirm_seeds), those rows are tested on
them, fresh seeds that played no part in the choice; otherwise on the selection
seeds, and the seeds column says the choice used them. Data without a
validation split get no choice, and these rows are left out with the reason
(`missing`). Where a claim is about "small alpha", the smallest alpha of the
sweep is used (Tables 3 and 4's first alpha is 0.1); "larger alpha" is the
largest; these rows involve no choice and read the selection seeds. The
paper's LS has alpha > 0: its claims read only those cells, and alpha = 0 is
the CE baseline. A verdict that rests on a cell with a diverged training run
says so. Claim 7 (the 2-D problem and Theorem 1) is checked by
`smear synthetic`, not here.

Claim 8 is not the paper's: Wei et al. (ICML 2022) report that at high noise
rates negative label smoothing (NLS, alpha < 0) beats LS (alpha > 0). Where a
setting has both, NLS and LS, each at its alpha chosen on validation, are
compared (A > B).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from label_smearing.core.spec import BASELINE, SMOOTHING, STUDENT, ModelSpec, student_cell, teacher_cell
from label_smearing.modeling.losses import BC, CE, FC, LOSSES, LS

HOLDS, FAILS, UNSURE, ONE_SEED = "holds", "does not hold", "inconclusive", "inconclusive (one seed)"
RELATIONS = (">", "<", "≥", "≤")
CONFIDENCE = 0.95  # two-sided: each row's interval
FAMILY_LEVEL = (1 - CONFIDENCE) / 2  # Holm's family-wise level, one-sided: one side of the interval
MARGINS = {"accuracy": 1.0, "ece": 0.01}  # ours: the non-inferiority margins of "≥" / "≤" by metric
SELECTION, CONFIRMATION = "selection", "confirmation"


@dataclasses.dataclass(frozen=True)
class Paired:
    """A paired comparison: n shared seeds, the mean difference, its t interval and one-sided p."""

    n: int
    mean: float
    low: float
    high: float
    p: float  # one-sided, in the claimed direction (against -margin / +margin for "≥" / "≤")


def t_interval(differences: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the two-sided Student-t interval of the mean of paired differences.

    Raises:
      ValueError: fewer than two differences.
    """
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    if d.size < 2:
        raise ValueError(f"a t interval needs two differences or more, got {d.size}")
    mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    half = float(stats.t.ppf(0.5 + confidence / 2, d.size - 1)) * se
    return mean, mean - half, mean + half


def one_sided_p(differences: Sequence[float], relation: str, margin: float = 0.0) -> float:
    """The one-sided paired t-test's p-value for the claim `mean(d) relation 0` (with the margin:
    `mean(d) > -margin` for "≥", `mean(d) < margin` for "≤")."""
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    shift = {">": 0.0, "<": 0.0, "≥": margin, "≤": -margin}[relation]
    mean, se = float(d.mean()) + shift, float(d.std(ddof=1) / math.sqrt(d.size))
    upward = relation in (">", "≥")
    if se == 0.0:
        return 0.0 if (mean > 0 if upward else mean < 0) else 1.0
    t = mean / se
    return float(stats.t.sf(t, d.size - 1) if upward else stats.t.cdf(t, d.size - 1))


def holm(p_values: Sequence[float | None], level: float = FAMILY_LEVEL) -> list[bool | None]:
    """Holm's step-down rejections at family-wise `level` (None stays None: no test)."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    out: list[bool | None] = [None if p is None else False for p in p_values]
    m = len(tested)
    for rank, (p, i) in enumerate(tested):
        if p > level / (m - rank):
            break
        out[i] = True
    return out


def _seed_text(seeds: Sequence[int]) -> str:
    """0, 1, 2 -> "0–2"; 0, 2 -> "0, 2"."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


@dataclasses.dataclass
class Check:
    claim: str
    what: str  # the quantity compared, e.g. "test accuracy (%)"
    a_label: str
    b_label: str
    relation: str  # one of RELATIONS: the paper's claim about A versus B
    a: object  # report.Stat (with by_seed)
    b: object
    digits: int
    seed_set: str = SELECTION  # which seeds: SELECTION or CONFIRMATION
    note: str = ""  # e.g. "α chosen on these seeds"
    margin: float = 0.0  # the non-inferiority margin of "≥" / "≤"
    holm: bool | None = None  # holds after Holm's correction over the table (set by `checks`)

    def __post_init__(self):
        if self.relation not in RELATIONS:
            raise ValueError(f"unknown relation {self.relation!r}")

    @property
    def seeds(self) -> list[int]:
        return sorted(set(self.a.by_seed) & set(self.b.by_seed))

    @property
    def differences(self) -> list[float]:
        return [self.a.by_seed[s] - self.b.by_seed[s] for s in self.seeds]

    @property
    def paired(self) -> Paired | None:
        d = self.differences
        if len(d) < 2:
            return None
        mean, low, high = t_interval(d)
        return Paired(len(d), mean, low, high, one_sided_p(d, self.relation, self.margin))

    @property
    def verdict(self) -> str:
        verdict = self._verdict()
        diverged = [
            label for label, stat in ((self.a_label, self.a), (self.b_label, self.b)) if stat.diverged
        ]
        if diverged:
            verdict += f" (rests on a diverged cell: {', '.join(diverged)})"
        return verdict

    def _verdict(self) -> str:
        p = self.paired
        if p is None:
            return ONE_SEED
        upward = self.relation in (">", "≥")
        bound = 0.0 if self.relation in (">", "<") else (-self.margin if upward else self.margin)
        if upward:
            return HOLDS if p.low > bound else FAILS if p.high < bound else UNSURE
        return HOLDS if p.high < bound else FAILS if p.low > bound else UNSURE

    def row(self, fmt: Callable) -> list[str]:
        p, k = self.paired, self.digits
        seeds = f"{self.seed_set} {_seed_text(self.seeds)}" + (f" ({self.note})" if self.note else "")
        relation = self.relation + (f" (margin {self.margin:g})" if self.relation in ("≥", "≤") else "")
        return [
            self.claim,
            f"{self.what}: {self.a_label} {relation} {self.b_label}",
            seeds,
            fmt(self.a, k),
            fmt(self.b, k),
            str(len(self.seeds)),
            "—" if p is None else f"{p.mean:+.{k}f}",
            "—" if p is None else f"[{p.low:+.{k}f}, {p.high:+.{k}f}]",
            self.verdict,
            "—" if self.holm is None else (HOLDS if self.holm else "not established"),
        ]


HEADER = ["claim", "check: A vs B", "seeds", "A", "B", "n", "mean A − B (paired)", "95% CI (t)", "verdict",
          "after Holm"]  # fmt: skip


def checks(setting) -> list[Check]:
    """Every check the setting's evaluations allow; a check whose cells are missing is left out.

    `setting` is a `report.Setting`: its cells are keyed by `ModelSpec.cell`.
    """
    if not setting.has(BASELINE):
        return []
    out: list[Check] = []
    ce = BASELINE.label
    confirmation = setting.confirmation

    def add(claim, what, a_key, a_label, relation, b_key, b_label, path, digits, chosen=False):
        source, seed_set, note = setting, SELECTION, ""
        if chosen:  # alpha chosen on the selection seeds: tested on the confirmation seeds if there are any
            if confirmation is not None and confirmation.has(a_key) and confirmation.has(b_key):
                source, seed_set = confirmation, CONFIRMATION
            else:
                note = "α chosen on these seeds"
        a, b = source.stat(a_key, *path), source.stat(b_key, *path)
        margin = MARGINS["ece" if path[-1] == "ece" else "accuracy"] if relation in ("≥", "≤") else 0.0
        if a.n and b.n:
            out.append(Check(claim, what, a_label, b_label, relation, a, b, digits, seed_set, note, margin))

    acc, ece = ("test", "accuracy"), ("test", "ece")
    ls_teachers = [teacher_cell(LS, x) for x in setting.teacher_alphas(LS, 1)]
    ls_best, fc_best = setting.chosen(LS), setting.chosen(FC)
    chosen = "α chosen on validation"
    # 1. LS (at the alpha chosen on validation) beats the baseline on clean test accuracy.
    if ls_best is not None:
        add("1", f"test accuracy (%), {chosen}", ls_best, ls_best.label, ">", BASELINE, ce, acc, 2, True)
    # 2. FC (smoothing T) is competitive with LS or better; BC is worse than the baseline for small alpha.
    if ls_best is not None and fc_best is not None:
        add(
            "2",
            f"test accuracy (%), {chosen} each",
            fc_best,
            fc_best.label,
            "≥",
            ls_best,
            ls_best.label,
            acc,
            2,
            True,
        )
    for bc in _smallest(setting, BC):
        add("2", "test accuracy (%)", bc, bc.label, "<", BASELINE, ce, acc, 2)
    # 3. Table 3: LS fits the true labels of the mislabelled part better and their noisy labels less.
    for ls in ls_teachers:
        add("3", "train acc., noisy part vs true labels (%)", ls, ls.label, ">", BASELINE, ce,
            ("train", "accuracy", "noisy_true"), 2)  # fmt: skip
        add("3", "train acc., noisy part vs noisy labels (%)", ls, ls.label, "<", BASELINE, ce,
            ("train", "accuracy", "noisy_noisy"), 2)  # fmt: skip
    # 4. Figure 3: LS lowers the noisy label's logit gap on the mislabelled part; FC and BC raise confidence.
    gap = ("train", "logit_gaps")
    noisy_gap, true_gap = (*gap, "noisy_part/noisy_label", "mean"), (*gap, "noisy_part/true_label", "mean")
    for ls in ls_teachers[:1]:
        add("4", "mean logit gap of the noisy label, mislabelled part", ls, ls.label, "<", BASELINE, ce,
            noisy_gap, 2)  # fmt: skip
    for key in _smallest(setting, FC, BC):
        add("4", "mean logit gap of the true label, mislabelled part", key, key.label, ">", BASELINE, ce,
            true_gap, 2)  # fmt: skip
        add("4", "mean logit gap of the noisy label, mislabelled part", key, key.label, ">", BASELINE, ce,
            noisy_gap, 2)  # fmt: skip
    # 5. Table 4: small-alpha LS keeps or improves ECE; larger alpha, FC and BC worsen it.
    if ls_teachers:
        small, large = ls_teachers[0], ls_teachers[-1]
        add("5", "test ECE", small, small.label, "≤", BASELINE, ce, ece, 3)
        if large != small:
            add("5", "test ECE", large, large.label, ">", BASELINE, ce, ece, 3)
    for key in _smallest(setting, FC, BC):
        add("5", "test ECE", key, key.label, ">", BASELINE, ce, ece, 3)
    # 6. Table 5 / Figure 6: students of LS and FC teachers beat the vanilla student; LS on the student helps less.
    students = [k for k in setting.groups if k.role == STUDENT]
    for temperature in sorted({k.temperature for k in students})[:1]:
        vanilla = student_cell(BASELINE, CE, 0.0, temperature)
        what = f"student test accuracy (%), T={temperature:g}"
        at_t = [k for k in students if k.temperature == temperature and k.teacher is not None]
        taught = [k for k in at_t if k.teacher.method in (LS, FC) and k.teacher.transition == SMOOTHING
                  and k.method == CE]  # fmt: skip
        for k in sorted(taught, key=lambda k: (k.teacher.method != LS, k.teacher.alpha)):
            label = f"{LOSSES[k.teacher.method].label} teacher α={k.teacher.alpha:g}"
            add("6", what, k, label, ">", vanilla, "vanilla", acc, 2)
        smoothed = [k for k in at_t if k.teacher.method == CE and k.method == LS]
        for k in sorted(smoothed, key=lambda k: k.alpha):
            x, ls_label = k.alpha, LOSSES[LS].label
            add("6", what, student_cell(teacher_cell(LS, x), CE, 0.0, temperature), f"{ls_label} teacher α={x:g}",
                ">", k, f"{ls_label} student α={x:g}", acc, 2)  # fmt: skip
    # 8. Beyond the paper (Wei et al. 2022): negative smoothing beats LS at high noise rates.
    nls_best = setting.chosen(LS, sign=-1)
    if nls_best is not None and ls_best is not None:
        label = f"N{nls_best.label}"
        add(
            "8",
            f"test accuracy (%), {chosen} each",
            nls_best,
            label,
            ">",
            ls_best,
            ls_best.label,
            acc,
            2,
            True,
        )
    for check, holds in zip(out, holm([None if c.paired is None else c.paired.p for c in out])):
        check.holm = holds
    return out


def missing(setting) -> list[str]:
    """Why the claims that need a chosen alpha are not checked, when the setting cannot choose one."""
    if setting.selection is not None or not setting.has(BASELINE) or not setting.teacher_alphas(LS, 1):
        return []
    return [
        "Claims 1, 2 (FC against LS) and 8 compare methods at their α chosen on noisy-label validation "
        "accuracy. The data of this setting have no validation split, so the report chooses no α (test "
        "accuracy never does) and these claims are not checked; Table 2 shows every α."
    ]


def _smallest(setting, *methods: str) -> list[ModelSpec]:
    """Each method's teacher cell at its smallest alpha > 0 (smoothing T), for the methods the setting has."""
    return [teacher_cell(m, alphas[0]) for m in methods if (alphas := setting.teacher_alphas(m, 1))]
