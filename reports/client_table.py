"""The client check of a run's levels as a table: did the load generator keep up (load/client_check.py)?"""

from __future__ import annotations

from reports.levels import level_labels
from reports.schema import ClientCheck, Result
from reports.tables import Table
from reports.text import MISSING, num, pct


def _achieved(configured: float | None, achieved: float | None) -> str:
    if configured is None:
        return MISSING
    return f"{num(achieved)} / {num(configured)}"


def _cause(c: ClientCheck) -> str:
    """The worst ticks' lateness as 'CPU wait / running / blocked' percentages."""
    cause = c.loop_lag_cause
    if cause is None:
        return MISSING
    return f"{cause.cpu_wait:.0%} / {cause.running:.0%} / {cause.blocked:.0%}"


def _row(label: str, c: ClientCheck) -> list[str]:
    return [
        label,
        c.verdict.upper() if c.invalid else c.verdict,
        _achieved(c.configured_rate, c.achieved_rate),
        _achieved(
            None if c.configured_concurrency is None else float(c.configured_concurrency),
            c.achieved_concurrency,
        ),
        MISSING if c.peak_in_flight is None else str(c.peak_in_flight),
        num(c.dispatch_lag_ms.p50),
        num(c.dispatch_lag_ms.p99),
        num(c.loop_lag_ms.p99),
        _cause(c),
        pct(c.cpu_fraction),
        MISSING if c.cores is None else str(c.cores),
    ]


def client_table(result: Result) -> Table | None:
    """One row per level that has a client check; None when no level has one (older files, Locust)."""
    labels = level_labels([lv.load for lv in result.results])
    rows, notes = [], []
    for label, level in zip(labels, result.results, strict=True):
        check = level.metrics.client
        if check is None:
            continue
        rows.append(_row(label, check))
        if check.invalid:
            notes.append(f"{label} INVALID: " + "; ".join(check.reasons))
        notes += [f"{label} warning: {warning}" for warning in check.warnings]
    if not rows:
        return None
    notes += [
        "rate: requests/s sent over the span of sends / asked; concurrency: closed loop, the limit x the share "
        "of slot time a request was in flight / the limit; peak: most requests in flight at once",
        "dispatch lag = sent - ready (ready: due, or when a concurrency cap freed a slot): the client's own "
        "delay; loop lag = how late a 10 ms wake-up of the client's event loop fired, whatever the cause (over "
        "20 ms at p99 the level is invalid); its cause over the worst ticks: waiting for a CPU (run-queue delay "
        "from /proc/thread-self/schedstat) / on a CPU (the client's own work) / blocked (a blocking call on the "
        "loop); CPU = process CPU time / wall time, of the one core an event loop can use",
        "INVALID: the client, not the server, was the bottleneck (thresholds: load/README.md, 'Client "
        "saturation'); compare and gate refuse such a level unless --allow-invalid",
    ]
    return Table(
        "Client check (did the load generator keep up?)",
        [
            "load",
            "verdict",
            "rate sent / asked",
            "concurrency kept / asked",
            "peak in flight",
            "dispatch lag p50 ms",
            "dispatch lag p99 ms",
            "loop lag p99 ms",
            "loop lag cause: CPU wait / running / blocked",
            "client CPU",
            "cores",
        ],
        rows,
        [False, False, True, True, True, True, True, True, True, True, True],
        notes,
    )
