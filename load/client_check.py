"""Was the client the bottleneck? The generator's own health during a level, and its verdict.

Measured beside every level: the requests actually sent against the rate or concurrency asked, the
client's own dispatch lag (sent - ready: ready is the due time, or the moment a concurrency cap freed a
slot, so waiting for the server is left out), the event loop's lag (how late a periodic wake-up fires:
every send and every chunk timestamp is taken by a callback on that loop, so a late loop means late
timestamps), and the process's CPU time over the wall time (one event loop can use one core).

A level is ``invalid`` when any threshold below is crossed, whatever the cause: a loop late by L makes every
timestamp taken then late by up to L, whether the client's own work, a blocking call or other processes on
its cores held it. The cause (run-queue delay from the loop thread's scheduler statistics for "waiting for
a CPU") is reported beside the verdict, not used to excuse it. The thresholds and why they are where they are:
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
from reports.schema import ClientCheck, LoopLagCause

LOOP_TICK_S = 0.01  # the monitor's period: 100 wake-ups a second cost well under 1% of a core
MIN_RATE_RATIO = 0.90  # open loop: requests sent per second over those that became ready per second
MIN_BUSY_FRACTION = 0.90  # closed loop: share of each slot's time a request was in flight
MAX_DISPATCH_LAG_P99_MS = 100.0  # open loop: the client's own delay between ready and sent
MAX_LOOP_LAG_P99_MS = 20.0  # lateness of the monitor's wake-up
MAX_CPU_FRACTION = 0.95  # process CPU time / wall time, of the one core an event loop can use


SCHEDSTAT = "/proc/thread-self/schedstat"  # the calling thread's: ns on a CPU, ns runnable waiting, slices


def read_schedstat(path: str = SCHEDSTAT) -> tuple[float, float] | None:
    """(seconds on a CPU, seconds runnable but waiting for one) of the calling thread, from the kernel's
    scheduler statistics (Documentation/scheduler/sched-stats.rst); None where the kernel does not say."""
    try:
        with open(path, "rb") as f:
            on_cpu, waiting, _ = f.read().split()
        return int(on_cpu) / 1e9, int(waiting) / 1e9
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Tick:
    """One wake-up of the monitor: how late it fired and where that lateness went."""

    lag_s: float
    cpu_wait_s: float | None  # runnable, waiting for a CPU (None: no schedstat)
    running_s: float  # on a CPU: the loop held by the client's own work
    blocked_s: float | None  # neither: the loop's thread blocked off a CPU (None: no schedstat)


@dataclass
class LoopMonitor:
    """A task that wakes every ``tick_s`` and records how late each wake-up fired, plus the process's CPU
    time and the wall time between ``start`` and ``stop``.

    Each lateness is split by cause from the loop thread's scheduler statistics over its tick: run-queue
    delay (runnable, waiting for a CPU: other work on the client's cores), time on a CPU (the client's own
    work), and the rest (off a CPU and not runnable: a blocking call on the loop, such as time.sleep, a DNS
    lookup or file I/O). Each part is capped by what remains of the lateness, in that order. The causes are
    reported; the verdict is on the whole lateness, since every timestamp taken then is late by it."""

    tick_s: float = LOOP_TICK_S
    ticks: list[Tick] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _cpu0: float = 0.0
    _wall0: float = 0.0
    cpu_s: float | None = None
    wall_s: float | None = None
    _due: float | None = None  # when the pending wake-up should fire
    _armed: tuple[float, float, tuple[float, float] | None] = (0.0, 0.0, None)  # wall, thread CPU, schedstat

    @property
    def lags_s(self) -> list[float]:
        return [t.lag_s for t in self.ticks]

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
            self._armed = (perf_counter(), time.thread_time(), read_schedstat())
            self._due = due = self._armed[0] + self.tick_s
            await asyncio.sleep(self.tick_s)
            self._note(due)

    def _note(self, due: float) -> None:
        wall, cpu, sched = perf_counter(), time.thread_time(), read_schedstat()
        lag = max(0.0, wall - due)
        armed_sched = self._armed[2]
        if sched is not None and armed_sched is not None:
            waited = min(lag, max(0.0, sched[1] - armed_sched[1]))
            running = min(lag - waited, max(0.0, sched[0] - armed_sched[0]))
            self.ticks.append(Tick(lag, waited, running, lag - waited - running))
        else:
            self.ticks.append(Tick(lag, None, min(lag, max(0.0, cpu - self._armed[1])), None))
        self._due = None


def loop_lag_cause(ticks: Sequence[Tick]) -> LoopLagCause | None:
    """The shares of cause over the ticks at or beyond the p99 lateness; None without schedstat or lateness."""
    if not ticks or any(t.cpu_wait_s is None or t.blocked_s is None for t in ticks):
        return None
    p99 = float(np.percentile([t.lag_s for t in ticks], 99))
    worst = [t for t in ticks if t.lag_s >= p99 and t.lag_s > 0]
    total = sum(t.lag_s for t in worst)
    if total <= 0:
        return None
    return LoopLagCause(
        cpu_wait=sum(t.cpu_wait_s or 0.0 for t in worst) / total,
        running=sum(t.running_s for t in worst) / total,
        blocked=sum(t.blocked_s or 0.0 for t in worst) / total,
        ticks=len(worst),
    )


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
        loop_lag_cpu_wait_ms=distribution(
            np.array([t.cpu_wait_s for t in monitor.ticks if t.cpu_wait_s is not None]) * 1e3
        ),
        loop_lag_cause=loop_lag_cause(monitor.ticks),
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
    # open and closed loop alike: ready is the due time or the moment a slot freed, so this is the client's
    if lag_p99 is not None and lag_p99 > MAX_DISPATCH_LAG_P99_MS:
        late = "after their slot freed" if check.configured_rate is None else "after their due time"
        reasons.append(
            f"dispatch lag p99 {lag_p99:,.1f} ms (over {MAX_DISPATCH_LAG_P99_MS:g} ms): requests left late "
            f"{late}, waiting for the client"
        )
    loop_p99 = check.loop_lag_ms.p99
    if loop_p99 is not None and loop_p99 > MAX_LOOP_LAG_P99_MS:
        reasons.append(
            f"event-loop lag p99 {loop_p99:,.1f} ms (over {MAX_LOOP_LAG_P99_MS:g} ms): every send and chunk "
            f"time taken then was late by up to that; cause: {cause_text(check)}"
        )
    if check.cpu_fraction is not None and check.cpu_fraction > MAX_CPU_FRACTION:
        reasons.append(
            f"client CPU {check.cpu_fraction:.0%} of one core (over {MAX_CPU_FRACTION:.0%}): "
            "the one event loop had no time to spare"
        )
    return reasons


def cause_text(check: ClientCheck) -> str:
    """Where the worst lateness went, largest share first, or why that is not known."""
    cause = check.loop_lag_cause
    if cause is None:
        return "not known (no scheduler statistics for the loop's thread)"
    parts = [
        (
            cause.cpu_wait,
            f"waiting for a CPU (run-queue delay p99 {check.loop_lag_cpu_wait_ms.p99 or 0:,.1f} ms: "
            "other work on the client's cores)",
        ),
        (cause.running, "on a CPU (the client's own work held the loop)"),
        (cause.blocked, "blocked off a CPU (a blocking call on the loop: a sleep, DNS, file I/O)"),
    ]
    parts.sort(key=lambda p: -p[0])
    return ", ".join(f"{share:.0%} {what}" for share, what in parts if share >= 0.005)


def warnings(check: ClientCheck) -> list[str]:
    """What the check could not see: without the loop thread's scheduler statistics (not Linux) the cause
    of a late loop is unknown (the verdict does not need it)."""
    if check.loop_lag_ms.p99 is None or check.loop_lag_cause is not None or not check.loop_lag_ms.p99:
        return []
    return [f"no {SCHEDSTAT}: the cause of the event loop's lateness is not known"]
