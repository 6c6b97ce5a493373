"""The Locust processes' raw JSON lines -> one list of RequestRecords -> the suite's result schema.

Metrics come from load/metrics.py ``level_metrics``, the same code the async generator uses, over the
raw per-request times (not Locust's statistics, which round to about two significant digits).

Clocks: each record's times are its process's ``perf_counter`` (CLOCK_MONOTONIC), comparable between
processes on one machine but not across machines. Each process wrote an anchor (its perf_counter and
wall clock read together). Processes on the same host share one offset (the host's earliest anchor), so
a run on one machine keeps its exact monotonic times; hosts are aligned by their wall clocks (NTP-grade,
which only affects the measured window, never a per-request latency). Times are then seconds since the
earliest anchor.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from load.metrics import level_metrics, samples
from load.records import RequestRecord
from reports.schema import LevelResult, LoadSpec, Result, RunMetadata

SLO_SAMPLES = {"ttft_ms": "ttft_ms", "tpot_ms": "tpot_ms", "e2el_ms": "e2el_ms"}


class RawRecordsError(ValueError):
    """Raw record files that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Anchor:
    worker: str
    role: str
    index: int | None
    host: str
    perf: float
    wall: float


@dataclass
class RawRun:
    """All requests of a run on one time line, and who sent them."""

    records: list[RequestRecord]
    anchors: dict[str, Anchor]
    sent_by_worker: dict[str, int] = field(default_factory=dict)

    @property
    def workers(self) -> list[str]:
        """Workers that sent at least one request."""
        return sorted(w for w, n in self.sent_by_worker.items() if n > 0)


def read_raw_files(paths: Iterable[Path]) -> RawRun:
    lines: list[tuple[str, str]] = []
    for path in sorted(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RawRecordsError(f"{path}: cannot read ({exc.strerror})") from None
        lines += [(f"{path}:{n}", line) for n, line in enumerate(text.splitlines(), start=1)]
    return parse_raw_lines(lines)


def parse_raw_lines(lines: Iterable[tuple[str, str]]) -> RawRun:
    """(where, line) pairs -> RawRun. A last line cut short by a crash is skipped, any other bad line is
    an error."""
    anchors: dict[str, Anchor] = {}
    raw: list[dict[str, Any]] = []
    items = [(where, line) for where, line in lines if line.strip()]
    for n, (where, line) in enumerate(items):
        try:
            item = json.loads(line)
        except ValueError:
            if n == len(items) - 1:
                continue
            raise RawRecordsError(f"{where}: not a JSON line: {line[:80]!r}") from None
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "worker":
            anchor = Anchor(
                item["worker"],
                item.get("role", "?"),
                item.get("index"),
                item["host"],
                float(item["perf"]),
                float(item["wall"]),
            )
            anchors.setdefault(anchor.worker, anchor)
        elif kind == "request":
            raw.append(item)
        else:
            raise RawRecordsError(f"{where}: neither a worker nor a request line: {line[:80]!r}")
    missing = sorted({r["worker"] for r in raw} - set(anchors))
    if missing:
        raise RawRecordsError(f"requests from {', '.join(missing)} but no clock anchor line for them")
    offsets = _offsets(anchors)
    records: list[RequestRecord] = []
    for item in sorted(
        raw, key=lambda r: (r["sent"] + offsets[r["worker"]]) if r["sent"] is not None else 0.0
    ):
        shift = offsets[item["worker"]]

        def at(t: float | None, shift: float = shift) -> float | None:
            return None if t is None else t + shift

        records.append(
            RequestRecord(
                index=len(records),
                scheduled=float(item["scheduled"]) + shift,
                ready=at(item.get("ready")),
                sent=at(item["sent"]),
                chunk_times=[t + shift for t in item["chunk_times"]],
                finished=at(item["finished"]),
                prompt_tokens=item["prompt_tokens"],
                output_tokens=item["output_tokens"],
                status=item["status"],
                error=item["error"],
                error_detail=item["error_detail"],
            )
        )
    sent = Counter(r["worker"] for r in raw if r["sent"] is not None)
    return RawRun(records, anchors, {w: sent.get(w, 0) for w in anchors})


def _offsets(anchors: Mapping[str, Anchor]) -> dict[str, float]:
    """Per worker: what to add to its perf_counter times to get seconds since the earliest anchor."""
    if not anchors:
        return {}
    host_anchor: dict[str, Anchor] = {}
    for anchor in anchors.values():
        first = host_anchor.get(anchor.host)
        if first is None or anchor.wall < first.wall:
            host_anchor[anchor.host] = anchor
    base = min(a.wall for a in host_anchor.values())
    return {w: host_anchor[a.host].wall - base - host_anchor[a.host].perf for w, a in anchors.items()}


def slo_breaches(records: list[RequestRecord], slo: Mapping[str, float], percentile: float) -> list[str]:
    """Each SLO whose ``percentile`` (over completed requests, linear interpolation) is above its
    threshold; with no completed request every SLO given counts as breached."""
    s = samples(records)
    breaches = []
    for key, threshold in slo.items():
        values: np.ndarray = getattr(s, SLO_SAMPLES[key])
        if values.size == 0:
            breaches.append(f"{key} <= {threshold:g}: no sample to check (no completed request)")
            continue
        value = float(np.percentile(values, percentile))
        if value > threshold:
            breaches.append(f"{key} p{percentile:g} {value:.1f} > {threshold:g}")
    return breaches


def locust_result(run: RawRun, load: LoadSpec, metadata: RunMetadata, started_at: str | None) -> Result:
    return Result(
        run=metadata,
        results=[
            LevelResult(
                load=load,
                metrics=level_metrics(run.records, load.slo or None),
                started_at=started_at,
            )
        ],
    )
