"""Markdown for CI logs: per run, what was measured, then aligned tables with the formulas under them."""

from __future__ import annotations

from collections.abc import Sequence

from reports.compare import Comparison
from reports.compare_tables import best_lines, frontier_table, per_run_table, pivot_tables
from reports.group_table import group_table
from reports.predicted_table import predicted_table
from reports.provenance import allowed_note, tagged
from reports.runs import display_names
from reports.schema import Result
from reports.server_view_table import server_view_tables
from reports.tables import Table, level_tables, metadata_lines, recovery_table
from reports.text import md_table
from reports.validity import allowed_invalid_note
from reports.workload_table import workload_tables


def table_markdown(table: Table, level: str = "###") -> str:
    parts = [f"{level} {table.title}", "", md_table(table.headers, table.rows, table.right)]
    if table.notes:
        parts.append("")
        parts.extend(f"> {note}" for note in table.notes)
    return "\n".join(parts)


def run_markdown(name: str, result: Result) -> str:
    parts = [f"## {tagged(name, result.run)}", ""]
    parts.extend(f"- {heading}: {text}" for heading, text in metadata_lines(result.run))
    parts.append("")
    if result.results:
        parts.append("\n\n".join(table_markdown(t) for t in level_tables(result)))
    else:
        parts.append("No load levels in this result.")
    recovery = recovery_table(result)
    if recovery is not None:
        parts += ["", table_markdown(recovery)]
    for table in [
        group_table(result),
        predicted_table(result),
        *server_view_tables(result),
        *workload_tables(result),
    ]:
        if table is not None:
            parts += ["", table_markdown(table)]
    return "\n".join(parts)


def render_markdown(results: Sequence[Result], names: Sequence[str] | None = None) -> str:
    """The report of one or more result files, one section per file, ending with a newline."""
    sections = ["# Benchmark report"]
    for name, result in zip(display_names(results, names), results, strict=True):
        sections.append(run_markdown(name, result))
    return "\n\n".join(sections) + "\n"


def render_comparison_markdown(comparison: Comparison) -> str:
    """The comparison across runs for a CI log: per run per GPU, loads side by side, frontier, best."""
    parts = ["# Comparison across runs"]
    if comparison.mixed:
        parts.append(f"> **{allowed_note(comparison.mixed)}**")
    if comparison.invalid:
        parts.append(f"> **{allowed_invalid_note(comparison.invalid)}**")
    parts.append(table_markdown(per_run_table(comparison), "##"))
    if len(comparison.names) > 1:
        parts += [table_markdown(t, "##") for t in pivot_tables(comparison)]
    parts += [
        table_markdown(frontier_table(comparison), "##"),
        "## Best setting",
        "\n".join(best_lines(comparison)),
    ]
    return "\n\n".join(parts) + "\n"
