"""Was the client the bottleneck? The generator's own health during a level, and its verdict.

Measured beside every level: the requests actually sent against the rate or concurrency asked, the
client's own dispatch lag (sent - ready: ready is the due time, or the moment a concurrency cap freed a
slot, so waiting for the server is left out), the event loop's lag (how late a periodic wake-up fires:
every send and every chunk timestamp is taken by a callback on that loop, so a late loop means late
timestamps), and the process's CPU time over the wall time (one event loop can use one core).

A level is ``invalid`` when any threshold below is crossed. The thresholds and why they are where they are:
load/README.md, "Client saturation". The verdict never changes a measured value; it says whether to trust it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from time import perf_counter

import numpy as np

from load.config import Level
from load.metrics import distribution
from load.records import RequestRecord
from reports.schema import ClientCheck

LOOP_TICK_S = 0.01  # the monitor's period: 100 wake-ups a second cost well under 1% of a core
MIN_RATE_RATIO = 0.90  # open loop: requests sent per second over those that became ready per second
MIN_BUSY_FRACTION = 0.90  # closed loop: share of each slot's time a request was in flight
MAX_DISPATCH_LAG_P99_MS = 100.0  # open loop: the client's own delay between ready and sent
MAX_LOOP_LAG_P99_MS = 20.0  # lateness of the monitor's wake-up
MAX_CPU_FRACTION = 0.95  # process CPU time / wall time, of the one core an event loop can use


@dataclass
class LoopMonitor:
    """A task that wakes every ``tick_s`` and records how late each wake-up fired, plus the process's CPU
    time and the wall time between ``start`` and ``stop``.

    Each lateness is also split by the share of its tick the process spent on a CPU: a loop held by the
    client's own work burnt CPU all along (``busy_lags_s`` = the whole lateness); a process that was not
    running because other work had its core burnt none (``busy_lags_s`` near 0)."""

    tick_s: float = LOOP_TICK_S
    lags_s: list[float] = field(default_factory=list)
    busy_lags_s: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _cpu0: float = 0.0
    _wall0: float = 0.0
    cpu_s: float | None = None
    wall_s: float | None = None
    _due: float | None = None  # when the pending wake-up should fire
    _armed: tuple[float, float] = (0.0, 0.0)  # (wall, CPU) when it was armed

    def start(self) -> None:
        self._cpu0, self._wall0 = time.process_time(), perf_counter()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        now = perf_counter()
        if self._due is not None and now > self._due:  # overdue at the end: the loop was held till now
            self._note(self._due)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.cpu_s = time.process_time() - self._cpu0
        self.wall_s = perf_counter() - self._wall0

    async def _run(self) -> None:
        while True:
            self._armed = (perf_counter(), time.process_time())
            self._due = due = self._armed[0] + self.tick_s
            await asyncio.sleep(self.tick_s)
            self._note(due)

    def _note(self, due: float) -> None:
        wall, cpu = perf_counter(), time.process_time()
        lag = max(0.0, wall - due)
        elapsed = wall - self._armed[0]
        share = min(1.0, (cpu - self._armed[1]) / elapsed) if elapsed > 0 else 0.0
        self.lags_s.append(lag)
        self.busy_lags_s.append(lag * max(0.0, share))
        self._due = None


def allowed_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count()


def _span_rate(times: Sequence[float]) -> float | None:
    """Events per second over the span from the first to the last: (n - 1) / (last - first)."""
    if len(times) < 2:
        return None
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else None


def _peak_in_flight(records: Sequence[RequestRecord]) -> int | None:
    events = [(r.sent, 1) for r in records if r.sent is not None]
    if not events:
        return None
    events += [(r.finished, -1) for r in records if r.sent is not None and r.finished is not None]
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def _busy_fraction(records: Sequence[RequestRecord]) -> float | None:
    """Closed loop: time requests were in flight over the time their slots were held (from ready)."""
    busy = held = 0.0
    for r in records:
        if r.sent is None or r.finished is None or r.ready is None:
            continue
        busy += r.finished - r.sent
        held += r.finished - r.ready
    return busy / held if held > 0 else None


def client_check(level: Level, records: Sequence[RequestRecord], monitor: LoopMonitor) -> ClientCheck:
    """The verdict for one level from its records and the loop monitor that ran beside it."""
    sent = [r for r in records if r.sent is not None]
    ready = [r.ready for r in sent if r.ready is not None]
    lag = np.array([(r.sent - r.ready) * 1e3 for r in sent if r.sent is not None and r.ready is not None])
    achieved = _span_rate([r.sent for r in sent if r.sent is not None])
    offered = _span_rate(ready)
    busy = None if level.open_loop else _busy_fraction(sent)
    cpu_fraction = monitor.cpu_s / monitor.wall_s if monitor.cpu_s is not None and monitor.wall_s else None
    check = ClientCheck(
        verdict="valid",
        configured_rate=_configured_rate(level),
        achieved_rate=achieved,
        configured_concurrency=level.concurrency,
        achieved_concurrency=None if busy is None or level.concurrency is None else busy * level.concurrency,
        peak_in_flight=_peak_in_flight(sent),
        dispatch_lag_ms=distribution(lag),
        loop_lag_ms=distribution(np.array(monitor.lags_s) * 1e3),
        loop_lag_busy_ms=distribution(np.array(monitor.busy_lags_s) * 1e3),
        cpu_s=monitor.cpu_s,
        wall_s=monitor.wall_s,
        cpu_fraction=cpu_fraction,
        cores=allowed_cores(),
    )
    reasons = saturation_reasons(check, offered_rate=offered, busy_fraction=busy)
    return check.model_copy(
        update={"verdict": "invalid" if reasons else "valid", "reasons": reasons, "warnings": warnings(check)}
    )


def _configured_rate(level: Level) -> float | None:
    if level.request_rate is None:
        return None
    if level.request_rate_end is None:
        return level.request_rate
    return (level.request_rate + level.request_rate_end) / 2  # a linear ramp's mean rate


def saturation_reasons(
    check: ClientCheck, *, offered_rate: float | None, busy_fraction: float | None
) -> list[str]:
    """One sentence per threshold crossed (load/README.md, "Client saturation"); empty = valid."""
    reasons = []
    achieved = check.achieved_rate
    if offered_rate is not None and achieved is not None and achieved < MIN_RATE_RATIO * offered_rate:
        reasons.append(
            f"sent {achieved:,.1f} requests/s of the {offered_rate:,.1f}/s that were due "
            f"({achieved / offered_rate:.0%}, below {MIN_RATE_RATIO:.0%})"
        )
    if busy_fraction is not None and busy_fraction < MIN_BUSY_FRACTION:
        reasons.append(
            f"kept {check.achieved_concurrency or 0:.1f} of {check.configured_concurrency} requests in flight "
            f"({busy_fraction:.0%} of slot time, below {MIN_BUSY_FRACTION:.0%}): slots waited for the client"
        )
    lag_p99 = check.dispatch_lag_ms.p99
    # closed loop: the busy fraction above already weighs each delay against its request's duration
    if check.configured_rate is not None and lag_p99 is not None and lag_p99 > MAX_DISPATCH_LAG_P99_MS:
        reasons.append(
            f"dispatch lag p99 {lag_p99:,.1f} ms (over {MAX_DISPATCH_LAG_P99_MS:g} ms): requests left late"
        )
    busy_p99 = check.loop_lag_busy_ms.p99
    if busy_p99 is not None and busy_p99 > MAX_LOOP_LAG_P99_MS:
        reasons.append(
            f"event-loop lag p99 {busy_p99:,.1f} ms of the client's own work (over {MAX_LOOP_LAG_P99_MS:g} "
            "ms): timestamps waited behind it"
        )
    if check.cpu_fraction is not None and check.cpu_fraction > MAX_CPU_FRACTION:
        reasons.append(
            f"client CPU {check.cpu_fraction:.0%} of one core (over {MAX_CPU_FRACTION:.0%}): "
            "the one event loop had no time to spare"
        )
    return reasons


def warnings(check: ClientCheck) -> list[str]:
    """What makes the timings less sharp without the client being the bottleneck: a loop that woke late
    because the process was not running (other work on its cores)."""
    total, busy = check.loop_lag_ms.p99, check.loop_lag_busy_ms.p99
    if total is None or total <= MAX_LOOP_LAG_P99_MS or (busy is not None and busy > MAX_LOOP_LAG_P99_MS):
        return []
    return [
        f"event-loop lag p99 {total:,.1f} ms, mostly waiting for a CPU (other work on the client's cores, "
        f"{busy or 0:,.1f} ms of it the client's own): timestamps may be late by that much"
    ]
