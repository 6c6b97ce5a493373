"""Lengths in the served model's tokens: prompts fitted with the server's /tokenize, length distributions,
the requested length checked against usage.prompt_tokens, the prefix-cache hit rate, multi-turn sessions.
Against the engine simulator in this process (its tokenizer differs from any model's; the real-engine test,
tests/load/test_load_tokens_real_vllm.py, runs the same against real vLLM)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from load.config import (
    ConfigError,
    LengthDist,
    Level,
    MultiTurnWorkload,
    RandomWorkload,
    SharedPrefixWorkload,
    ShareGptWorkload,
    SweepConfig,
    Workload,
)
from load.input_check import input_length_check
from load.lengths import draw_lengths
from load.records import RequestRecord
from load.request import new_session
from load.runner import SweepRun, run_sweep
from load.server_tokenizer import ServerTokenizer, TokenizeUnavailable
from load.token_fit import fit_prompt
from load.word_costs import Fitter
from load.workload import RequestSpec, WorkloadError
from testbed.engine.app import build_setup, create_server
from testbed.engine.cli import parse_args


@asynccontextmanager
async def simulator(*extra: str) -> AsyncIterator[str]:
    server = create_server(
        build_setup(
            parse_args(["lws-suite/tiny-llama", "--served-model-name", "tiny", "--time-scale", "0", *extra])
        )
    )
    test_server = TestServer(server.app(), host="127.0.0.1")
    await test_server.start_server()
    try:
        yield str(test_server.make_url("")).rstrip("/")
    finally:
        await test_server.close()


def sweep(workload: Workload, *levels: Level, extra: tuple[str, ...] = (), **kw: object) -> SweepRun:
    async def go() -> SweepRun:
        async with simulator(*extra) as url:
            config = SweepConfig(endpoint=url, model="tiny", workload=workload, levels=levels, **kw)  # type: ignore[arg-type]
            return await run_sweep(config)

    return asyncio.run(go())


# the fit itself, with a tokenizer of known costs -------------------------------------------------------------
def words_costing(costs: dict[str, int], bos: int = 1) -> Callable[[str], Awaitable[int]]:
    async def count(text: str) -> int:
        return bos + sum(costs.get(w, 1) for w in text.split())

    return count


@pytest.mark.parametrize("target", [1, 2, 7, 96, 97, 1000])
def test_a_prompt_is_fitted_to_the_exact_count_when_words_cost_several_tokens(target: int) -> None:
    pool = ["river", "stone", "of", "music"] * 400
    count = words_costing({"river": 3, "stone": 4, "of": 1, "music": 2, "a": 1})
    fitted = asyncio.run(fit_prompt(count, pool, target))
    assert fitted.tokens == target
    assert asyncio.run(count(fitted.text)) == target


def test_a_count_that_cannot_be_hit_comes_back_as_the_nearest() -> None:
    count = words_costing({"w": 5, "a": 5})  # no one-token word: only multiples of 5, plus the BOS
    fitted = asyncio.run(fit_prompt(count, ["w"] * 100, 23))
    assert fitted.tokens in (21, 26) and abs(fitted.tokens - 23) <= 3


def test_lengths_are_drawn_within_their_bounds_and_seeded() -> None:
    rng = np.random.default_rng(0)
    normal = draw_lengths(LengthDist(kind="normal", std_dev=50, min=80, max=150), 100, 2000, rng)
    assert min(normal) == 80 and max(normal) == 150  # clamped, and the tails reach the clamps
    assert 95 < np.mean(normal) < 110
    uniform = draw_lengths(LengthDist(kind="uniform", min=10, max=12), 100, 300, np.random.default_rng(1))
    assert set(uniform) == {10, 11, 12}
    assert draw_lengths(LengthDist(), 7, 3, rng) == [7, 7, 7]
    again = draw_lengths(
        LengthDist(kind="normal", std_dev=50, min=80, max=150), 100, 2000, np.random.default_rng(0)
    )
    assert again == normal


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "uniform", "min": 5}, "uniform length needs both min and max"),
        ({"kind": "normal"}, "normal length needs std_dev > 0"),
        ({"min": 9, "max": 3}, "min 9 is above max 3"),
    ],
)
def test_a_length_distribution_that_cannot_be_drawn_is_refused(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        LengthDist(**fields)  # type: ignore[arg-type]


def test_the_check_flags_a_level_whose_prompts_were_off_by_more_than_the_tolerance() -> None:
    specs = [RequestSpec("x", 4, 100)] * 4
    records = [
        RequestRecord(index=i, scheduled=0.0, sent=0.0, finished=1.0, prompt_tokens=p)
        for i, p in enumerate([100, 100, 101, 101])
    ]
    within = input_length_check(specs, records, 0.01)
    assert within is not None and within.within_tolerance and within.relative_error == pytest.approx(0.005)
    records[0].prompt_tokens = 330  # as words did on real vLLM's tokenizer
    off = input_length_check(specs, records, 0.01)
    assert off is not None and not off.within_tolerance and off.served_mean == 158.0


# against the simulator ----------------------------------------------------------------------------------------
def test_random_prompts_are_the_asked_tokens_by_the_servers_own_count() -> None:
    dist = LengthDist(kind="normal", std_dev=30, min=40, max=200)
    run = sweep(
        RandomWorkload(input_len=96, output_len=4, input_dist=dist), Level(num_requests=24, concurrency=4)
    )
    level = run.result.results[0]
    check = level.metrics.input_lengths
    assert level.metrics.requests.completed == 24
    assert check is not None and check.within_tolerance and check.relative_error == 0.0, check
    assert level.load.length_unit == "tokens"
    records = run.levels[0].records
    assert len({r.prompt_tokens for r in records}) > 5, "the lengths vary as the distribution says"


def test_words_keep_the_earlier_behaviour_and_are_not_checked() -> None:
    run = sweep(
        RandomWorkload(input_len=96, output_len=4), Level(num_requests=4, concurrency=2), length_unit="words"
    )
    level = run.result.results[0]
    assert level.metrics.input_lengths is None and level.load.length_unit == "words"
    assert {r.prompt_tokens for r in run.levels[0].records} == {97}, (
        "96 one-token words and the simulator's BOS"
    )


def test_shared_prefixes_hit_the_servers_prefix_cache_in_whole_blocks() -> None:
    workload = SharedPrefixWorkload(input_len=256, output_len=4, prefix_len=192, num_prefixes=2)
    level = sweep(
        workload, Level(num_requests=16, concurrency=1), extra=("--block-size", "128"), seed=7
    ).result.results[0]
    cache = level.metrics.prefix_cache
    assert level.metrics.input_lengths is not None and level.metrics.input_lengths.within_tolerance
    assert cache is not None and cache.shared_fraction == 0.75
    # 192 shared tokens hold one whole block of 128; the first request of each prefix misses
    assert cache.hits == 14 * 128 and cache.queries == 16 * 256
    assert cache.hit_rate == pytest.approx(14 * 128 / (16 * 256))


def test_a_multi_turn_session_carries_its_history_and_reports_ttft_by_turn() -> None:
    workload = MultiTurnWorkload(input_len=40, output_len=8, turns=3)
    level = sweep(workload, Level(num_requests=12, concurrency=2), api="chat").result.results[0]
    turns = level.metrics.ttft_by_turn
    assert [t.turn for t in turns] == [1, 2, 3] and all(t.ttft_ms.count == 4 for t in turns)
    prompts = [t.prompt_tokens_mean or 0 for t in turns]
    assert prompts[0] < prompts[1] < prompts[2], "each turn carries the history before it"
    assert prompts[1] - prompts[0] >= 40 + 8, "the previous message and the server's reply"
    check = level.metrics.input_lengths
    assert check is not None and check.relative_error == 0.0
    cache = level.metrics.prefix_cache
    assert cache is not None and cache.hits and cache.hits > 0, "later turns find their history cached"


def test_sharegpt_conversations_are_counted_in_tokens_and_multi_turn_takes_their_human_turns(
    tmp_path: Path,
) -> None:
    data = tmp_path / "sg.json"
    conversations = [
        {"conversations": [
            {"from": "human", "value": f"question {i} about rivers and stones, " * 3},
            {"from": "gpt", "value": "an answer of a few words " * 4},
            {"from": "human", "value": "and a follow-up?"},
            {"from": "gpt", "value": "yes."},
        ]}
        for i in range(5)
    ]  # fmt: skip
    data.write_text(json.dumps(conversations))
    level = sweep(ShareGptWorkload(path=data), Level(num_requests=8, concurrency=2)).result.results[0]
    check = level.metrics.input_lengths
    assert check is not None and check.relative_error == 0.0 and check.requests == 8
    assert level.metrics.output_tokens == 8 * 24, "each recorded reply's length in the server's tokens"
    multi = sweep(MultiTurnWorkload(path=data, turns=2), Level(num_requests=6, concurrency=3)).result.results[
        0
    ]
    assert [t.turn for t in multi.metrics.ttft_by_turn] == [1, 2]


def test_a_server_without_tokenize_is_one_line_saying_to_use_words() -> None:
    async def go() -> str:
        server = TestServer(web.Application(), host="127.0.0.1")  # answers 404 to everything
        await server.start_server()
        try:
            async with new_session() as session:
                tokenizer = ServerTokenizer(session, str(server.make_url("")), "m", "completions")
                with pytest.raises(TokenizeUnavailable) as caught:
                    await tokenizer.count("hello")
                return str(caught.value)
        finally:
            await server.close()

    message = asyncio.run(go())
    assert "/tokenize answered 404" in message and "--length-unit words" in message
    assert "\n" not in message


def test_an_unreadable_dataset_fails_before_any_load(tmp_path: Path) -> None:
    async def go() -> None:
        async with simulator() as url:
            config = SweepConfig(
                endpoint=url, model="tiny", workload=ShareGptWorkload(path=tmp_path / "missing.json"),
                levels=(Level(num_requests=1, concurrency=1),),
            )  # fmt: skip
            await run_sweep(config)

    with pytest.raises(WorkloadError, match="cannot read the ShareGPT file"):
        asyncio.run(go())


def test_multi_turn_in_words_is_refused() -> None:
    with pytest.raises(ConfigError, match="multi-turn workload counts its turns in tokens"):
        SweepConfig(
            endpoint="http://127.0.0.1:1", model="m", workload=MultiTurnWorkload(),
            levels=(Level(num_requests=1, concurrency=1),), length_unit="words",
        )  # fmt: skip


def test_word_costs_fit_many_prompts_with_few_calls_and_are_dropped_when_they_do_not_add_up() -> None:
    calls = 0
    costs = {"river": 3, "stone": 4, "of": 1, "music": 2, "the": 1, "a": 1}

    async def additive(text: str) -> int:
        nonlocal calls
        calls += 1
        return 1 + sum(costs[w] for w in text.split())

    async def merging(text: str) -> int:  # "of of" is one token: the costs do not add up
        return 1 + sum(costs[w] for w in text.replace("of of", "of").split())

    pools = [list(np.random.default_rng(i).choice(list(costs), 200)) for i in range(200)]

    async def fit_all(count: Callable[[str], Awaitable[int]]) -> tuple[list[int], bool | None]:
        fitter = Fitter(count, list(costs))
        fitted = await asyncio.gather(*(fitter.fit(p, 50 + i % 7) for i, p in enumerate(pools)))
        return [await count(f.text) - (50 + i % 7) for i, f in enumerate(fitted)], fitter.additive

    errors, trusted = asyncio.run(fit_all(additive))
    assert set(errors) == {0} and trusted is True
    assert calls < 3 * len(costs) + 2 + 8 + 200 + len(pools), "costs, 8 checks, one count each above"
    errors, trusted = asyncio.run(fit_all(merging))
    assert trusted is False and set(errors) == {0}, "fitted with the server's counts instead"
