"""Was the load sent the load configured? Per level, the prompt lengths asked for (in the served model's
tokens) against the server's ``usage.prompt_tokens``; and the server's prefix-cache hit rate beside the
share of the prompt tokens the workload shared.

The hit rate is vLLM 0.32's ``vllm:prefix_cache_hits`` / ``vllm:prefix_cache_queries`` over the level (both
in tokens; vllm@v0.32.0:vllm/v1/metrics/loggers.py). It sits below the shared share because vLLM caches
whole KV blocks only (a shared prefix of 100 tokens with 16-token blocks can hit 96), the first request of
each prefix misses, and a request never hits its last prompt token (testbed/engine/prefix_cache.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from load.records import RequestRecord
from load.workload import RequestSpec
from reports.schema import InputLengthCheck, LevelResult, PrefixCacheView

QUERIES = "vllm:prefix_cache_queries_total"
HITS = "vllm:prefix_cache_hits_total"


def input_length_check(
    specs: Sequence[RequestSpec], records: Sequence[RequestRecord], tolerance: float
) -> InputLengthCheck | None:
    """Over the completed requests with a requested length and a usage; None when there are none."""
    pairs: list[tuple[int, int]] = []
    for r in records:
        asked = specs[r.index].input_len if r.index < len(specs) else None
        if r.ok and r.prompt_tokens is not None and asked is not None:
            pairs.append((asked, r.prompt_tokens))
    if not pairs:
        return None
    requested = sum(a for a, _ in pairs) / len(pairs)
    served = sum(g for _, g in pairs) / len(pairs)
    error = served / requested - 1
    return InputLengthCheck(
        requests=len(pairs),
        requested_mean=round(requested, 3),
        served_mean=round(served, 3),
        relative_error=round(error, 6),
        tolerance=tolerance,
        within_tolerance=abs(error) <= tolerance,
    )


def describe_mismatch(check: InputLengthCheck) -> str:
    return (
        f"prompt lengths off by {check.relative_error:+.1%}: asked for {check.requested_mean:g} tokens on "
        f"average, the server counted {check.served_mean:g} (usage.prompt_tokens, {check.requests} requests; "
        f"tolerance {check.tolerance:.0%})"
    )


def prefix_cache_view(
    specs: Sequence[RequestSpec],
    records: Sequence[RequestRecord],
    server_delta: Mapping[str, float] | None,
    block_size: int | None = None,
) -> PrefixCacheView | None:
    """None when the server has no prefix-cache counters and the workload shared nothing."""
    sent = [specs[r.index] for r in records if r.sent is not None and r.index < len(specs)]
    shared = [s.shared_tokens for s in sent if s.shared_tokens is not None]
    counted = [s.counted for s in sent if s.counted is not None]
    fraction = sum(shared) / sum(counted) if shared and len(shared) == len(counted) and sum(counted) else None
    queries = server_delta.get(QUERIES) if server_delta else None
    hits = server_delta.get(HITS) if server_delta else None
    if queries is None and fraction is None:
        return None
    return PrefixCacheView(
        queries=queries,
        hits=hits,
        hit_rate=round(hits / queries, 6) if queries and hits is not None else None,
        shared_fraction=round(fraction, 6) if fraction is not None else None,
        block_size=block_size,
    )


def workload_notes(level: LevelResult) -> list[str]:
    """What the level's workload actually was, for the summary and the benchmark's progress lines."""
    m = level.metrics
    lines = []
    if (check := m.input_lengths) is not None:
        if check.within_tolerance:
            lines.append(
                f"prompt tokens: asked {check.requested_mean:g}, served {check.served_mean:g} "
                f"({check.relative_error:+.2%})"
            )
        else:
            lines.append("MISMATCH: " + describe_mismatch(check))
    if (cache := m.prefix_cache) is not None and cache.hit_rate is not None:
        shared = f", shared share {cache.shared_fraction:.1%}" if cache.shared_fraction is not None else ""
        lines.append(f"prefix-cache hit rate {cache.hit_rate:.1%} (vllm:prefix_cache_hits/queries){shared}")
    if m.ttft_by_turn:
        turns = ", ".join(
            f"turn {t.turn} {t.ttft_ms.mean:.1f} ms" for t in m.ttft_by_turn if t.ttft_ms.mean is not None
        )
        lines.append(f"mean TTFT by turn: {turns}")
    return lines
