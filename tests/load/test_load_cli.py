"""``python -m load run``: the result file, the vLLM-format files, and the exit codes users script on."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from load_testkit import MODEL, REPO, python_env, reference_server, run_cli

from reports.schema import SCHEMA_VERSION, read_result


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with reference_server("--ttft-ms", "5", "--itl-ms", "1") as (url, _):
        yield url


def args(url: str, out: Path, *extra: str) -> list[str]:
    return [
        "run", "--endpoint", url, "--model", MODEL, "--input-len", "12", "--output-len", "6",
        "--num-requests", "40", "--out", str(out), *extra,
    ]  # fmt: skip


def test_a_sweep_writes_one_schema_entry_per_level(server: str, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = run_cli(
        *args(server, out, "--concurrency", "2,8", "--request-rate", "200,inf", "--slo", "ttft_ms=1000")
    )
    assert done.returncode == 0, done.stderr
    result = read_result(out)
    assert (
        result.schema_ == SCHEMA_VERSION
        and result.run.model == MODEL
        and result.run.vllm_version == "reference"
    )
    loads = [(r.load.concurrency, r.load.request_rate) for r in result.results]
    assert loads == [(2, 200.0), (2, None), (8, 200.0), (8, None)]
    for level in result.results:
        m = level.metrics
        assert m.requests.sent == m.requests.completed == 40 and m.requests.failed == 0
        assert m.output_tokens == 240 and m.ttft_ms.p50 is not None and m.ttft_ms.p50 >= 5
        assert m.goodput_requests_per_s == pytest.approx(m.throughput.requests_per_s)
        assert (
            m.server_metrics_delta is not None
            and m.server_metrics_delta["vllm:generation_tokens_total"] == 240
        )
    assert "level 4/4" in done.stderr  # the progress and summary lines


def test_format_vllm_writes_each_level_in_vllm_bench_serve_field_names(server: str, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    done = run_cli(*args(server, out, "--concurrency", "4", "--format", "vllm", "--label", "nightly"))
    assert done.returncode == 0, done.stderr
    vllm = json.loads((tmp_path / "run.vllm-1.json").read_text())
    assert vllm["request_rate"] == "inf" and vllm["max_concurrency"] == 4 and vllm["label"] == "nightly"
    assert vllm["completed"] == 40 and vllm["failed"] == 0 and vllm["total_output_tokens"] == 240
    for metric in ("ttft", "tpot", "itl", "e2el"):
        for stat in ("mean", "median", "std", "p50", "p90", "p95", "p99"):
            assert isinstance(vllm[f"{stat}_{metric}_ms"], float)
    ours = read_result(out).results[0].metrics
    assert vllm["p99_ttft_ms"] == pytest.approx(ours.ttft_ms.p99)
    assert vllm["output_throughput"] == pytest.approx(ours.throughput.output_tokens_per_s)
    assert vllm["max_concurrent_requests"] <= 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--concurrency", "4", "--request-rate", "fast"], "--request-rate"),
        (["--concurrency", "4", "--slo", "ttft=5"], "--slo"),
        (["--concurrency", "4", "--dataset", "sharegpt:/nonexistent.json"], "cannot read the ShareGPT file"),
        (["--concurrency", "4", "--dataset", "zipf"], "unknown --dataset"),
        (["--ramp-up", "1:5", "--request-rate", "3"], "exclude each other"),
        ([], "give --concurrency"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    server: str, tmp_path: Path, extra: list[str], message: str
) -> None:
    done = run_cli(*args(server, tmp_path / "r.json", *extra))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr


def test_a_model_the_server_does_not_serve_is_an_input_error(server: str, tmp_path: Path) -> None:
    done = run_cli(*args(server, tmp_path / "r.json", "--concurrency", "1"), "--model", "other")
    assert done.returncode == 2 and "does not serve model 'other'" in done.stderr and MODEL in done.stderr


def test_an_unreachable_endpoint_is_one_line_and_exit_code_3(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that is bound but not listening: connections are refused
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        done = run_cli(*args(url, tmp_path / "r.json", "--concurrency", "1"))
    assert done.returncode == 3, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "cannot reach" in done.stderr
    assert not (tmp_path / "r.json").exists()


def test_ctrl_c_writes_the_partial_result_with_every_request_sent_and_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "partial.json"
    with reference_server("--ttft-ms", "2", "--itl-ms", "1", "--announce") as (url, server):
        cli = subprocess.Popen(
            [sys.executable, "-m", "load", *args(url, out, "--concurrency", "4", "--num-requests", "100000")],
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=python_env(),
        )
        assert server.stdout is not None
        for _ in range(200):  # wait (by reading, not sleeping) until 200 requests have reached the server
            assert server.stdout.readline().startswith("arrived "), "the server stopped announcing"
        cli.send_signal(signal.SIGINT)
        _, stderr = cli.communicate(timeout=30)
    assert cli.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    m = read_result(out).results[0].metrics
    assert m.requests.sent >= 200
    assert m.requests.sent == m.requests.completed + m.requests.failed
    assert m.requests.failed == m.requests.errors_by_reason.get("interrupted", 0)
