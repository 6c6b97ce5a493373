"""The end-of-run lines on stderr: one per level, an interval after each figure when the level was
repeated, and a loud block for every level where the client was the bottleneck."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from load.input_check import workload_notes
from reports.schema import LevelResult, Result


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _with_interval(level: LevelResult, key: str, value: float | None) -> str:
    interval = level.intervals.get(key)
    if interval is None or value is None:
        return _ms(value)
    return f"{value:.1f} ± {(interval.high - interval.low) / 2:.1f}"


def level_line(n: int, label: str, level: LevelResult) -> str:
    m = level.metrics
    r = m.requests
    repeats = f", {len(level.repeats)} repeats, ± = 95% t-interval" if level.repeats else ""
    ci = lambda key, value: _with_interval(level, key, value)  # noqa: E731
    return (
        f"level {n} ({label}{repeats}): {r.completed} completed, {r.failed} failed"
        + (f" {dict(r.errors_by_reason)}" if r.errors_by_reason else "")
        + f" in {_ms(m.duration_s)} s | TTFT p50 {ci('ttft_p50', m.ttft_ms.p50)} p99 {ci('ttft_p99', m.ttft_ms.p99)} ms"
        f" | TPOT p50 {ci('tpot_p50', m.tpot_ms.p50)} p99 {ci('tpot_p99', m.tpot_ms.p99)} ms"
        f" | ITL p99 {ci('itl_p99', m.itl_ms.p99)} ms | E2EL p50 {ci('e2el_p50', m.e2el_ms.p50)} ms"
        f" | {ci('output_tokens_per_s', m.throughput.output_tokens_per_s)} output tok/s"
        f" | schedule lag p99 {_ms(m.schedule_lag_ms.p99)} ms"
        + _client_text(level)
        + "".join(f" | {note}" for note in workload_notes(level))
    )


def _client_text(level: LevelResult) -> str:
    c = level.metrics.client
    if c is None:
        return ""
    cpu = "-" if c.cpu_fraction is None else f"{c.cpu_fraction:.0%}"
    warned = f" (warning: {'; '.join(c.warnings)})" if c.warnings else ""
    return f" | client: {c.verdict}, loop lag p99 {_ms(c.loop_lag_ms.p99)} ms, CPU {cpu} of a core{warned}"


def print_summary(
    result: Result, labels: Sequence[str], quiet: bool = False, stream: TextIO | None = None
) -> None:
    """The per-level lines (unless ``quiet``), then, always, the invalid levels in a block of their own.
    ``labels`` describe the levels (load.config.Level.describe)."""
    out = stream or sys.stderr
    if not quiet:
        for n, (label, level) in enumerate(zip(labels, result.results, strict=False), start=1):
            print(level_line(n, label, level), file=out)
    invalid = [
        (n, label, lv)
        for n, (label, lv) in enumerate(zip(labels, result.results, strict=False), start=1)
        if lv.invalid
    ]
    if not invalid:
        return
    bar = "!" * 78
    print(bar, file=out)
    for n, label, level in invalid:
        assert level.metrics.client is not None
        print(f"!!! INVALID level {n} ({label}): the client was the bottleneck, not the server:", file=out)
        for reason in level.metrics.client.reasons:
            print(f"!!!   - {reason}", file=out)
    print(
        f"!!! {len(invalid)} of {len(result.results)} level(s) invalid: their timings are partly the client's "
        "own queue; `reports compare` and `gate` refuse them (--allow-invalid to use them anyway)",
        file=out,
    )
    print(bar, file=out)
