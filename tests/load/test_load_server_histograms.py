"""vLLM's latency histograms: buckets parsed and differenced, percentiles bounded by their buckets, and the
client's TTFT checked against them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from load.metrics import level_metrics
from load.records import RequestRecord
from load.server_histograms import (
    TTFT,
    bucket_delta,
    parse_buckets,
    parse_request_spans,
    percentile_bounds,
    total,
)
from load.server_metrics import parse_prometheus_text
from load.server_view import latency, server_view, span_checks, ttft_checks
from reports.schema import Distribution

BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5)  # vLLM 0.32's TTFT buckets, cut short


def exposition(ttfts: dict[str, list[float]]) -> str:
    """vllm:time_to_first_token_seconds with one label set per engine, as vLLM's /metrics shows it."""
    registry = CollectorRegistry()
    h = Histogram(TTFT, "", ["model_name", "engine"], registry=registry, buckets=BUCKETS)
    for engine, values in ttfts.items():
        for value in values:
            h.labels("m", engine).observe(value)
    return generate_latest(registry).decode()


def test_buckets_sum_over_label_sets_and_difference_over_a_level() -> None:
    before = parse_prometheus_text(exposition({"0": [0.003], "1": [0.03]}))
    after = parse_prometheus_text(exposition({"0": [0.003, 0.007, 0.2], "1": [0.03, 0.03]}))
    d = bucket_delta(before.buckets[TTFT], after.buckets[TTFT])
    assert d is not None
    assert d[0.005] == 0 and d[0.01] == 1 and d[0.04] == 2 and d[0.25] == 3 and d[math.inf] == 3
    assert total(d) == 3


def test_a_bucket_that_went_down_is_a_restart_not_a_delta() -> None:
    before = parse_buckets(exposition({"0": [0.003, 0.004]}))[TTFT]
    after = parse_buckets(exposition({"0": [0.003]}))[TTFT]
    assert bucket_delta(before, after) is None


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("q", [50, 90, 99])
def test_the_bounds_hold_the_percentile_of_the_observations(seed: int, q: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(mean=np.log(0.02), sigma=0.8, size=int(rng.integers(1, 60)))
    buckets = parse_buckets(exposition({"0": list(values)}))[TTFT]
    bounds = percentile_bounds(buckets, q)
    assert bounds is not None
    exact = float(np.percentile(values, q))
    assert bounds.lower < exact <= bounds.upper
    assert bounds.lower in (0.0, *BUCKETS)


def _check(
    server_s: list[float], client_ms: list[float], allowance_ms: float = 1.0
) -> tuple[list[str], list[str]]:
    text = exposition({"0": server_s})
    after = parse_prometheus_text(text)
    client = np.array(client_ms)
    p50, p90, p99 = np.percentile(client, (50, 90, 99))
    view = latency(TTFT, None, after, Distribution(p50=p50, p90=p90, p99=p99, count=client.size))
    assert view is not None
    return ttft_checks(after.buckets[TTFT], client, allowance_ms, view)


SERVER = [0.0062, 0.0071, 0.0068, 0.0075, 0.0083, 0.0091, 0.0066, 0.0079, 0.0088, 0.0072]


def test_a_client_a_little_slower_than_the_server_agrees() -> None:
    assert _check(SERVER, [s * 1e3 + 0.4 for s in SERVER]) == ([], [])


def test_a_client_whose_ttft_is_5ms_short_cannot_be() -> None:
    problems, _ = _check(SERVER, [s * 1e3 + 0.4 - 5 for s in SERVER])
    assert any("p50" in p and "below the server's lower bound 5 ms" in p for p in problems), problems
    assert any("client saw 10 requests <= 5 ms, the server only 0" in p for p in problems), problems


def test_a_client_5ms_slower_than_the_network_allows_is_warned() -> None:
    problems, warnings = _check(SERVER, [s * 1e3 + 5.4 for s in SERVER])
    assert problems == []
    assert any("exceeds the server's upper bound 10 ms" in w for w in warnings), warnings


def test_a_5ms_short_client_is_caught_by_the_mean_where_the_buckets_are_wide() -> None:
    """vLLM's TTFT buckets are 250 ms wide around a CPU engine's TTFT: no bucket bound sees 5 ms there,
    the exact mean (_sum / _count) does."""
    server = [0.26 + 0.004 * i for i in range(10)]  # all in (250, 500] ms
    honest = [s * 1e3 + 1.0 for s in server]
    assert _check(server, honest)[0] == []
    problems, _ = _check(server, [t - 5 for t in honest])
    assert len(problems) == 1 and problems[0].startswith("TTFT mean: client"), problems


def http_exposition(spans: list[float], other: list[float]) -> str:
    """vLLM's HTTP request durations (prometheus-fastapi-instrumentator): generate POSTs and other handlers."""
    registry = CollectorRegistry()
    h = Histogram(
        "http_request_duration_seconds", "", ["handler", "method"], registry=registry, buckets=(0.1, 0.5, 1)
    )
    for value in spans:
        h.labels("/v1/completions", "POST").observe(value)
    for value in other:
        h.labels("/v1/models", "GET").observe(value)
    return generate_latest(registry).decode()


def records_with_spans(spans_s: list[float]) -> list[RequestRecord]:
    out = []
    for i, span in enumerate(spans_s):
        r = RequestRecord(index=i, scheduled=10.0 * i, sent=10.0 * i)
        r.finished = r.sent + span if r.sent is not None else None
        out.append(r)
    return out


def test_request_spans_count_only_the_generate_posts() -> None:
    spans = parse_request_spans(http_exposition([0.2, 0.3], [5.0]))
    assert spans is not None and spans == (pytest.approx(0.5), 2)
    assert parse_request_spans(exposition({"0": [0.1]})) is None


@pytest.mark.parametrize(
    ("client_gap_ms", "problem", "warning"),
    [(0.5, False, False), (-5.0, True, False), (+20.0, False, True)],
    ids=["honest", "5ms-short", "client-slow"],
)
def test_a_client_span_shorter_than_the_servers_cannot_be(
    client_gap_ms: float, problem: bool, warning: bool
) -> None:
    before = parse_prometheus_text(http_exposition([], [1.0]))
    server = [0.21, 0.25, 0.3, 0.28]
    after = parse_prometheus_text(http_exposition(server, [1.0, 2.0]))
    records = records_with_spans([s + client_gap_ms / 1e3 for s in server])
    client, server_ms, problems, warnings = span_checks(before, after, records, allowance_ms=3.0)
    assert server_ms == pytest.approx(260.0) and client == pytest.approx(260.0 + client_gap_ms)
    assert bool(problems) is problem and bool(warnings) is warning, (problems, warnings)


def vllm_exposition(ttfts: list[float], e2es: list[float], spans: list[float]) -> str:
    registry = CollectorRegistry()
    labels = ["model_name", "engine"]
    t = Histogram(TTFT, "", labels, registry=registry, buckets=BUCKETS)
    e = Histogram("vllm:e2e_request_latency_seconds", "", labels, registry=registry, buckets=(0.3, 0.5, 1.0))
    h = Histogram(
        "http_request_duration_seconds", "", ["handler", "method"], registry=registry, buckets=(0.1, 1)
    )
    for ttft, e2e in zip(ttfts, e2es, strict=True):
        t.labels("m", "0").observe(ttft)
        e.labels("m", "0").observe(e2e)
    for span in spans:
        h.labels("/v1/completions", "POST").observe(span)
    return generate_latest(registry).decode()


def test_the_api_servers_own_time_is_measured_and_allowed_for() -> None:
    """Tokenizing before vLLM's TTFT timer starts adds 8 ms to every client TTFT: with the server's HTTP
    durations exported, that time is measured (HTTP span - e2e) and allowed; without them, warned about."""
    ttfts, e2es = [0.030 + 0.002 * i for i in range(10)], [0.200 + 0.002 * i for i in range(10)]
    records = []
    for i, (ttft, e2e) in enumerate(zip(ttfts, e2es, strict=True)):
        r = RequestRecord(index=i, scheduled=10.0 * i, sent=10.0 * i, chunk_times=[10.0 * i + ttft + 0.0085])
        r.chunk_times.append(10.0 * i + e2e + 0.0085)
        r.finished, r.output_tokens, r.prompt_tokens = 10.0 * i + e2e + 0.009, 2, 8
        records.append(r)
    metrics = level_metrics(records)
    before = parse_prometheus_text(vllm_exposition([], [], []))
    with_http = parse_prometheus_text(vllm_exposition(ttfts, e2es, [e + 0.008 for e in e2es]))
    view = server_view(metrics, records, before, with_http, network_ms=0.2)
    assert view is not None and view.http_overhead_ms == pytest.approx(8.0)
    assert [w for w in view.warnings if w.startswith("TTFT")] == []
    without = parse_prometheus_text(vllm_exposition(ttfts, e2es, []))
    view = server_view(metrics, records, before, without, network_ms=0.2)
    assert view is not None and view.http_overhead_ms is None
    assert any(w.startswith("TTFT mean") for w in view.warnings), view.warnings


def test_other_requests_on_the_server_bound_nothing() -> None:
    """Another client's requests in the server's histogram: the bounds hold per request, so none is claimed."""
    problems, warnings = _check([*SERVER, 0.3, 0.4], [s * 1e3 + 0.4 - 5 for s in SERVER])
    assert problems == []
    assert any("not the same requests" in w for w in warnings), warnings
