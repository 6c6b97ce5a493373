"""The catalogue of metrics read from a load level: name, unit, formula and which direction is better.

Every report, the comparison and the gate read metrics through this one table, so a column header, the
formula printed under it and the gate's direction can never disagree. A getter returns None when the
result file has no value: missing data is never 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reports.schema import Distribution, LevelResult


@dataclass(frozen=True)
class Metric:
    key: str  # stable name used on the command line (--tolerance, --slo) and in gate output
    label: str  # short column header
    unit: str
    formula: str  # how the value was computed, printed with every report
    higher_is_better: bool
    get: Callable[[LevelResult], float | None]

    def value(self, level: LevelResult) -> float | None:
        return self.get(level)


# Metric families, their formulas as docs/architecture.md defines them (vLLM `bench serve` semantics).
LATENCY_FORMULAS: dict[str, tuple[str, str]] = {
    "ttft": ("TTFT", "first token-carrying chunk - request send time"),
    "tpot": (
        "TPOT",
        "(last token time - first token time) / (output tokens - 1), per request with > 1 token",
    ),
    "itl": ("ITL", "gaps between consecutive token-carrying chunks, pooled over requests"),
    "e2el": ("E2EL", "last token time - request send time"),
    "schedule_lag": ("lag", "send time - scheduled send time (a saturated client shows itself here)"),
}
STATS = ("mean", "p50", "p90", "p95", "p99", "max")


def _distribution(level: LevelResult, family: str) -> Distribution:
    dist: Distribution = getattr(level.metrics, f"{family}_ms")
    return dist


def _latency_getter(family: str, stat: str) -> Callable[[LevelResult], float | None]:
    def get(level: LevelResult) -> float | None:
        value: float | None = getattr(_distribution(level, family), stat)
        return value

    return get


def _error_rate(level: LevelResult) -> float | None:
    counts = level.metrics.requests
    return None if counts.sent == 0 else counts.failed / counts.sent


def _build() -> dict[str, Metric]:
    catalogue = [
        Metric(
            "output_tokens_per_s",
            "out tok/s",
            "tok/s",
            "sum of usage.completion_tokens / measured window",
            True,
            lambda lv: lv.metrics.throughput.output_tokens_per_s,
        ),
        Metric(
            "total_tokens_per_s",
            "total tok/s",
            "tok/s",
            "(prompt + completion tokens from usage) / measured window",
            True,
            lambda lv: lv.metrics.throughput.total_tokens_per_s,
        ),
        Metric(
            "requests_per_s",
            "req/s",
            "req/s",
            "completed requests / measured window",
            True,
            lambda lv: lv.metrics.throughput.requests_per_s,
        ),
        Metric(
            "goodput",
            "goodput",
            "req/s",
            "requests meeting every SLO of the level (TTFT, TPOT, E2EL) / measured window",
            True,
            lambda lv: lv.metrics.goodput_requests_per_s,
        ),
        Metric(
            "error_rate",
            "failed",
            "fraction",
            "failed requests / sent requests",
            False,
            _error_rate,
        ),
    ]
    for family, (name, formula) in LATENCY_FORMULAS.items():
        for stat in STATS:
            catalogue.append(
                Metric(
                    f"{family}_{stat}",
                    f"{name} {stat}",
                    "ms",
                    f"{name} = {formula}",
                    False,
                    _latency_getter(family, stat),
                )
            )
    return {m.key: m for m in catalogue}


METRICS: dict[str, Metric] = _build()

# The measured window every throughput divides by, named once for the reports.
WINDOW_FORMULA = "measured window = first send to last completion of the level (duration_s)"
PER_GPU_FORMULA = (
    "per GPU = value / GPUs of the LWS groups that served the level (any request; see Requests per LWS group), "
    "or / run.gpus (every group) where the split was not recorded"
)


def metric(key: str) -> Metric:
    """Look a metric up by its key; the error lists the valid keys."""
    try:
        return METRICS[key]
    except KeyError:
        raise KeyError(f"unknown metric {key!r}; valid: {', '.join(sorted(METRICS))}") from None
