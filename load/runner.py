"""Running load: one level at a time over one aiohttp session, and a sweep of levels into a Result.

The dispatcher hands each request to its own task and then yields once (``sleep(0)``), so a burst of
sends is interleaved with reads and no chunk waits behind a thousand sends to be timestamped. Closed
loop: a request is due when a slot frees (the finishing request records the moment). Open loop: due at
its arrival time; with a concurrency cap it may wait for a slot, and that wait is the schedule lag
(sent - due), which is how coordinated omission shows instead of hiding. Garbage collection is frozen
and paused during a level so no collector pause lands inside a measured gap.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import aiohttp
import numpy as np

from load.client_check import LoopMonitor, client_check
from load.config import Level, SweepConfig
from load.metrics import level_metrics
from load.records import RequestRecord
from load.request import Target, new_session, request_body, send_request
from load.schedule import arrival_offsets
from load.server_metrics import delta, scrape
from load.server_view import measure_round_trip, scrape_settled, server_view
from load.workload import RequestSpec, build_requests
from reports.schema import ClientCheck, LevelResult, LoadSpec, Result, RunMetadata

PROGRESS_INTERVAL_S = 0.5


class EndpointUnreachable(RuntimeError):
    """No connection to the endpoint (refused, timed out, unresolvable)."""


class ModelNotServed(ValueError):
    """The endpoint answers but does not serve the model asked for."""


@dataclass(frozen=True)
class Progress:
    level: int  # 1-based
    levels: int
    description: str
    planned: int
    sent: int
    completed: int
    failed: int
    elapsed_s: float


ProgressSink = Callable[[Progress], None]


@dataclass
class LevelRun:
    """One level as run: its raw records (for detail and other formats) and its schema entry."""

    level: Level
    records: list[RequestRecord]
    started_at: str
    interrupted: bool
    warmup_failures: int = 0
    result: LevelResult | None = None
    client: ClientCheck | None = None  # did the client keep up (load/client_check.py)


@dataclass
class SweepRun:
    config: SweepConfig
    result: Result
    levels: list[LevelRun] = field(default_factory=list)
    interrupted: bool = False


@dataclass
class _Counts:
    sent: int = 0
    completed: int = 0
    failed: int = 0


async def run_sweep(
    config: SweepConfig, *, progress: ProgressSink | None = None, stop: asyncio.Event | None = None
) -> SweepRun:
    """Run every level of ``config`` in order and return the result (partial if ``stop`` was set).

    Raises EndpointUnreachable before any load if the endpoint cannot be reached, ModelNotServed if it
    lists its models and ``config.model`` is not among them. Failed requests never raise.
    """
    started_at = _now()
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
            finished_at=_now(),
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


async def run_level(
    session: aiohttp.ClientSession,
    target: Target,
    level: Level,
    specs: list[RequestSpec],
    offsets: np.ndarray | None,
    *,
    stop: asyncio.Event | None = None,
    progress: ProgressSink | None = None,
    position: tuple[int, int] = (1, 1),
) -> LevelRun:
    records: list[RequestRecord] = []
    in_flight: set[asyncio.Task[None]] = set()
    counts = _Counts()
    started_at = _now()
    gc.collect()
    gc.freeze()
    gc.disable()
    monitor = LoopMonitor()
    monitor.start()
    t0 = perf_counter()
    slots: asyncio.Queue[float] | None = None
    if level.concurrency is not None:
        slots = asyncio.Queue()
        for _ in range(level.concurrency):
            slots.put_nowait(t0)

    async def one(body: bytes, headers: dict[str, str], record: RequestRecord) -> None:
        try:
            await send_request(session, target, body, headers, record)
        finally:
            if record.ok:
                counts.completed += 1
            elif record.finished is not None:
                counts.failed += 1
            if slots is not None:
                slots.put_nowait(perf_counter())

    async def dispatch() -> None:
        base_headers = {"Content-Type": "application/json", **target.headers}
        for i, spec in enumerate(specs):
            due = t0
            if offsets is not None:
                due = t0 + float(offsets[i])
                delay = due - perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            ready = due
            if slots is not None:
                freed = await slots.get()
                if offsets is None:  # closed loop: due when a slot frees; open loop: its arrival time stays
                    due = freed
                ready = max(due, freed)  # a slot held by the server is the server's time, not the client's
            body = request_body(target, spec)
            record = RequestRecord(index=i, scheduled=due, ready=ready)
            records.append(record)
            task = asyncio.create_task(one(body, {**base_headers, "X-Request-Id": f"load-{i}"}, record))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            counts.sent += 1
            await asyncio.sleep(0)  # let it send now; reads due meanwhile are timestamped first
        while in_flight:
            await asyncio.wait(set(in_flight))

    def report() -> None:
        if progress is not None:
            progress(
                Progress(
                    level=position[0],
                    levels=position[1],
                    description=level.describe(),
                    planned=len(specs),
                    sent=counts.sent,
                    completed=counts.completed,
                    failed=counts.failed,
                    elapsed_s=perf_counter() - t0,
                )
            )

    async def tick() -> None:
        while True:
            report()
            await asyncio.sleep(PROGRESS_INTERVAL_S)

    main = asyncio.create_task(dispatch())
    helpers: list[asyncio.Task[Any]] = []
    if progress is not None:
        helpers.append(asyncio.create_task(tick()))
    waiters: set[asyncio.Task[Any]] = {main}
    if stop is not None:
        stopper = asyncio.create_task(stop.wait())
        helpers.append(stopper)
        waiters.add(stopper)
    interrupted = False
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not main.done():
            interrupted = True
            main.cancel()
            for task in list(in_flight):
                task.cancel()
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(main, *in_flight, *helpers, return_exceptions=True)
        await monitor.stop()
        gc.enable()
        gc.unfreeze()
    if not interrupted:
        main.result()  # a bug in the dispatcher surfaces here rather than as a silent short level
    now = perf_counter()
    for record in records:
        if record.sent is not None and record.finished is None:
            record.fail("interrupted", "the run was stopped while this request was in flight", now)
    report()
    sent = [r for r in records if r.sent is not None]
    return LevelRun(
        level=level,
        records=sent,
        started_at=started_at,
        interrupted=interrupted,
        client=client_check(level, sent, monitor),
    )


async def probe_endpoint(session: aiohttp.ClientSession, config: SweepConfig) -> str | None:
    """Check the endpoint answers and serves the model; return the vLLM version if it says."""
    timeout = aiohttp.ClientTimeout(total=config.timeouts.probe_s)
    try:
        async with session.get(
            config.base_url + "/v1/models", headers=dict(config.headers), timeout=timeout
        ) as r:
            models = await r.json(content_type=None) if r.status == 200 else None
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise EndpointUnreachable(
            f"cannot reach {config.endpoint} ({type(exc).__name__}: {exc}); is the server up and the port forwarded?"
        ) from None
    except ValueError:
        models = None
    served = _model_ids(models)
    if served is not None and config.model not in served:
        raise ModelNotServed(
            f"{config.endpoint} does not serve model {config.model!r}; it serves: {', '.join(served) or 'nothing'}"
        )
    try:
        async with session.get(config.base_url + "/version", timeout=timeout) as r:
            body = await r.json(content_type=None) if r.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    version = body.get("version") if isinstance(body, dict) else None
    return version if isinstance(version, str) else None


async def warm_connections(session: aiohttp.ClientSession, config: SweepConfig, count: int) -> int:
    """Open ``count`` pooled connections (concurrent GET /v1/models, each held until all have
    answered) so the level's first burst does not pay for connects inside its measured TTFT.
    Returns how many failed."""
    settled = 0
    failures = 0
    all_in = asyncio.Event()
    timeout_s = config.timeouts.probe_s

    def settle() -> None:
        nonlocal settled
        settled += 1
        if settled == count:
            all_in.set()

    async def one() -> None:
        nonlocal failures
        counted = False
        try:
            async with session.get(
                config.base_url + "/v1/models",
                headers=dict(config.headers),
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                settle()
                counted = True
                await asyncio.wait_for(all_in.wait(), timeout_s)
                await response.read()
        except (aiohttp.ClientError, TimeoutError):
            failures += 1
            if not counted:
                settle()

    await asyncio.gather(*(one() for _ in range(count)))
    return failures


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


def _model_ids(models: Any) -> list[str] | None:
    data = models.get("data") if isinstance(models, dict) else None
    if not isinstance(data, list):
        return None
    return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
