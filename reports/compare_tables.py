"""The comparison as tables (shared by Markdown and HTML): per run, pivots by load, frontier, best under SLO."""

from __future__ import annotations

from collections.abc import Callable

from reports.compare import FRONTIER_FORMULA, Comparison, Point, slo_text
from reports.metrics import PER_GPU_FORMULA
from reports.provenance import engine_label
from reports.runs import parallelism
from reports.tables import Table, cell
from reports.text import MISSING, num, pct
from reports.validity import INVALID_TAG


def _at(point: Point | None, pick: Callable[[Point], str]) -> str:
    return MISSING if point is None else pick(point)


def _count(value: int | None) -> str:
    return MISSING if value is None else str(value)


def per_run_table(cmp: Comparison) -> Table:
    rows = []
    for index, (name, result) in enumerate(zip(cmp.names, cmp.results, strict=True)):
        mine = [p for p in cmp.points if p.run_index == index]
        known = [p for p in mine if p.out_tps_per_gpu is not None]
        peak = max(known, key=lambda p: p.out_tps_per_gpu or 0.0, default=None)
        best = cmp.best_per_run[index]
        row = [
            name,
            engine_label(result.run),
            parallelism(result.run) or MISSING,
            _count(mine[0].gpus if mine else None),
            _at(peak, lambda p: num(p.out_tps_per_gpu)),
            _at(peak, lambda p: p.level),
        ]
        if cmp.slo:
            row += [
                _at(best, lambda p: num(p.out_tps_per_gpu)),
                _at(best, lambda p: p.level),
                _at(best, lambda p: num(p.value("tpot_p99"))),
                _at(best, lambda p: num(p.value("ttft_p99"))),
            ]
        rows.append(row)
    headers = ["run", "engine", "TP x PP", "GPUs", "peak out tok/s/GPU", "at load"]
    if cmp.slo:
        headers += ["at SLO out tok/s/GPU", "at load", "TPOT p99 ms", "TTFT p99 ms"]
    notes = [PER_GPU_FORMULA]
    if cmp.slo:
        notes.append(f"at SLO: the highest per-GPU output throughput among levels with {slo_text(cmp.slo)}")
    notes += cmp.notes
    right = [False, False, False, True, True, False] + ([True, False, True, True] if cmp.slo else [])
    return Table("Per run, normalised per GPU", headers, rows, right, notes)


def _level_order(cmp: Comparison) -> list[str]:
    def sort_key(point: Point) -> tuple[float, float]:
        load = point.level_result.load
        return (
            load.request_rate if load.request_rate is not None else float("inf"),
            load.concurrency if load.concurrency is not None else float("inf"),
        )

    order: list[str] = []
    for point in sorted(cmp.points, key=sort_key):
        if _plain(point) not in order:
            order.append(_plain(point))
    return order


def _plain(point: Point) -> str:
    """The level's label without its INVALID tag: the same load in a run where it was valid."""
    return point.level.removesuffix(f" [{INVALID_TAG}]")


def _pivot_cell(point: Point, value: float | None, metric: str, per_gpu: bool) -> str:
    text = cell(point.level_result, metric, value, point.gpus if per_gpu else None)
    return f"{text} [{INVALID_TAG}]" if point.level_result.invalid else text


def pivot_table(
    cmp: Comparison,
    title: str,
    pick: Callable[[Point], float | None],
    note: str,
    metric: str = "",
    per_gpu: bool = False,
) -> Table:
    """Levels down, runs across: the same load level side by side for every run, with '± half-width' of
    the 95% interval of ``metric`` (divided by the GPUs when ``per_gpu``) where the level was repeated."""
    cells = {(p.run_index, _plain(p)): p for p in cmp.points}
    rows = []
    for level in _level_order(cmp):
        row = [level]
        for index in range(len(cmp.names)):
            point = cells.get((index, level))
            row.append(_pivot_cell(point, pick(point), metric, per_gpu) if point is not None else MISSING)
        rows.append(row)
    return Table(title, ["load", *cmp.names], rows, [False] + [True] * len(cmp.names), [note])


def pivot_tables(cmp: Comparison) -> list[Table]:
    return [
        pivot_table(
            cmp,
            "Output tokens/s per GPU by load",
            lambda p: p.out_tps_per_gpu,
            PER_GPU_FORMULA,
            "output_tokens_per_s",
            per_gpu=True,
        ),
        pivot_table(
            cmp,
            "TPOT p99 (ms) by load",
            lambda p: p.value("tpot_p99"),
            "TPOT = (last token time - first token time) / (output tokens - 1), per request",
            "tpot_p99",
        ),
        pivot_table(
            cmp,
            "TTFT p99 (ms) by load",
            lambda p: p.value("ttft_p99"),
            "TTFT = first token-carrying chunk - request send time",
            "ttft_p99",
        ),
    ]


def frontier_table(cmp: Comparison) -> Table:
    rows = [
        [p.run, p.level, num(p.value("tpot_p99")), num(p.out_tps_per_gpu), num(p.out_tps)]
        for p in cmp.frontier
    ]
    notes = [FRONTIER_FORMULA]
    excluded = sum(1 for p in cmp.points if p.value("tpot_p99") is None or p.out_tps_per_gpu is None)
    if excluded:
        notes.append(f"{excluded} level(s) left out: TPOT p99 or per-GPU throughput missing")
    return Table(
        "Pareto frontier: output tokens/s per GPU against TPOT p99",
        ["run", "load", "TPOT p99 ms", "out tok/s/GPU", "out tok/s"],
        rows,
        [False, False, True, True, True],
        notes,
    )


def best_lines(cmp: Comparison) -> list[str]:
    """Sentences naming the best setting, and why other levels did not qualify."""
    best = cmp.best
    if not cmp.slo:
        head = "Best setting (no --slo given: highest output tokens/s per GPU at any load): "
    else:
        head = f"Best setting under {slo_text(cmp.slo)}: "
    if best is None:
        lines = [head + "none" + (" of the levels meets the SLOs." if cmp.slo else " (no per-GPU values).")]
    else:
        lines = [
            head + f"{best.run} at {best.level}: {num(best.out_tps_per_gpu)} output tok/s per GPU "
            f"({num(best.out_tps)} tok/s on {best.gpus} GPUs), TPOT p99 {num(best.value('tpot_p99'))} ms, "
            f"TTFT p99 {num(best.value('ttft_p99'))} ms, failed {pct(best.value('error_rate'))}."
        ]
    if cmp.slo:
        verdicts = list(cmp.verdicts.items())
        met = sum(1 for _, v in verdicts if v.meets)
        missed = [(k, v) for k, v in verdicts if v.meets is False]
        unknown = [(k, v) for k, v in verdicts if v.meets is None]
        lines.append(
            f"{met} of {len(verdicts)} levels meet the SLOs; {len(missed)} miss; "
            f"{len(unknown)} cannot be judged (missing data)."
        )
        for (index, level), verdict in unknown:
            lines.append(f"- {cmp.names[index]} {level}: no value for {', '.join(verdict.missing)}")
    return lines
