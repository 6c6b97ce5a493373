"""``python -m load.locust`` as users meet it: one-line errors with exit codes 2 and 3, the in-cluster
manifests on request, exit code 1 on an SLO breach, and a result in the suite's schema."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from locust_testkit import MODEL, engine, error_lines, locust_run, run_module

from reports.schema import read_result


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with engine(tmp_path_factory.mktemp("engine")) as url:
        yield url


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--endpoint", "http://127.0.0.1:1", "--run-time", "5"], "--users"),
        (["--endpoint", "http://127.0.0.1:1", "--users", "0", "--run-time", "5"], "--users: expected a whole number >= 1"),
        (["--endpoint", "http://127.0.0.1:1", "--users", "2", "--run-time", "5x"], "--run-time: expected a duration"),
        (["--users", "2", "--run-time", "5"], "give either --endpoint URL or --namespace NS"),
        (["--endpoint", "http://127.0.0.1:1", "--namespace", "x", "--users", "2", "--run-time", "5"], "not both"),
        (["--endpoint", "127.0.0.1:8000", "--users", "2", "--run-time", "5"], "--endpoint must be a base URL"),
        (["--endpoint", "http://127.0.0.1:1", "--users", "2", "--workers", "3", "--run-time", "5"], "--workers 3 > --users 2"),
        (["--endpoint", "http://127.0.0.1:1", "--users", "2", "--run-time", "5", "--in-cluster", "--workers", "1"], "--in-cluster runs Locust in the cluster"),
        (["--endpoint", "http://127.0.0.1:1", "--users", "2", "--run-time", "5", "--slo", "ttft=5"], "--slo: expected ttft_ms="),
        (["--namespace", "Bad_NS", "--users", "2", "--run-time", "5"], "is not a valid namespace name"),
        (["--namespace", "ns", "--users", "2", "--run-time", "5", "--render-only"], "--render-only prints the in-cluster"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    proc = locust_run(*args, "--out", str(tmp_path / "r.json"), timeout=30)
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not (tmp_path / "r.json").exists()


def test_a_raw_dir_with_records_of_an_earlier_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old.jsonl").write_text("{}\n")
    proc = locust_run("--endpoint", "http://127.0.0.1:1", "--users", "1", "--run-time", "2", "--raw-dir",
                      str(tmp_path), "--out", str(tmp_path / "r.json"), timeout=30)  # fmt: skip
    assert proc.returncode == 2 and "already holds raw records" in proc.stderr, proc.stderr


def test_an_unreachable_endpoint_is_one_line_and_exit_code_3(tmp_path: Path) -> None:
    port = closed_port()
    proc = locust_run("--endpoint", f"http://127.0.0.1:{port}", "--users", "1", "--run-time", "2",
                      "--out", str(tmp_path / "r.json"), timeout=30)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and f"cannot reach http://127.0.0.1:{port}" in lines[0], proc.stderr


def test_an_unreachable_cluster_is_one_line_and_exit_code_3(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{closed_port()}"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
    }))  # fmt: skip
    proc = locust_run("--kubeconfig", str(kubeconfig), "--namespace", "ns", "--users", "1", "--run-time", "2",
                      "--out", str(tmp_path / "r.json"), timeout=60)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and "kubectl get service" in lines[0], proc.stderr


def test_render_only_prints_the_in_cluster_objects(tmp_path: Path) -> None:
    proc = locust_run("--namespace", "bench", "--in-cluster", "--workers", "3", "--users", "12", "--run-time", "1m",
                      "--model", "m", "--render-only", timeout=30)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    objects = list(yaml.safe_load_all(proc.stdout))
    assert [o["kind"] for o in objects] == ["ConfigMap", "Service", "Pod", "Deployment"]
    assert set(objects[0]["data"]) == {
        "locustfile.py",
        "locust_stream.py",
        "locust_options.py",
        "locust_collect.py",
    }
    args = objects[2]["spec"]["containers"][0]["args"]
    assert args[args.index("--host") + 1] == "http://vllm-leader.bench.svc:8080"
    assert args[args.index("--run-time") + 1] == "60s" and args[args.index("--model") + 1] == "m"
    assert objects[3]["spec"]["replicas"] == 3


@pytest.mark.slow
def test_an_slo_breach_exits_1_after_writing_the_result(tmp_path: Path, endpoint: str) -> None:
    out = tmp_path / "result.json"
    proc = locust_run("--endpoint", endpoint, "--users", "2", "--spawn-rate", "100", "--run-time", "2",
                      "--input-len", "32", "--output-len", "16", "--slo", "ttft_ms=0.01,e2el_ms=60000",
                      "--out", str(out), "--locust-arg=--only-summary")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert (
        "SLO breached: ttft_ms p99" in proc.stderr and "e2el_ms" not in proc.stderr.split("SLO breached")[-1]
    )
    result = read_result(out)
    level = result.results[0]
    assert level.load.generator == "locust" and level.load.slo == {"ttft_ms": 0.01, "e2el_ms": 60000}
    assert level.metrics.requests.completed > 0 and level.metrics.goodput_requests_per_s == 0.0
    assert result.run.model == "meta-llama/Meta-Llama-3.1-8B-Instruct"  # the one model served


@pytest.mark.slow
def test_within_the_slo_the_exit_code_is_0(tmp_path: Path, endpoint: str) -> None:
    out = tmp_path / "result.json"
    proc = locust_run("--endpoint", endpoint, "--users", "2", "--spawn-rate", "100", "--run-time", "2",
                      "--input-len", "32", "--output-len", "16", "--slo", "e2el_ms=60000", "--api", "chat",
                      "--out", str(out), "--locust-arg=--only-summary")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = read_result(out).results[0].metrics
    assert metrics.requests.failed == 0 and metrics.output_tokens == 16 * metrics.requests.completed
    assert metrics.goodput_requests_per_s == metrics.throughput.requests_per_s
    # the run lasted what was asked (gevent's stale clock once armed the 2 s limit to end after 40 ms)
    assert metrics.duration_s is not None and metrics.duration_s >= 1.5, metrics.duration_s


@pytest.mark.slow
def test_the_locustfile_run_by_locust_itself_exits_1_on_an_slo_breach(tmp_path: Path, endpoint: str) -> None:
    """``locust -f load/locust/locustfile.py``: the quitting listener judges Locust's own (rounded)
    percentiles."""
    common = ["-f", "load/locust/locustfile.py", "--headless", "--only-summary", "-u", "2", "-r", "100", "-t", "2",
              "--host", endpoint, "--model", MODEL, "--input-len", "16", "--output-len", "8"]  # fmt: skip
    breached = run_module("locust", *common, "--slo-ttft-ms", "0.01", timeout=60)
    assert breached.returncode == 1, breached.stderr
    assert "SLO breached (Locust's rounded percentiles): ttft_ms p99" in breached.stderr
    met = run_module("locust", *common, "--slo-e2el-ms", "60000", "--raw-dir", str(tmp_path), timeout=60)
    assert met.returncode == 0, met.stderr
    assert len(list(tmp_path.glob("*.jsonl"))) == 1  # its raw records
    refused = run_module("locust", *common, "--slo-tpot-ms", "-5", timeout=60)
    assert refused.returncode == 2 and "--slo-tpot-ms must be a number > 0" in refused.stderr, refused.stderr
