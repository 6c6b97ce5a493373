"""Locust and the async generator, at equal concurrency against the engine simulator, agree within 5% on
output-token throughput and TTFT p50.

Both are closed loops of 4 streams (Locust: 4 users started at once; async: concurrency 4) sending
2,048-token prompts; each result is computed by load/metrics.py from its own raw records.

Why outputs end at the simulator's seeded EOS (no ``ignore_eos``, at most 128 tokens): with one fixed
output length, closed-loop streams lock into waves (they all finish on the same step and return
together), and which of several stable wave patterns a run falls into is chaotic. TTFT p50 then differs
by 10-30% between two runs of the *same* generator. Mixed lengths keep both in one stationary regime.

The machine is shared (two cores; other suites run beside us), so a failing comparison is repeated up to
three times with new prompts (seed); a Locust user that measures differently fails all three.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from locust_testkit import MODEL, engine, locust_run, run_module

from reports.schema import LevelMetrics, read_result

pytestmark = pytest.mark.slow

USERS, INPUT_LEN, OUTPUT_LEN = 4, 2048, 128
LOCUST_RUN_S, ASYNC_REQUESTS = 10, 48  # about the same number of requests (~45 in 10 s)
TOLERANCE = 0.05
ATTEMPTS = 3


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with engine(tmp_path_factory.mktemp("engine")) as url:
        yield url


@dataclass(frozen=True)
class Comparison:
    seed: int
    locust: LevelMetrics
    asyncio: LevelMetrics

    @staticmethod
    def off(a: float | None, b: float | None) -> float:
        assert a is not None and b is not None, "a metric is missing"
        return abs(a - b) / b

    @property
    def throughput_off(self) -> float:
        return self.off(
            self.locust.throughput.output_tokens_per_s, self.asyncio.throughput.output_tokens_per_s
        )

    @property
    def ttft_off(self) -> float:
        return self.off(self.locust.ttft_ms.p50, self.asyncio.ttft_ms.p50)

    @property
    def ok(self) -> bool:
        return self.throughput_off <= TOLERANCE and self.ttft_off <= TOLERANCE

    def __str__(self) -> str:
        lo, an = self.locust, self.asyncio
        return (
            f"seed {self.seed}: output tok/s locust {lo.throughput.output_tokens_per_s:.1f} vs async "
            f"{an.throughput.output_tokens_per_s:.1f} ({self.throughput_off:.1%}); TTFT p50 locust "
            f"{lo.ttft_ms.p50:.2f} vs async {an.ttft_ms.p50:.2f} ms ({self.ttft_off:.1%}); requests "
            f"{lo.requests.completed} vs {an.requests.completed}{'' if self.ok else '  <-- over 5%'}"
        )


def measure(endpoint: str, tmp: Path, seed: int) -> Comparison:
    workload = [
        "--input-len",
        str(INPUT_LEN),
        "--output-len",
        str(OUTPUT_LEN),
        "--no-ignore-eos",
        "--seed",
        str(seed),
    ]
    locust_out, async_out = tmp / f"locust-{seed}.json", tmp / f"async-{seed}.json"
    proc = locust_run("--endpoint", endpoint, "--users", str(USERS), "--spawn-rate", "100",
                      "--run-time", str(LOCUST_RUN_S), *workload, "--out", str(locust_out),
                      "--locust-arg=--only-summary")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = run_module("load", "run", "--endpoint", endpoint, "--model", MODEL, "--concurrency", str(USERS),
                      "--num-requests", str(ASYNC_REQUESTS), *workload, "--no-server-metrics", "--quiet",
                      "--out", str(async_out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    locust, asyncio = read_result(locust_out).results[0], read_result(async_out).results[0]
    assert (locust.load.generator, asyncio.load.generator) == ("locust", "load")
    assert locust.load.concurrency == asyncio.load.concurrency == USERS
    for level in (locust, asyncio):
        assert level.metrics.requests.failed == 0 and level.metrics.requests.completed >= 30
    return Comparison(seed, locust.metrics, asyncio.metrics)


def test_locust_and_the_async_generator_agree_within_5_percent(endpoint: str, tmp_path: Path) -> None:
    attempts: list[Comparison] = []
    for seed in range(ATTEMPTS):
        attempts.append(measure(endpoint, tmp_path, seed))
        print(attempts[-1])
        if attempts[-1].ok:
            break
    (tmp_path / "comparison.json").write_text(json.dumps([str(a) for a in attempts], indent=2))
    assert attempts[-1].ok, "Locust and the async generator disagree:\n" + "\n".join(map(str, attempts))
