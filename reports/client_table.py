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
        num(c.loop_lag_busy_ms.p99),
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
        "delay; loop lag = how late a 10 ms wake-up of the client's event loop fired, 'own' the part of it the client "
        "spent running (the rest it waited for a CPU); CPU = process CPU time / "
        "wall time, of the one core an event loop can use",
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
            "own loop lag p99 ms",
            "client CPU",
            "cores",
        ],
        rows,
        [False, False, True, True, True, True, True, True, True, True, True],
        notes,
    )
