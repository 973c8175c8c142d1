"""keras_alexnet/study/statistics.py and the report's measures: t quantiles against printed t tables,
paired intervals against hand computations, the verdict rules on constructed cases."""

import math

import pytest

from keras_alexnet.study import statistics
from keras_alexnet.study.report import epochs_to_error
from keras_alexnet.study.statistics import Difference

# Two-sided 95% (p = 0.975) and 99% (p = 0.995) critical values of Student's t, from printed tables.
T_TABLE = [(0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 3, 3.182), (0.975, 4, 2.776), (0.975, 5, 2.571),
           (0.975, 10, 2.228), (0.975, 20, 2.086), (0.975, 30, 2.042), (0.975, 120, 1.980),
           (0.995, 2, 9.925), (0.995, 10, 3.169), (0.95, 7, 1.895)]


@pytest.mark.parametrize("p, df, expected", T_TABLE)
def test_t_quantile_matches_the_printed_table(p, df, expected):
    assert statistics.t_quantile(p, df) == pytest.approx(expected, abs=6e-4)
    assert statistics.t_quantile(1 - p, df) == pytest.approx(-expected, abs=6e-4)


def test_t_quantile_tends_to_the_normal_quantile_and_inverts_the_cdf():
    assert statistics.t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)
    for df in (1.5, 2.94, 17.3):
        t = statistics.t_quantile(0.975, df)
        assert statistics.t_cdf(t, df) == pytest.approx(0.975, abs=1e-10)
    # df = 1 is the Cauchy distribution: P(T <= t) = 1/2 + atan(t)/pi.
    assert statistics.t_cdf(2.0, 1) == pytest.approx(0.5 + math.atan(2.0) / math.pi, abs=1e-12)
    with pytest.raises(ValueError):
        statistics.t_quantile(1.0, 3)


def test_summary_by_hand():
    s = statistics.summary([2.0, 4.0, 9.0])
    assert (s.mean, s.n) == (5.0, 3)
    assert s.std == pytest.approx(math.sqrt(((2 - 5) ** 2 + (4 - 5) ** 2 + (9 - 5) ** 2) / 2))
    assert math.isnan(statistics.summary([1.0]).std)


def test_paired_interval_by_hand():
    # per-seed differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.302653: half width 4.302653 / sqrt(3).
    d = statistics.paired_interval([10.0, 12.0, 14.0], [9.0, 10.0, 11.0])
    assert d.estimate == pytest.approx(2.0)
    assert (d.low, d.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-5)
    with pytest.raises(ValueError):
        statistics.paired_interval([1.0, 2.0], [1.0])
    assert statistics.paired_interval([3.0], [1.0]).low is None
    # zero spread in the differences: the interval is the difference itself
    d = statistics.paired_interval([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert (d.low, d.estimate, d.high) == pytest.approx((1.0, 1.0, 1.0))


@pytest.mark.parametrize("difference, sign, expected", [
    (Difference(1.5, 0.5, 2.5, 2), +1, statistics.SAME),
    (Difference(-1.5, -2.5, -0.5, 2), -1, statistics.SAME),
    (Difference(1.5, 0.5, 2.5, 2), -1, statistics.OPPOSITE),
    (Difference(-1.5, -2.5, -0.5, 2), +1, statistics.OPPOSITE),
    (Difference(1.5, -0.5, 3.5, 2), +1, statistics.NOT_SIGNIFICANT),
    (Difference(1.0, 0.0, 2.0, 2), +1, statistics.NOT_SIGNIFICANT),  # 0 on the edge is inside
    (Difference(1.5, None, None, None), +1, statistics.TOO_FEW),
])
def test_verdict_rules(difference, sign, expected):
    assert statistics.verdict(difference, sign) == expected


@pytest.mark.parametrize("difference, expected", [
    (Difference(-0.27, -0.60, 0.06, 8), statistics.HELD.format(margin=0.3)),
    (Difference(-1.0, -1.5, -0.5, 8), statistics.HELD.format(margin=0.3)),  # lower error: not a failure
    (Difference(0.1, -0.1, 0.3, 8), statistics.HELD.format(margin=0.3)),  # the margin itself is inside
    (Difference(-0.27, -1.13, 0.58, 3), statistics.UNDECIDED.format(margin=0.3)),  # 3 seeds: too wide
    (Difference(0.5, 0.1, 0.9, 8), statistics.WORSE),
    (Difference(0.5, None, None, None), statistics.TOO_FEW),
])
def test_verdict_of_a_claim_of_no_loss(difference, expected):
    """The mixed-precision claim: the error must not rise by more than 0.3 points (non-inferiority)."""
    assert statistics.verdict(difference, 0, margin=0.3) == expected


def test_never_reproduced_when_the_interval_holds_zero():
    # A large mean difference in the paper's direction, but noisy: the verdict must not claim it.
    d = statistics.paired_interval([10.0, 1.0, 12.0], [0.0, 1.0, 0.5])
    assert d.low < 0 < d.high
    assert statistics.verdict(d, +1) == statistics.NOT_SIGNIFICANT


def test_epochs_to_error_interpolates_between_epochs():
    assert epochs_to_error([0.5, 0.3, 0.2], 0.25, 0.9) == (pytest.approx(2.5), True)
    assert epochs_to_error([0.1], 0.25, 0.9) == (pytest.approx((0.9 - 0.25) / (0.9 - 0.1)), True)
    assert epochs_to_error([0.5, 0.4, 0.3], 0.25, 0.9) == (3.0, False)
