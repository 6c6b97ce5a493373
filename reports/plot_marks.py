"""Marks the report's figures add to a level's point: its 95% interval as error bars (levels run with
--repeats) and a red cross over a level where the client was the bottleneck (client check invalid)."""

from __future__ import annotations

from matplotlib.axes import Axes

from reports.metrics import METRICS
from reports.schema import Interval, LevelResult

INVALID_LEGEND = "client-bound level [INVALID]"
INVALID_COLOUR = "#d62728"


def _err(value: float, interval: Interval | None, scale: float) -> list[list[float]] | None:
    if interval is None:
        return None
    return [[max(0.0, value - interval.low / scale)], [max(0.0, interval.high / scale - value)]]


def mark_level(
    ax: Axes, level: LevelResult, x_key: str, y_key: str, colour: str, *, y_scale: float = 1.0
) -> None:
    """Error bars from the level's intervals of ``x_key`` and ``y_key`` (the y value divided by ``y_scale``,
    e.g. per GPU), and the INVALID cross; nothing when neither applies or a value is missing."""
    x, y = METRICS[x_key].value(level), METRICS[y_key].value(level)
    if x is None or y is None:
        return
    y = y / y_scale
    xerr = _err(x, level.intervals.get(x_key), 1.0)
    yerr = _err(y, level.intervals.get(y_key), y_scale)
    if xerr is not None or yerr is not None:
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="none", ecolor=colour, elinewidth=1, capsize=3)
    if level.invalid:
        labelled = any(c.get_label() == INVALID_LEGEND for c in ax.collections)
        ax.scatter(
            [x],
            [y],
            marker="x",
            s=90,
            color=INVALID_COLOUR,
            linewidths=2.2,
            zorder=5,
            label="_nolegend_" if labelled else INVALID_LEGEND,
        )
