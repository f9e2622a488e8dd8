"""The paper's claims 1-6, and claim 8 from since, checked against one setting.

The claims of Lukasik et al. (ICML 2020), in our words (README, "The paper's claims"):
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

Every check compares two cells of the report, A and B (means over seeds), in the
direction the paper claims. With s the larger of the two cells' sample standard
deviations:

- "A > B" (or "A < B"): holds if the difference has the claimed sign and
  |A - B| > s; does not hold if it has the other sign and |A - B| > s;
  inconclusive if |A - B| <= s.
- "A ≥ B" ("competitive with or better", "keeps"; or "A ≤ B"): holds unless A
  is on the wrong side of B by more than s, in which case it does not hold.
- A cell with one seed has no standard deviation: the verdict is "inconclusive
  (one seed)" whatever the difference.

Where a claim is about a method at its best alpha (claims 1 and 2), the alpha is
the one the report chooses on validation (`Setting.chosen`: noisy-label
validation accuracy), never on test. Where a claim is about "small alpha", the
smallest alpha of the sweep is used (Tables 3 and 4's first alpha is 0.1);
"larger alpha" is the largest. The paper's LS has alpha > 0: its claims read
only those cells, and alpha = 0 is the CE baseline. A verdict that rests on a
cell with a diverged training run says so. Claim 7 (the 2-D problem and
Theorem 1) is checked by `smear synthetic`, not here.

Claim 8 is not the paper's: Wei et al. (ICML 2022) report that at high noise
rates negative label smoothing (NLS, alpha < 0) beats LS (alpha > 0). Where a
setting has both, NLS and LS, each at its alpha chosen on validation, are
compared (A > B).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from label_smearing.core.spec import BASELINE, SMOOTHING, STUDENT, ModelSpec, student_cell, teacher_cell
from label_smearing.modeling.losses import BC, CE, FC, LOSSES, LS

HOLDS, FAILS, UNSURE, ONE_SEED = "holds", "does not hold", "inconclusive", "inconclusive (one seed)"
RELATIONS = (">", "<", "≥", "≤")


@dataclasses.dataclass
class Check:
    claim: str
    what: str  # the quantity compared, e.g. "test accuracy (%)"
    a_label: str
    b_label: str
    relation: str  # one of RELATIONS: the paper's claim about A versus B
    a: object  # report.Stat
    b: object
    digits: int

    @property
    def difference(self) -> float:
        return self.a.mean - self.b.mean

    @property
    def spread(self) -> float | None:
        if self.a.std is None or self.b.std is None:
            return None
        return max(self.a.std, self.b.std)

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
        if self.relation not in RELATIONS:
            raise ValueError(f"unknown relation {self.relation!r}")
        s = self.spread
        if s is None:
            return ONE_SEED
        d = self.difference if self.relation in (">", "≥") else -self.difference
        if self.relation in ("≥", "≤"):
            return FAILS if d < -s else HOLDS
        if d > s:
            return HOLDS
        return FAILS if d < -s else UNSURE

    def row(self, fmt: Callable) -> list[str]:
        s = self.spread
        spread = "—" if s is None else f"{s:.{self.digits}f}"
        return [
            self.claim,
            f"{self.what}: {self.a_label} {self.relation} {self.b_label}",
            fmt(self.a, self.digits),
            fmt(self.b, self.digits),
            f"{self.difference:+.{self.digits}f}",
            spread,
            self.verdict,
        ]


HEADER = ["claim", "check: A vs B", "A", "B", "A − B", "s", "verdict"]


def checks(setting) -> list[Check]:
    """Every check the setting's evaluations allow; a check whose cells are missing is left out.

    `setting` is a `report.Setting`: its cells are keyed by `ModelSpec.cell`.
    """
    if not setting.has(BASELINE):
        return []
    out: list[Check] = []
    ce = BASELINE.label

    def add(claim, what, a_key, a_label, relation, b_key, b_label, path, digits):
        a, b = setting.stat(a_key, *path), setting.stat(b_key, *path)
        if a.n and b.n:
            out.append(Check(claim, what, a_label, b_label, relation, a, b, digits))

    acc, ece = ("test", "accuracy"), ("test", "ece")
    ls_teachers = [teacher_cell(LS, x) for x in setting.teacher_alphas(LS, 1)]
    ls_best, fc_best = setting.chosen(LS), setting.chosen(FC)
    chosen = "α chosen on validation" if setting.selection[0][0] == "validation" else "α chosen on test"
    # 1. LS (at the alpha chosen on validation) beats the baseline on clean test accuracy.
    if ls_best is not None:
        add("1", f"test accuracy (%), {chosen}", ls_best, ls_best.label, ">", BASELINE, ce, acc, 2)
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
        add("8", f"test accuracy (%), {chosen} each", nls_best, label, ">", ls_best, ls_best.label, acc, 2)
    return out


def _smallest(setting, *methods: str) -> list[ModelSpec]:
    """Each method's teacher cell at its smallest alpha > 0 (smoothing T), for the methods the setting has."""
    return [teacher_cell(m, alphas[0]) for m in methods if (alphas := setting.teacher_alphas(m, 1))]
