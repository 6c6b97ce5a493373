"""The /metrics scrape: Prometheus text in, counter deltas and gauge values out."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from load.server_metrics import delta, parse_prometheus_text


def exposition(tokens: float, running: float, ttfts: list[float]) -> str:
    registry = CollectorRegistry()
    labels = ["model_name", "engine"]
    Counter("vllm:generation_tokens", "", labels, registry=registry).labels("m", "0").inc(tokens)
    Gauge("vllm:num_requests_running", "", labels, registry=registry).labels("m", "0").set(running)
    h = Histogram("vllm:time_to_first_token_seconds", "", labels, registry=registry, buckets=(0.1, 1.0))
    for value in ttfts:
        h.labels("m", "0").observe(value)
    Counter("process_cpu_seconds", "", registry=registry).inc(5)
    return generate_latest(registry).decode()


def test_counters_become_deltas_gauges_values_histograms_sum_and_count() -> None:
    before = parse_prometheus_text(exposition(100, 3, [0.2]))
    after = parse_prometheus_text(exposition(350, 7, [0.2, 0.5, 0.05]))
    d = delta(before, after)
    assert d == {
        "vllm:generation_tokens_total": pytest.approx(250),
        "vllm:num_requests_running": 7,
        "vllm:time_to_first_token_seconds_count": 2,
        "vllm:time_to_first_token_seconds_sum": pytest.approx(0.55),
    }


def test_label_sets_are_summed_and_labels_may_hold_braces_and_spaces() -> None:
    text = (
        "# TYPE vllm:prompt_tokens_total counter\n"
        'vllm:prompt_tokens_total{model_name="a {b} c",engine="0"} 10\n'
        'vllm:prompt_tokens_total{model_name="x\\"y",engine="1"} 5 1700000000000\n'
    )
    assert parse_prometheus_text(text).values == {"vllm:prompt_tokens_total": 15}


def test_a_counter_that_went_down_reports_its_value_since_the_restart() -> None:
    before = parse_prometheus_text(
        "# TYPE vllm:request_success_total counter\nvllm:request_success_total 90\n"
    )
    after = parse_prometheus_text("# TYPE vllm:request_success_total counter\nvllm:request_success_total 4\n")
    assert delta(before, after) == {"vllm:request_success_total": 4}
