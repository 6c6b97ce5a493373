"""The gate's verdict on one metric at one level: the band a change may move within, from the tolerance and the
run-to-run noise (the standard deviation of one run, from the baseline's repeats or the coefficient of
variation pooled over the baseline's levels of the configuration; never the candidate's, so a change that
also makes runs erratic cannot widen its own allowance), and the 95% Welch interval of the change
(reports/gate.py describes the rule; reports/intervals.py the interval)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Literal

from reports.intervals import welch_interval

DEFAULT_K = 3.0

# "unclear": worse by more than the band, but the 95% interval of the difference still includes no change
Verdict = Literal["ok", "better", "REGRESSION", "unclear", "missing", "no baseline"]


def run_sd(baseline: Sequence[float], pooled_cv: float | None) -> float | None:
    """The standard deviation of one run, from the baseline alone: the larger of its repeats' and the pooled
    coefficient of variation x its mean; None when there is neither."""
    estimates = [statistics.stdev(baseline)] if len(baseline) > 1 else []
    if pooled_cv is not None and baseline:
        estimates.append(pooled_cv * abs(statistics.fmean(baseline)))
    return max(estimates) if estimates else None


def pooled_cv(groups: Sequence[Sequence[float]]) -> float | None:
    """Coefficient of variation pooled over groups of repeats: sqrt(sum((n-1) cv^2) / sum(n-1))."""
    weighted, dof = 0.0, 0
    for values in groups:
        if len(values) < 2:
            continue
        mean = statistics.fmean(values)
        if mean == 0:
            continue
        weighted += (len(values) - 1) * (statistics.stdev(values) / abs(mean)) ** 2
        dof += len(values) - 1
    return math.sqrt(weighted / dof) if dof else None


def judge(
    baseline: Sequence[float],
    candidate: Sequence[float],
    higher_is_better: bool,
    tolerance: float,
    absolute: bool = False,
    k: float = DEFAULT_K,
    cv: float | None = None,
) -> tuple[Verdict, float | None, float | None]:
    """(verdict, allowed, noise) for one metric; both sequences already free of missing values.

    ``cv`` is the coefficient of variation of the metric pooled over the baseline's levels of this
    configuration, if known. The candidate's spread enters only the Welch interval, never the band.
    """
    if not candidate:
        return "missing", None, None
    if not baseline:
        return "no baseline", None, None
    mean_b, mean_c = statistics.fmean(baseline), statistics.fmean(candidate)
    tol = tolerance / 100 if absolute else tolerance / 100 * abs(mean_b)
    sd = run_sd(baseline, cv)
    noise = None if sd is None else k * sd * math.sqrt(1 / len(baseline) + 1 / len(candidate))
    allowed = max(tol, noise or 0.0)
    worse_by = (mean_b - mean_c) if higher_is_better else (mean_c - mean_b)
    if worse_by > allowed:
        interval = worse_interval(baseline, candidate, higher_is_better)
        if interval is not None and interval[0] <= 0:
            return "unclear", allowed, noise  # the intervals cannot tell this change from no change
        return "REGRESSION", allowed, noise
    if -worse_by > allowed:
        return "better", allowed, noise
    return "ok", allowed, noise


def worse_interval(
    baseline: Sequence[float], candidate: Sequence[float], higher_is_better: bool
) -> tuple[float, float] | None:
    """The 95% Welch interval of how much worse the candidate's mean is than the baseline's (positive =
    worse; reports/intervals.py); None unless both sides have two or more runs."""
    diff = welch_interval(baseline, candidate)  # candidate - baseline
    if diff is None:
        return None
    return (-diff[1], -diff[0]) if higher_is_better else diff
