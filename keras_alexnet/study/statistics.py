"""The statistics of a study report: mean ± std over seeds, differences with 95% intervals, verdicts.

- `summary(values)`: mean, sample standard deviation (n − 1) and n.
- `paired_interval(arm, baseline)`: the mean of the per-seed differences (arm − baseline) with a t interval
  on n − 1 degrees of freedom. Every comparison of a study is paired by seed: seed k gives every arm the same
  data order, crops, flips and lighting noise, and evaluation-only arms measure the very same trained
  models (centre vs 10-crop, AlexNet §4.1; dense vs multi-crop, VGG Table 5).
- `t_quantile(p, df)`: Student's t quantile for df > 0, from the regularized incomplete beta function (no
  SciPy needed); tested against printed t tables.
- `verdict(...)`: the words the report uses; a claim is never called reproduced when the interval holds 0.
"""

import dataclasses
import math
from typing import Optional, Sequence

SAME = "same direction, interval excludes 0"
NOT_SIGNIFICANT = "no significant difference at this scale"
OPPOSITE = "opposite direction"
TOO_FEW = "too few seeds for an interval (need 2 seeds paired)"
HELD = "held: the interval's upper end is at most +{margin:g} points"
WORSE = "worse: the interval lies above 0"
UNDECIDED = "not shown: the interval reaches above +{margin:g} points"


@dataclasses.dataclass
class Summary:
    mean: float
    std: float  # sample standard deviation (n − 1); nan when n < 2
    n: int


@dataclasses.dataclass
class Difference:
    """arm − baseline: the estimate and its interval (low/high None when it cannot be computed)."""

    estimate: float
    low: Optional[float]
    high: Optional[float]
    df: Optional[int]


def summary(values: Sequence[float]) -> Summary:
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return Summary(math.nan, math.nan, 0)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return Summary(mean, std, n)


def _betacf(a, b, x):
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                          -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t value with P(T <= t) = p (0 < p < 1, df > 0), by bisection on `t_cdf`."""
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


def paired_interval(arm: Sequence[float], baseline: Sequence[float], level: float = 0.95) -> Difference:
    """The mean of the per-seed differences arm − baseline with a t interval on n − 1 degrees of freedom."""
    if len(arm) != len(baseline):
        raise ValueError(f"paired values differ in number: {len(arm)} vs {len(baseline)}")
    differences = summary([x - y for x, y in zip(arm, baseline)])
    if differences.n < 2:
        return Difference(differences.mean, None, None, None)
    half = t_quantile(0.5 + level / 2.0, differences.n - 1) * differences.std / math.sqrt(differences.n)
    return Difference(differences.mean, differences.mean - half, differences.mean + half, differences.n - 1)


def verdict(difference: Difference, paper_sign: int, margin: float = 0.0) -> str:
    """The report's words for `difference` against the paper's direction (+1: the arm's value is higher
    than the baseline's, −1: lower). "Same direction" only when the interval excludes 0.
    `paper_sign` 0 is a claim that the arm is not worse (the mixed-precision study: the error held within
    `margin` points, a non-inferiority test): held only when the interval's upper end is at most +margin;
    a lower error is not a failure."""
    if difference.low is None:
        return TOO_FEW
    if paper_sign == 0:
        if difference.high <= margin:
            return HELD.format(margin=margin)
        return WORSE if difference.low > 0.0 else UNDECIDED.format(margin=margin)
    if difference.low <= 0.0 <= difference.high:
        return NOT_SIGNIFICANT
    return SAME if (difference.estimate > 0) == (paper_sign > 0) else OPPOSITE
