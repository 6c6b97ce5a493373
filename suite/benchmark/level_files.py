"""The CSV files beside each benchmark result (always written; docs/benchmark-config.md, "Files"):

- `<result>.levels.csv`: one row per level: what was asked (workload, concurrency, rate, arrivals, bounds),
  the counts, throughput, goodput under the run's SLOs and the latency percentiles; rewritten after each level.
- `<result>.requests.csv`: one row per request sent: its level and repeat, when it was due and sent (seconds
  from the level's first send), TTFT, TPOT, E2EL, tokens, status, error, and whether it met every SLO;
  appended after each level (a resumed run appends the levels it runs to those kept).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from load.records import RequestRecord
from reports.schema import Distribution, LevelResult, Result

LEVEL_COLUMNS = [
    "level",
    "workload",
    "concurrency",
    "request_rate",
    "arrival",
    "num_requests",
    "duration_s",
    "sent",
    "completed",
    "failed",
    "measured_s",
    "requests_per_s",
    "output_tokens_per_s",
    "goodput_requests_per_s",
    "slo",
    "ttft_ms_p50",
    "ttft_ms_p99",
    "tpot_ms_p50",
    "tpot_ms_p99",
    "itl_ms_p50",
    "e2el_ms_p50",
    "e2el_ms_p99",
    "schedule_lag_ms_p99",
    "client",
]
REQUEST_COLUMNS = [
    "level",
    "repeat",
    "index",
    "due_s",
    "sent_s",
    "ttft_ms",
    "tpot_ms",
    "e2el_ms",
    "prompt_tokens",
    "output_tokens",
    "status",
    "error",
    "meets_slo",
]


def levels_csv(result_path: Path) -> Path:
    return result_path.with_suffix(".levels.csv")


def requests_csv(result_path: Path) -> Path:
    return result_path.with_suffix(".requests.csv")


def _cell(value: object) -> object:
    if value is None:
        return ""  # missing data: an empty cell, never 0
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.6g}"
    return value


def _arrival(level: LevelResult) -> str:
    if level.load.request_rate is None:
        return "closed"
    b = level.load.burstiness
    return "constant" if b is not None and math.isinf(b) else "poisson" if b == 1 else f"gamma({b:g})"


def _p(d: Distribution, key: str) -> float | None:
    return getattr(d, key)


def write_levels(result: Result, result_path: Path) -> Path:
    path = levels_csv(result_path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(LEVEL_COLUMNS)
        for n, level in enumerate(result.results):
            m, load = level.metrics, level.load
            slo = ";".join(f"{k}={v:g}" for k, v in sorted(load.slo.items()))
            row = [
                n,
                load.workload,
                load.concurrency,
                load.request_rate,
                _arrival(level),
                load.num_requests,
                load.duration_s,
                m.requests.sent,
                m.requests.completed,
                m.requests.failed,
                m.duration_s,
                m.throughput.requests_per_s,
                m.throughput.output_tokens_per_s,
                m.goodput_requests_per_s,
                slo,
                _p(m.ttft_ms, "p50"),
                _p(m.ttft_ms, "p99"),
                _p(m.tpot_ms, "p50"),
                _p(m.tpot_ms, "p99"),
                _p(m.itl_ms, "p50"),
                _p(m.e2el_ms, "p50"),
                _p(m.e2el_ms, "p99"),
                _p(m.schedule_lag_ms, "p99"),
                m.client.verdict if m.client is not None else None,
            ]
            writer.writerow([_cell(v) for v in row])
    tmp.replace(path)
    return path


def request_rows(
    level: int, repeat: int, records: Sequence[RequestRecord], slo: Mapping[str, float]
) -> list[list[object]]:
    sent = [r for r in records if r.sent is not None]
    if not sent:
        return []
    t0 = min(r.sent for r in sent if r.sent is not None)
    rows = []
    for r in sent:
        assert r.sent is not None
        ttft = (r.chunk_times[0] - r.sent) * 1e3 if r.ok and r.chunk_times else None
        e2el = (r.chunk_times[-1] - r.sent) * 1e3 if r.ok and r.chunk_times else None
        n = r.output_tokens or 0
        tpot = (r.chunk_times[-1] - r.chunk_times[0]) * 1e3 / (n - 1) if r.ok and n > 1 else None
        meets = None
        if r.ok and ttft is not None and e2el is not None and slo:
            # as load/metrics.py's goodput: inclusive, TPOT 0 for a one-token output
            meets = (
                ttft <= slo.get("ttft_ms", math.inf)
                and (tpot or 0.0) <= slo.get("tpot_ms", math.inf)
                and e2el <= slo.get("e2el_ms", math.inf)
            )
        elif not r.ok and slo:
            meets = False
        rows.append(
            [
                level,
                repeat,
                r.index,
                r.scheduled - t0,
                r.sent - t0,
                ttft,
                tpot,
                e2el,
                r.prompt_tokens,
                r.output_tokens,
                r.status,
                r.error,
                meets,
            ]
        )
    return rows


def append_requests(result_path: Path, rows: Sequence[Sequence[object]]) -> Path:
    path = requests_csv(result_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file()
    with path.open("a", newline="") as out:
        writer = csv.writer(out)
        if new:
            writer.writerow(REQUEST_COLUMNS)
        writer.writerows([[_cell(v) for v in row] for row in rows])
    return path


def drop_requests_after(result_path: Path, levels_kept: int) -> None:
    """Resume: the request rows of levels past those kept (a level cut off mid-way) are removed."""
    path = requests_csv(result_path)
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [row for row in rows[1:] if row and int(row[0]) < levels_kept]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as out:
        csv.writer(out).writerows(kept)
    tmp.replace(path)
