"""Comparison across runs: every level normalised per GPU (per pod and per CPU core when CPUs served every run:
reports/normalise.py), the Pareto frontier of normalised output throughput against TPOT p99, and the best setting
under given SLOs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reports.group_load import level_gpus
from reports.levels import level_labels
from reports.metrics import METRICS, PER_GPU_FORMULA
from reports.normalise import CORE_UNIT, GPU_UNIT, POD_UNIT, comparison_unit, core_count, per, pod_count
from reports.provenance import FieldMix, check_mixing, in_modelled_time, sim_note, tagged
from reports.runs import display_names, gpu_count_note, topology_name
from reports.schema import LevelResult, Result
from reports.tables import per_gpu
from reports.validity import InvalidLevel, check_valid, invalid_label

# An SLO names a latency family and optionally a percentile (default p99), or the error rate.
_SLO_KEY = re.compile(r"^(?P<family>ttft|tpot|itl|e2el)(?:_(?P<stat>p50|p90|p95|p99|max|mean))?_ms$")
SLO_HELP = (
    "ttft_ms, tpot_ms, itl_ms, e2el_ms (checked against p99; name a percentile as in tpot_p90_ms), "
    "error_rate (a fraction, default 0.01 whenever any SLO is given)"
)
DEFAULT_ERROR_RATE = 0.01


class SloError(ValueError):
    """An --slo argument that cannot be understood; the message lists what is valid."""


def slo_metric(key: str) -> str:
    """The metric key an SLO key is checked against: tpot_ms -> tpot_p99, ttft_p90_ms -> ttft_p90."""
    if key == "error_rate":
        return "error_rate"
    match = _SLO_KEY.match(key)
    if not match:
        raise SloError(f"unknown SLO {key!r}; valid: {SLO_HELP}")
    return f"{match['family']}_{match['stat'] or 'p99'}"


def parse_slo(text: str) -> dict[str, float]:
    """'tpot_ms=50,ttft_ms=2000' -> {'tpot_ms': 50.0, 'ttft_ms': 2000.0}; SloError on anything else."""
    slo: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            raise SloError(f"SLO {part!r} is not KEY=VALUE (e.g. tpot_ms=50)")
        slo_metric(key)
        try:
            slo[key] = float(value)
        except ValueError:
            raise SloError(f"SLO {key}: {value.strip()!r} is not a number") from None
        if slo[key] < 0:
            raise SloError(f"SLO {key}: {value.strip()} is negative")
    return slo


@dataclass(frozen=True)
class Point:
    """One load level of one run, with the values the comparison uses."""

    run: str
    run_index: int
    level: str
    topology: str | None
    gpus: int | None
    out_tps: float | None
    out_tps_per_gpu: float | None
    level_result: LevelResult
    unit: str = GPU_UNIT  # what the comparison ranks by: "GPU", "pod" or "CPU core"
    pods: int | None = None
    cores: int | None = None

    @property
    def out_tps_per_pod(self) -> float | None:
        return per(self.out_tps, self.pods)

    @property
    def out_tps_per_core(self) -> float | None:
        return per(self.out_tps, self.cores)

    @property
    def units(self) -> int | None:
        """How many of the comparison's unit served this run."""
        return {GPU_UNIT: self.gpus, POD_UNIT: self.pods, CORE_UNIT: self.cores}.get(self.unit)

    @property
    def out_tps_per_unit(self) -> float | None:
        """Output tokens/s per the comparison's unit: what the frontier and the best setting rank."""
        return self.out_tps_per_gpu if self.unit == GPU_UNIT else per(self.out_tps, self.units)

    def value(self, metric_key: str) -> float | None:
        return METRICS[metric_key].value(self.level_result)


@dataclass(frozen=True)
class SloVerdict:
    """Whether a level met the SLOs: True, False, or None when a value needed was missing."""

    meets: bool | None
    violated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def check_slo(point: Point, slo: Mapping[str, float]) -> SloVerdict:
    violated, missing = [], []
    for key, limit in slo.items():
        value = point.value(slo_metric(key))
        if value is None:
            missing.append(key)
        elif value > limit:
            violated.append(key)
    if violated:
        return SloVerdict(False, violated, missing)
    return SloVerdict(None if missing else True, violated, missing)


@dataclass(frozen=True)
class Comparison:
    names: list[str]  # display names, each with its sim tag where the run was simulated
    results: list[Result]  # as compared: simulated runs converted when modelled_time
    points: list[Point]
    frontier: list[Point]  # by ascending TPOT p99
    slo: dict[str, float]  # as checked, including the default error rate
    verdicts: dict[tuple[int, str], SloVerdict]  # (run index, level label)
    best: Point | None  # highest per-GPU output throughput meeting the SLOs (or overall without SLOs)
    best_per_run: list[Point | None]
    best_any: Point | None  # the same ranking without the SLOs (said when no level meets them)
    notes: list[str]
    mixed: list[FieldMix] = field(default_factory=list)  # provenance fields that differ (allow_mixed)
    modelled_time: bool = False
    invalid: list[InvalidLevel] = field(default_factory=list)  # client-bound levels shown (allow_invalid)
    unit: str = GPU_UNIT  # per GPU, or per pod / per CPU core when CPUs served every run

    @property
    def on_cpus(self) -> bool:
        return self.unit != GPU_UNIT


def pareto_frontier(points: Sequence[Point]) -> list[Point]:
    """Points no other point beats on both lower TPOT p99 and higher output tokens/s per GPU (per the
    comparison's unit)."""
    known = [p for p in points if p.value("tpot_p99") is not None and p.out_tps_per_unit is not None]
    known.sort(key=lambda p: (p.value("tpot_p99"), -(p.out_tps_per_unit or 0.0)))
    frontier: list[Point] = []
    for point in known:
        if not frontier or (point.out_tps_per_unit or 0.0) > (frontier[-1].out_tps_per_unit or 0.0):
            frontier.append(point)
    return frontier


def _points(names: Sequence[str], results: Sequence[Result], unit: str = GPU_UNIT) -> list[Point]:
    points = []
    for index, (name, result) in enumerate(zip(names, results, strict=True)):
        pods, cores = pod_count(result.run), core_count(result.run)
        labels = level_labels([lv.load for lv in result.results])
        for label, level in zip(labels, result.results, strict=True):
            gpus = level_gpus(result.run, level)  # the GPUs of the groups that served it, where recorded
            out = level.metrics.throughput.output_tokens_per_s
            shown = invalid_label(label, level)
            points.append(
                Point(
                    name,
                    index,
                    shown,
                    topology_name(result.run),
                    gpus,
                    out,
                    per_gpu(out, gpus),
                    level,
                    unit,
                    pods,
                    cores,
                )
            )
    return points


def _best(points: Sequence[Point]) -> Point | None:
    ranked = [p for p in points if p.out_tps_per_unit is not None]
    return max(ranked, key=lambda p: p.out_tps_per_unit or 0.0, default=None)


def compare(
    results: Sequence[Result],
    names: Sequence[str] | None = None,
    slo: Mapping[str, float] | None = None,
    *,
    allow_mixed: bool = False,
    modelled_time: bool = False,
    sources: Sequence[str] | None = None,
    allow_invalid: bool = False,
    slo_note: str = "",
) -> Comparison:
    """Compare runs (typically one result file per topology). SLO keys as in ``parse_slo``.

    Runs that differ in engine, time scale, GPU product, testbed, model, workload or lengths raise
    MixedRunsError (naming the field and its values; ``sources`` names the runs, default their display
    names) unless ``allow_mixed``: then ``Comparison.mixed`` lists the fields that differ. ``modelled_time`` converts simulated runs to
    modelled time first (SLOs are then checked in modelled time).
    """
    plain = display_names(results, names)
    mixed = check_mixing(list(zip(sources or plain, results, strict=True)), allow_mixed)
    invalid = check_valid(sources or plain, results, allow_invalid)  # InvalidLevelsError unless allowed
    if modelled_time:
        results = [in_modelled_time(r) for r in results]
    shown = [tagged(n, r.run, modelled_time) for n, r in zip(plain, results, strict=True)]
    checked = dict(slo or {})
    for key in checked:
        slo_metric(key)
    if checked and "error_rate" not in checked:
        checked["error_rate"] = DEFAULT_ERROR_RATE
    unit = comparison_unit(results)
    points = _points(shown, results, unit)
    verdicts = {(p.run_index, p.level): check_slo(p, checked) for p in points}
    eligible = [  # a client-bound level never wins: its numbers are the client's
        p
        for p in points
        if not p.level_result.invalid and (not checked or verdicts[(p.run_index, p.level)].meets)
    ]
    notes = [
        f"{name}: {note}" for name, r in zip(plain, results, strict=True) if (note := gpu_count_note(r.run))
    ]
    simulated: dict[str, list[str]] = {}  # one note per distinct kind of simulated run, naming its runs
    for name, r in zip(plain, results, strict=True):
        if (note := sim_note(r.run, modelled_time)) is not None:
            simulated.setdefault(note, []).append(name)
    notes += [f"{', '.join(runs)} {note}" for note, runs in simulated.items()]
    if slo_note:
        notes.append(slo_note)
    return Comparison(
        names=shown,
        results=list(results),
        points=points,
        frontier=pareto_frontier(points),
        slo=checked,
        verdicts=verdicts,
        best=_best(eligible),
        best_per_run=[_best([p for p in eligible if p.run_index == i]) for i in range(len(results))],
        best_any=_best([p for p in points if not p.level_result.invalid]),
        notes=notes,
        mixed=mixed,
        modelled_time=modelled_time,
        invalid=invalid,
        unit=unit,
    )


def stored_slo(results: Sequence[Result]) -> tuple[dict[str, float], str]:
    """The SLOs the runs were measured under (every level stores its own, `load.slo`) when all levels of all
    runs agree, with a note saying so; else none, and a note when they disagree (give --slo then)."""
    kinds = {tuple(sorted(level.load.slo.items())) for r in results for level in r.results}
    if len(kinds) > 1:
        seen = "; ".join(sorted(slo_text(dict(k)) or "none" for k in kinds))
        return {}, f"the runs were measured under different SLOs ({seen}): none applied here; give --slo"
    stored = dict(next(iter(kinds))) if kinds else {}
    if not stored:
        return {}, ""
    return (
        stored,
        f"SLOs as stored in the runs ({slo_text(stored)}); --slo overrides them, --slo none drops them",
    )


def slo_text(slo: Mapping[str, float]) -> str:
    parts = []
    for key, limit in slo.items():
        metric = slo_metric(key)
        parts.append(
            f"error rate <= {limit:.1%}"
            if metric == "error_rate"
            else f"{METRICS[metric].label} <= {limit:g} ms"
        )
    return ", ".join(parts)


FRONTIER_FORMULA = (
    "Pareto frontier: the levels that no other level beats on both lower TPOT p99 and "
    f"higher output tokens/s per GPU ({PER_GPU_FORMULA})"
)
