"""Merging the Locust processes' raw JSON lines: one time line, the same metrics code as the async
generator, and an SLO verdict over the raw samples (not Locust's rounded percentiles)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from load.locust.merge import RawRecordsError, parse_raw_lines, read_raw_files, slo_breaches
from load.metrics import level_metrics
from load.records import RequestRecord


def anchor(worker: str, host: str, perf: float, wall: float, index: int = 0) -> str:
    return json.dumps({"type": "worker", "format": 1, "worker": worker, "role": "worker", "index": index,
                       "host": host, "pid": 1, "perf": perf, "wall": wall})  # fmt: skip


def request(worker: str, index: int, sent: float, chunks: list[float], tokens: int | None = None,
            error: str | None = None) -> str:  # fmt: skip
    return json.dumps({
        "type": "request", "worker": worker, "index": index, "scheduled": sent, "sent": sent,
        "chunk_times": chunks, "finished": (chunks[-1] + 0.001) if chunks else sent + 0.5,
        "prompt_tokens": 10 if error is None else None,
        "output_tokens": (tokens if tokens is not None else len(chunks)) if error is None else None,
        "status": 200 if error is None else None, "error": error, "error_detail": None,
    })  # fmt: skip


def done(index: int, sent: float, chunks: list[float]) -> RequestRecord:
    """The record the client itself would have kept for ``request(...)`` without an error."""
    return RequestRecord(
        index=index, scheduled=sent, ready=sent, sent=sent, chunk_times=chunks, finished=chunks[-1] + 0.001,
        prompt_tokens=10, output_tokens=len(chunks), status=200,
    )  # fmt: skip


def lines(*texts: str) -> list[tuple[str, str]]:
    return [(f"t:{n}", text) for n, text in enumerate(texts, 1)]


def test_processes_on_one_host_keep_their_exact_monotonic_times(tmp_path: Path) -> None:
    # Two workers on one machine: the same perf_counter clock, anchors read a few microseconds apart.
    (tmp_path / "a.jsonl").write_text("\n".join([
        anchor("a", "h", 100.0, 1_000.0),
        request("a", 0, 101.0, [101.2, 101.3, 101.4]),
        request("a", 1, 101.5, [101.9, 102.0]),
    ]) + "\n")  # fmt: skip
    (tmp_path / "b.jsonl").write_text("\n".join([
        anchor("b", "h", 100.5, 1_000.5000037),
        request("b", 0, 101.1, [101.4, 101.6]),
        request("b", 1, 101.2, [], error="connect_error"),
    ]) + "\n")  # fmt: skip
    run = read_raw_files(tmp_path.glob("*.jsonl"))
    assert run.workers == ["a", "b"] and run.sent_by_worker == {"a": 2, "b": 2}
    assert [r.index for r in run.records] == [0, 1, 2, 3]
    first = run.records[0]
    assert first.sent == pytest.approx(1.0) and first.chunk_times[0] == pytest.approx(1.2)  # since the anchor
    direct = [
        done(0, 101.0, [101.2, 101.3, 101.4]),
        done(1, 101.1, [101.4, 101.6]),
        RequestRecord(index=2, scheduled=101.2, sent=101.2, finished=101.7, error="connect_error"),
        done(3, 101.5, [101.9, 102.0]),
    ]
    merged, expected = level_metrics(run.records), level_metrics(direct)
    assert merged.requests == expected.requests
    assert merged.duration_s == pytest.approx(expected.duration_s)
    assert merged.ttft_ms.p50 == pytest.approx(expected.ttft_ms.p50)
    assert merged.throughput.output_tokens_per_s == pytest.approx(expected.throughput.output_tokens_per_s)


def test_hosts_are_aligned_by_their_wall_clocks() -> None:
    # Pods on two nodes: perf_counter values are unrelated; the wall clocks say b started 2 s after a.
    run = parse_raw_lines(lines(
        anchor("a", "node-1", 5_000.0, 1_000.0),
        anchor("b", "node-2", 77.0, 1_002.0),
        request("a", 0, 5_000.0, [5_001.0]),
        request("b", 0, 77.0, [78.0]),
    ))  # fmt: skip
    assert [(r.sent, r.chunk_times[0]) for r in run.records] == [(0.0, 1.0), (2.0, 3.0)]
    metrics = level_metrics(run.records)
    assert metrics.duration_s == pytest.approx(3.001)
    assert metrics.ttft_ms.p50 == pytest.approx(1000.0)


def test_a_last_line_cut_short_is_skipped_but_a_broken_line_inside_is_an_error() -> None:
    good = [anchor("a", "h", 0.0, 0.0), request("a", 0, 1.0, [1.5])]
    assert len(parse_raw_lines(lines(*good, '{"type": "requ')).records) == 1
    with pytest.raises(RawRecordsError, match="t:2: not a JSON line"):
        parse_raw_lines(lines(good[0], "garbage", good[1]))
    with pytest.raises(RawRecordsError, match="no clock anchor line"):
        parse_raw_lines(lines(request("z", 0, 1.0, [1.5])))


def test_slo_breaches_use_the_raw_percentile() -> None:
    records = parse_raw_lines(lines(
        anchor("a", "h", 0.0, 0.0),
        *(request("a", n, float(n), [n + (50 + n) / 1000, n + 0.2], tokens=2) for n in range(100)),
    )).records  # fmt: skip
    # TTFT is 50..149 ms (p99 148.01, p50 99.5); E2EL 200 ms.
    assert slo_breaches(records, {"ttft_ms": 150}, 99) == []
    assert slo_breaches(records, {"ttft_ms": 148}, 99) == ["ttft_ms p99 148.0 > 148"]
    assert slo_breaches(records, {"ttft_ms": 100, "e2el_ms": 250}, 50) == []
    assert slo_breaches(records, {"e2el_ms": 199}, 50) == ["e2el_ms p50 200.0 > 199"]
    failed = parse_raw_lines(
        lines(anchor("a", "h", 0.0, 0.0), request("a", 0, 1.0, [], error="timeout"))
    ).records
    assert "no completed request" in slo_breaches(failed, {"tpot_ms": 10}, 99)[0]
