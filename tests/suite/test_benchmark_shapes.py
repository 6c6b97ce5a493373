"""The benchmark's load shapes as levels, and the saturation sweep's search, on a fake level runner whose
server saturates at a known rate: no cluster, no server."""

from __future__ import annotations

import math

import pytest

from fixtures.bench_config import parse_config
from load.config import Level
from reports.schema import Distribution, LevelMetrics, LevelResult, LoadSpec, RequestCounts, Throughput
from suite.benchmark.shapes import SaturationNotFound, rates_below, run_stages

SERVICE_S = 0.5  # one request takes 0.5 s alone: the synchronous rate is 2 req/s
SLOTS = 8  # the fake server serves 8 at once: it saturates at 16 req/s


def _result(level: Level, rate: float | None) -> LevelResult:
    empty = Distribution()
    return LevelResult(
        load=LoadSpec(
            concurrency=level.concurrency,
            request_rate=level.request_rate,
            burstiness=level.burstiness,
            num_requests=level.num_requests,
            duration_s=level.duration_s,
        ),
        metrics=LevelMetrics(
            ttft_ms=empty,
            tpot_ms=empty,
            itl_ms=empty,
            e2el_ms=empty,
            requests=RequestCounts(sent=1, completed=1, failed=0),
            throughput=Throughput(requests_per_s=rate),
        ),
    )


class FakeServer:
    """A level's request rate as a server with SLOTS slots of SERVICE_S each would give it."""

    def __init__(self) -> None:
        self.ran: list[tuple[int, Level]] = []

    def __call__(self, level: Level, index: int) -> LevelResult:
        self.ran.append((index, level))
        if level.request_rate is not None:
            rate = min(level.request_rate, SLOTS / SERVICE_S)
        else:
            rate = min(level.concurrency or 1, SLOTS) / SERVICE_S
        return _result(level, rate)


def _stages(*stages: dict[str, object]) -> list:
    return parse_config({"load": list(stages)}, "test").load


def test_the_sweep_finds_the_saturation_rate_and_measures_evenly_below_it() -> None:
    server = FakeServer()
    run = run_stages(
        _stages({"saturation": {"points": 3, "max_concurrency": 64, "duration_s": 5, "arrival": "poisson"}}),
        server,
    )
    assert run.saturation is not None
    assert (
        run.saturation.saturation_requests_per_s == 16.0
    )  # SLOTS / SERVICE_S, what the throughput level saw
    assert run.saturation.synchronous_requests_per_s == 2.0
    assert run.saturation.rates == pytest.approx([5.5, 9.0, 12.5])  # 2..16 in 4 steps, ends excluded
    levels = [lv for _, lv in server.ran]
    assert [lv.concurrency for lv in levels[:2]] == [1, 64]
    assert [lv.request_rate for lv in levels[2:]] == pytest.approx([5.5, 9.0, 12.5])
    assert all(lv.burstiness == 1.0 and lv.duration_s == 5 for lv in levels[2:])
    assert [i for i, _ in server.ran] == [0, 1, 2, 3, 4]


def test_static_shapes_run_in_order_and_constant_arrivals_are_evenly_spaced() -> None:
    server = FakeServer()
    run_stages(
        _stages(
            {"closed": {"concurrency": [1, 4], "num_requests": 8}},
            {"rate": {"rates": [3], "arrival": "constant", "duration_s": 2, "max_concurrency": 5}},
        ),
        server,
    )
    levels = [lv for _, lv in server.ran]
    assert [(lv.concurrency, lv.request_rate) for lv in levels] == [(1, None), (4, None), (5, 3)]
    assert math.isinf(levels[2].burstiness) and levels[2].planned_requests == 6  # floor(3/s x 2 s)


def test_kept_levels_are_not_run_again_and_feed_the_search() -> None:
    first = FakeServer()
    stages = _stages(
        {"closed": {"concurrency": [2], "num_requests": 4}},
        {"saturation": {"points": 2, "num_requests": 10}},
    )
    whole = run_stages(stages, first)
    again = FakeServer()
    resumed = run_stages(stages, again, kept=whole.results[:3])  # closed, synchronous, throughput kept
    assert [i for i, _ in again.ran] == [3, 4]
    assert resumed.saturation == whole.saturation
    assert [r.load for r in resumed.results] == [r.load for r in whole.results]


def test_a_sweep_whose_levels_complete_nothing_says_so() -> None:
    with pytest.raises(SaturationNotFound, match="no request completed"):
        run_stages(_stages({"saturation": {"points": 2, "num_requests": 4}}), lambda lv, i: _result(lv, None))


def test_rates_below_a_server_that_does_not_batch_still_spread_below_saturation() -> None:
    assert rates_below(2.0, 2.0, 1) == pytest.approx([1.1])  # from a tenth of it
    assert all(r < 16 for r in rates_below(2.0, 16.0, 5))
