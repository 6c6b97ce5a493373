"""Levels bounded by time: how many arrivals an open-loop level plans, and that the schedule stays inside the
duration; a closed-loop level bounded by time has no fixed count."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from load_testkit import MODEL, reference_server

from load.config import ConfigError, Level, RandomWorkload, SweepConfig
from load.runner import run_sweep_sync
from load.schedule import arrival_offsets


@pytest.mark.parametrize(("rate", "duration", "planned"), [(4.0, 2.0, 8), (2.5, 3.0, 7), (0.5, 2.0, 1)])
def test_an_open_loop_level_plans_rate_times_duration_arrivals_all_within_it(
    rate: float, duration: float, planned: int
) -> None:
    for burstiness in (1.0, math.inf):
        level = Level(request_rate=rate, duration_s=duration, burstiness=burstiness)
        offsets = arrival_offsets(level, np.random.default_rng(0))
        assert level.planned_requests == planned and offsets is not None and len(offsets) == planned
        assert offsets[-1] <= duration + 1e-9


def test_a_rate_too_low_for_the_duration_still_sends_one_request() -> None:
    assert Level(request_rate=0.3, duration_s=2.0).planned_requests == 1  # documented: at least one


def test_constant_arrivals_are_evenly_spaced() -> None:
    offsets = arrival_offsets(
        Level(request_rate=4.0, duration_s=2.0, burstiness=math.inf), np.random.default_rng(0)
    )
    assert offsets is not None
    assert np.allclose(np.diff(offsets), 0.25)


def test_both_bounds_take_whichever_comes_first() -> None:
    assert Level(request_rate=10.0, duration_s=5.0, num_requests=7).planned_requests == 7
    assert Level(request_rate=1.0, duration_s=5.0, num_requests=70).planned_requests == 5
    assert Level(concurrency=4, duration_s=5.0).planned_requests is None  # closed loop: until the time is up
    assert Level(concurrency=4, duration_s=5.0, num_requests=9).planned_requests == 9


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"concurrency": 1}, "a level needs num_requests, duration_s, or both"),
        ({"concurrency": 1, "duration_s": 0.0}, "duration_s must be a finite number of seconds > 0"),
        (
            {"request_rate": 1.0, "request_rate_end": 2.0, "duration_s": 3.0},
            "a ramp (request_rate_end) is bounded",
        ),
    ],
)
def test_a_level_without_a_usable_bound_is_refused(kwargs: dict[str, float], said: str) -> None:
    with pytest.raises(ConfigError) as error:
        Level(**kwargs)  # type: ignore[arg-type]
    assert said in str(error.value)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with reference_server("--ttft-ms", "20", "--itl-ms", "10") as (url, _):
        yield url


def _config(url: str, level: Level) -> SweepConfig:
    return SweepConfig(
        endpoint=url, model=MODEL, workload=RandomWorkload(input_len=8, output_len=10), levels=(level,)
    )


def test_a_closed_loop_level_bounded_by_time_sends_until_then_and_lets_the_last_finish(server: str) -> None:
    # 2 in flight of ~110 ms each for 1 s: about 18 requests, none sent after 1 s, every one completed.
    run = run_sweep_sync(_config(server, Level(concurrency=2, duration_s=1.0)))
    records = run.levels[0].records
    first = min(r.sent for r in records if r.sent is not None)
    assert 8 <= len(records) <= 20, len(records)
    assert all(r.sent is not None and r.sent - first < 1.0 for r in records)
    assert all(r.ok for r in records)
    assert run.result.results[0].load.duration_s == 1.0 and run.result.results[0].load.num_requests is None


def test_a_closed_loop_level_with_both_bounds_stops_at_the_count_first(server: str) -> None:
    run = run_sweep_sync(_config(server, Level(concurrency=2, duration_s=30.0, num_requests=5)))
    assert len(run.levels[0].records) == 5
