"""The report's tables of the load actually sent: per level the prompt lengths asked for against the server's
``usage.prompt_tokens`` (a level off by more than its tolerance is flagged MISMATCH), the prefix-cache hit
rate from vLLM's counters beside the share of the prompt the workload shared, and TTFT by turn for
multi-turn workloads."""

from __future__ import annotations

from reports.levels import level_labels
from reports.schema import Result
from reports.tables import Table
from reports.text import MISSING, num


def _pct(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1%}"


def workload_tables(result: Result) -> list[Table]:
    labels = level_labels([lv.load for lv in result.results])
    rows, mismatches = [], 0
    for level, label in zip(result.results, labels, strict=True):
        check, cache = level.metrics.input_lengths, level.metrics.prefix_cache
        if check is None and cache is None:
            continue
        verdict = MISSING
        if check is not None:
            verdict = "ok" if check.within_tolerance else f"MISMATCH (> {check.tolerance:.0%})"
            mismatches += not check.within_tolerance
        rows.append(
            [
                label,
                num(check.requested_mean) if check else MISSING,
                num(check.served_mean) if check else MISSING,
                f"{check.relative_error:+.2%}" if check else MISSING,
                verdict,
                _pct(cache.hit_rate) if cache else MISSING,
                _pct(cache.shared_fraction) if cache else MISSING,
            ]
        )
    tables = []
    if rows:
        notes = [
            "asked: the mean prompt length the workload asked for, in the served model's tokens (its /tokenize); "
            "served: the mean usage.prompt_tokens; hit rate: vllm:prefix_cache_hits / vllm:prefix_cache_queries "
            "over the level; shared: the prompt tokens the workload shared (a prefix, or a session's history). "
            "The hit rate sits below the shared share by vLLM's block granularity (whole KV blocks only) and "
            "the first request of each prefix."
        ]
        if mismatches:
            notes.insert(0, f"**{mismatches} level(s) did not send the load configured (MISMATCH).**")
        tables.append(
            Table(
                "Load sent",
                ["level", "asked tokens", "served tokens", "error", "verdict", "prefix hit rate", "shared"],
                rows,
                [False, True, True, True, False, True, True],
                notes,
            )
        )
    turn_rows = []
    for level, label in zip(result.results, labels, strict=True):
        for t in level.metrics.ttft_by_turn:
            turn_rows.append(
                [label, str(t.turn), num(t.prompt_tokens_mean), num(t.ttft_ms.mean), num(t.ttft_ms.p90),
                 str(t.ttft_ms.count)]
            )  # fmt: skip
    if turn_rows:
        tables.append(
            Table(
                "TTFT by turn",
                ["level", "turn", "prompt tokens", "TTFT mean ms", "TTFT p90 ms", "requests"],
                turn_rows,
                [False, True, True, True, True, True],
                ["each turn carries the session's history: later turns have longer prompts"],
            )
        )
    return tables
