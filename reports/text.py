"""Number formatting and aligned Markdown tables that read well in a terminal and render on GitHub."""

from __future__ import annotations

from collections.abc import Sequence

MISSING = "\u2014"  # an em dash: what a missing value (None) looks like in a table; never 0


def num(value: float | None, unit: str = "") -> str:
    """About three significant figures, thousands separated; MISSING for None."""
    if value is None:
        return MISSING
    magnitude = abs(value)
    if magnitude >= 100 or value == 0:
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:,.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip() if unit else text


def pct(fraction: float | None, signed: bool = False) -> str:
    if fraction is None:
        return MISSING
    return f"{fraction * 100:+.1f}%" if signed else f"{fraction * 100:.1f}%"


def md_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None
) -> str:
    """A Markdown table padded so that its columns line up in a fixed-width font.

    ``right`` marks right-aligned (numeric) columns; by default every column but the first.
    """
    right = list(right) if right is not None else [False] + [True] * (len(headers) - 1)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    widths = [max(w, 3) for w in widths]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if r else (":" + "-" * (w + 1)) for w, r in zip(widths, right, strict=True)
        )
        + "|"
    )
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
