"""One level of load over one aiohttp session: its requests sent on their schedule, progress while it
runs, and the records of every request sent.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import aiohttp
import numpy as np

from load.client_check import LoopMonitor, client_check
from load.config import Level
from load.records import RequestRecord
from load.request import Target, request_body, send_request
from load.workload import RequestSpec
from reports.schema import ClientCheck, LevelResult

PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Progress:
    level: int  # 1-based
    levels: int
    description: str
    planned: int | None  # None: a closed loop bounded by its duration only
    sent: int
    completed: int
    failed: int
    elapsed_s: float
    duration_s: float | None = None  # the level's time bound, if it has one


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
class _Counts:
    sent: int = 0
    completed: int = 0
    failed: int = 0


async def run_level(
    session: aiohttp.ClientSession,
    target: Target,
    level: Level,
    specs: Sequence[RequestSpec] | SpecStream,
    offsets: np.ndarray | None,
    *,
    stop: asyncio.Event | None = None,
    progress: ProgressSink | None = None,
    position: tuple[int, int] = (1, 1),
) -> LevelRun:
    """Send ``specs`` (at ``offsets`` s from the start; None: closed loop, each when a slot frees) and
    return the records of those sent. A set ``stop`` ends the level early: it is marked interrupted and
    the requests then in flight fail with reason ``interrupted``."""
    started_at = utc_timestamp()
    with _gc_paused():
        monitor = LoopMonitor()
        monitor.start()
        try:
            sends = _LevelSends(session, target, level, specs, offsets, progress, position)
            interrupted = await sends.run(stop)
        finally:
            await monitor.stop()
    sends.fail_cut_off()
    sends.report()
    sent = [r for r in sends.records if r.sent is not None]
    return LevelRun(
        level=level,
        records=sent,
        started_at=started_at,
        interrupted=interrupted,
        client=client_check(level, sent, monitor),
    )


class SpecStream:
    """A level's prompts without a count (a closed loop bounded only by its duration): handed out as the level
    sends, a block at a time (``more`` draws the next); ``drawn`` keeps those handed out, request i at index i,
    for the checks that compare what was sent with what was asked."""

    def __init__(self, first: list[RequestSpec], more: Callable[[], Awaitable[list[RequestSpec]]]) -> None:
        self.drawn: list[RequestSpec] = []
        self._block = first
        self._more = more

    async def __aiter__(self) -> AsyncIterator[RequestSpec]:
        while True:
            for spec in self._block:
                self.drawn.append(spec)
                yield spec
            self._block = await self._more()


def sent_specs(specs: Sequence[RequestSpec] | SpecStream) -> Sequence[RequestSpec]:
    """The prompts a level handed out, by request index."""
    return specs.drawn if isinstance(specs, SpecStream) else specs


async def _each(specs: Sequence[RequestSpec] | SpecStream) -> AsyncIterator[RequestSpec]:
    if isinstance(specs, SpecStream):
        async for spec in specs:
            yield spec
    else:
        for spec in specs:
            yield spec


@contextmanager
def _gc_paused() -> Iterator[None]:
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


class _LevelSends:
    """A level while it runs: its records, the requests in flight, the counts progress shows and, with
    a concurrency cap, the slots (each holds the moment it was freed)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        target: Target,
        level: Level,
        specs: Sequence[RequestSpec] | SpecStream,
        offsets: np.ndarray | None,
        progress: ProgressSink | None,
        position: tuple[int, int],
    ) -> None:
        self.session = session
        self.target = target
        self.level = level
        self.specs = specs
        self.offsets = offsets
        self.progress = progress
        self.position = position
        self.records: list[RequestRecord] = []
        self.in_flight: set[asyncio.Task[None]] = set()
        self.counts = _Counts()
        self.t0 = perf_counter()
        self.planned = len(specs) if isinstance(specs, Sequence) else None
        # closed loop bounded by time: nothing is sent after the deadline (open loop plans its arrivals in it)
        self.deadline = (
            self.t0 + level.duration_s if level.duration_s is not None and offsets is None else None
        )
        self.slots: asyncio.Queue[float] | None = None
        if level.concurrency is not None:
            self.slots = asyncio.Queue()
            for _ in range(level.concurrency):
                self.slots.put_nowait(self.t0)

    async def run(self, stop: asyncio.Event | None) -> bool:
        """Dispatch until every request has finished or ``stop`` is set; True if stopped first."""
        main = asyncio.create_task(self.dispatch())
        helpers: list[asyncio.Task[Any]] = []
        if self.progress is not None:
            helpers.append(asyncio.create_task(self._tick()))
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
                for task in list(self.in_flight):
                    task.cancel()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(main, *self.in_flight, *helpers, return_exceptions=True)
        if not interrupted:
            main.result()  # a bug in the dispatcher surfaces here rather than as a silent short level
        return interrupted

    async def dispatch(self) -> None:
        base_headers = {"Content-Type": "application/json", **self.target.headers}
        i = -1
        async for spec in _each(self.specs):
            i += 1
            if self.planned is None and self.level.num_requests is not None and i >= self.level.num_requests:
                break
            if self.deadline is not None and perf_counter() >= self.deadline:
                break
            due, ready = await self._due(i)
            if self.deadline is not None and due >= self.deadline:
                break  # the slot freed after the level's time: the level is over
            body = request_body(self.target, spec)
            record = RequestRecord(index=i, scheduled=due, ready=ready)
            self.records.append(record)
            task = asyncio.create_task(
                self._send(body, {**base_headers, "X-Request-Id": f"load-{i}"}, record)
            )
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
            self.counts.sent += 1
            await asyncio.sleep(0)  # let it send now; reads due meanwhile are timestamped first
        while self.in_flight:
            await asyncio.wait(set(self.in_flight))

    async def _due(self, i: int) -> tuple[float, float]:
        """Request i's (due, ready): waits for its arrival time (open loop) and a free slot (with a cap)."""
        due = self.t0
        if self.offsets is not None:
            due = self.t0 + float(self.offsets[i])
            delay = due - perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        ready = due
        if self.slots is not None:
            freed = await self.slots.get()
            if self.offsets is None:  # closed loop: due when a slot frees; open loop: its arrival time stays
                due = freed
            ready = max(due, freed)  # a slot held by the server is the server's time, not the client's
        return due, ready

    async def _send(self, body: bytes, headers: dict[str, str], record: RequestRecord) -> None:
        try:
            await send_request(self.session, self.target, body, headers, record)
        finally:
            if record.ok:
                self.counts.completed += 1
            elif record.finished is not None:
                self.counts.failed += 1
            if self.slots is not None:
                self.slots.put_nowait(perf_counter())

    def fail_cut_off(self) -> None:
        """After a stop: the requests sent and not finished fail as ``interrupted``."""
        now = perf_counter()
        for record in self.records:
            if record.sent is not None and record.finished is None:
                record.fail("interrupted", "the run was stopped while this request was in flight", now)

    def report(self) -> None:
        if self.progress is not None:
            self.progress(
                Progress(
                    level=self.position[0],
                    levels=self.position[1],
                    description=self.level.describe(),
                    planned=self.planned if self.planned is not None else self.level.num_requests,
                    sent=self.counts.sent,
                    completed=self.counts.completed,
                    failed=self.counts.failed,
                    elapsed_s=perf_counter() - self.t0,
                    duration_s=self.level.duration_s,
                )
            )

    async def _tick(self) -> None:
        while True:
            self.report()
            await asyncio.sleep(PROGRESS_INTERVAL_S)


def utc_timestamp() -> str:
    """Now in UTC, ISO 8601 to the millisecond with a ``Z``: the schema's ``started_at``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
