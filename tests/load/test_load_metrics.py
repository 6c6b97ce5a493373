"""Level metrics from records: each formula of docs/architecture.md on numbers worked out by hand."""

from __future__ import annotations

import pytest

from load.metrics import level_metrics
from load.records import RequestRecord


def done(
    index: int, sent: float, chunks: list[float], out: int, prompt: int = 10, scheduled: float | None = None
) -> RequestRecord:
    r = RequestRecord(index=index, scheduled=sent if scheduled is None else scheduled, sent=sent)
    r.chunk_times.extend(chunks)
    r.prompt_tokens, r.output_tokens = prompt, out
    r.finished = chunks[-1] + 0.001
    return r


def failed(index: int, sent: float, reason: str, at: float) -> RequestRecord:
    r = RequestRecord(index=index, scheduled=sent, sent=sent)
    r.fail(reason, None, at)
    return r


def test_ttft_tpot_itl_e2el_follow_the_definitions() -> None:
    # Request 0: sent 0, tokens at 0.100, 0.120, 0.160 (3 tokens). Request 1: sent 0.010, 5 tokens in
    # 2 chunks (0.210, 0.250): TPOT spreads the gap over the tokens, ITL does not.
    records = [done(0, 0.0, [0.100, 0.120, 0.160], 3), done(1, 0.010, [0.210, 0.250], 5)]
    m = level_metrics(records)
    assert m.ttft_ms.mean == pytest.approx((100 + 200) / 2)
    assert m.e2el_ms.max == pytest.approx(240)
    assert m.tpot_ms.p50 == pytest.approx(((160 - 100) / 2 + (250 - 210) / 4) / 2)
    assert (
        m.itl_ms.count == 3 and m.itl_ms.max == pytest.approx(40) and m.itl_ms.mean == pytest.approx(100 / 3)
    )
    assert m.input_tokens == 20 and m.output_tokens == 8


def test_throughput_is_over_the_window_from_first_send_to_last_end() -> None:
    records = [done(0, 1.0, [1.5, 2.0], 2, prompt=100), done(1, 1.5, [2.5, 2.999], 3, prompt=50)]
    m = level_metrics(records)
    assert m.duration_s == pytest.approx(2.0)
    assert m.throughput.requests_per_s == pytest.approx(1.0)
    assert m.throughput.output_tokens_per_s == pytest.approx(2.5)
    assert m.throughput.total_tokens_per_s == pytest.approx(77.5)


def test_failed_requests_count_but_stay_out_of_latency() -> None:
    records = [done(0, 0.0, [0.1, 0.2], 2), failed(1, 0.0, "http_500", 0.05), failed(2, 0.0, "timeout", 5.0)]
    m = level_metrics(records)
    assert (m.requests.sent, m.requests.completed, m.requests.failed) == (3, 1, 2)
    assert m.requests.errors_by_reason == {"http_500": 1, "timeout": 1}
    assert m.ttft_ms.count == 1
    assert m.duration_s == pytest.approx(5.0)  # the timed-out request holds the window open


def test_goodput_counts_requests_meeting_every_slo_inclusive() -> None:
    records = [
        done(0, 0.0, [0.100, 0.150], 2),  # TTFT 100, TPOT 50
        done(1, 0.0, [0.101, 0.150], 2),  # TTFT 101: misses
        done(2, 0.0, [0.050, 0.200], 2),  # TPOT 150: misses
        done(3, 0.0, [0.080], 1),  # one token: TPOT counts as 0
    ]
    m = level_metrics(records, slo={"ttft_ms": 100, "tpot_ms": 50})
    assert m.duration_s is not None
    assert m.goodput_requests_per_s == pytest.approx(2 / m.duration_s)
    assert level_metrics(records).goodput_requests_per_s is None


def test_schedule_lag_is_send_minus_due_for_every_request_sent() -> None:
    records = [done(0, 0.010, [0.1, 0.2], 2, scheduled=0.0), failed(1, 0.5, "http_429", 0.6)]
    records[1].scheduled = 0.497
    m = level_metrics(records)
    assert m.schedule_lag_ms.count == 2
    assert m.schedule_lag_ms.max == pytest.approx(10)
    assert m.schedule_lag_ms.mean == pytest.approx(6.5)


def test_no_samples_is_null_never_zero() -> None:
    m = level_metrics([failed(0, 0.0, "connect_error", 0.01)])
    assert m.ttft_ms.p50 is None and m.ttft_ms.count == 0 and m.tpot_ms.mean is None
    assert m.input_tokens is None and m.output_tokens is None
    empty = level_metrics([])
    assert empty.duration_s is None and empty.throughput.requests_per_s is None


def test_percentiles_are_linear_like_numpy() -> None:
    records = [done(i, 0.0, [(i + 1) / 1000, 1.0], 2) for i in range(100)]  # TTFT 1..100 ms
    m = level_metrics(records)
    assert m.ttft_ms.p50 == pytest.approx(50.5)
    assert m.ttft_ms.p90 == pytest.approx(90.1)
    assert m.ttft_ms.p99 == pytest.approx(99.01)
    assert m.ttft_ms.max == pytest.approx(100)
