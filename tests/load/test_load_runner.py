"""The Python API a benchmark test calls: run_sweep over levels, open and closed loop, workloads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from load_testkit import MODEL, reference_server

from load import readclock
from load.config import Level, RandomWorkload, SharedPrefixWorkload, ShareGptWorkload, SweepConfig, Workload
from load.request import new_session
from load.runner import level_requests, run_sweep_sync


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with reference_server("--ttft-ms", "20", "--itl-ms", "2") as (url, _):
        yield url


def config(url: str, *levels: Level, workload: Workload | None = None, **kw: object) -> SweepConfig:
    return SweepConfig(
        endpoint=url,
        model=MODEL,
        workload=workload or RandomWorkload(input_len=8, output_len=4),
        levels=levels,
        **kw,  # type: ignore[arg-type]
    )


def test_open_loop_sends_on_its_schedule(server: str) -> None:
    run = run_sweep_sync(config(server, Level(num_requests=100, request_rate=200.0, burstiness=float("inf"))))
    sent = np.sort([r.sent for r in run.levels[0].records])
    assert sent[-1] - sent[0] == pytest.approx(99 / 200, abs=0.05)
    lag = run.result.results[0].metrics.schedule_lag_ms
    assert lag.p50 is not None and lag.p50 < 10


def test_a_concurrency_cap_below_the_rate_shows_as_schedule_lag_not_as_lower_latency(server: str) -> None:
    # 100 requests/s offered, at most 2 in flight of ~30 ms each: the client falls behind the schedule.
    run = run_sweep_sync(config(server, Level(num_requests=60, request_rate=500.0, concurrency=2)))
    m = run.result.results[0].metrics
    assert m.schedule_lag_ms.max is not None and m.schedule_lag_ms.max > 300
    assert m.ttft_ms.p99 is not None and m.ttft_ms.p99 < 200  # latency is still measured from the send


def test_a_ramp_speeds_up_and_is_recorded_as_such(server: str) -> None:
    run = run_sweep_sync(
        config(
            server,
            Level(num_requests=120, request_rate=20.0, request_rate_end=300.0, burstiness=float("inf")),
        )
    )
    sent = np.sort([r.sent for r in run.levels[0].records])
    gaps = np.diff(sent)
    assert (
        gaps[:20].mean() > 2.5 * gaps[-20:].mean()
    )  # expected gaps: 12.4 ms over the first 20, 3.5 ms over the last
    load = run.result.results[0].load
    assert (load.request_rate, load.request_rate_end) == (20.0, 300.0)


def test_levels_use_different_prompts_and_the_same_seed_repeats_them(server: str) -> None:
    levels = (Level(num_requests=5, concurrency=5), Level(num_requests=5, concurrency=5))
    cfg = config(server, *levels, seed=11)
    assert level_requests(cfg, 0) != level_requests(cfg, 1)
    assert level_requests(cfg, 1) == level_requests(config(server, *levels, seed=11), 1)
    assert level_requests(cfg, 1) != level_requests(config(server, *levels, seed=12), 1)
    run = run_sweep_sync(cfg)
    assert [r.load.seed for r in run.result.results] == [11, 11]
    assert all(r.prompt_tokens == 8 for level in run.levels for r in level.records)  # the server's count


def test_chat_shared_prefix_and_sharegpt_workloads_run_end_to_end(server: str, tmp_path: Path) -> None:
    sharegpt = tmp_path / "sg.json"
    sharegpt.write_text(
        json.dumps(
            [
                {
                    "conversations": [
                        {"from": "human", "value": "Tell me about rivers " * 3},
                        {"from": "gpt", "value": "x " * 40},  # 40 tokens on this server (a word each)
                    ]
                }
            ]
        )
    )
    level = Level(num_requests=6, concurrency=3)
    for workload, api, name in [
        (
            SharedPrefixWorkload(input_len=20, output_len=3, prefix_len=15, num_prefixes=2),
            "chat",
            "shared-prefix",
        ),
        (ShareGptWorkload(path=sharegpt), "completions", "sharegpt:sg.json"),
    ]:
        run = run_sweep_sync(config(server, level, workload=workload, api=api))
        result = run.result.results[0]
        assert result.metrics.requests.completed == 6, result.metrics.requests
        assert result.load.workload == name and result.load.api == api


def test_chunk_times_come_from_the_socket_reads_with_this_aiohttp(server: str) -> None:
    """The precise path (readclock) must be active, or timing silently falls back to the coroutine."""

    async def attached() -> bool:
        async with new_session() as session:
            body = {"model": MODEL, "prompt": "hi", "max_tokens": 2, "stream": True}
            async with session.post(server + "/v1/completions", json=body) as response:
                clock = readclock.attach(response)
                await response.read()
                return clock is not None

    assert asyncio.run(attached())


def test_unreachable_endpoint_raises_before_any_load() -> None:
    from load.endpoint_probe import EndpointUnreachable

    with pytest.raises(EndpointUnreachable, match="cannot reach"):
        run_sweep_sync(config("http://127.0.0.1:9", Level(num_requests=1, concurrency=1)))


def test_aiohttp_timeouts_are_not_used_for_reads(server: str) -> None:
    """Reads are policed by one watchdog per request, not aiohttp's per-read timer (see request.py)."""
    from load.request import Target

    target = Target.from_config(config(server, Level(num_requests=1, concurrency=1)))
    assert isinstance(target.timeout, aiohttp.ClientTimeout) and target.timeout.sock_read is None
