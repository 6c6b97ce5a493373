"""Drawing request lengths from a workload's length distribution (``LengthDist`` in load/config.py), seeded."""

from __future__ import annotations

import numpy as np

from load.config import LengthDist


def draw_lengths(dist: LengthDist, length: int, n: int, rng: np.random.Generator) -> list[int]:
    """``n`` lengths around ``length``: always >= 1, within ``dist.min``..``dist.max`` when given."""
    if dist.kind == "fixed":
        values = np.full(n, length, dtype=np.int64)
    elif dist.kind == "uniform":
        assert dist.min is not None and dist.max is not None  # the model's validator
        values = rng.integers(dist.min, dist.max + 1, size=n)
    else:
        values = np.rint(rng.normal(length, dist.std_dev, size=n)).astype(np.int64)
    low = max(1, dist.min or 1)
    high = dist.max if dist.max is not None else np.iinfo(np.int64).max
    return [int(v) for v in np.clip(values, low, high)]
