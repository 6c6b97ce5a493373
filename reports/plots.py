"""The report's comparison, distribution and recovery figures, drawn with matplotlib and returned as inline SVG
text (no files, no network); the run's timeline is in reports/timeline_plot.py, the shared look in
reports/plot_style.py.

Each function returns None when the result files hold nothing to draw, so the page leaves the figure out
rather than drawing an empty frame. Runs keep one colour and marker across every figure.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.colors import to_hex

from reports.compare import Comparison, Point
from reports.group_load import level_gpus
from reports.levels import level_labels, offered_load
from reports.metrics import METRICS
from reports.normalise import GPU_UNIT, unit_count
from reports.plot_marks import INVALID_LEGEND, mark_level
from reports.plot_style import STYLE, colour, figure, log_if_wide, marker, svg
from reports.schema import Result
from reports.tables import per_gpu
from reports.validity import invalid_label

PERCENTILES = ("p50", "p90", "p95", "p99", "max")


def _series(result: Result, x_key: str, y_key: str) -> tuple[list[float], list[float], list[str]]:
    """(x, y, label) for the levels of a run where both values exist."""
    xs, ys, labels = [], [], []
    for label, level in zip(level_labels([lv.load for lv in result.results]), result.results, strict=True):
        x, y = METRICS[x_key].value(level), METRICS[y_key].value(level)
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
            labels.append(label)
    return xs, ys, labels


def throughput_latency(names: Sequence[str], results: Sequence[Result]) -> str | None:
    """Output tokens/s against TPOT p99 and TTFT p99, one curve per run across its load levels."""
    panels = [("tpot_p99", "TPOT p99 (ms)"), ("ttft_p99", "TTFT p99 (ms)")]
    if not any(_series(r, x, "output_tokens_per_s")[0] for r in results for x, _ in panels):
        return None
    with rc_context(STYLE):
        fig = figure(11, 4.2)
        axes = fig.subplots(1, 2)
        for ax, (x_key, x_label) in zip(axes, panels, strict=True):
            every_x: list[float] = []
            for i, (name, result) in enumerate(zip(names, results, strict=True)):
                xs, ys, labels = _series(result, x_key, "output_tokens_per_s")
                if not xs:
                    continue
                every_x += xs
                ax.plot(xs, ys, marker=marker(i), color=colour(i), label=name, linewidth=1.6, markersize=5)
                for level in result.results:
                    mark_level(ax, level, x_key, "output_tokens_per_s", colour(i))
                for x, y, label in zip(xs, ys, labels, strict=True):
                    ax.annotate(
                        label,
                        (x, y),
                        textcoords="offset points",
                        xytext=(4, -10),
                        fontsize=7,
                        color="#555555",
                    )
            log_if_wide(ax, every_x, "x")
            ax.set_xlabel(x_label)
            ax.set_ylabel("output tokens/s")
            ax.set_title(f"Output throughput against {x_label.split(' (')[0]}")
            ax.set_ylim(bottom=0)
        axes[0].legend(loc="best")
        if any(c.get_label() == INVALID_LEGEND for c in axes[1].collections):
            axes[1].legend(loc="best")  # names the INVALID cross
        return svg(fig, "throughput-latency")


def per_gpu_throughput(comparison: Comparison) -> str | None:
    """Output tokens/s per GPU against offered load, and against TPOT p99 with the Pareto frontier."""
    unit = comparison.unit  # per GPU; per pod or CPU core when CPUs served every run (reports/normalise.py)
    if not any(p.out_tps_per_unit is not None for p in comparison.points):
        return None
    with rc_context(STYLE):
        fig = figure(11, 4.2)
        left, right = fig.subplots(1, 2)
        axis_names = set()
        every_x: list[float] = []
        for i, (name, result) in enumerate(zip(comparison.names, comparison.results, strict=True)):
            axis = offered_load([lv.load for lv in result.results])
            ys = [
                per_gpu(
                    lv.metrics.throughput.output_tokens_per_s,
                    level_gpus(result.run, lv) if unit == GPU_UNIT else unit_count(result.run, unit),
                )
                for lv in result.results
            ]
            if axis is None:
                axis = ("load level (index)", [float(n) for n in range(1, len(ys) + 1)])
            axis_names.add(axis[0])
            pairs = [(x, y) for x, y in zip(axis[1], ys, strict=True) if y is not None]
            if pairs:
                every_x += [x for x, _ in pairs]
                left.plot(
                    *zip(*pairs, strict=True),
                    marker=marker(i),
                    color=colour(i),
                    label=name,
                    linewidth=1.6,
                    markersize=5,
                )
            points = [p for p in comparison.points if p.run_index == i]
            tpot = [(p.value("tpot_p99"), p.out_tps_per_unit) for p in points]
            known = [(x, y) for x, y in tpot if x is not None and y is not None]
            if known:
                right.scatter(
                    *zip(*known, strict=True), marker=marker(i), color=colour(i), label=name, s=28, zorder=3
                )
            for p in points:
                if p.gpus:
                    mark_level(
                        right, p.level_result, "tpot_p99", "output_tokens_per_s", colour(i), y_scale=p.gpus
                    )
        log_if_wide(left, every_x, "x")
        if left.get_xscale() == "log":
            ticks = sorted(set(every_x))
            left.set_xticks(ticks, [f"{t:g}" for t in ticks])
            left.minorticks_off()
        left.set_xlabel(" / ".join(sorted(axis_names)))
        left.set_ylabel(f"output tokens/s per {unit}")
        left.set_title(f"Per-{unit} output throughput by load")
        left.set_ylim(bottom=0)
        left.legend(loc="best")
        _frontier(right, comparison.frontier)
        tpot_slo = comparison.slo.get("tpot_ms")
        if tpot_slo is not None:
            right.axvline(
                tpot_slo, color="#888888", linestyle=":", linewidth=1.2, label=f"SLO {tpot_slo:g} ms"
            )
        right.set_xlabel("TPOT p99 (ms)")
        right.set_ylabel(f"output tokens/s per {unit}")
        right.set_title(f"Pareto frontier: per-{unit} throughput against TPOT p99")
        right.set_ylim(bottom=0)
        right.legend(loc="best")
        return svg(fig, "per-gpu")


def _frontier(ax: Axes, frontier: Sequence[Point]) -> None:
    if not frontier:
        return
    xs = [p.value("tpot_p99") or 0.0 for p in frontier]
    ys = [p.out_tps_per_unit or 0.0 for p in frontier]
    ax.plot(
        xs,
        ys,
        color="#222222",
        linestyle="--",
        linewidth=1.2,
        drawstyle="steps-post",
        label="Pareto frontier",
        zorder=2,
    )
    for p, x, y in zip(frontier, xs, ys, strict=True):
        ax.annotate(
            f"{p.run} {p.level}",
            (x, y),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
            color="#333333",
        )


def distributions(name: str, result: Result, index: int) -> str | None:
    """TTFT, TPOT and ITL percentiles of every level of one run (from the Distribution summaries)."""
    families = [("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL")]
    labels = [
        invalid_label(label, lv)
        for label, lv in zip(level_labels([lv.load for lv in result.results]), result.results, strict=True)
    ]
    if not any(
        getattr(getattr(lv.metrics, f"{f}_ms"), s) is not None
        for lv in result.results
        for f, _ in families
        for s in PERCENTILES
    ):
        return None
    with rc_context(STYLE):
        fig = figure(11, 3.6)
        axes = fig.subplots(1, 3)
        shades = _shades(len(result.results))
        for ax, (family, title) in zip(axes, families, strict=True):
            values: list[float] = []
            for shade, label, level in zip(shades, labels, result.results, strict=True):
                dist = getattr(level.metrics, f"{family}_ms")
                pairs = [
                    (k, getattr(dist, s)) for k, s in enumerate(PERCENTILES) if getattr(dist, s) is not None
                ]
                if not pairs:
                    continue
                values += [v for _, v in pairs]
                ax.plot(
                    [k for k, _ in pairs],
                    [v for _, v in pairs],
                    marker="o",
                    markersize=4,
                    color=shade,
                    label=label,
                    linewidth=1.4,
                )
            ax.set_xticks(range(len(PERCENTILES)), PERCENTILES)
            log_if_wide(ax, values, "y")
            ax.set_title(f"{title} percentiles")
            ax.set_ylabel(f"{title} (ms)")
        axes[0].legend(title=name, loc="best", title_fontsize=8)
        return svg(fig, f"distributions-{index}")


def _shades(n: int) -> list[str]:
    """n colours from light to dark (viridis): low load light, high load dark."""
    cmap = colormaps["viridis"]
    return [to_hex(cmap(0.85 - 0.75 * (k / max(n - 1, 1)))) for k in range(n)]


def recovery(names: Sequence[str], results: Sequence[Result]) -> str | None:
    """Seconds from each injected fault until pods were replaced, serving was available, a request succeeded."""
    rows = [
        (f"{name}: {rec.fault}", rec) for name, r in zip(names, results, strict=True) for rec in r.recovery
    ]
    if not rows:
        return None
    measures = [
        ("pods_replaced_s", "pods replaced", "#9ecae1"),
        ("available_s", "available", "#4292c6"),
        ("first_success_s", "first success", "#08519c"),
    ]
    with rc_context(STYLE):
        fig = figure(11, 1.2 + 0.6 * len(rows))
        ax = fig.subplots()
        height = 0.8 / len(measures)
        for k, (attr, label, shade) in enumerate(measures):
            ys, widths = [], []
            for row, (_, rec) in enumerate(rows):
                value = getattr(rec, attr)
                if value is None:
                    ax.text(
                        0,
                        row + (k - 1) * height,
                        f"  {label}: not measured",
                        va="center",
                        fontsize=7,
                        color="#888888",
                    )
                    continue
                ys.append(row + (k - 1) * height)
                widths.append(value)
            bars = ax.barh(ys, widths, height=height * 0.9, color=shade, label=label)
            ax.bar_label(bars, fmt="%.1f s", padding=3, fontsize=7)
        ax.set_yticks(range(len(rows)), [label for label, _ in rows])
        ax.invert_yaxis()
        ax.set_xlabel("seconds from the injected fault")
        ax.set_title("Restart recovery")
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.1)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(measures))
        return svg(fig, "recovery")
