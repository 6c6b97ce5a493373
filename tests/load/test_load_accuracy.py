"""At 1,000 concurrent streams the measured TTFT, TPOT, ITL and E2EL percentiles match the truth:
p50 within 1 ms and p99 within 3 ms.

The truth comes from the reference server, in its own process (so the client's event loop is not
shared): for every request, the kernel's receive time of the request (SO_TIMESTAMPNS) and the time
each chunk was written, all on CLOCK_MONOTONIC like the client's perf_counter. The server emits the
first token 800 ms after a request arrives (after the client has finished sending all 1,000; that
burst is the client's own, and shows as schedule lag) and then one token every 100 ms.

The machine is shared (two cores; builds and other suites run beside us), and a descheduled process
delays every stream it serves. So each process gets its own core where there are two, at nice -10
where allowed, and a failing measurement is repeated: a client that is really off fails every time.
An attempt cannot judge millisecond accuracy at 1,000 streams, is reported but does not count, when
the reference server itself missed its schedule (p99 of its lateness over SERVER_LATE_MS), when a
sentinel sleeping 1 ms at a time on the client's core woke over CLIENT_CORE_STALL_MS late (the core
was taken from everything on it), or when the machine was so slow that the first streams ended
before the last were sent. If no attempt could judge, the test is skipped and says why.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np
import pytest
from load_testkit import MODEL, get_json, reference_server, stall_sentinel

from load.config import Level, RandomWorkload, SweepConfig
from load.runner import run_sweep_sync

STREAMS = 1000
TTFT_MS, ITL_MS, TOKENS = 800, 100, 10
P50_TOLERANCE_MS, P99_TOLERANCE_MS = 1.0, 3.0
ATTEMPTS = 4
SERVER_LATE_MS = 5.0  # calm: the server's own lateness p99 is 1-3 ms (millisecond timers, rounded up)
CLIENT_CORE_STALL_MS = 5.0  # calm: 1-3 ms. First and last tokens each arrive within ~250 ms, so one
# stall over 5 ms there delays more than 1% of those samples by more than the 3 ms tolerance.


@dataclass(frozen=True)
class Comparison:
    metric: str
    measured_p50: float
    truth_p50: float
    measured_p99: float
    truth_p99: float

    @property
    def ok(self) -> bool:
        return (
            abs(self.measured_p50 - self.truth_p50) <= P50_TOLERANCE_MS
            and abs(self.measured_p99 - self.truth_p99) <= P99_TOLERANCE_MS
        )

    def __str__(self) -> str:
        return (
            f"{self.metric}: p50 {self.measured_p50:.3f} vs {self.truth_p50:.3f} "
            f"({self.measured_p50 - self.truth_p50:+.3f}), p99 {self.measured_p99:.3f} vs {self.truth_p99:.3f} "
            f"({self.measured_p99 - self.truth_p99:+.3f}) ms{'' if self.ok else '  <-- out of tolerance'}"
        )


def server_lateness_p99_ms(truth: dict[str, dict]) -> float:
    """How late the server wrote its chunks against its own nominal schedule, p99 in ms."""
    late = [
        (write - request["arrive"]) * 1e3 - (TTFT_MS + k * ITL_MS)
        for request in truth.values()
        for k, write in enumerate(request["writes"])
    ]
    return float(np.percentile(late, 99))


def truth_distributions(truth: dict[str, dict]) -> dict[str, np.ndarray]:
    ttft, tpot, itl, e2el = [], [], [], []
    for request in truth.values():
        writes = np.asarray(request["writes"]) * 1e3
        arrive = request["arrive"] * 1e3
        ttft.append(writes[0] - arrive)
        e2el.append(writes[-1] - arrive)
        tpot.append((writes[-1] - writes[0]) / (sum(request["tokens"]) - 1))
        itl.extend(np.diff(writes))
    return {name: np.asarray(v) for name, v in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2el", e2el))}


def _raise_priority(pid: int) -> None:
    """Nice -10 where allowed (root, CAP_SYS_NICE), so unrelated work on a shared machine does not
    preempt the two processes being measured; elsewhere the test runs at normal priority."""
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, pid, -10)


def measure_once() -> tuple[list[Comparison], str | None, str]:
    """The comparisons, why the attempt cannot judge (None if it can), and a note for the report."""
    two_cores = len(os.sched_getaffinity(0)) >= 2
    own_cpus = os.sched_getaffinity(0)
    with reference_server(
        "--ttft-ms",
        str(TTFT_MS),
        "--itl-ms",
        str(ITL_MS),
        "--truth",
        cpu=max(own_cpus) if two_cores else None,
    ) as (url, server):
        if two_cores:
            os.sched_setaffinity(0, {min(own_cpus)})
        own_nice = os.getpriority(os.PRIO_PROCESS, 0)
        _raise_priority(0)
        _raise_priority(server.pid)
        try:
            config = SweepConfig(
                endpoint=url,
                model=MODEL,
                workload=RandomWorkload(input_len=8, output_len=TOKENS),
                levels=(Level(num_requests=STREAMS, concurrency=STREAMS),),
                scrape_server_metrics=False,
            )
            with stall_sentinel(min(own_cpus) if two_cores else None) as stalls:
                run = run_sweep_sync(config)
        finally:
            os.sched_setaffinity(0, own_cpus)
            os.setpriority(os.PRIO_PROCESS, 0, own_nice)
        truth = get_json(url + "/debug/truth")["requests"]
        stats = get_json(url + "/debug/stats")
    metrics = run.result.results[0].metrics
    assert metrics.requests.completed == STREAMS, metrics.requests
    assert sorted(truth) == sorted(f"load-{r.index}" for r in run.levels[0].records)
    true = truth_distributions(truth)
    comparisons = []
    for name in ("ttft", "tpot", "itl", "e2el"):
        measured = getattr(metrics, f"{name}_ms")
        t50, t99 = np.percentile(true[name], [50, 99])
        comparisons.append(Comparison(name, measured.p50, float(t50), measured.p99, float(t99)))
    lag = metrics.schedule_lag_ms
    late = server_lateness_p99_ms(truth)
    note = (
        f"schedule lag p50 {lag.p50:.1f} ms, max {lag.max:.1f} ms (sending 1,000 requests); "
        f"server lateness p99 {late:.1f} ms; longest stall of the client's core {stalls[0].worst_ms:.1f} ms; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    unjudged = None
    if late > SERVER_LATE_MS:
        unjudged = "the server missed its own schedule: the machine stalled"
    elif stalls[0].worst_ms > CLIENT_CORE_STALL_MS:
        unjudged = "the client's core was taken away for a while: the machine stalled"
    elif stats["peak_running"] < STREAMS:
        unjudged = (
            f"only {stats['peak_running']} streams were ever in flight at once: the machine was too slow"
        )
    return comparisons, unjudged, note


def test_percentiles_at_1000_concurrent_streams_are_within_1ms_p50_and_3ms_p99_of_the_truth() -> None:
    reports = []
    judged = 0
    for attempt in range(1, ATTEMPTS + 1):
        comparisons, unjudged, note = measure_once()
        calm = unjudged is None
        judged += calm
        verdict = "" if calm else f"  ({unjudged}; not counted)"
        reports.append(f"attempt {attempt}: {note}{verdict}\n  " + "\n  ".join(str(c) for c in comparisons))
        if calm and all(c.ok for c in comparisons):
            print("\n".join(reports))
            return
    if not judged:
        pytest.skip(
            "the machine was too busy to judge millisecond accuracy in any attempt:\n" + "\n".join(reports)
        )
    raise AssertionError("measured percentiles are off the truth:\n" + "\n".join(reports))
