"""Level metrics from request records, with numpy, as docs/architecture.md defines them.

Per completed request i (times in ms, ``sent`` taken just before the request was handed to aiohttp,
c_1..c_K the arrival times of its token-carrying chunks, N = usage.completion_tokens):

- TTFT_i = c_1 - sent_i
- E2EL_i = c_K - sent_i
- TPOT_i = (c_K - c_1) / (N - 1), only for N > 1
- ITL: every gap c_k - c_{k-1}, pooled over requests (chunk-level, like vLLM bench serve)
- schedule lag_i = sent_i - scheduled_i, over every request sent (completed or failed)

Over the measured window T = (last end of any sent request) - (first send):
requests/s = completed / T; output tokens/s = sum N_i / T; total tokens/s = sum (prompt_i + N_i) / T;
goodput = completed requests meeting every SLO given / T (inclusive <=, TPOT counted as 0 for a
one-token output, as vLLM does). Percentiles are ``np.percentile`` (linear). Failed requests count in
the window and the error counts, never in the latency statistics. No samples -> None, never 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from load.records import RequestRecord
from reports.schema import Distribution, LevelMetrics, RequestCounts, Throughput

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class Samples:
    """The raw per-request samples of one level in milliseconds (what the statistics are taken over)."""

    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    itl_ms: np.ndarray
    e2el_ms: np.ndarray
    schedule_lag_ms: np.ndarray
    output_tokens: np.ndarray  # per completed request
    prompt_tokens: np.ndarray  # per completed request
    window_start: float | None
    window_end: float | None

    @property
    def duration_s(self) -> float | None:
        if self.window_start is None or self.window_end is None:
            return None
        return self.window_end - self.window_start


def samples(records: Sequence[RequestRecord]) -> Samples:
    sent = [r for r in records if r.sent is not None]
    done = [r for r in sent if r.ok]
    ms = 1e3
    ttft = np.array([(r.chunk_times[0] - _sent(r)) * ms for r in done], dtype=np.float64)
    e2el = np.array([(r.chunk_times[-1] - _sent(r)) * ms for r in done], dtype=np.float64)
    tpot = np.array(
        [
            (r.chunk_times[-1] - r.chunk_times[0]) * ms / (r.output_tokens - 1)
            for r in done
            if r.output_tokens is not None and r.output_tokens > 1
        ],
        dtype=np.float64,
    )
    gaps = [np.diff(np.asarray(r.chunk_times)) for r in done if len(r.chunk_times) > 1]
    itl = np.concatenate(gaps) * ms if gaps else np.empty(0)
    lag = np.array([(_sent(r) - r.scheduled) * ms for r in sent], dtype=np.float64)
    ends = [r.finished for r in sent if r.finished is not None]
    return Samples(
        ttft_ms=ttft,
        tpot_ms=tpot,
        itl_ms=itl,
        e2el_ms=e2el,
        schedule_lag_ms=lag,
        output_tokens=np.array([r.output_tokens or 0 for r in done], dtype=np.int64),
        prompt_tokens=np.array([r.prompt_tokens or 0 for r in done], dtype=np.int64),
        window_start=min(_sent(r) for r in sent) if sent else None,
        window_end=max(ends) if ends else None,
    )


def _sent(record: RequestRecord) -> float:
    assert record.sent is not None, "only records of requests sent are measured"
    return record.sent


def distribution(values: np.ndarray) -> Distribution:
    if values.size == 0:
        return Distribution()
    p50, p90, p95, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
    return Distribution(
        mean=float(values.mean()),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        max=float(values.max()),
        count=int(values.size),
    )


def good_requests(s: Samples, records: Sequence[RequestRecord], slo: Mapping[str, float]) -> int:
    """Completed requests meeting every SLO given (inclusive), TPOT 0 for one-token outputs."""
    done = [r for r in records if r.sent is not None and r.ok]
    good = 0
    for r, ttft, e2el in zip(done, s.ttft_ms, s.e2el_ms, strict=True):
        n = r.output_tokens or 0
        tpot = (r.chunk_times[-1] - r.chunk_times[0]) * 1e3 / (n - 1) if n > 1 else 0.0
        if (
            ttft <= slo.get("ttft_ms", np.inf)
            and tpot <= slo.get("tpot_ms", np.inf)
            and e2el <= slo.get("e2el_ms", np.inf)
        ):
            good += 1
    return good


def level_metrics(
    records: Sequence[RequestRecord],
    slo: Mapping[str, float] | None = None,
    server_metrics_delta: Mapping[str, float] | None = None,
) -> LevelMetrics:
    s = samples(records)
    sent = [r for r in records if r.sent is not None]
    completed = sum(1 for r in sent if r.ok)
    failed = len(sent) - completed
    reasons = Counter(r.error or "unfinished" for r in sent if not r.ok)
    duration = s.duration_s
    per_s = (lambda x: x / duration) if duration else (lambda x: None)
    output_total = int(s.output_tokens.sum())
    prompt_total = int(s.prompt_tokens.sum())
    goodput = per_s(good_requests(s, records, slo)) if slo and duration else None
    return LevelMetrics(
        ttft_ms=distribution(s.ttft_ms),
        tpot_ms=distribution(s.tpot_ms),
        itl_ms=distribution(s.itl_ms),
        e2el_ms=distribution(s.e2el_ms),
        schedule_lag_ms=distribution(s.schedule_lag_ms),
        requests=RequestCounts(
            sent=len(sent), completed=completed, failed=failed, errors_by_reason=dict(sorted(reasons.items()))
        ),
        throughput=Throughput(
            requests_per_s=per_s(completed),
            output_tokens_per_s=per_s(output_total),
            total_tokens_per_s=per_s(output_total + prompt_total),
        ),
        goodput_requests_per_s=goodput,
        duration_s=duration,
        input_tokens=prompt_total if completed else None,
        output_tokens=output_total if completed else None,
        server_metrics_delta=dict(server_metrics_delta) if server_metrics_delta is not None else None,
    )
