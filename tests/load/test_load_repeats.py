"""End to end: ``--repeats 3`` against the reference server writes one result whose every level holds its
three repeats, their mean and a 95% t-interval per metric; the report draws the intervals and the gate
counts the file as three runs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from load_testkit import MODEL, reference_server, run_cli

from load.config import Level, RandomWorkload, SweepConfig
from load.runner import level_requests
from reports.cli import main as reports_main
from reports.gate import gate
from reports.schema import read_result


def test_repeats_3_fold_into_means_with_intervals_the_report_and_gate_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rep.json"
    with reference_server("--ttft-ms", "10", "--itl-ms", "5") as (url, _):
        proc = run_cli(
            "run", "--endpoint", url, "--model", MODEL, "--input-len", "8", "--output-len", "16",
            "--num-requests", "40", "--concurrency", "4,16", "--repeats", "3", "--out", str(out),
            "--format", "vllm", timeout=180,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "3 repeats, ± = 95% t-interval" in proc.stderr

    result = read_result(out)
    assert len(result.results) == 2
    for level in result.results:
        assert len(level.repeats) == 3
        assert level.metrics.requests.sent == 120
        outs = [m.throughput.output_tokens_per_s for m in level.repeats]
        assert None not in outs
        interval = level.intervals["output_tokens_per_s"]
        assert interval.n == 3 and interval.low <= interval.mean <= interval.high
        assert interval.mean == pytest.approx(statistics.fmean(o for o in outs if o is not None))
        assert level.metrics.throughput.output_tokens_per_s == pytest.approx(interval.mean)
        assert {"ttft_p50", "ttft_p99", "tpot_p99", "itl_p99", "e2el_p50"} <= set(level.intervals)
        assert level.metrics.client is not None and len(level.repeats) == 3
    # vLLM-format files: one per repeat and level
    assert len(list(tmp_path.glob("rep.repeat-*.vllm-*.json"))) == 6

    assert reports_main(["render", str(out)]) == 0
    rendered = capsys.readouterr().out
    assert "x ± y: the mean of 3 repeats" in rendered and " ± " in rendered

    report = gate([result], [result], allow_invalid=True)  # validity is not this test's subject
    assert report.passed
    assert {(len(c.baseline), len(c.candidate)) for c in report.checks if c.baseline} == {(3, 3)}
    json.loads(out.read_text())  # plain JSON for other tools


def test_each_repeat_sends_new_prompts_and_the_first_the_same_as_a_single_run() -> None:
    config = SweepConfig(
        endpoint="http://127.0.0.1:9",
        model=MODEL,
        workload=RandomWorkload(input_len=16, output_len=4),
        levels=(Level(num_requests=5, concurrency=1),),
    )
    first = level_requests(config, 0)
    again = level_requests(config.model_copy(update={"repeat": 0}), 0)
    second = level_requests(config.model_copy(update={"repeat": 1}), 0)
    assert [r.prompt for r in first] == [r.prompt for r in again]
    assert not {r.prompt for r in first} & {r.prompt for r in second}  # no prefix-cache hits across repeats


def test_repeats_must_be_a_positive_whole_number() -> None:
    proc = run_cli("run", "--endpoint", "http://127.0.0.1:9", "--model", MODEL, "--input-len", "4",
                   "--output-len", "4", "--num-requests", "1", "--concurrency", "1", "--repeats", "0",
                   "--out", "/tmp/never.json")  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--repeats" in proc.stderr
