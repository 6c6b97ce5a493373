"""Synthetic result files for the reports tests: seeded, with run-to-run noise like a real cluster's."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from reports.schema import (
    Distribution,
    LevelMetrics,
    LevelResult,
    LoadSpec,
    RecoveryMeasurement,
    RequestCounts,
    Result,
    RunMetadata,
    Throughput,
    TimelineSample,
)

CONCURRENCIES = (1, 8, 32, 64, 128)
OUTPUT_LEN = 128


def _dist(rng: np.random.Generator, p50: float, cv: float, tail_cv: float, count: int) -> Distribution:
    """A latency summary whose median moves by ``cv`` and whose tail moves by ``tail_cv`` between runs."""
    median = p50 * rng.normal(1, cv)
    tail = rng.normal(1, tail_cv)
    return Distribution(
        mean=median * 1.05,
        p50=median,
        p90=median * 1.3 * tail,
        p95=median * 1.45 * tail,
        p99=median * 1.8 * tail,
        max=median * 2.6 * tail,
        count=count,
    )


def _timeline(rng: np.random.Generator, c: int, out_tps: float) -> list[TimelineSample]:
    """Samples every 2 s of a 30 s level: client throughput with 5% noise, server gauge and counter."""
    return [
        TimelineSample(
            t_s=float(t),
            in_flight=c,
            output_tokens_per_s=out_tps * rng.normal(1, 0.05),
            server={
                "vllm:num_requests_running": float(c),
                "vllm:generation_tokens_total": out_tps * t,
            },
        )
        for t in range(0, 31, 2)
    ]


def _level(
    rng: np.random.Generator,
    seed: int,
    index: int,
    c: int,
    speed: float,
    throughput_factor: float,
    cv: float,
    timeline: bool,
) -> LevelResult:
    """Level ``index`` of the sweep, at concurrency ``c`` (draws from ``rng`` in a fixed order)."""
    tpot = (11.0 + 0.22 * c) / speed
    noise = rng.normal(1, cv)
    out_tps = c / (tpot / 1000) * 0.92 * noise * throughput_factor
    req_s = out_tps / OUTPUT_LEN
    samples = _timeline(rng, c, out_tps) if timeline else []
    return LevelResult(
        load=LoadSpec(
            concurrency=c,
            input_len=1024,
            output_len=OUTPUT_LEN,
            num_requests=40 * c,
            seed=seed,
            slo={"ttft_ms": 2000.0, "tpot_ms": 50.0},
        ),
        started_at=f"2026-11-26T02:{index:02d}:00+00:00",
        timeline=samples,
        metrics=LevelMetrics(
            ttft_ms=_dist(rng, 60 + 4 * c, cv / 2, 2 * cv, 40 * c),
            tpot_ms=_dist(rng, tpot, cv / 2, 2 * cv, 40 * c),
            itl_ms=_dist(rng, tpot * 0.97, cv / 2, 2 * cv, 40 * c * (OUTPUT_LEN - 1)),
            e2el_ms=_dist(rng, 60 + 4 * c + tpot * (OUTPUT_LEN - 1), cv / 2, 2 * cv, 40 * c),
            schedule_lag_ms=Distribution(p50=0.1, p99=0.6, count=40 * c),
            requests=RequestCounts(sent=40 * c, completed=40 * c, failed=0),
            throughput=Throughput(
                requests_per_s=req_s,
                output_tokens_per_s=out_tps,
                total_tokens_per_s=req_s * (1024 + OUTPUT_LEN),
            ),
            goodput_requests_per_s=req_s if tpot * 1.8 < 50 else req_s * 0.5,
            duration_s=30.0,
            input_tokens=40 * c * 1024,
            output_tokens=40 * c * OUTPUT_LEN,
            server_metrics_delta={
                "vllm:num_requests_running": float(c),
                "vllm:generation_tokens_total": out_tps * 30,
            },
        ),
    )


def _run(topology: str, tp: int, pp: int, gpus: int | None) -> RunMetadata:
    return RunMetadata(
        label=topology,
        topology=topology,
        model="meta-llama/Llama-3.1-70B-Instruct",
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        lws_name="vllm",
        lws_group_size=2,
        lws_replicas=1,
        nodes=2,
        gpus=gpus,
        gpu_product="NVIDIA H100 80GB HBM3",
        image="vllm/vllm-openai:v0.11.0",
        vllm_version="0.11.0",
        testbed=True,
        started_at="2026-11-26T02:00:00+00:00",
    )


def _worker_deleted() -> RecoveryMeasurement:
    """One restart-recovery measurement: the worker deleted, the group recreated, no success measured."""
    return RecoveryMeasurement(
        fault="delete worker pod",
        restart_policy="RecreateGroupOnPodRestart",
        group_recreated=True,
        pods_replaced_s=3.1,
        available_s=48.0,
        first_success_s=None,
        requests_sent=20,
        requests_failed=7,
    )


def synthetic_result(
    seed: int,
    topology: str = "tp8-pp2",
    tp: int = 8,
    pp: int = 2,
    gpus: int | None = 16,
    speed: float = 1.0,
    throughput_factor: float = 1.0,
    cv: float = 0.025,
    concurrencies: Sequence[int] = CONCURRENCIES,
    timeline: bool = False,
    recovery: bool = False,
) -> Result:
    """One run of a sweep over concurrency. Throughput varies run to run with coefficient of variation
    ``cv`` (per level); latency medians with ``cv``/2 and tails with 2 x ``cv``, as on real clusters where
    p99s are the noisiest. ``throughput_factor`` injects a throughput regression (0.9 = 10% less)."""
    rng = np.random.default_rng(seed)
    levels = [
        _level(rng, seed, i, c, speed, throughput_factor, cv, timeline) for i, c in enumerate(concurrencies)
    ]
    faults = [_worker_deleted()] if recovery else []
    return Result(run=_run(topology, tp, pp, gpus), results=levels, recovery=faults)


@pytest.fixture(scope="session")
def make_result() -> Callable[..., Result]:
    """The factory above, as a fixture (test modules cannot import this conftest by name)."""
    return synthetic_result
