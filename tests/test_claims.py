"""The claim verdicts of label_smearing/stages/report/claims.py: each rule on hand-made cells.

A check pairs the two cells' runs seed by seed and decides on the t interval of
the mean difference. The report-level wiring (which cells each claim compares,
selection against confirmation seeds) is checked against the claims table in
tests/fixtures/report/expected_report.md and in tests/test_report.py.
"""

import numpy as np
import pytest
from scipy import stats

from label_smearing.stages.report import Stat
from label_smearing.stages.report.claims import (
    FAILS,
    HOLDS,
    MARGINS,
    ONE_SEED,
    UNSURE,
    Check,
    holm,
    one_sided_p,
    t_interval,
)


def _stat(values, seeds=None):
    return Stat(values, seeds=list(range(len(values))) if seeds is None else seeds)


def _check(relation, a, b, margin=0.0, a_seeds=None, b_seeds=None):
    return Check(
        "1", "test accuracy (%)", "A", "B", relation, _stat(a, a_seeds), _stat(b, b_seeds), 2, margin=margin
    )


def test_the_interval_is_scipys_paired_t_interval_on_fixed_numbers():
    a = [78.1, 79.4, 77.2, 80.0, 78.8]
    b = [76.9, 78.0, 77.5, 78.1, 77.0]
    d = np.subtract(a, b)
    mean, low, high = t_interval(d)
    # scipy's own interval for the mean of the differences (Student t, n - 1 = 4 degrees of freedom).
    expected = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert mean == pytest.approx(d.mean())
    assert (low, high) == pytest.approx(expected, rel=1e-12)
    # The same numbers written out: mean 1.2, sd 0.886002, t(0.975, 4) = 2.776445.
    assert mean == pytest.approx(1.2)
    assert high - mean == pytest.approx(2.7764451 * 0.8860023 / 5**0.5, rel=1e-6)
    # And scipy's paired t-test's one-sided p-value in the claimed direction.
    assert one_sided_p(d, ">") == pytest.approx(stats.ttest_rel(a, b, alternative="greater").pvalue)
    assert one_sided_p(d, "<") == pytest.approx(stats.ttest_rel(a, b, alternative="less").pvalue)
    # Non-inferiority: the test is against -margin.
    shifted = stats.ttest_1samp(d, -1.0, alternative="greater").pvalue
    assert one_sided_p(d, "≥", margin=1.0) == pytest.approx(shifted)


@pytest.mark.parametrize(
    "relation, a, b, verdict",
    [
        # differences 2, 2.5, 1.5: mean 2, 95% CI [0.76, 3.24]
        (">", [81, 82.5, 80.5], [79, 80, 79], HOLDS),
        ("<", [81, 82.5, 80.5], [79, 80, 79], FAILS),
        # differences 1, -1, 0.5: the interval contains 0
        (">", [80, 79, 80.5], [79, 80, 80], UNSURE),
        ("<", [80, 79, 80.5], [79, 80, 80], UNSURE),
    ],
)
def test_verdict_rules(relation, a, b, verdict):
    assert _check(relation, a, b).verdict == verdict


def test_non_inferiority_uses_the_margin():
    # differences -0.4, -0.6, -0.5: mean -0.5, CI [-0.75, -0.25]: above -1, below 0
    a, b = [79.6, 79.4, 79.5], [80, 80, 80]
    assert _check("≥", a, b, margin=1.0).verdict == HOLDS
    assert _check("≥", a, b, margin=0.1).verdict == FAILS
    assert _check(">", a, b).verdict == FAILS
    assert _check("≤", [80.4, 80.6, 80.5], b, margin=1.0).verdict == HOLDS
    assert MARGINS == {"accuracy": 1.0, "ece": 0.01}


def test_only_shared_seeds_are_paired():
    check = _check(">", [81, 82.5, 80.5, 50.0], [79, 80, 79], a_seeds=[0, 1, 2, 9])
    assert check.seeds == [0, 1, 2] and check.differences == [2.0, 2.5, 1.5]
    assert check.verdict == HOLDS  # seed 9 has no partner: left out


def test_pairing_decides_where_the_spread_of_the_cells_would_not():
    # Each seed's noise draw moves both cells together: the cells overlap, the paired differences do not.
    a = [70.0, 75.0, 80.0, 72.0, 78.0]
    b = [69.0, 74.2, 79.1, 71.0, 77.1]
    check = _check(">", a, b)
    assert check.verdict == HOLDS
    # The old rule (|A - B| beyond the larger cell's standard deviation) could not have decided it.
    assert min(check.a.std, check.b.std) > 4 * abs(check.a.mean - check.b.mean)


def test_the_row_shows_seeds_n_the_paired_mean_and_the_interval():
    check = _check(">", [81, 82.5, 80.5], [79, 80, 79])
    row = check.row(lambda stat, digits: stat.format(digits))
    assert row[:3] == ["1", "test accuracy (%): A > B", "selection 0–2"]
    assert row[5:9] == ["3", "+2.00", "[+0.76, +3.24]", HOLDS]
    assert row[9] == "—"  # Holm is set by `checks` over a whole table


def test_one_seed_is_never_a_verdict():
    assert _check(">", [90], [10]).verdict == ONE_SEED
    assert _check(">", [90, 91], [10], a_seeds=[0, 1]).verdict == ONE_SEED


def test_holm_steps_down_and_stops_at_the_first_failure():
    # m = 4 at 0.025: thresholds 0.00625, 0.00833, 0.0125, 0.025 in increasing order of p.
    assert holm([0.001, 0.008, 0.011, 0.02]) == [True, True, True, True]
    assert holm([0.001, 0.009, 0.011, 0.02]) == [True, False, False, False]
    assert holm([0.02, None, 0.001]) == [True, None, True]


def test_unknown_relation_is_an_error():
    with pytest.raises(ValueError, match="unknown relation"):
        _check("=", [1, 2], [1, 2])
