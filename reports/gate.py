"""The regression gate: candidate runs against a baseline of repeat runs, metric by metric.

For every configuration (topology, model, TP, PP, GPUs) and load level found in both, and every gated
metric, the repeats on each side are folded into a mean, and the candidate is a regression when its mean
is worse than the baseline mean by more than

    allowed = max(tolerance x |baseline mean|,  k x s x sqrt(1/n_b + 1/n_c))

s is the standard deviation of a single run, from the baseline alone: the larger of the baseline's
repeats at this level and the coefficient of variation pooled over the baseline's levels of the
configuration for this metric times the baseline mean. Pooling across levels gives the noise estimate
enough degrees of freedom that five repeats cannot by chance look quieter than they are; taking the larger
keeps a noisy level from hiding behind quiet ones. The candidate's spread never widens the band: a change
that also makes runs erratic would otherwise buy its own allowance. With no baseline repeats there is no
noise term and the tolerance alone sets the band.

The tolerance is the smallest change worth failing a build for; the noise term widens the band when
repeats show larger run-to-run noise. Direction comes from the metric catalogue: throughput must not
fall, latency and error rate must not rise. A value missing on either side is reported, never read as 0;
a level or metric the baseline has and the candidate lacks fails the gate unless allow_missing, and with
strict an ``unclear`` check fails it too. A level whose server view found problems (the client's figures
shown impossible by the server's own histograms, load/server_view.py) is refused like a client-bound level.

Runs that differ in what produced their numbers (engine, simulator time scale, GPU product, testbed; see
reports/provenance.py) are refused as input unless mixing is allowed, and then the report says so.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reports.gate_verdict import DEFAULT_K, Verdict, judge, pooled_cv, worse_interval
from reports.levels import level_key, level_label
from reports.metrics import METRICS
from reports.provenance import (
    FieldMix,
    MixedRunsError,
    check_mixing_per_configuration,
    engine_label,
    in_modelled_time,
    sim_tag,
)
from reports.repeats import unfold
from reports.runs import config_key, config_name, layout_key
from reports.schema import LevelResult, Result
from reports.validity import (
    INVALID_TAG,
    SERVER_VIEW_TAG,
    InvalidLevel,
    InvalidLevelsError,
    check_server_view,
    check_valid,
    level_server_problems,
)

# Percent of the baseline mean; error_rate in percentage points. None switches a metric off.
DEFAULT_TOLERANCES: dict[str, float | None] = {
    "output_tokens_per_s": 5.0,
    "requests_per_s": 5.0,
    "goodput": 10.0,
    "ttft_p50": 10.0,
    "ttft_p99": 20.0,
    "tpot_p50": 5.0,
    "tpot_p99": 15.0,
    "itl_p50": 10.0,
    "itl_p99": 20.0,
    "e2el_p50": 10.0,
    "e2el_p99": 15.0,
    "error_rate": 1.0,
}
ABSOLUTE_METRICS = frozenset({"error_rate"})  # tolerances in percentage points, not relative


class GateInputError(ValueError):
    """Inputs the gate cannot judge (bad --tolerance, nothing in common between baseline and candidate,
    runs of different engine, time scale, GPU product, testbed, model, workload or lengths without allow_mixed)."""


def parse_tolerances(items: Sequence[str]) -> dict[str, float | None]:
    """['ttft_p99=25', 'itl_p99=off', 'output_tokens_per_s=3,goodput=8'] -> {...}; GateInputError otherwise."""
    out: dict[str, float | None] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            key, sep, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not sep:
                raise GateInputError(f"tolerance {part!r} is not METRIC=PERCENT (e.g. output_tokens_per_s=5)")
            if key not in METRICS:
                raise GateInputError(
                    f"tolerance for unknown metric {key!r}; valid: {', '.join(sorted(METRICS))}"
                )
            if value.lower() == "off":
                out[key] = None
                continue
            try:
                number = float(value.removesuffix("%"))
            except ValueError:
                raise GateInputError(f"tolerance {key}: {value!r} is not a percentage or 'off'") from None
            if number < 0 or math.isnan(number):
                raise GateInputError(f"tolerance {key}: {value} must be a percentage >= 0")
            out[key] = number
    return out


@dataclass(frozen=True)
class Check:
    """One metric at one load level of one configuration, baseline against candidate."""

    config: str
    level: str
    metric: str
    higher_is_better: bool
    baseline: tuple[float, ...]
    candidate: tuple[float, ...]
    baseline_missing: int  # repeats that had the level but no value for the metric
    candidate_missing: int
    tolerance: float  # as given: percent, or percentage points for ABSOLUTE_METRICS
    allowed: float | None  # absolute units of the metric
    noise: float | None  # k x sigma_diff, absolute units; None without repeats
    verdict: Verdict
    # 95% Welch interval of how much worse the candidate is (absolute units, positive = worse); None unless
    # both sides have two or more runs
    interval: tuple[float, float] | None = None

    @property
    def baseline_mean(self) -> float | None:
        return statistics.fmean(self.baseline) if self.baseline else None

    @property
    def baseline_sd(self) -> float | None:
        return statistics.stdev(self.baseline) if len(self.baseline) > 1 else None

    @property
    def candidate_mean(self) -> float | None:
        return statistics.fmean(self.candidate) if self.candidate else None

    @property
    def change(self) -> float | None:
        """Relative change of the candidate mean from the baseline mean."""
        b, c = self.baseline_mean, self.candidate_mean
        return None if b is None or c is None or b == 0 else (c - b) / abs(b)

    @property
    def band_from(self) -> str:
        """Which term set the allowed change: the tolerance, or the noise seen across repeats."""
        return (
            "noise"
            if self.noise is not None and self.noise > 0 and self.allowed == self.noise
            else "tolerance"
        )


@dataclass(frozen=True)
class GateReport:
    checks: list[Check]
    k: float
    tolerances: dict[str, float | None]
    baseline_files: int
    candidate_files: int
    mixed: list[FieldMix] = field(default_factory=list)  # provenance fields that differ (allow_mixed)
    modelled_time: bool = False
    invalid: list[InvalidLevel] = field(default_factory=list)  # client-bound levels gated (allow_invalid)
    # levels whose server view found problems, gated anyway (allow_invalid)
    server_view: list[InvalidLevel] = field(default_factory=list)
    allow_missing: bool = False  # a level or metric the candidate lacks is listed, not a failure
    strict: bool = False  # an unclear check fails the gate

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "REGRESSION"]

    @property
    def missing(self) -> list[Check]:
        return [c for c in self.checks if c.verdict in ("missing", "no baseline")]

    @property
    def failures(self) -> list[Check]:
        """The checks that fail the gate: regressions, what the candidate lacks (unless allow_missing) and,
        when strict, unclear changes."""
        failing = {"REGRESSION"}
        failing |= set() if self.allow_missing else {"missing"}
        failing |= {"unclear"} if self.strict else set()
        return [c for c in self.checks if c.verdict in failing]

    @property
    def passed(self) -> bool:
        return not self.failures


_Key = tuple[tuple[object, ...], tuple[object, ...]]  # (configuration key, level key)


def _fold(
    results: Sequence[Result], modelled: bool = False
) -> tuple[dict[_Key, list[LevelResult]], dict[_Key, tuple[str, str]], dict[_Key, str]]:
    """Levels grouped by (configuration, level key) across files: each file is one repeat; with each key's
    names and what served it (the sim tag, else the engine)."""
    groups: dict[_Key, list[LevelResult]] = defaultdict(list)
    names: dict[_Key, tuple[str, str]] = {}
    served: dict[_Key, str] = {}
    for result in results:
        run = result.run
        for level in result.results:
            key = (config_key(run), level_key(level.load))
            groups[key].extend(unfold(level))  # a level run with --repeats N counts as N runs
            names.setdefault(key, (config_name(run), level_label(level.load)))
            served.setdefault(key, sim_tag(run, modelled) or engine_label(run))
    return groups, names, served


def _config_label(config: str, key: _Key, base: Mapping[_Key, str], cand: Mapping[_Key, str]) -> str:
    """The configuration's name with what served it where it was simulated or differs between the sides."""
    b, c = base.get(key), cand.get(key)
    if b is not None and c is not None and b != c:
        return f"{config} [baseline {b}; candidate {c}]"
    tag = b or c
    return f"{config} [{tag}]" if tag and tag.startswith("sim") else config


def _refuse_mixed_or_invalid(
    baseline: Sequence[Result],
    candidate: Sequence[Result],
    sources: tuple[Sequence[str], Sequence[str]] | None,
    allow_mixed: bool,
    allow_invalid: bool,
) -> tuple[list[FieldMix], list[InvalidLevel]]:
    """The provenance fields that differ and the client-bound levels, when allowed; else GateInputError."""
    base_names_, cand_names_ = sources or (
        [f"#{i + 1}" for i in range(len(baseline))],
        [f"#{i + 1}" for i in range(len(candidate))],
    )
    base_sources = [f"baseline {name}" for name in base_names_]
    cand_sources = [f"candidate {name}" for name in cand_names_]
    try:
        mixed = check_mixing_per_configuration(
            [
                *zip(base_sources, baseline, strict=True),
                *zip(cand_sources, candidate, strict=True),
            ],
            lambda result: layout_key(result.run),
            allow_mixed,
        )
    except MixedRunsError as exc:
        raise GateInputError(str(exc)) from None
    try:
        invalid = check_valid([*base_sources, *cand_sources], [*baseline, *candidate], allow_invalid)
    except InvalidLevelsError as exc:
        raise GateInputError(str(exc)) from None
    return mixed, invalid


def _pooled_cvs(
    base_groups: Mapping[_Key, list[LevelResult]],
    metrics: Iterable[str],
) -> dict[tuple[object, str], float | None]:
    """(configuration key, metric) -> the coefficient of variation pooled over the baseline's levels."""
    return {
        (config, m): pooled_cv(
            [_values(levels, m) for key, levels in base_groups.items() if key[0] == config]
        )
        for config in {key[0] for key in base_groups}
        for m in metrics
    }


def _check(
    config: str,
    level: str,
    metric_key: str,
    tolerance: float,
    levels: tuple[Sequence[LevelResult], Sequence[LevelResult]],
    k: float,
    cv: float | None,
) -> Check:
    """One metric at one level: baseline ``levels[0]`` against candidate ``levels[1]``."""
    metric = METRICS[metric_key]
    b_all = [metric.value(lv) for lv in levels[0]]
    c_all = [metric.value(lv) for lv in levels[1]]
    b = tuple(v for v in b_all if v is not None)
    c = tuple(v for v in c_all if v is not None)
    if not b:  # the baseline never measured it (no level, or no value): nothing the candidate can lack
        verdict: Verdict = "no baseline"
        allowed = noise = None
    else:
        verdict, allowed, noise = judge(
            b, c, metric.higher_is_better, tolerance, metric_key in ABSOLUTE_METRICS, k, cv
        )
    return Check(
        config,
        level,
        metric_key,
        metric.higher_is_better,
        b,
        c,
        len(b_all) - len(b),
        len(c_all) - len(c),
        tolerance,
        allowed,
        noise,
        verdict,
        worse_interval(b, c, metric.higher_is_better),
    )


def gate(
    baseline: Sequence[Result],
    candidate: Sequence[Result],
    tolerances: Mapping[str, float | None] | None = None,
    k: float = DEFAULT_K,
    allow_no_baseline: bool = False,
    *,
    allow_mixed: bool = False,
    modelled_time: bool = False,
    sources: tuple[Sequence[str], Sequence[str]] | None = None,
    allow_invalid: bool = False,
    allow_missing: bool = False,
    strict: bool = False,
) -> GateReport:
    """Judge candidate runs against baseline runs. ``tolerances`` override or extend DEFAULT_TOLERANCES.

    When no level of the candidate matches the baseline, that is an input error (a wrong baseline would
    otherwise pass silently) unless ``allow_no_baseline``: then every check reads "no baseline" and the
    gate passes, as it should on the first night of a new configuration.

    Runs (on either side) that differ in engine, simulator time scale, GPU product or testbed are an input
    error naming the field and its values, unless ``allow_mixed``: then they are gated against each other
    and the report lists the fields that differ. ``sources`` names the files of each side for that message.
    ``modelled_time`` converts simulated runs to modelled time first.

    A level or metric of the baseline that the candidate lacks fails the gate unless ``allow_missing``;
    ``strict`` makes an ``unclear`` check fail it too. Levels whose server view found problems are an input
    error unless ``allow_invalid``, like client-bound levels.
    """
    if k < 0:
        raise GateInputError(f"k must be >= 0, got {k}")
    mixed, invalid = _refuse_mixed_or_invalid(baseline, candidate, sources, allow_mixed, allow_invalid)
    server_view = _refuse_server_view_problems(baseline, candidate, sources, allow_invalid)
    if modelled_time:
        baseline = [in_modelled_time(r) for r in baseline]
        candidate = [in_modelled_time(r) for r in candidate]
    merged = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    active = {m: t for m, t in merged.items() if t is not None}
    base_groups, base_names, base_served = _fold(baseline, modelled_time)
    cand_groups, cand_names, cand_served = _fold(candidate, modelled_time)
    if not set(base_groups) & set(cand_groups) and not allow_no_baseline:
        raise GateInputError(
            "no load level of the candidate matches the baseline (same topology, model, TP, PP, GPUs and "
            f"load); baseline has {_describe(base_names)}, candidate has {_describe(cand_names)}"
        )
    cvs = _pooled_cvs(base_groups, active)
    checks = []
    invalid_keys = {
        key for g in (base_groups, cand_groups) for key, lvs in g.items() if any(lv.invalid for lv in lvs)
    }
    server_view_keys = {
        key
        for g in (base_groups, cand_groups)
        for key, lvs in g.items()
        if any(map(level_server_problems, lvs))
    }
    for key in [*base_groups, *(k_ for k_ in cand_groups if k_ not in base_groups)]:  # in sweep order
        config, level = base_names.get(key) or cand_names[key]
        level = f"{level} [{INVALID_TAG}]" if key in invalid_keys else level
        level = f"{level} [{SERVER_VIEW_TAG}]" if key in server_view_keys else level
        config = _config_label(config, key, base_served, cand_served)
        levels = (base_groups.get(key, []), cand_groups.get(key, []))
        checks += [
            _check(config, level, metric_key, tolerance, levels, k, cvs.get((key[0], metric_key)))
            for metric_key, tolerance in active.items()
        ]
    return GateReport(
        checks,
        k,
        merged,
        len(baseline),
        len(candidate),
        mixed,
        modelled_time,
        invalid,
        server_view,
        allow_missing=allow_missing,
        strict=strict,
    )


def _refuse_server_view_problems(
    baseline: Sequence[Result],
    candidate: Sequence[Result],
    sources: tuple[Sequence[str], Sequence[str]] | None,
    allow_invalid: bool,
) -> list[InvalidLevel]:
    """The levels whose server view found problems, when allowed; else GateInputError."""
    names = sources or (
        [f"#{i + 1}" for i in range(len(baseline))],
        [f"#{i + 1}" for i in range(len(candidate))],
    )
    labelled = [f"baseline {n}" for n in names[0]] + [f"candidate {n}" for n in names[1]]
    try:
        return check_server_view(labelled, [*baseline, *candidate], allow_invalid)
    except InvalidLevelsError as exc:
        raise GateInputError(str(exc)) from None


def _values(levels: Sequence[LevelResult], metric_key: str) -> list[float]:
    return [v for lv in levels if (v := METRICS[metric_key].value(lv)) is not None]


def _describe(names: Mapping[_Key, tuple[str, str]]) -> str:
    configs = sorted({config for config, _ in names.values()})
    return f"{len(names)} level(s) of {', '.join(configs) or 'nothing'}"
