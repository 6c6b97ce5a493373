"""The comparison as tables (shared by Markdown and HTML): per run, pivots by load, frontier, best under SLO."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from reports.compare import FRONTIER_FORMULA, Comparison, Point, slo_text
from reports.intervals import welch_interval
from reports.metrics import PER_GPU_FORMULA
from reports.normalise import CORE_UNIT, CPU_COMPARISON_NOTE, GPU_UNIT, PER_CORE_FORMULA, PER_POD_FORMULA
from reports.provenance import engine_label
from reports.runs import gpu_count, parallelism
from reports.tables import Table, cell
from reports.text import MISSING, num, pct
from reports.validity import INVALID_TAG


def _at(point: Point | None, pick: Callable[[Point], str]) -> str:
    return MISSING if point is None else pick(point)


def _count(value: int | None) -> str:
    return MISSING if value is None else str(value)


def per_run_table(cmp: Comparison) -> Table:
    if cmp.on_cpus:
        return cpu_per_run_table(cmp)
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
            _count(gpu_count(result.run)),
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


def _pivot_cell(
    point: Point, value: float | None, metric: str, divisor: Callable[[Point], int | None] | None
) -> str:
    text = cell(point.level_result, metric, value, divisor(point) if divisor is not None else None)
    return f"{text} [{INVALID_TAG}]" if point.level_result.invalid else text


def pivot_table(
    cmp: Comparison,
    title: str,
    pick: Callable[[Point], float | None],
    note: str,
    metric: str = "",
    per_gpu: bool = False,
    divisor: Callable[[Point], int | None] | None = None,
) -> Table:
    """Levels down, runs across: the same load level side by side for every run, with '± half-width' of
    the 95% interval of ``metric`` (divided by the GPUs when ``per_gpu``, else by ``divisor``) where the level
    was repeated."""
    if per_gpu:
        divisor = _gpus
    cells = {(p.run_index, _plain(p)): p for p in cmp.points}
    rows = []
    for level in _level_order(cmp):
        row = [level]
        for index in range(len(cmp.names)):
            point = cells.get((index, level))
            row.append(_pivot_cell(point, pick(point), metric, divisor) if point is not None else MISSING)
        rows.append(row)
    return Table(title, ["load", *cmp.names], rows, [False] + [True] * len(cmp.names), [note])


def _gpus(point: Point) -> int | None:
    return point.gpus


def _throughput_pivots(cmp: Comparison) -> list[Table]:
    """Output tokens/s per GPU by load; on CPUs per pod and per CPU core (when every run counted its cores)."""
    if not cmp.on_cpus:
        return [
            pivot_table(
                cmp,
                "Output tokens/s per GPU by load",
                lambda p: p.out_tps_per_gpu,
                PER_GPU_FORMULA,
                "output_tokens_per_s",
                per_gpu=True,
            )
        ]
    tables = [
        pivot_table(
            cmp,
            "Output tokens/s per pod by load",
            lambda p: p.out_tps_per_pod,
            PER_POD_FORMULA,
            "output_tokens_per_s",
            divisor=lambda p: p.pods,
        )
    ]
    if cmp.unit == CORE_UNIT:
        tables.append(
            pivot_table(
                cmp,
                "Output tokens/s per CPU core by load",
                lambda p: p.out_tps_per_core,
                PER_CORE_FORMULA,
                "output_tokens_per_s",
                divisor=lambda p: p.cores,
            )
        )
    return tables


def pivot_tables(cmp: Comparison) -> list[Table]:
    return [
        *_throughput_pivots(cmp),
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
        [p.run, p.level, num(p.value("tpot_p99")), num(p.out_tps_per_unit), num(p.out_tps)]
        for p in cmp.frontier
    ]
    unit, short = cmp.unit, _short(cmp.unit)
    notes = [FRONTIER_FORMULA if not cmp.on_cpus else _cpu_frontier_formula(cmp)]
    excluded = sum(1 for p in cmp.points if p.value("tpot_p99") is None or p.out_tps_per_unit is None)
    if excluded:
        notes.append(f"{excluded} level(s) left out: TPOT p99 or per-{unit} throughput missing")
    return Table(
        f"Pareto frontier: output tokens/s per {unit} against TPOT p99",
        ["run", "load", "TPOT p99 ms", f"out tok/s/{short}", "out tok/s"],
        rows,
        [False, False, True, True, True],
        notes,
    )


def best_lines(cmp: Comparison) -> list[str]:
    """Sentences naming the best setting, and why other levels did not qualify."""
    best, unit = cmp.best, cmp.unit
    if not cmp.slo:
        head = f"Best setting (no --slo given: highest output tokens/s per {unit} at any load): "
    else:
        head = f"Best setting under {slo_text(cmp.slo)}: "
    if best is None:
        valued = [p for p in cmp.points if p.out_tps_per_unit is not None]
        meeting = [p for p in cmp.points if cmp.verdicts[(p.run_index, p.level)].meets]
        if valued and all(p.level_result.invalid for p in valued):
            why = f": every level was client-bound [{INVALID_TAG}], so none can be ranked."
        elif cmp.slo and not meeting:
            why = " of the levels meets the SLOs."
        elif cmp.slo:  # some meet them, but none has a per-unit value to rank by
            why = f": {len(meeting)} level(s) meet the SLOs, but none has a per-{unit} value to rank by."
        else:
            why = f" (no per-{unit} values)."
        lines = [head + "none" + why]
        if cmp.slo and (any_ := cmp.best_any) is not None:
            lines.append(
                f"Without the SLOs: {any_.run} at {any_.level}: {num(any_.out_tps_per_unit)} output tok/s per "
                f"{unit} ({num(any_.out_tps)} tok/s on {_units_text(any_)}), TPOT p99 "
                f"{num(any_.value('tpot_p99'))} ms, TTFT p99 {num(any_.value('ttft_p99'))} ms."
            )
    else:
        lines = [
            head + f"{best.run} at {best.level}: {num(best.out_tps_per_unit)} output tok/s per {unit} "
            f"({num(best.out_tps)} tok/s on {_units_text(best)}), TPOT p99 {num(best.value('tpot_p99'))} ms, "
            f"TTFT p99 {num(best.value('ttft_p99'))} ms, failed {pct(best.value('error_rate'))}."
        ]
    if (ranked := best if best is not None else cmp.best_any) is not None:
        lines += difference_lines(cmp, ranked)  # with no level meeting the SLOs, for the best without them
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
    if cmp.on_cpus:
        lines += ["", CPU_COMPARISON_NOTE]  # its own paragraph
    return lines


def difference_lines(cmp: Comparison, best: Point) -> list[str]:
    """For the best setting against each other run at the same load, both repeated: the difference of their
    output tokens/s per unit with its 95% Welch interval (reports/intervals.py), and whether it excludes zero.
    Without repeats a difference is one draw each and is not said."""
    mine = _per_unit_repeats(best)
    if len(mine) < 2:
        return []
    lines = []
    for other in cmp.points:
        if other.run_index == best.run_index or _plain(other) != _plain(best):
            continue
        theirs = _per_unit_repeats(other)
        diff = welch_interval(theirs, mine)  # mine - theirs
        if diff is None:
            continue
        lo, hi = diff
        mean = statistics.fmean(mine) - statistics.fmean(theirs)
        verdict = (
            "the difference holds at 95%"
            if lo > 0 or hi < 0
            else f"not distinguishable from no difference at {len(mine)} and {len(theirs)} repeats"
        )
        caveat = (
            f" {other.run}'s level was client-bound [{INVALID_TAG}]: its figure is partly the client's, so the "
            "difference is too."
            if other.level_result.invalid
            else ""
        )
        lines.append(
            f"Against {other.run} at {_plain(other)}: {mean:+.2f} output tok/s per {cmp.unit} (95% Welch "
            f"interval {lo:+.2f} to {hi:+.2f}): {verdict}.{caveat}"
        )
    return lines


def _per_unit_repeats(point: Point) -> list[float]:
    """Each repeat's output tokens/s divided by the units the point is ranked per (its out_tps / per-unit)."""
    per_unit, total = point.out_tps_per_unit, point.out_tps
    if not point.level_result.repeats or not per_unit or not total:
        return []
    units = total / per_unit
    return [
        m.throughput.output_tokens_per_s / units
        for m in point.level_result.repeats
        if m.throughput.output_tokens_per_s is not None
    ]


def _units_text(point: Point) -> str:
    """'16 GPUs', or '2 pods, 4 CPU cores' when CPUs served."""
    if point.unit == GPU_UNIT:
        return f"{point.gpus} GPUs"
    cores = f", {point.cores} CPU cores" if point.cores is not None else ""
    return f"{_count(point.pods)} pods{cores}"


def _short(unit: str) -> str:
    return {CORE_UNIT: "core"}.get(unit, unit)


def _cpu_frontier_formula(cmp: Comparison) -> str:
    formula = PER_CORE_FORMULA if cmp.unit == CORE_UNIT else PER_POD_FORMULA
    return (
        "Pareto frontier: the levels that no other level beats on both lower TPOT p99 and "
        f"higher output tokens/s per {cmp.unit} ({formula})"
    )


def cpu_per_run_table(cmp: Comparison) -> Table:
    """Per run when CPUs served every run: pods, CPU cores, and the peak output throughput per pod and per core
    (at the level that ranks highest per the comparison's unit)."""
    rows = []
    for index, (name, result) in enumerate(zip(cmp.names, cmp.results, strict=True)):
        mine = [p for p in cmp.points if p.run_index == index]
        peak = max(
            (p for p in mine if p.out_tps_per_unit is not None),
            key=lambda p: p.out_tps_per_unit or 0.0,
            default=None,
        )
        best = cmp.best_per_run[index]
        row = [
            name,
            engine_label(result.run),
            parallelism(result.run) or MISSING,
            _count(mine[0].pods if mine else None),
            _count(mine[0].cores if mine else None),
            _at(peak, lambda p: num(p.out_tps)),
            _at(peak, lambda p: num(p.out_tps_per_pod)),
            _at(peak, lambda p: num(p.out_tps_per_core)),
            _at(peak, lambda p: p.level),
        ]
        if cmp.slo:
            row += [
                _at(best, lambda p: num(p.out_tps_per_unit)),
                _at(best, lambda p: p.level),
                _at(best, lambda p: num(p.value("tpot_p99"))),
                _at(best, lambda p: num(p.value("ttft_p99"))),
            ]
        rows.append(row)
    short = _short(cmp.unit)
    headers = [
        "run",
        "engine",
        "TP x PP",
        "pods",
        "CPU cores",
        "peak out tok/s",
        "per pod",
        "per core",
        "at load",
    ]
    if cmp.slo:
        headers += [f"at SLO out tok/s/{short}", "at load", "TPOT p99 ms", "TTFT p99 ms"]
    notes = [
        PER_POD_FORMULA,
        PER_CORE_FORMULA,
        f"peak: the level with the highest output tokens/s per {cmp.unit}",
    ]
    if cmp.slo:
        notes.append(
            f"at SLO: the highest output throughput per {cmp.unit} among levels with {slo_text(cmp.slo)}"
        )
    notes += cmp.notes
    right = [False, False, False, True, True, True, True, True, False]
    right += [True, False, True, True] if cmp.slo else []
    return Table("Per run, normalised per pod and per CPU core", headers, rows, right, notes)
