"""The claim verdicts of label_smearing/stages/report/claims.py: each rule on hand-made cells.

The report-level wiring (which cells each claim compares) is checked against the
hand-computed claims table in tests/fixtures/report/expected_report.md.
"""

import pytest

from label_smearing.stages.report import Stat
from label_smearing.stages.report.claims import FAILS, HOLDS, ONE_SEED, UNSURE, Check


def _check(relation, a, b):
    return Check("1", "test accuracy (%)", "A", "B", relation, Stat(a), Stat(b), 2)


@pytest.mark.parametrize(
    "relation, a, b, verdict",
    [
        # means 82 and 80, stds 1.41 and 0.71: s = 1.41 < 2
        (">", [81, 83], [79.5, 80.5], HOLDS),
        ("<", [81, 83], [79.5, 80.5], FAILS),
        # means 80.5 and 80, s = 0.71 >= 0.5
        (">", [80, 81], [79.5, 80.5], UNSURE),
        ("<", [80, 81], [79.5, 80.5], UNSURE),
        # "A >= B": within s counts as competitive, 1.5 below with s = 0.71 does not
        ("≥", [79, 80], [79.5, 80.5], HOLDS),
        ("≥", [78, 79], [79.5, 80.5], FAILS),
        ("≤", [81, 83], [79.5, 80.5], FAILS),
        ("≤", [80, 81], [79.5, 80.5], HOLDS),
    ],
)
def test_verdict_rules(relation, a, b, verdict):
    assert _check(relation, a, b).verdict == verdict


def test_s_is_the_larger_standard_deviation_and_the_row_shows_it():
    check = _check(">", [81, 83], [79.5, 80.5])
    assert check.spread == pytest.approx(2**0.5)
    assert check.row(lambda stat, digits: stat.format(digits)) == [
        "1", "test accuracy (%): A > B", "82.00 ± 1.41", "80.00 ± 0.71", "+2.00", "1.41", HOLDS,
    ]  # fmt: skip


def test_one_seed_is_never_a_verdict():
    assert _check(">", [90], [10, 11]).verdict == ONE_SEED
    assert _check("≥", [10, 11], [90]).verdict == ONE_SEED


def test_unknown_relation_is_an_error():
    with pytest.raises(ValueError, match="unknown relation"):
        assert _check("=", [1, 2], [1, 2]).verdict
