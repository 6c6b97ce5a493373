"""The /metrics scrape: Prometheus text in, counter deltas and gauge values out."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from load.metrics import level_metrics
from load.records import RequestRecord
from load.server_metrics import (
    ClientCounts,
    ServerDelta,
    delta,
    parse_prometheus_text,
    reconcile,
    scrape_sync,
    server_delta,
)


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


# reconciling the client's counts with the server's counters ----------------------------------------------
def served(success: dict[str, float], generated: float, prompt: float) -> str:
    """/metrics as prometheus_client writes vLLM's: TYPE vllm:request_success, samples ..._total."""
    registry = CollectorRegistry()
    requests = Counter("vllm:request_success", "", ["model_name", "finished_reason"], registry=registry)
    for reason, n in success.items():
        requests.labels("m", reason).inc(n)
    Counter("vllm:generation_tokens", "", ["model_name"], registry=registry).labels("m").inc(generated)
    Counter("vllm:prompt_tokens", "", ["model_name"], registry=registry).labels("m").inc(prompt)
    return generate_latest(registry).decode()


def test_server_delta_sums_request_success_over_finished_reasons() -> None:
    before = parse_prometheus_text(served({"stop": 3, "length": 7}, 100, 500))
    after = parse_prometheus_text(served({"stop": 5, "length": 17, "abort": 1}, 1380, 2900))
    assert server_delta(before, after) == ServerDelta(13, 1280, 2400)


def test_reconcile_agrees_when_the_server_counted_what_the_client_saw() -> None:
    client = ClientCounts(sent=10, completed=10, failed=0, output_tokens=1280, prompt_tokens=2400)
    assert reconcile(client, ServerDelta(10, 1280, 2400)) == []
    # with failures the server's counts are bounded: a failed request may or may not have reached it
    with_failures = ClientCounts(sent=12, completed=10, failed=2, output_tokens=1280, prompt_tokens=2400)
    assert reconcile(with_failures, ServerDelta(11, 1300, 2640)) == []


@pytest.mark.parametrize(
    ("client", "server", "problem"),
    [
        # the client says 10 completed, the server finished 9: one completion it never counted
        (ClientCounts(10, 10, 0, 1280, 2400), ServerDelta(9, 1280, 2400), "saw 10 complete: 1 completion"),
        # more finished on the server than the client sent: someone else's traffic, or retries
        (ClientCounts(10, 10, 0, 1280, 2400), ServerDelta(12, 1280, 2400), "sent only 10: 2 request(s)"),
        # the client's usage and the server's token counter disagree
        (ClientCounts(10, 10, 0, 1280, 2400), ServerDelta(10, 1270, 2400), "1270 generated tokens"),
        (ClientCounts(10, 10, 0, 1280, 2400), ServerDelta(10, 1280, 2000), "2000 prompt tokens"),
        (
            ClientCounts(12, 10, 2, 1280, 2400),
            ServerDelta(10, 1000, 2400),
            "(2 failed request(s) may add some)",
        ),
        # nothing to reconcile with is not agreement
        (
            ClientCounts(10, 10, 0),
            ServerDelta(None, None, None),
            "server exports no vllm:request_success_total",
        ),
        (ClientCounts(10, 10, 0), ServerDelta(4, 0, 0, ("vllm:request_success_total",)), "went down"),
        (ClientCounts(10, 9, 0), ServerDelta(9, None, None), "client: sent 10 != completed 9 + failed 0"),
    ],
)
def test_reconcile_flags_a_disagreement(client: ClientCounts, server: ServerDelta, problem: str) -> None:
    problems = reconcile(client, server)
    assert any(problem in p for p in problems), problems


def test_a_restart_between_scrapes_is_reported_not_reconciled() -> None:
    before = parse_prometheus_text(served({"stop": 90}, 9000, 18000))
    after = parse_prometheus_text(served({"stop": 4}, 400, 800))
    delta_ = server_delta(before, after)
    assert delta_.went_down == (
        "vllm:request_success_total",
        "vllm:generation_tokens_total",
        "vllm:prompt_tokens_total",
    )
    assert "restarted" in reconcile(ClientCounts(4, 4, 0, 400, 800), delta_)[0]


def test_client_counts_from_records_and_from_a_result_level() -> None:
    done = RequestRecord(
        0, 0.0, sent=0.0, chunk_times=[0.1, 0.5, 0.9], finished=1.0, prompt_tokens=5, output_tokens=3
    )
    failed = RequestRecord(1, 0.0, sent=0.0, status=500, error="http_500", finished=1.0)
    unsent = RequestRecord(2, 0.0)
    assert ClientCounts.from_records([done, failed, unsent]) == ClientCounts(2, 1, 1, 3, 5)
    level = level_metrics([done, failed], None, {"vllm:request_success_total": 1.0})
    assert ClientCounts.from_level(level) == ClientCounts(2, 1, 1, 3, 5)
    assert ServerDelta.from_mapping(level.server_metrics_delta) == ServerDelta(1.0, None, None)


def test_scrape_sync_reads_a_live_metrics_endpoint_and_none_without_one() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = served({"stop": 2}, 20, 40).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/metrics"
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(body if found else b"")

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        snapshot = scrape_sync(url, settle_s=0.3)
        assert snapshot is not None and snapshot.values["vllm:request_success_total"] == 2
        assert scrape_sync(url + "/nothing-here") is None
    finally:
        server.shutdown()
        server.server_close()
