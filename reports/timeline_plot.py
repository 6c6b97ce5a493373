"""The run on its wall-clock timeline, as inline SVG: client throughput and in-flight requests per load level,
then the scraped vLLM metrics (gauges as read, counters as increase per second).

Returns None when no level has a start time, so the page leaves the figure out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise

from matplotlib import rc_context
from matplotlib.axes import Axes

from reports.levels import level_labels
from reports.plot_style import STYLE, colour, figure, svg
from reports.schema import LevelResult, Result

_PREFERRED_SERVER_METRICS = [
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "vllm:generation_tokens",
    "vllm:prompt_tokens",
    "vllm:num_preemptions",
]
_COUNTER_SUFFIXES = ("_total", "_count", "_sum")

Span = tuple[float, LevelResult, str]  # (seconds from the run's first start, the level, its label)


def is_counter(name: str) -> bool:
    return name.endswith(_COUNTER_SUFFIXES)


def server_metric_names(result: Result, limit: int = 4) -> list[str]:
    """Which scraped server metrics the timeline draws: well-known vLLM ones first."""
    present = {k for lv in result.results for k in (lv.metrics.server_metrics_delta or {})}
    present |= {k for lv in result.results for sample in lv.timeline for k in sample.server}

    def rank(name: str) -> tuple[int, str]:
        base = name.removesuffix("_total")
        return (_PREFERRED_SERVER_METRICS.index(base) if base in _PREFERRED_SERVER_METRICS else 99, name)

    return sorted(present, key=rank)[:limit]


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _sampled(level: LevelResult, begin: float, name: str) -> tuple[list[float], list[float]]:
    """A server metric's samples on the run's time axis; counters as increase per second between samples."""
    points = [(begin + s.t_s, s.server[name]) for s in level.timeline if name in s.server]
    if not is_counter(name):
        return [t for t, _ in points], [v for _, v in points]
    xs, ys = [], []
    for (t0, v0), (t1, v1) in pairwise(points):
        if t1 > t0 and v1 >= v0:  # a counter reset (server restart) leaves a gap rather than a negative rate
            xs.append(t1)
            ys.append((v1 - v0) / (t1 - t0))
    return xs, ys


def _level_value(level: LevelResult, name: str) -> float | None:
    value = (level.metrics.server_metrics_delta or {}).get(name)
    if value is None or not is_counter(name):
        return value
    return value / level.metrics.duration_s if level.metrics.duration_s else None


def _draw_client_level(top: Axes, flight_ax: Axes | None, span: Span, index: int) -> None:
    """One level's client side: its throughput over the window (with its label), samples, requests in flight."""
    begin, level, label = span
    end = begin + (level.metrics.duration_s or 0.0)
    out = level.metrics.throughput.output_tokens_per_s
    if out is not None:
        top.plot(
            [begin, end],
            [out, out],
            color=colour(index),
            linewidth=3,
            solid_capstyle="butt",
            alpha=0.45 if level.timeline else 1.0,
        )
        top.annotate(
            label,
            ((begin + end) / 2, out),
            textcoords="offset points",
            xytext=(0, 5),
            ha="center",
            fontsize=7,
            color="#555555",
        )
    samples = [
        (begin + s.t_s, s.output_tokens_per_s) for s in level.timeline if s.output_tokens_per_s is not None
    ]
    if samples:
        top.plot(*zip(*samples, strict=True), color=colour(index), linewidth=1.2)
    if flight_ax is not None:
        flights = [(begin + s.t_s, s.in_flight) for s in level.timeline if s.in_flight is not None]
        if flights:
            flight_ax.plot(*zip(*flights, strict=True), color="#555555", linewidth=1.2)


def _draw_server_metric(ax: Axes, metric_name: str, spans: Sequence[Span]) -> None:
    """One scraped metric: its samples where a level has them, else one segment for the level."""
    for begin, level, _ in spans:
        xs, ys = _sampled(level, begin, metric_name)
        if xs:
            ax.plot(xs, ys, color="#555555", linewidth=1.2)
            continue
        value = _level_value(level, metric_name)
        if value is not None:
            end = begin + (level.metrics.duration_s or 0.0)
            ax.plot([begin, end], [value, value], color="#555555", linewidth=2.5, solid_capstyle="butt")
    counter = is_counter(metric_name)
    ax.set_title(
        f"{metric_name} ({'increase per second' if counter else 'value'})",
        fontsize=9,
        loc="left",
        fontweight="normal",
    )
    ax.set_ylim(bottom=0)


def timeline(name: str, result: Result, index: int) -> str | None:
    """The run on its wall-clock timeline: client throughput and in-flight requests, then server metrics.

    Samples taken during a level draw as lines; a level without samples draws as one segment per level
    (its throughput over the window, server gauges after it, server counters' increase per second).
    """
    starts = [_parse_time(lv.started_at) for lv in result.results]
    if not any(starts):
        return None
    t0 = min(s for s in starts if s is not None)
    metrics = server_metric_names(result)
    in_flight = any(s.in_flight is not None for lv in result.results for s in lv.timeline)
    labels = level_labels([lv.load for lv in result.results])
    spans = [
        ((start - t0).total_seconds(), level, label)
        for start, level, label in zip(starts, result.results, labels, strict=True)
        if start is not None
    ]
    rows = 1 + int(in_flight) + len(metrics)
    with rc_context(STYLE):
        fig = figure(11, 1.9 + 1.25 * (rows - 1))
        axes = list(fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0])
        top = axes.pop(0)
        flight_ax = axes.pop(0) if in_flight else None
        for span in spans:
            _draw_client_level(top, flight_ax, span, index)
        top.set_ylabel("output tok/s")
        top.set_ylim(bottom=0)
        top.set_title(f"{name}: load levels on the run's timeline")
        if flight_ax is not None:
            flight_ax.set_title("requests in flight (client)", fontsize=9, loc="left", fontweight="normal")
            flight_ax.set_ylim(bottom=0)
        for ax, metric_name in zip(axes, metrics, strict=True):
            _draw_server_metric(ax, metric_name, spans)
        (axes or [flight_ax or top])[-1].set_xlabel(f"seconds since {t0.isoformat()}")
        return svg(fig, f"timeline-{index}")
