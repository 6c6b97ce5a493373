"""Seeded arrival schedules: when each request of a level is due, as offsets from the level's start.

Open loop follows vLLM ``bench serve`` so the two are comparable: gaps are drawn from
Gamma(shape=burstiness, scale=1/(rate*burstiness)) (burstiness 1 = Poisson arrivals; the coefficient of
variation is 1/sqrt(burstiness); ``inf`` = evenly spaced), and the cumulative times are rescaled so the
last arrival lands exactly on N/rate. A ramp transforms the same unit-rate arrivals through the
inverse of the cumulative rate (the time-rescaling theorem), so a linear ramp is a non-homogeneous
Poisson (or gamma) process whose rate goes from r0 to r1 over T = 2N/(r0 + r1) seconds.

Closed loop has no schedule: a request is due the moment a slot frees (the runner records that time).
"""

from __future__ import annotations

import math

import numpy as np

from load.config import Level


def arrival_offsets(level: Level, rng: np.random.Generator) -> np.ndarray | None:
    """Offsets in seconds from the level start, non-decreasing; None for a closed-loop level."""
    if level.request_rate is None:
        return None
    n = level.planned_requests
    assert n is not None, "an open-loop level always knows how many arrivals it plans"
    unit = _unit_rate_arrivals(n, level.burstiness, rng)  # mean gap 1, last arrival exactly at n
    r0 = level.request_rate
    if level.request_rate_end is None:
        return unit / r0
    r1 = level.request_rate_end
    # Lambda(t) = r0*t + a*t^2 with a = (r1 - r0) / (2T) and Lambda(T) = n; invert Lambda(t) = s
    # in the form that stays exact when a == 0 and when r0 == 0.
    duration = 2.0 * n / (r0 + r1)
    a = (r1 - r0) / (2.0 * duration)
    return 2.0 * unit / (r0 + np.sqrt(np.maximum(r0 * r0 + 4.0 * a * unit, 0.0)))


def _unit_rate_arrivals(n: int, burstiness: float, rng: np.random.Generator) -> np.ndarray:
    if math.isinf(burstiness):
        gaps = np.ones(n)
    else:
        gaps = rng.gamma(shape=burstiness, scale=1.0 / burstiness, size=n)
    cumulative = np.cumsum(gaps)
    return cumulative * (n / cumulative[-1])
