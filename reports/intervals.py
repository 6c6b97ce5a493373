"""Confidence intervals over repeats: Student's t-interval for a mean, and Welch's for a difference of means.

Each repeat of a level is one sample of every metric (its p99 TTFT, its output tokens/s, ...). The interval
for the metric is the two-sided 95% t-interval of the mean of the repeats' values,

    mean ± t(0.975, n - 1) x s / sqrt(n)

(NIST/SEMATECH e-Handbook of Statistical Methods, 7.2.2.1 "Confidence limits for the mean",
https://www.itl.nist.gov/div898/handbook/prc/section2/prc221.htm). It assumes the repeats are independent
and their values roughly normal; with 3 repeats t is 4.30, so the interval is honest about how little three
runs say. The difference of two means (the gate) uses Welch's interval with the Welch-Satterthwaite degrees
of freedom (e-Handbook 7.3.1, https://www.itl.nist.gov/div898/handbook/prc/section3/prc31.htm), which does
not assume equal variances.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from reports.schema import Interval

CONFIDENCE = 0.95
# t(0.975, df): the upper critical values of Student's t for a two-sided 95% interval, from the e-Handbook's
# table 1.3.6.7.2 (https://www.itl.nist.gov/div898/handbook/eda/section3/eda3672.htm). A df between two rows
# takes the lower row's (larger) value, so an interval is never narrower than it should be.
T_975: dict[int, float] = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
    20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
    29: 2.045, 30: 2.042, 40: 2.021, 50: 2.009, 60: 2.000, 80: 1.990, 100: 1.984,
}  # fmt: skip
T_975_INFINITY = 1.960


def t_critical(df: float) -> float:
    """t(0.975, df) for df >= 1 (fractional df, as Welch's, round down to the table's row at or below)."""
    if not df >= 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    rows = [d for d in T_975 if d <= df]
    if df > max(T_975) * 10:
        return T_975_INFINITY
    return T_975[max(rows)]


def t_interval(values: Sequence[float]) -> Interval | None:
    """The 95% t-interval of the mean of ``values``; None with fewer than two values (no spread to judge)."""
    n = len(values)
    if n < 2:
        return None
    mean = statistics.fmean(values)
    half = t_critical(n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean=mean, low=mean - half, high=mean + half, n=n, confidence=CONFIDENCE, method="t")


def welch_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """The 95% Welch interval of mean(b) - mean(a); None unless both sides have two or more values."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(b) - statistics.fmean(a)
    se2 = va + vb
    if se2 == 0:
        return diff, diff
    df = se2**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_critical(max(1.0, df)) * math.sqrt(se2)
    return diff - half, diff + half


def half_width(interval: Interval) -> float:
    return (interval.high - interval.low) / 2
