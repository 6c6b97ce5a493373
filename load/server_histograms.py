"""vLLM's latency histograms from ``/metrics``: bucket counts, their change over a level, and percentiles
with the bucket that holds them.

A Prometheus histogram only says how many observations fell at or below each bucket edge (``le``), so a
percentile is known only to lie inside one bucket: ``lower < x <= upper``. Which bucket holds the k-th
smallest observation (1-based) is the first whose cumulative count reaches k. ``estimate`` interpolates
linearly inside that bucket, as Prometheus' ``histogram_quantile`` does; the bounds are the facts.

vLLM 0.32's families and buckets: ``vllm/v1/metrics/loggers.py`` and ``vllm/v1/metrics/buckets.py``
(``vllm:time_to_first_token_seconds``, ``vllm:inter_token_latency_seconds``, which replaced
``vllm:time_per_output_token_seconds`` in 0.10; ``vllm:e2e_request_latency_seconds``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

TTFT = "vllm:time_to_first_token_seconds"
ITL = "vllm:inter_token_latency_seconds"
ITL_BEFORE_0_10 = "vllm:time_per_output_token_seconds"
E2EL = "vllm:e2e_request_latency_seconds"
LATENCY_FAMILIES = (TTFT, ITL, ITL_BEFORE_0_10, E2EL)

Buckets = dict[float, float]  # upper edge (le, seconds; math.inf for +Inf) -> cumulative count

# prometheus-fastapi-instrumentator's request duration, which vLLM exposes (vllm/entrypoints/serve/
# instrumentator/metrics.py): timed in the ASGI middleware from the request's arrival to the end of the
# response body, so for a stream it spans the whole stream; labels handler and method.
HTTP_DURATION = "http_request_duration_seconds"
GENERATE_HANDLERS = ("/v1/completions", "/v1/chat/completions")


def parse_request_spans(
    text: str, handlers: tuple[str, ...] = GENERATE_HANDLERS
) -> tuple[float, float] | None:
    """(sum of seconds, count) of ``http_request_duration_seconds`` for POSTs to ``handlers``; None if absent."""
    total_s = count = 0.0
    seen = False
    for raw in text.splitlines():
        line = raw.strip()
        brace = line.find("{")
        name = line[:brace]
        if brace == -1 or name not in (HTTP_DURATION + "_sum", HTTP_DURATION + "_count"):
            continue
        end = line.rfind("}")
        labels = line[brace + 1 : end]
        if _label(labels, "handler") not in handlers or _label(labels, "method") != "POST":
            continue
        try:
            value = float(line[end + 1 :].split()[0])
        except (ValueError, IndexError):
            continue
        seen = True
        if name.endswith("_sum"):
            total_s += value
        else:
            count += value
    return (total_s, count) if seen else None


def parse_buckets(text: str, families: tuple[str, ...] = LATENCY_FAMILIES) -> dict[str, Buckets]:
    """The ``<family>_bucket`` samples of ``text``, cumulative counts summed over every other label."""
    wanted = {f + "_bucket": f for f in families}
    out: dict[str, Buckets] = {}
    for raw in text.splitlines():
        line = raw.strip()
        brace = line.find("{")
        if brace == -1 or line[:brace] not in wanted:
            continue
        end = line.rfind("}")
        le = _label(line[brace + 1 : end], "le")
        try:
            value = float(line[end + 1 :].split()[0])
            edge = float(le) if le is not None else None
        except (ValueError, IndexError):
            continue
        if edge is None or not math.isfinite(value):
            continue
        family = out.setdefault(wanted[line[:brace]], {})
        family[edge] = family.get(edge, 0.0) + value
    return {name: dict(sorted(b.items())) for name, b in out.items()}


def _label(labels: str, key: str) -> str | None:
    for part in labels.split(","):
        name, _, value = part.partition("=")
        if name.strip() == key:
            return value.strip().strip('"')
    return None


def bucket_delta(before: Buckets | None, after: Buckets) -> Buckets | None:
    """The observations made between two scrapes; None when a bucket went down (the server restarted)."""
    out: Buckets = {}
    for edge, count in after.items():
        change = count - (before or {}).get(edge, 0.0)
        if change < 0:
            return None
        out[edge] = change
    return out


@dataclass(frozen=True)
class Bracket:
    """Where the k-th smallest observation lies, in seconds: lower < x <= upper (upper inf: +Inf bucket)."""

    lower: float
    upper: float


def bracket(buckets: Buckets, k: int) -> Bracket | None:
    """The bucket holding the k-th smallest observation (1-based); None when there are fewer than k."""
    previous = 0.0
    for edge, cumulative in buckets.items():
        if cumulative >= k:
            return Bracket(previous, edge)
        previous = edge
    return None


def total(buckets: Buckets) -> int:
    return round(buckets.get(math.inf, max(buckets.values(), default=0.0)))


@dataclass(frozen=True)
class PercentileBounds:
    """Bounds of ``np.percentile(x, q)`` (linear) over the observations, from their buckets, in seconds.

    The linear percentile lies between the order statistics j = floor(h) + 1 and j + 1, h = q/100 * (n - 1),
    so it is above the lower edge of the bucket of the j-th and at most the upper edge of the (j+1)-th.
    """

    lower: float
    upper: float
    estimate: float | None  # histogram_quantile's interpolation; None in the +Inf bucket


def percentile_bounds(buckets: Buckets, q: float) -> PercentileBounds | None:
    n = total(buckets)
    if n == 0:
        return None
    h = q / 100 * (n - 1)
    low, high = bracket(buckets, math.floor(h) + 1), bracket(buckets, math.ceil(h) + 1)
    if low is None or high is None:
        return None
    return PercentileBounds(low.lower, high.upper, _interpolate(buckets, q / 100 * n))


def _interpolate(buckets: Buckets, rank: float) -> float | None:
    previous_edge, previous_count = 0.0, 0.0
    for edge, cumulative in buckets.items():
        if cumulative >= rank:
            if math.isinf(edge):
                return None
            span = cumulative - previous_count
            fraction = (rank - previous_count) / span if span else 1.0
            return previous_edge + (edge - previous_edge) * fraction
        previous_edge, previous_count = edge, cumulative
    return None


def at_most(buckets: Mapping[float, float], edge: float) -> float:
    """How many observations were <= edge (edge must be one of the bucket edges)."""
    return buckets.get(edge, 0.0)
