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

from load.config import Level, MultiTurnWorkload, SweepConfig
from load.conversations import plan_sessions, run_sessions, sessions_for, ttft_by_turn
from load.endpoint_probe import probe_endpoint, warm_connections
from load.group_split import BalancedScrapes
from load.input_check import input_length_check, prefix_cache_view
from load.level_runner import (
    LevelRun,
    Progress,
    ProgressSink,
    SpecStream,
    run_level,
    sent_specs,
    utc_timestamp,
)
from load.metrics import level_metrics
from load.records import RequestRecord
from load.request import Target, new_session
from load.schedule import arrival_offsets
from load.server_metrics import delta, scrape
from load.server_tokenizer import ServerTokenizer
from load.server_view import measure_round_trip, scrape_settled, server_view
from load.token_workload import build_token_requests
from load.workload import RequestSpec, build_requests
from reports.group_load import loaded_gpus
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
    in_tokens = config.length_unit == "tokens"
    multi_turn = isinstance(config.workload, MultiTurnWorkload)
    # an unreadable dataset fails here, before any traffic (in tokens: after the probe, before any load)
    first_specs = None if in_tokens else level_requests(config, 0)
    async with new_session() as session:
        vllm_version = await probe_endpoint(session, config)
        tokenizer = server_tokenizer(session, config) if in_tokens else None
        if tokenizer is not None and not multi_turn:
            first_specs = await token_level_requests(config, 0, tokenizer)
        for n, level in enumerate(config.levels):
            if stop is not None and stop.is_set():
                interrupted = True
                break
            if tokenizer is not None and isinstance(config.workload, MultiTurnWorkload):
                run = await _sessions_level(session, config, target, n, tokenizer, stop)
                runs.append(run)
                if run.interrupted:
                    interrupted = True
                    break
                continue
            if n == 0 and first_specs is not None:
                specs = first_specs
            elif tokenizer is not None:
                specs = await token_level_requests(config, n, tokenizer)
            else:
                specs = level_requests(config, n)
            offsets = arrival_offsets(level, np.random.default_rng(_seed(config, n, 1)))
            warmup_failures = 0
            if config.warm_connections:
                warmup_failures = await warm_connections(
                    session, config, level.concurrency or min(level.planned_requests or 64, 64)
                )
            network_ms = await _round_trip(session, config)
            split = _split(session, config)
            before = await (split.before() if split is not None else _scrape(session, config))
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
            after = await _scrape_after(session, config, before, run.records, split)
            server_delta = delta(before, after) if before is not None and after is not None else None
            metrics = level_metrics(run.records, config.slo, server_delta)
            view = server_view(metrics, run.records, before, after, network_ms)
            groups = split.groups(run.records) if split is not None else None
            run.result = LevelResult(
                load=load_spec(config, level, n),
                metrics=metrics.model_copy(
                    update={
                        "client": run.client,
                        "server_view": view,
                        "groups": groups,
                        "gpus_loaded": loaded_gpus(groups),
                        "input_lengths": (
                            input_length_check(sent_specs(specs), run.records, config.length_tolerance)
                            if in_tokens
                            else None
                        ),
                        "prefix_cache": prefix_cache_view(sent_specs(specs), run.records, server_delta),
                    }
                ),
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


SPEC_BLOCK = 256  # a duration-bounded closed loop's prompts are drawn this many at a time


def level_requests(config: SweepConfig, n: int) -> list[RequestSpec] | SpecStream:
    """Level n's prompts: seeded by (seed, n), so levels differ (no prefix-cache hits across levels)
    and a rerun with the same seed sends the same prompts. A closed loop bounded only by its duration gets
    an endless stream, drawn SPEC_BLOCK at a time from the same generator (the first block now, so an
    unreadable dataset fails before any traffic)."""
    rng = np.random.default_rng(_seed(config, n, 0))
    planned = config.levels[n].planned_requests
    if planned is not None:
        return build_requests(config.workload, planned, rng)

    async def more() -> list[RequestSpec]:
        return build_requests(config.workload, SPEC_BLOCK, rng)

    return SpecStream(build_requests(config.workload, SPEC_BLOCK, rng), more)


async def _sessions_level(
    session: aiohttp.ClientSession,
    config: SweepConfig,
    target: Target,
    n: int,
    tokenizer: ServerTokenizer,
    stop: asyncio.Event | None,
) -> LevelRun:
    """Level n of a multi-turn workload (load/conversations.py): its sessions, its metrics, TTFT by turn."""
    workload = config.workload
    assert isinstance(workload, MultiTurnWorkload)
    level = config.levels[n]
    rng = np.random.default_rng(_seed(config, n, 0))
    plans = await plan_sessions(workload, sessions_for(level, workload), rng, tokenizer)
    split = _split(session, config)
    before = await (split.before() if split is not None else _scrape(session, config))
    sessions = await run_sessions(session, target, level, workload, plans, tokenizer, stop=stop)
    run = sessions.run
    after = await _scrape_after(session, config, before, run.records, split)
    server_delta = delta(before, after) if before is not None and after is not None else None
    metrics = level_metrics(run.records, config.slo, server_delta)
    groups = split.groups(run.records) if split is not None else None
    run.result = LevelResult(
        load=load_spec(config, level, n),
        metrics=metrics.model_copy(
            update={
                "groups": groups,
                "gpus_loaded": loaded_gpus(groups),
                "input_lengths": input_length_check(sessions.specs, run.records, config.length_tolerance),
                "prefix_cache": prefix_cache_view(sessions.specs, run.records, server_delta),
                "ttft_by_turn": ttft_by_turn(sessions),
            }
        ),
        started_at=run.started_at,
    )
    return run


def server_tokenizer(session: aiohttp.ClientSession, config: SweepConfig) -> ServerTokenizer:
    return ServerTokenizer(
        session,
        config.base_url,
        config.model,
        config.api,
        timeout_s=config.timeouts.probe_s,
        headers=config.headers,
    )


async def token_level_requests(
    config: SweepConfig, n: int, tokenizer: ServerTokenizer
) -> list[RequestSpec] | SpecStream:
    """Level n's prompts with lengths in the server's tokens, seeded as ``level_requests`` (and, for a closed
    loop bounded only by its duration, drawn a block at a time as it runs)."""
    rng = np.random.default_rng(_seed(config, n, 0))
    planned = config.levels[n].planned_requests
    if planned is not None:
        return await build_token_requests(config.workload, planned, rng, tokenizer)

    async def more() -> list[RequestSpec]:
        return await build_token_requests(config.workload, SPEC_BLOCK, rng, tokenizer)

    return SpecStream(await more(), more)


def _seed(config: SweepConfig, level: int, kind: int) -> list[int]:
    """(seed, level, kind), and the repeat's index after them for repeats beyond the first, so repeat r
    sends new prompts (no prefix-cache hits from an earlier repeat) and a single run is as before. A sweep
    run a level at a time counts its levels from ``first_level``."""
    level += config.first_level
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
        duration_s=level.duration_s,
        input_len=workload.input_len,
        output_len=workload.output_len,
        length_unit=config.length_unit,
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


def _split(session: aiohttp.ClientSession, config: SweepConfig) -> BalancedScrapes | None:
    """Through the loopback balancer: the level's scrapes leader by leader, and its split over LWS groups."""
    if config.balancer is None:
        return None
    return BalancedScrapes(session, config.balancer, config.timeouts.probe_s, config.scrape_server_metrics)


async def _scrape_after(
    session: aiohttp.ClientSession,
    config: SweepConfig,
    before: Any,
    records: list[RequestRecord],
    split: BalancedScrapes | None = None,
) -> Any:
    if split is not None and before is None:
        await split.now()  # the endpoint set after the level (leaders that came), for the split
    if before is None:
        return None
    completed = sum(1 for r in records if r.ok)
    scraper = split.now if split is not None else None
    return await scrape_settled(session, config.base_url, config.timeouts.probe_s, before, completed, scraper)
