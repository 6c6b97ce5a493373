"""The CSVs beside a benchmark result, the progress line during a level, and --resume's checks and kept levels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fixtures import bench_resume
from fixtures.settings import UsageError
from load.level_runner import Progress
from load.records import RequestRecord
from reports.schema import (
    Distribution,
    LevelMetrics,
    LevelResult,
    LoadSpec,
    RequestCounts,
    Result,
    Throughput,
)
from suite.benchmark import level_files
from suite.benchmark.level_progress import LevelProgress

SLO = {"ttft_ms": 100.0, "tpot_ms": 20.0}


def _record(index: int, sent: float, ttft_s: float, gap_s: float, tokens: int) -> RequestRecord:
    r = RequestRecord(index=index, scheduled=sent - 0.001, ready=sent, sent=sent)
    r.chunk_times = [sent + ttft_s + k * gap_s for k in range(tokens)]
    r.finished = r.chunk_times[-1]
    r.output_tokens, r.prompt_tokens, r.status = tokens, 10, 200
    return r


def _level(rate: float | None, goodput: float | None) -> LevelResult:
    d = Distribution(p50=1.5, p99=2.5, count=2)
    return LevelResult(
        load=LoadSpec(
            concurrency=None if rate else 2, request_rate=rate, burstiness=1.0 if rate else None, slo=SLO
        ),
        metrics=LevelMetrics(
            ttft_ms=d,
            tpot_ms=d,
            itl_ms=d,
            e2el_ms=d,
            requests=RequestCounts(sent=2, completed=2, failed=0),
            throughput=Throughput(requests_per_s=1.0),
            goodput_requests_per_s=goodput,
        ),
    )


def test_the_requests_csv_says_which_request_met_the_slos(tmp_path: Path) -> None:
    path = tmp_path / "benchmark-x.json"
    good = _record(0, 10.0, 0.05, 0.01, 5)  # TTFT 50 ms, TPOT 10 ms
    slow = _record(1, 10.5, 0.30, 0.01, 5)  # TTFT 300 ms > 100
    failed = RequestRecord(index=2, scheduled=10.6, sent=10.6)
    failed.fail("http_500", "boom", 10.7)
    level_files.append_requests(path, level_files.request_rows(0, 0, [good, slow, failed], SLO))
    level_files.append_requests(path, level_files.request_rows(1, 0, [good], SLO))
    rows = list(csv.DictReader(level_files.requests_csv(path).open()))
    assert [(r["level"], r["index"], r["meets_slo"]) for r in rows] == [
        ("0", "0", "True"),
        ("0", "1", "False"),
        ("0", "2", "False"),
        ("1", "0", "True"),
    ]
    assert rows[0]["sent_s"] == "0" and float(rows[1]["sent_s"]) == pytest.approx(0.5)
    assert float(rows[0]["ttft_ms"]) == pytest.approx(50) and float(rows[0]["tpot_ms"]) == pytest.approx(10)
    assert rows[2]["ttft_ms"] == "" and rows[2]["error"] == "http_500"  # missing is empty, never 0
    level_files.drop_requests_after(path, 1)  # resume after one level kept
    assert [r["level"] for r in csv.DictReader(level_files.requests_csv(path).open())] == ["0", "0", "0"]


def test_the_levels_csv_has_a_row_per_level_with_goodput(tmp_path: Path) -> None:
    path = tmp_path / "benchmark-x.json"
    level_files.write_levels(Result(results=[_level(None, 0.5), _level(4.0, None)]), path)
    rows = list(csv.DictReader(level_files.levels_csv(path).open()))
    assert [(r["arrival"], r["concurrency"], r["request_rate"]) for r in rows] == [
        ("closed", "2", ""),
        ("poisson", "", "4"),
    ]
    assert rows[0]["goodput_requests_per_s"] == "0.5" and rows[1]["goodput_requests_per_s"] == ""
    assert rows[0]["slo"] == "tpot_ms=20;ttft_ms=100"


def _progress(level: int, sent: int, done: int, elapsed: float, planned: int | None = 10) -> Progress:
    return Progress(level, 1, "rate 2/s", planned, sent, done, 0, elapsed, duration_s=None)


def test_the_progress_line_shows_at_most_every_ten_seconds() -> None:
    said: list[str] = []
    now = [0.0]
    show = LevelProgress(said.append, "tp8-pp2", 2, clock=lambda: now[0])
    for t in range(0, 25):
        now[0] = float(t)
        show(_progress(1, min(t + 1, 9), t // 3, float(t)))
    assert len(said) == 3, said  # at 0, 10 and 20 s
    assert said[0].startswith("tp8-pp2: level 3 (rate 2/s): 1/10 sent")
    now[0] = 25.0
    show(_progress(1, 10, 10, 25.0))  # done: the caller says so, not the progress line
    assert len(said) == 3


def _write_result(directory: Path, config: dict[str, object] | None, levels: int) -> Path:
    path = directory / "benchmark-tp8-pp2.json"
    Result(results=[_level(None, 1.0)] * levels, config=config).write(path)
    return path


def test_resume_refuses_a_run_that_does_not_exist_or_wrote_nothing(tmp_path: Path) -> None:
    (tmp_path / "abc123").mkdir()
    with pytest.raises(UsageError, match=r"--resume nope: no run nope under .*runs there: abc123"):
        bench_resume.run_directory(tmp_path, "nope")
    with pytest.raises(UsageError, match="holds no benchmark result"):
        bench_resume.run_directory(tmp_path, "abc123")


def test_resume_keeps_the_levels_written_and_refuses_another_config(tmp_path: Path) -> None:
    config = {"load": [{"closed": {"concurrency": [1, 4], "num_requests": 8}}], "slo": SLO}
    path = _write_result(tmp_path, config, 1)
    assert bench_resume.stored_config(tmp_path) == json.loads(json.dumps(config))
    assert len(bench_resume.kept_levels(path)) == 1
    assert bench_resume.kept_levels(tmp_path / "benchmark-other.json") == []
    bench_resume.check_same("r1", bench_resume.stored_config(tmp_path), json.loads(json.dumps(config)))
    other = json.loads(json.dumps(config))
    other["load"][0]["closed"]["num_requests"] = 9
    with pytest.raises(UsageError) as error:
        bench_resume.check_same("r1", bench_resume.stored_config(tmp_path), other)
    assert "load[0].closed.num_requests: the run had 8, now 9" in str(error.value)


def test_resume_refuses_results_without_a_stored_config(tmp_path: Path) -> None:
    _write_result(tmp_path, None, 1)
    with pytest.raises(UsageError, match="has no stored config"):
        bench_resume.stored_config(tmp_path)
