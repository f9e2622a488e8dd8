"""The paper's claims 1-6 (../shared/paper/NOTES.md) checked against one setting, each with a verdict.

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

Where a claim is about "small alpha", the smallest alpha of the sweep is used
(Tables 3 and 4's first alpha is 0.1); "larger alpha" is the largest. Claim 7
(the 2-D problem and Theorem 1) is checked by `smear synthetic`, not here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

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
    """Every check the setting's evaluations allow; a check whose cells are missing is left out."""
    ce = ("teacher", "ce", "smoothing", 0.0)
    if not setting.has(ce):
        return []
    out: list[Check] = []

    def teacher(method: str, alpha: float) -> tuple:
        return ("teacher", method, "smoothing", alpha)

    def add(claim, what, a_key, a_label, relation, b_key, b_label, path, digits):
        a, b = setting.stat(a_key, *path), setting.stat(b_key, *path)
        if a.n and b.n:
            out.append(Check(claim, what, a_label, b_label, relation, a, b, digits))

    def best(method: str) -> float | None:
        scored = [(setting.stat(teacher(method, x), "test", "accuracy").mean, -x, x)
                  for x in setting.teacher_alphas(method)]  # fmt: skip
        return max(scored)[2] if scored else None

    acc, ece = ("test", "accuracy"), ("test", "ece")
    ls_alphas = setting.teacher_alphas("ls")
    # 1. LS beats the baseline on clean test accuracy.
    for x in ls_alphas:
        add("1", "test accuracy (%)", teacher("ls", x), f"LS α={x:g}", ">", ce, "CE", acc, 2)
    # 2. FC (smoothing T) is competitive with LS or better; BC is worse than the baseline for small alpha.
    ls_best, fc_best = best("ls"), best("fc")
    if ls_best is not None and fc_best is not None:
        add("2", "test accuracy (%), best α each", teacher("fc", fc_best), f"FC α={fc_best:g}", "≥",
            teacher("ls", ls_best), f"LS α={ls_best:g}", acc, 2)  # fmt: skip
    bc_alphas = setting.teacher_alphas("bc")
    if bc_alphas:
        x = bc_alphas[0]
        add("2", "test accuracy (%)", teacher("bc", x), f"BC α={x:g}", "<", ce, "CE", acc, 2)
    # 3. Table 3: LS fits the true labels of the mislabelled part better and their noisy labels less.
    for x in ls_alphas:
        add("3", "train acc., noisy part vs true labels (%)", teacher("ls", x), f"LS α={x:g}", ">", ce, "CE",
            ("train", "accuracy", "noisy_true"), 2)  # fmt: skip
        add("3", "train acc., noisy part vs noisy labels (%)", teacher("ls", x), f"LS α={x:g}", "<", ce, "CE",
            ("train", "accuracy", "noisy_noisy"), 2)  # fmt: skip
    # 4. Figure 3: LS lowers the noisy label's logit gap on the mislabelled part; FC and BC raise confidence.
    gap = ("train", "logit_gaps")
    noisy_gap, true_gap = (*gap, "noisy_part/noisy_label", "mean"), (*gap, "noisy_part/true_label", "mean")
    for x in ls_alphas[:1]:
        add("4", "mean logit gap of the noisy label, mislabelled part", teacher("ls", x), f"LS α={x:g}", "<",
            ce, "CE", noisy_gap, 2)  # fmt: skip
    for method in ("fc", "bc"):
        for x in setting.teacher_alphas(method)[:1]:
            name = f"{method.upper()} α={x:g}"
            add("4", "mean logit gap of the true label, mislabelled part", teacher(method, x), name, ">",
                ce, "CE", true_gap, 2)  # fmt: skip
            add("4", "mean logit gap of the noisy label, mislabelled part", teacher(method, x), name, ">",
                ce, "CE", noisy_gap, 2)  # fmt: skip
    # 5. Table 4: small-alpha LS keeps or improves ECE; larger alpha, FC and BC worsen it.
    if ls_alphas:
        small, large = ls_alphas[0], ls_alphas[-1]
        add("5", "test ECE", teacher("ls", small), f"LS α={small:g}", "≤", ce, "CE", ece, 3)
        if large != small:
            add("5", "test ECE", teacher("ls", large), f"LS α={large:g}", ">", ce, "CE", ece, 3)
    for method in ("fc", "bc"):
        for x in setting.teacher_alphas(method)[:1]:
            add("5", "test ECE", teacher(method, x), f"{method.upper()} α={x:g}", ">", ce, "CE", ece, 3)
    # 6. Table 5 / Figure 6: students of LS and FC teachers beat the vanilla student; LS on the student helps less.
    students = [k for k in setting.groups if k[0] == "student"]
    for temperature in sorted({k[6] for k in students})[:1]:

        def student(tm: str, ta: float, sm: str = "ce", sa: float = 0.0, t: float = temperature) -> tuple:
            return ("student", tm, "smoothing", ta, sm, sa, t)

        vanilla = student("ce", 0.0)
        what = f"student test accuracy (%), T={temperature:g}"
        for k in sorted((k for k in students if k[6] == temperature and k[1] in ("ls", "fc") and k[4] == "ce"
                         and k[2] == "smoothing"), key=lambda k: (k[1] != "ls", k[3])):  # fmt: skip
            add("6", what, k, f"{k[1].upper()} teacher α={k[3]:g}", ">", vanilla, "vanilla", acc, 2)
        for k in sorted((k for k in students if k[6] == temperature and k[1] == "ce" and k[4] == "ls"),
                        key=lambda k: k[5]):  # fmt: skip
            x = k[5]
            add("6", what, student("ls", x), f"LS teacher α={x:g}", ">", k, f"LS student α={x:g}", acc, 2)
    return out
