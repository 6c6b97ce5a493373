"""The benchmark's load shapes as levels, run one at a time: closed loop by concurrency, open loop by request
rate (Poisson or constant arrivals), and the saturation sweep.

The saturation sweep is GuideLLM's `sweep` profile (https://github.com/vllm-project/guidellm, docs: "sweep"
runs a synchronous benchmark, a throughput benchmark, then rates interpolated between the two): a synchronous
level (one request at a time) and a throughput level (`max_concurrency` requests in flight, the most the server
will take from this client); the throughput level's request rate is the saturation rate; then `points` open-loop
levels at rates spread evenly between the synchronous rate and the saturation rate, both excluded, where
latency and goodput under the SLOs show how close to saturation the deployment can run.

`run_stages` takes the level runner as a callable, so the search is tested on a fake runner
(tests/suite/test_benchmark_shapes.py) and a resumed run passes the levels it kept instead of running them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fixtures.bench_config import ClosedLoop, OpenLoop, Saturation, Stage
from fixtures.bench_config_resolve import burstiness
from load.config import Level
from reports.schema import LevelResult, SaturationFinding

RunLevel = Callable[[Level, int], LevelResult]  # (level, its index in the run) -> its result


class SaturationNotFound(RuntimeError):
    """The synchronous or the throughput level completed no request, so there is no rate to spread."""


@dataclass
class StagesRun:
    results: list[LevelResult] = field(default_factory=list)
    saturation: SaturationFinding | None = None


def static_levels(shape: ClosedLoop | OpenLoop) -> list[Level]:
    bounds = {"num_requests": shape.num_requests, "duration_s": shape.duration_s}
    if isinstance(shape, ClosedLoop):
        return [Level(concurrency=c, **bounds) for c in shape.concurrency]
    return [
        Level(
            request_rate=rate,
            burstiness=burstiness(shape.arrival),
            concurrency=shape.max_concurrency,
            **bounds,
        )
        for rate in shape.rates
    ]


def rates_below(synchronous: float, saturation: float, points: int) -> list[float]:
    """`points` rates evenly between the synchronous and the saturation rate, both excluded (GuideLLM's
    interpolation). A saturation rate not above the synchronous one (the server does not batch): rates spread
    below the saturation rate from a tenth of it instead."""
    low = synchronous if saturation > synchronous else saturation / 10
    return [float(r) for r in np.linspace(low, saturation, points + 2)[1:-1]]


def run_stages(stages: Sequence[Stage], run: RunLevel, kept: Sequence[LevelResult] = ()) -> StagesRun:
    """Every level of every stage in order; level i is kept[i] when an earlier attempt measured it."""
    out = StagesRun()

    def level(lv: Level) -> LevelResult:
        i = len(out.results)
        result = kept[i] if i < len(kept) else run(lv, i)
        out.results.append(result)
        return result

    for stage in stages:
        shape = stage.shape
        if isinstance(shape, Saturation):
            out.saturation = _saturation(shape, level)
        else:
            for lv in static_levels(shape):
                level(lv)
    return out


def _saturation(shape: Saturation, level: Callable[[Level], LevelResult]) -> SaturationFinding:
    bounds = {"num_requests": shape.num_requests, "duration_s": shape.duration_s}
    synchronous = level(Level(concurrency=1, **bounds)).metrics.throughput.requests_per_s
    saturation = level(Level(concurrency=shape.max_concurrency, **bounds)).metrics.throughput.requests_per_s
    if not synchronous or not saturation:
        raise SaturationNotFound(
            f"saturation sweep: the synchronous level measured {synchronous} requests/s and the throughput level "
            f"{saturation}; no request completed, so no rate can be spread below saturation"
        )
    rates = rates_below(synchronous, saturation, shape.points)
    for rate in rates:
        level(
            Level(
                request_rate=rate,
                burstiness=burstiness(shape.arrival),
                concurrency=shape.max_concurrency,
                **bounds,
            )
        )
    return SaturationFinding(
        saturation_requests_per_s=saturation,
        synchronous_requests_per_s=synchronous,
        max_concurrency=shape.max_concurrency,
        rates=rates,
    )
