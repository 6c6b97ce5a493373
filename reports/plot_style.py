"""What every figure of the report shares: the matplotlib style, one colour and marker per run, a log axis
for wide ranges, and the serialisation of a figure to inline SVG (no files, no network)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

STYLE: dict[Any, Any] = {  # typed loosely: matplotlib types rc keys as a Literal of every name
    "svg.fonttype": "none",  # text stays text: smaller, selectable, searchable
    "svg.hashsalt": "lws-vllm-suite",  # stable ids, so the same results give the same page
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
_COLOURS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


def colour(index: int) -> str:
    return _COLOURS[index % len(_COLOURS)]


def marker(index: int) -> str:
    return _MARKERS[index % len(_MARKERS)]


def svg(fig: Figure, prefix: str) -> str:
    """Serialise a figure as an <svg> element that can sit beside others in one page.

    Matplotlib names clip paths and glyphs with ids; two inline SVGs with the same id would share them,
    so every id gets the figure's prefix.
    """
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', text)
    text = text.replace("url(#", f"url(#{prefix}-").replace('href="#', f'href="#{prefix}-')
    return text.replace("<svg ", f'<svg role="img" aria-label="{prefix}" ', 1)


def figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def log_if_wide(ax: Axes, values: Sequence[float], axis: str) -> None:
    """A log scale when values span 20x or more, with plain tick labels (250, not 2.5 x 10^2)."""
    positive = [v for v in values if v > 0]
    if not positive or max(positive) / min(positive) < 20:
        return
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())
