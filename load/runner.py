"""A sweep: its levels in order over one aiohttp session, into a Result.

Per level: its prompts (seeded by (seed, level)) and arrival schedule, warm connections, the server's
``/metrics`` before and after, the level itself (load/level_runner.py) and its metrics. Before any load,
the endpoint is probed (load/endpoint_probe.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from load.config import Level, SweepConfig
from load.endpoint_probe import probe_endpoint, warm_connections
from load.level_runner import LevelRun, Progress, ProgressSink, run_level, utc_timestamp
from load.metrics import level_metrics
from load.records import RequestRecord
from load.request import Target, new_session
from load.schedule import arrival_offsets
from load.server_metrics import delta, scrape
from load.server_view import measure_round_trip, scrape_settled, server_view
from load.workload import RequestSpec, build_requests
from reports.schema import LevelResult, LoadSpec, Result, RunMetadata

# ``Progress`` is what a sweep's ``progress`` callback receives; load/README.md documents importing it from here.
__all__ = ["Progress", "SweepRun", "level_requests", "load_spec", "run_sweep", "run_sweep_sync"]


@dataclass
class SweepRun:
    config: SweepConfig
    result: Result
    levels: list[LevelRun] = field(default_factory=list)
    interrupted: bool = False


async def run_sweep(
    config: SweepConfig, *, progress: ProgressSink | None = None, stop: asyncio.Event | None = None
) -> SweepRun:
    """Run every level of ``config`` in order and return the result (partial if ``stop`` was set).

    Raises EndpointUnreachable before any load if the endpoint cannot be reached, ModelNotServed if it
    lists its models and ``config.model`` is not among them. Failed requests never raise.
    """
    started_at = utc_timestamp()
    target = Target.from_config(config)
    runs: list[LevelRun] = []
    interrupted = False
    first_specs = level_requests(config, 0)  # an unreadable dataset fails here, before any traffic
    async with new_session() as session:
        vllm_version = await probe_endpoint(session, config)
        for n, level in enumerate(config.levels):
            if stop is not None and stop.is_set():
                interrupted = True
                break
            specs = first_specs if n == 0 else level_requests(config, n)
            offsets = arrival_offsets(level, np.random.default_rng(_seed(config, n, 1)))
            warmup_failures = 0
            if config.warm_connections:
                warmup_failures = await warm_connections(
                    session, config, level.concurrency or min(level.num_requests, 64)
                )
            network_ms = await _round_trip(session, config)
            before = await _scrape(session, config)
            run = await run_level(
                session,
                target,
                level,
                specs,
                offsets,
                stop=stop,
                progress=progress,
                position=(n + 1, len(config.levels)),
            )
            run.warmup_failures = warmup_failures
            after = await _scrape_after(session, config, before, run.records)
            server_delta = delta(before, after) if before is not None and after is not None else None
            metrics = level_metrics(run.records, config.slo, server_delta)
            view = server_view(metrics, run.records, before, after, network_ms)
            run.result = LevelResult(
                load=load_spec(config, level, n),
                metrics=metrics.model_copy(update={"client": run.client, "server_view": view}),
                started_at=run.started_at,
            )
            runs.append(run)
            if run.interrupted:
                interrupted = True
                break
    result = Result(
        run=RunMetadata(
            label=config.label,
            model=config.model,
            endpoint=config.endpoint,
            vllm_version=vllm_version,
            started_at=started_at,
            finished_at=utc_timestamp(),
        ),
        results=[r.result for r in runs if r.result is not None],
    )
    return SweepRun(config=config, result=result, levels=runs, interrupted=interrupted)


def run_sweep_sync(config: SweepConfig, *, progress: ProgressSink | None = None) -> SweepRun:
    """``run_sweep`` for callers without an event loop (a pytest benchmark test, a script)."""
    return asyncio.run(run_sweep(config, progress=progress))


def level_requests(config: SweepConfig, n: int) -> list[RequestSpec]:
    """Level n's prompts: seeded by (seed, n), so levels differ (no prefix-cache hits across levels)
    and a rerun with the same seed sends the same prompts."""
    return build_requests(
        config.workload, config.levels[n].num_requests, np.random.default_rng(_seed(config, n, 0))
    )


def _seed(config: SweepConfig, level: int, kind: int) -> list[int]:
    """(seed, level, kind), and the repeat's index after them for repeats beyond the first, so repeat r
    sends new prompts (no prefix-cache hits from an earlier repeat) and a single run is as before."""
    return [config.seed, level, kind] if config.repeat == 0 else [config.seed, level, kind, config.repeat]


def load_spec(config: SweepConfig, level: Level, index: int) -> LoadSpec:
    workload = config.workload
    name = workload.name if workload.name != "sharegpt" else f"sharegpt:{workload.path.name}"  # type: ignore[union-attr]
    return LoadSpec(
        api=config.api,
        concurrency=level.concurrency,
        request_rate=level.request_rate,
        burstiness=level.burstiness if level.open_loop else None,
        num_requests=level.num_requests,
        input_len=workload.input_len,
        output_len=workload.output_len,
        workload=name,
        seed=config.seed,  # level `index` draws from (seed, index): README, "Arrival schedules and workloads"
        slo=dict(config.slo),
        generator="load",
        request_rate_end=level.request_rate_end,
    )


async def _scrape(session: aiohttp.ClientSession, config: SweepConfig) -> Any:
    if not config.scrape_server_metrics:
        return None
    return await scrape(session, config.base_url, config.timeouts.probe_s)


async def _round_trip(session: aiohttp.ClientSession, config: SweepConfig) -> float | None:
    if not config.scrape_server_metrics:
        return None
    return await measure_round_trip(session, config.base_url, config.timeouts.probe_s)


async def _scrape_after(
    session: aiohttp.ClientSession, config: SweepConfig, before: Any, records: list[RequestRecord]
) -> Any:
    if before is None:
        return None
    completed = sum(1 for r in records if r.ok)
    return await scrape_settled(session, config.base_url, config.timeouts.probe_s, before, completed)
