"""Repeats of a level in one result file: folding them into one entry with intervals, and unfolding them.

A level run N times is written once: ``repeats`` holds each repeat's metrics in run order, ``metrics`` their
mean (every latency statistic, throughput, goodput and window averaged over the repeats that have it; request
counts and token totals summed over all repeats; the server's /metrics deltas summed, gauges left out), and
``intervals`` the 95% t-interval of every metric of the catalogue (reports/intervals.py). The client check of
the folded level is invalid when any repeat's is, each reason naming its repeat. The workload's own figures fold
over all the repeats' requests: the load sent (asked and served prompt tokens, weighted by requests; within
tolerance only when every repeat was), the prefix cache (hits and queries summed), and TTFT per turn (averaged
per turn). The server's view (its histograms beside the client's) is per repeat only: ``repeats`` keeps it.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from reports.group_load import fold_groups, loaded_gpus
from reports.intervals import t_interval
from reports.metrics import METRICS
from reports.schema import (
    ClientCheck,
    Distribution,
    InputLengthCheck,
    Interval,
    LevelMetrics,
    LevelResult,
    PrefixCacheView,
    RequestCounts,
    Throughput,
    TurnLatency,
)

_DIST_FIELDS = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms", "schedule_lag_ms")
_STATS = ("mean", "p50", "p90", "p95", "p99", "max")


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def _sum(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def mean_distribution(dists: Sequence[Distribution]) -> Distribution:
    stats = {s: _mean([getattr(d, s) for d in dists]) for s in _STATS}
    return Distribution(**stats, count=sum(d.count for d in dists))


def _worst_distribution(dists: Sequence[Distribution]) -> Distribution:
    stats = {s: max((v for d in dists if (v := getattr(d, s)) is not None), default=None) for s in _STATS}
    return Distribution(**stats, count=sum(d.count for d in dists))


def fold_client(checks: Sequence[ClientCheck | None]) -> ClientCheck | None:
    """One check for the repeats: rates, concurrency and CPU averaged, lags and peaks the worst, invalid when
    any repeat was, each reason prefixed with its repeat."""
    known = [(i, c) for i, c in enumerate(checks, start=1) if c is not None]
    if not known:
        return None
    cs = [c for _, c in known]
    reasons = [f"repeat {i}: {reason}" for i, c in known for reason in c.reasons]
    notes = [f"repeat {i}: {warning}" for i, c in known for warning in c.warnings]
    peaks = [c.peak_in_flight for c in cs if c.peak_in_flight is not None]
    return ClientCheck(
        verdict="invalid" if reasons else "valid",
        reasons=reasons,
        warnings=notes,
        configured_rate=cs[0].configured_rate,
        achieved_rate=_mean([c.achieved_rate for c in cs]),
        configured_concurrency=cs[0].configured_concurrency,
        achieved_concurrency=_mean([c.achieved_concurrency for c in cs]),
        peak_in_flight=max(peaks) if peaks else None,
        dispatch_lag_ms=_worst_distribution([c.dispatch_lag_ms for c in cs]),
        loop_lag_ms=_worst_distribution([c.loop_lag_ms for c in cs]),
        loop_lag_cpu_wait_ms=_worst_distribution([c.loop_lag_cpu_wait_ms for c in cs]),
        # the cause of the worst repeat's lateness
        loop_lag_cause=max(cs, key=lambda c: c.loop_lag_ms.p99 or 0.0).loop_lag_cause,
        cpu_s=_mean([c.cpu_s for c in cs]),
        wall_s=_mean([c.wall_s for c in cs]),
        cpu_fraction=_mean([c.cpu_fraction for c in cs]),
        cores=cs[0].cores,
    )


def _server_sum(deltas: Sequence[dict[str, float] | None]) -> dict[str, float] | None:
    known = [d for d in deltas if d is not None]
    if not known:
        return None
    # Counters add up over repeats; a gauge's value after a level does not, so gauges are left out.
    counters: dict[str, float] = {}
    for delta in known:
        for key, value in delta.items():
            if key.endswith(("_total", "_sum", "_count")):
                counters[key] = counters.get(key, 0.0) + value
    return dict(counters)


def mean_metrics(repeats: Sequence[LevelMetrics]) -> LevelMetrics:
    """The folded metrics of a level's repeats (module docstring)."""
    errors = Counter[str]()
    for m in repeats:
        errors.update(m.requests.errors_by_reason)
    distributions: dict[str, Any] = {
        f: mean_distribution([getattr(m, f) for m in repeats]) for f in _DIST_FIELDS
    }
    return LevelMetrics(
        **distributions,
        requests=RequestCounts(
            sent=sum(m.requests.sent for m in repeats),
            completed=sum(m.requests.completed for m in repeats),
            failed=sum(m.requests.failed for m in repeats),
            errors_by_reason=dict(sorted(errors.items())),
        ),
        throughput=Throughput(
            requests_per_s=_mean([m.throughput.requests_per_s for m in repeats]),
            output_tokens_per_s=_mean([m.throughput.output_tokens_per_s for m in repeats]),
            total_tokens_per_s=_mean([m.throughput.total_tokens_per_s for m in repeats]),
        ),
        goodput_requests_per_s=_mean([m.goodput_requests_per_s for m in repeats]),
        duration_s=_mean([m.duration_s for m in repeats]),
        input_tokens=_sum([m.input_tokens for m in repeats]),
        output_tokens=_sum([m.output_tokens for m in repeats]),
        server_metrics_delta=_server_sum([m.server_metrics_delta for m in repeats]),
        client=fold_client([m.client for m in repeats]),
        groups=(groups := fold_groups([m.groups for m in repeats])),
        gpus_loaded=loaded_gpus(groups),
        input_lengths=fold_input_lengths([m.input_lengths for m in repeats]),
        prefix_cache=fold_prefix_cache([m.prefix_cache for m in repeats]),
        ttft_by_turn=fold_turns([m.ttft_by_turn for m in repeats]),
    )


def fold_input_lengths(checks: Sequence[InputLengthCheck | None]) -> InputLengthCheck | None:
    """Asked and served means over every repeat's requests; within tolerance only when each repeat was."""
    known = [c for c in checks if c is not None and c.requests > 0]
    if not known:
        return None
    requests = sum(c.requests for c in known)
    asked = sum(c.requested_mean * c.requests for c in known) / requests
    served = sum(c.served_mean * c.requests for c in known) / requests
    error = served / asked - 1 if asked else 0.0
    tolerance = known[0].tolerance
    return InputLengthCheck(
        requests=requests,
        requested_mean=asked,
        served_mean=served,
        relative_error=error,
        tolerance=tolerance,
        within_tolerance=all(c.within_tolerance for c in known) and abs(error) <= tolerance,
    )


def fold_prefix_cache(views: Sequence[PrefixCacheView | None]) -> PrefixCacheView | None:
    """Hits and queries summed over the repeats (the rate is theirs), the shared share averaged."""
    known = [v for v in views if v is not None]
    if not known:
        return None
    queries = _fsum([v.queries for v in known])
    hits = _fsum([v.hits for v in known])
    return PrefixCacheView(
        queries=queries,
        hits=hits,
        hit_rate=hits / queries if hits is not None and queries else None,
        shared_fraction=_mean([v.shared_fraction for v in known]),
        block_size=next((v.block_size for v in known if v.block_size is not None), None),
    )


def fold_turns(per_repeat: Sequence[Sequence[TurnLatency]]) -> list[TurnLatency]:
    """Each turn's TTFT averaged over the repeats that had that turn."""
    turns: dict[int, list[TurnLatency]] = {}
    for repeat in per_repeat:
        for t in repeat:
            turns.setdefault(t.turn, []).append(t)
    return [
        TurnLatency(
            turn=turn,
            prompt_tokens_mean=_mean([t.prompt_tokens_mean for t in same]),
            ttft_ms=mean_distribution([t.ttft_ms for t in same]),
        )
        for turn, same in sorted(turns.items())
    ]


def _fsum(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def level_intervals(levels: Sequence[LevelResult]) -> dict[str, Interval]:
    """The t-interval of every catalogue metric with a value in at least two of the repeats."""
    out = {}
    for key, metric in METRICS.items():
        interval = t_interval([v for lv in levels if (v := metric.value(lv)) is not None])
        if interval is not None:
            out[key] = interval
    return out


def fold_repeats(levels: Sequence[LevelResult]) -> LevelResult:
    """One level's repeats (each a LevelResult of one run, same load) as one entry with its intervals."""
    if len(levels) == 1:
        return levels[0]
    first = levels[0]
    return LevelResult(
        load=first.load,
        metrics=mean_metrics([lv.metrics for lv in levels]),
        started_at=first.started_at,
        repeats=[lv.metrics for lv in levels],
        intervals=level_intervals(levels),
    )


def unfold(level: LevelResult) -> list[LevelResult]:
    """The level as the gate counts runs: one LevelResult per repeat (itself when it was run once)."""
    if not level.repeats:
        return [level]
    return [LevelResult(load=level.load, metrics=m, started_at=level.started_at) for m in level.repeats]


def interval(level: LevelResult, key: str) -> Interval | None:
    return level.intervals.get(key)
