"""One level in the field names of vLLM ``bench serve --save-result`` (serve.py, as read for
``research/bench_anchors.md`` section 1.4), so dashboards built on that format keep working.

Written: the header (``date, endpoint_type, backend, label, model_id, tokenizer_id, num_prompts,
request_rate`` ("inf" for closed loop), ``burstiness, max_concurrency``, and ``ramp_up_strategy,
ramp_up_start_rps, ramp_up_end_rps`` for a ramp) and the body (``duration, completed, failed,
total_input_tokens, total_output_tokens, request_throughput, request_goodput, output_throughput,
total_token_throughput, max_output_tokens_per_s, max_concurrent_requests``, and
``mean_/median_/std_/p50_/p90_/p95_/p99_`` of ``ttft, tpot, itl, e2el`` in ms).
Not written: per-request arrays (``--save-detailed``), ``rtfx`` (audio), spec-decode fields.

Differences that remain: ``duration`` is our measured window (first send to last end) where vLLM
times from before its dispatch loop; std is the population std, as vLLM's ``np.std``; a statistic
with no samples is null where vLLM writes 0; ``max_output_tokens_per_s`` counts token-carrying chunks
per whole second of the window, as vLLM does (so it counts chunks, not tokens).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np

from load.level_runner import LevelRun
from load.metrics import good_requests, samples
from load.records import RequestRecord
from load.runner import SweepRun

METRICS = ("ttft", "tpot", "itl", "e2el")
PERCENTILES = (50, 90, 95, 99)


def vllm_bench_json(run: SweepRun, level_run: LevelRun) -> dict[str, Any]:
    config, level, records = run.config, level_run.level, level_run.records
    s = samples(records)
    sent = [r for r in records if r.sent is not None]
    done = [r for r in sent if r.ok]
    duration = s.duration_s
    per_s = (lambda x: x / duration) if duration else (lambda x: None)
    out: dict[str, Any] = {
        "date": datetime.now().strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": "openai-chat" if config.api == "chat" else "openai",
        "backend": "openai-chat" if config.api == "chat" else "openai",
        "label": config.label,
        "model_id": config.model,
        "tokenizer_id": None,
        "num_prompts": level.num_requests,
        "request_rate": level.request_rate if level.request_rate is not None else "inf",
        "burstiness": level.burstiness,
        "max_concurrency": level.concurrency,
    }
    if level.request_rate_end is not None:
        out |= {
            "ramp_up_strategy": "linear",
            "ramp_up_start_rps": level.request_rate,
            "ramp_up_end_rps": level.request_rate_end,
        }
    total_out = int(s.output_tokens.sum())
    total_in = int(s.prompt_tokens.sum())
    out |= {
        "duration": duration,
        "completed": len(done),
        "failed": len(sent) - len(done),
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": per_s(len(done)),
        "request_goodput": per_s(good_requests(s, records, config.slo)) if config.slo else None,
        "output_throughput": per_s(total_out),
        "total_token_throughput": per_s(total_in + total_out),
        "max_output_tokens_per_s": _max_chunks_per_second(done, s.window_start),
        "max_concurrent_requests": _max_concurrent(done),
    }
    for name, values in (("ttft", s.ttft_ms), ("tpot", s.tpot_ms), ("itl", s.itl_ms), ("e2el", s.e2el_ms)):
        empty = values.size == 0
        out[f"mean_{name}_ms"] = None if empty else float(values.mean())
        out[f"median_{name}_ms"] = None if empty else float(np.median(values))
        out[f"std_{name}_ms"] = None if empty else float(values.std())
        for p in PERCENTILES:
            out[f"p{p}_{name}_ms"] = None if empty else float(np.percentile(values, p))
    return out


def _max_chunks_per_second(done: list[RequestRecord], start: float | None) -> float | None:
    if not done or start is None:
        return None
    seconds = np.concatenate([np.floor(np.asarray(r.chunk_times) - start) for r in done]).astype(np.int64)
    return float(np.bincount(seconds).max()) if seconds.size else None


def _max_concurrent(done: list[RequestRecord]) -> int | None:
    """Most requests in flight at once over [sent, last token), by a sweep over the interval ends."""
    if not done:
        return None
    events = sorted([(r.sent, 1) for r in done] + [(r.chunk_times[-1], -1) for r in done])  # type: ignore[misc]
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def level_file_name(stem: str, index: int) -> str:
    """``<stem>.vllm-<n>.json``, n counting levels from 1."""
    return f"{stem}.vllm-{index}.json"


def json_safe(value: Any) -> Any:
    """inf/nan are not JSON: vLLM writes an infinite rate as the string "inf"; others become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value == math.inf else None
    return value
