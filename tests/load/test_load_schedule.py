"""Arrival schedules: seeded, shaped as asked, and comparable to vLLM bench serve's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from load.config import ConfigError, Level
from load.schedule import arrival_offsets


def offsets(level: Level, seed: int = 0) -> np.ndarray:
    result = arrival_offsets(level, np.random.default_rng(seed))
    assert result is not None
    return result


def test_closed_loop_has_no_schedule() -> None:
    assert arrival_offsets(Level(num_requests=10, concurrency=4), np.random.default_rng(0)) is None


def test_the_same_seed_gives_the_same_arrivals_and_another_seed_others() -> None:
    level = Level(num_requests=500, request_rate=20.0)
    assert np.array_equal(offsets(level, 1), offsets(level, 1))
    assert not np.array_equal(offsets(level, 1), offsets(level, 2))


@pytest.mark.parametrize("burstiness", [1.0, 0.5, 4.0, math.inf])
def test_the_last_arrival_lands_on_n_over_rate_as_in_vllm(burstiness: float) -> None:
    t = offsets(Level(num_requests=400, request_rate=50.0, burstiness=burstiness))
    assert np.all(np.diff(t) >= 0)
    assert t[-1] == pytest.approx(400 / 50.0)


@pytest.mark.parametrize("burstiness", [0.5, 1.0, 4.0])
def test_gaps_have_the_coefficient_of_variation_of_a_gamma_process(burstiness: float) -> None:
    gaps = np.diff(offsets(Level(num_requests=20_000, request_rate=100.0, burstiness=burstiness), seed=3))
    cv = gaps.std() / gaps.mean()
    assert cv == pytest.approx(1 / math.sqrt(burstiness), rel=0.05)


def test_infinite_burstiness_spaces_arrivals_evenly() -> None:
    gaps = np.diff(offsets(Level(num_requests=100, request_rate=10.0, burstiness=math.inf)))
    assert np.allclose(gaps, 0.1)


def test_a_linear_ramp_sends_faster_at_the_end_and_fits_its_duration() -> None:
    n, r0, r1 = 6000, 10.0, 110.0
    t = offsets(Level(num_requests=n, request_rate=r0, request_rate_end=r1), seed=5)
    duration = 2 * n / (r0 + r1)
    assert t[-1] == pytest.approx(duration)
    first_tenth = np.sum(t < duration / 10)
    last_tenth = np.sum(t > duration * 9 / 10)
    # Expected counts: integral of the rate over each tenth of the ramp.
    expected_first = r0 * duration / 10 + (r1 - r0) / duration * (duration / 10) ** 2 / 2
    expected_last = n - (r0 * 0.9 * duration + (r1 - r0) / duration * (0.9 * duration) ** 2 / 2)
    assert first_tenth == pytest.approx(expected_first, rel=0.2)
    assert last_tenth == pytest.approx(expected_last, rel=0.1)


def test_a_ramp_from_zero_is_allowed_and_a_level_without_load_is_not() -> None:
    t = offsets(Level(num_requests=100, request_rate=0.0, request_rate_end=20.0))
    assert t[0] > 0 and t[-1] == pytest.approx(10.0)
    with pytest.raises(ConfigError, match="concurrency, a request rate"):
        Level(num_requests=10)
    with pytest.raises(ConfigError, match="burstiness"):
        Level(num_requests=10, request_rate=1.0, burstiness=0)
