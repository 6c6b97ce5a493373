"""The self-contained HTML report: one file, inline CSS and SVG figures, no scripts, no network."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from reports import plots, timeline_plot
from reports.compare import Comparison, compare
from reports.compare_tables import best_lines, frontier_table, per_run_table, pivot_tables
from reports.group_table import group_table
from reports.levels import level_labels
from reports.metrics import LATENCY_FORMULAS, PER_GPU_FORMULA, WINDOW_FORMULA
from reports.normalise import device_text, is_cpu, unit_formula
from reports.predicted_table import predicted_table
from reports.provenance import allowed_note, engine_label, sim_note, tagged
from reports.runs import display_names, gpu_count, parallelism, topology_name
from reports.schema import SCHEMA_VERSION, Result
from reports.server_view_table import server_view_tables
from reports.tables import Table, level_tables, metadata_lines, recovery_table
from reports.text import MISSING, num
from reports.validity import INVALID_TAG, allowed_invalid_note
from reports.workload_table import workload_tables

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1d1d1f; background: #ffffff; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 40px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #e5e5ea; }
h3 { font-size: 16px; margin: 24px 0 6px; }
.sub { color: #6e6e73; margin: 0 0 16px; }
nav a { margin-right: 14px; color: #0b5cad; text-decoration: none; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums;
        display: block; max-width: 100%; overflow-x: auto; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e5e5ea; text-align: left; white-space: nowrap; }
th { background: #f5f5f7; font-weight: 600; }
td.n, th.n { text-align: right; }
tbody tr:nth-child(even) td { background: #fafafc; }
.note { color: #6e6e73; font-size: 12.5px; margin: 2px 0; }
figure { margin: 12px 0 20px; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #6e6e73; font-size: 12.5px; margin-top: 4px; }
.best { background: #eef6ee; border-left: 4px solid #2ca02c; padding: 8px 12px; margin: 12px 0; }
.meta { margin: 4px 0 10px; padding-left: 18px; }
.meta li { margin: 1px 0; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #0b5cad; }
dl.defs dt { font-weight: 600; margin-top: 6px; }
dl.defs dd { margin-left: 18px; color: #333333; }
.invalid { background: #fdecea; border-left: 4px solid #d62728; padding: 8px 12px; margin: 12px 0; }
tr.invalid td { background: #fdecea; color: #8a1c1c; }
"""


def _table(table: Table, heading: str = "h3") -> str:
    head = "".join(
        f'<th class="{"n" if r else ""}">{escape(h)}</th>'
        for h, r in zip(table.headers, table.right, strict=True)
    )
    body = "".join(
        ('<tr class="invalid">' if any(INVALID_TAG in c for c in row[:2]) else "<tr>")
        + "".join(
            f'<td class="{"n" if r else ""}">{escape(c)}</td>' for c, r in zip(row, table.right, strict=True)
        )
        + "</tr>"
        for row in table.rows
    )
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in table.notes)
    return (
        f"<{heading}>{escape(table.title)}</{heading}>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"
    )


def _figure(svg: str | None, caption: str) -> str:
    if svg is None:
        return ""
    return f'<figure class="plot">{svg}<figcaption>{escape(caption)}</figcaption></figure>'


def _runs_table(names: Sequence[str], results: Sequence[Result]) -> Table:
    rows = [
        [
            name,
            engine_label(r.run),
            topology_name(r.run) or MISSING,
            parallelism(r.run) or MISSING,
            MISSING if gpu_count(r.run) is None else str(gpu_count(r.run)),
            device_text(r.run) if is_cpu(r.run) else (r.run.gpu_product or MISSING),
            r.run.model or MISSING,
            r.run.vllm_version or MISSING,
            r.run.started_at or MISSING,
            str(len(r.results)),
        ]
        for name, r in zip(names, results, strict=True)
    ]
    notes: dict[str, list[str]] = {}
    for name, r in zip(names, results, strict=True):
        if (note := sim_note(r.run)) is not None:
            notes.setdefault(note, []).append(name)
    return Table(
        "Runs",
        ["run", "engine", "topology", "TP x PP", "GPUs", "GPU or CPU", "model", "vLLM", "started", "levels"],
        rows,
        [False, False, False, False, True, False, False, False, False, True],
        [f"{', '.join(runs)} {note}" for note, runs in notes.items()],
    )


def _server_metrics_table(result: Result) -> Table | None:
    keys = sorted({k for lv in result.results for k in (lv.metrics.server_metrics_delta or {})})
    if not keys:
        return None
    labels = level_labels([lv.load for lv in result.results])
    rows = [
        [key] + [num((lv.metrics.server_metrics_delta or {}).get(key)) for lv in result.results]
        for key in keys
    ]
    return Table(
        "Server metrics scraped from /metrics",
        ["metric", *labels],
        rows,
        [False] + [True] * len(labels),
        ["counters (_total, _count, _sum): increase over the level; gauges: value after the level"],
    )


def _run_section(name: str, result: Result, anchor: str) -> str:
    meta = "".join(f"<li><b>{escape(h)}</b>: {escape(t)}</li>" for h, t in metadata_lines(result.run))
    heading = escape(tagged(name, result.run))
    parts = [f'<h3 id="{anchor}">{heading}</h3><ul class="meta">{meta}</ul>']
    invalid = [lv for lv in result.results if lv.invalid]
    if invalid:
        parts.append(
            f'<p class="invalid"><b>{len(invalid)} of {len(result.results)} level(s) {INVALID_TAG}</b>: the '
            "client, not the server, was the bottleneck there (see the client check table); their figures are "
            "partly the client's own queue.</p>"
        )
    if result.results:
        parts += [_table(t, "h4") for t in level_tables(result)]
    recovery = recovery_table(result)
    if recovery is not None:
        parts.append(_table(recovery, "h4"))
    predicted = predicted_table(result)
    parts += [
        _table(t, "h4")
        for t in [group_table(result), predicted, *server_view_tables(result), *workload_tables(result)]
        if t is not None
    ]
    server = _server_metrics_table(result)
    if server is not None:
        parts.append(
            f"<details><summary>Server metrics ({len(server.rows)})</summary>{_table(server, 'h4')}</details>"
        )
    return "".join(parts)


def _definitions() -> str:
    items = [(name, formula) for name, formula in LATENCY_FORMULAS.values()]
    items += [
        (
            "output tokens/s",
            "sum of usage.completion_tokens (the server's count, never a count of chunks) / measured window",
        ),
        ("request throughput", "completed requests / measured window"),
        ("goodput", "requests meeting every SLO of the level (TTFT, TPOT, E2EL) / measured window"),
        ("window", WINDOW_FORMULA),
        ("per GPU", PER_GPU_FORMULA),
        ("missing values", f"shown as {MISSING}: not measured or not recorded, never zero"),
    ]
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return f'<h2 id="definitions">Definitions</h2><dl class="defs">{body}</dl>'


def _comparison_section(cmp: Comparison, runs: int) -> tuple[str, str, str]:
    """The comparison across runs: notes on mixed or invalid runs, the tables, the best setting."""
    parts = [f'<p class="best"><b>{escape(allowed_note(cmp.mixed))}</b></p>'] if cmp.mixed else []
    if cmp.invalid:
        parts.append(f'<p class="invalid"><b>{escape(allowed_invalid_note(cmp.invalid))}</b></p>')
    parts.append(_table(per_run_table(cmp)))
    if runs > 1:
        parts += [_table(t) for t in pivot_tables(cmp)]
    parts.append(_table(frontier_table(cmp)))
    best = best_lines(cmp)
    parts.append(
        f'<div class="best"><b>{escape(best[0])}</b>'
        + "".join(f"<br>{escape(line)}" for line in best[1:])
        + "</div>"
    )
    return ("comparison", "Comparison across runs", "".join(parts))


def _figure_sections(
    cmp: Comparison, plain: Sequence[str], results: Sequence[Result]
) -> list[tuple[str, str, str]]:
    """The figures, drawn from the runs as compared (``cmp``), but restart recovery in Kubernetes' own times."""
    shown = cmp.names  # tagged with the sim tag where a run was simulated
    drawn = cmp.results  # as compared: in modelled time when the comparison converted them
    sections: list[tuple[str, str, str]] = []
    figures = [
        _figure(
            plots.throughput_latency(shown, drawn),
            "One curve per run across its load levels (points labelled by load). Output tokens/s = sum of "
            "usage.completion_tokens / measured window; TPOT and TTFT p99 per level.",
        ),
    ]
    sections.append(("throughput", "Throughput against latency", "".join(figures)))
    sections.append(
        (
            "per-gpu",
            f"Per-{cmp.unit} throughput",
            _figure(
                plots.per_gpu_throughput(cmp),
                f"{unit_formula(cmp.unit)}. Right: every level of every run; the dashed line joins the Pareto "
                f"frontier (no other level has both lower TPOT p99 and higher per-{cmp.unit} output throughput).",
            ),
        )
    )
    dist = "".join(
        _figure(
            plots.distributions(n, r, i),
            f"{n}: percentiles per load level (light = low load, dark = high load). "
            "TTFT = first token-carrying chunk - send time; TPOT = (last - first token time) / "
            "(output tokens - 1); ITL = gaps between token-carrying chunks, pooled.",
        )
        for i, (n, r) in enumerate(zip(shown, drawn, strict=True))
    )
    sections.append(("distributions", "Latency distributions", dist))
    timeline = "".join(
        _figure(
            timeline_plot.timeline(n, r, i),
            f"{n}: each level from its start for its measured window; server metrics "
            "from vLLM's /metrics scraped around each level, when present.",
        )
        for i, (n, r) in enumerate(zip(shown, drawn, strict=True))
    )
    if timeline:
        sections.append(("timeline", "Timeline", timeline))
    recovery = plots.recovery(  # Kubernetes' times, never converted to modelled time
        [tagged(n, r.run) for n, r in zip(plain, results, strict=True)], results
    )
    if recovery is not None:
        sections.append(
            (
                "recovery",
                "Restart recovery",
                _figure(
                    recovery,
                    "Seconds from each injected fault until the group's pods were replaced, serving was "
                    "available again, and the first request succeeded.",
                ),
            )
        )
    return sections


def _page(
    title: str, plain: Sequence[str], results: Sequence[Result], sections: list[tuple[str, str, str]]
) -> str:
    nav = (
        "".join(f'<a href="#{a}">{escape(h)}</a>' for a, h, _ in sections)
        + '<a href="#definitions">Definitions</a>'
    )
    body = "".join(f'<section><h2 id="{a}">{escape(h)}</h2>{html}</section>' for a, h, html in sections)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body><main>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="sub">{len(results)} result file(s), schema {escape(SCHEMA_VERSION)}</p>'
        f"{_table(_runs_table(plain, results))}<nav>{nav}</nav>{body}{_definitions()}"
        "</main></body></html>\n"
    )


def render_html(
    results: Sequence[Result],
    names: Sequence[str] | None = None,
    comparison: Comparison | None = None,
    title: str = "Benchmark report",
    *,
    modelled_time: bool = False,
) -> str:
    """A single-file HTML page for one or more result files.

    With several runs (or a comparison built with SLOs) the page starts with the comparison across runs.
    Without a comparison given, runs of different provenance are shown side by side with a note saying how
    they differ. The plots follow the comparison: simulated runs in modelled time when it was built so
    (or when ``modelled_time``), else as measured; every simulated run is tagged where it is drawn.
    """
    plain = display_names(results, names)
    cmp = (
        comparison
        if comparison is not None
        else compare(results, plain, allow_mixed=True, modelled_time=modelled_time, allow_invalid=True)
    )
    sections: list[tuple[str, str, str]] = []  # (anchor, heading, html)
    if len(results) > 1 or cmp.slo:
        sections.append(_comparison_section(cmp, len(results)))
    sections += _figure_sections(cmp, plain, results)
    runs = "".join(
        _run_section(n, r, f"run-{i}") for i, (n, r) in enumerate(zip(plain, results, strict=True))
    )
    sections.append(("runs", "Runs in detail", runs))
    return _page(title, plain, results, sections)
