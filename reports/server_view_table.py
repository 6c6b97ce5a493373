"""Client beside server: each level's latencies as the client measured them next to vLLM's own histograms
(the bucket that holds each percentile), its counts next to the server's counters, and what cannot be."""

from __future__ import annotations

from reports.levels import level_labels
from reports.schema import Distribution, LevelResult, Result, ServerLatency, ServerPercentile
from reports.tables import Table
from reports.text import MISSING, num

_METRICS = (("TTFT", "ttft_ms"), ("ITL", "itl_ms"), ("E2EL", "e2el_ms"))


def server_view_tables(result: Result) -> list[Table]:
    """The side-by-side latency table and the counts table; none when no level has a server view. A level run
    with --repeats has one row per repeat: each repeat was reconciled with the server on its own (a fold of
    them has no server view: its counts are summed, its latencies averaged)."""
    rows: list[tuple[LevelResult, str]] = []
    labels = level_labels([lv.load for lv in result.results])
    for level, label in zip(result.results, labels, strict=True):
        repeats = level.repeats or [level.metrics]
        for n, metrics in enumerate(repeats):
            if metrics.server_view is not None:
                suffix = f" (repeat {n + 1})" if len(repeats) > 1 else ""
                rows.append((level.model_copy(update={"metrics": metrics}), label + suffix))
    if not rows:
        return []
    levels, row_labels = [lv for lv, _ in rows], [label for _, label in rows]
    return [_latency_table(levels, row_labels), _counts_table(levels, row_labels)]


def _bucket(p: ServerPercentile | None) -> str:
    if p is None:
        return MISSING
    upper = "+Inf" if p.upper_ms is None else num(p.upper_ms)
    return f"({num(p.lower_ms)}, {upper}]"


def _verdict(level: LevelResult, metric: str) -> str:
    view = level.metrics.server_view
    if view is None or metric != "TTFT":
        return ""
    if any(p.startswith("TTFT") for p in view.problems):
        return "IMPOSSIBLE"
    if view.warnings:
        return "client slower"
    return "agrees"


def _latency_table(levels: list[LevelResult], labels: list[str]) -> Table:
    rows = []
    for label, level in zip(labels, levels, strict=True):
        view = level.metrics.server_view
        assert view is not None
        for name, field in _METRICS:
            client: Distribution = getattr(level.metrics, field)
            server: ServerLatency | None = getattr(view, field)
            p50 = server.p50 if server else None
            p99 = server.p99 if server else None
            rows.append(
                [
                    label,
                    name,
                    num(client.p50),
                    _bucket(p50),
                    num(p50.estimate_ms if p50 else None),
                    num(client.p99),
                    _bucket(p99),
                    f"{client.count} / {server.count if server else MISSING}",
                    _verdict(level, name),
                ]
            )
    notes = [
        "client: as measured by the load generator; server: vLLM's histograms over the level (bucket deltas "
        "of /metrics before and after), so each percentile is known only to lie in (lower, upper] ms",
        "a client TTFT below the server's lower bound cannot be (the client's span contains the server's): "
        "IMPOSSIBLE; above its upper bound plus the network round trip: the client added its own delay",
    ]
    for label, level in zip(labels, levels, strict=True):
        view = level.metrics.server_view
        assert view is not None
        notes += [f"{label}: {text}" for text in [*view.problems, *view.warnings]]
    return Table(
        "Client beside server (vLLM /metrics)",
        [
            "level",
            "metric",
            "client p50 ms",
            "server p50 bucket",
            "server p50 est.",
            "client p99 ms",
            "server p99 bucket",
            "samples client / server",
            "check",
        ],
        rows,
        [False, False, True, True, True, True, True, True, False],
        notes,
    )


def _counts_table(levels: list[LevelResult], labels: list[str]) -> Table:
    rows = []
    for label, level in zip(labels, levels, strict=True):
        m, view = level.metrics, level.metrics.server_view
        assert view is not None
        if any(p.startswith("request span") for p in view.problems):
            check = "IMPOSSIBLE"
        elif [p for p in view.problems if not p.startswith(("TTFT", "request span"))]:
            check = "DISAGREE"
        else:
            check = "agree"
        rows.append(
            [
                label,
                f"{m.requests.completed} / {_n(view.requests_finished)}",
                f"{_n(m.output_tokens)} / {_n(view.generation_tokens)}",
                f"{_n(m.input_tokens)} / {_n(view.prompt_tokens)}",
                f"{num(view.client_request_span_ms)} / {num(view.request_span_ms)}",
                num(view.network_ms),
                num(view.http_overhead_ms),
                check,
            ]
        )
    return Table(
        "Counts and request spans: client / server",
        [
            "level",
            "requests completed / finished",
            "output tokens",
            "prompt tokens",
            "request span ms",
            "network ms",
            "API server ms",
            "check",
        ],
        rows,
        [False, True, True, True, True, True, True, False],
        [
            "server: increase of vllm:request_success_total, vllm:generation_tokens_total, "
            "vllm:prompt_tokens_total over the level; request span: mean of the client's send to end of stream "
            "/ the server's http_request_duration_seconds (arrival to end of body), which it contains; "
            "network: median round trip of GET /health before the level; API server: the server's mean HTTP "
            "duration minus its mean vllm:e2e_request_latency_seconds (its time outside vLLM's timers, allowed "
            "for in the TTFT upper bound)"
        ],
    )


def _n(value: int | None) -> str:
    return MISSING if value is None else str(value)
