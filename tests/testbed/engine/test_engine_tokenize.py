"""The simulator's POST /tokenize (vLLM 0.32's request and answer) agrees with the usage.prompt_tokens it reports,
and its prefix cache counts hits as vLLM's does: whole blocks of --block-size tokens, never the last prompt
token, only a prefix that matches from the start."""

from __future__ import annotations

from typing import Any

from engine_testkit import run, serving

from load.server_metrics import parse_prometheus_text

SIM = ("lws-suite/tiny-llama", "--served-model-name", "tiny", "--time-scale", "0")
PROMPTS = ["Hello, world!", "the quick brown fox " * 30, "a", "naïve café: 3.14 + x_y = z?"]


async def _post(client: Any, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post(path, json=body)
    return response.status, await response.json()


def test_tokenize_counts_what_usage_prompt_tokens_reports() -> None:
    async def go() -> list[tuple[int, int, int, int]]:
        out = []
        async with serving(*SIM) as (client, _server):
            for text in PROMPTS:
                _, tok = await _post(client, "/tokenize", {"model": "tiny", "prompt": text})
                _, done = await _post(
                    client, "/v1/completions", {"model": "tiny", "prompt": text, "max_tokens": 1}
                )
                msgs = [{"role": "user", "content": text}]
                _, chat_tok = await _post(client, "/tokenize", {"model": "tiny", "messages": msgs})
                _, chat = await _post(
                    client, "/v1/chat/completions", {"model": "tiny", "messages": msgs, "max_tokens": 1}
                )
                assert tok["count"] == len(tok["tokens"]) and tok["max_model_len"] > 0
                out.append(
                    (
                        tok["count"],
                        done["usage"]["prompt_tokens"],
                        chat_tok["count"],
                        chat["usage"]["prompt_tokens"],
                    )
                )
        return out

    for (count, usage, chat_count, chat_usage), text in zip(run(go()), PROMPTS, strict=True):
        assert count == usage, f"{text!r}: /tokenize says {count}, usage.prompt_tokens {usage}"
        assert chat_count == chat_usage, f"{text!r} as chat: /tokenize says {chat_count}, usage {chat_usage}"


def test_tokenize_refuses_an_unknown_model_and_a_bad_body() -> None:
    async def go() -> tuple[int, int, list[int]]:
        async with serving(*SIM) as (client, _server):
            unknown, _ = await _post(client, "/tokenize", {"model": "nope", "prompt": "hi"})
            bad, _ = await _post(client, "/tokenize", {"model": "tiny", "prompt": 7})
            _, bare = await _post(client, "/tokenize", {"prompt": "hi there", "add_special_tokens": False})
            return unknown, bad, bare["tokens"]

    unknown, bad, bare = run(go())
    assert (unknown, bad) == (404, 400)
    assert len(bare) == 2  # two words, no BOS


def _prefix_counters(text: str) -> tuple[float, float]:
    snap = parse_prometheus_text(text)
    return snap.values["vllm:prefix_cache_queries_total"], snap.values["vllm:prefix_cache_hits_total"]


def _hits_for(block_size: int | None, prompts: list[str], *extra: str) -> tuple[float, float]:
    size = ("--block-size", str(block_size)) if block_size is not None else ()

    async def go() -> tuple[float, float]:
        async with serving(*SIM, *size, *extra) as (client, _server):
            for p in prompts:
                status, _ = await _post(
                    client, "/v1/completions", {"model": "tiny", "prompt": p, "max_tokens": 1}
                )
                assert status == 200
            return _prefix_counters(await (await client.get("/metrics")).text())

    return run(go())


def test_the_prefix_cache_hits_whole_blocks_of_the_block_size() -> None:
    words = [f"w{i}" for i in range(300)]
    shared = " ".join(words[:199])  # with the BOS: 200 tokens
    a, b = shared + " apple pie", shared + " banana split"  # 202 tokens each, the first 200 shared
    queries, hits = _hits_for(16, [a, b])
    assert queries == 404
    assert hits == 192, "12 whole blocks of 16 of the 200 shared tokens"
    queries, hits = _hits_for(128, [a, b])
    assert (queries, hits) == (404, 128), "one whole block of 128"


def test_the_last_prompt_token_is_never_a_hit_and_a_different_start_misses() -> None:
    prompt = " ".join(f"w{i}" for i in range(31))  # 32 tokens: two blocks of 16
    _, hits = _hits_for(16, [prompt, prompt])
    assert hits == 16, "the second block holds the last token, which vLLM recomputes"
    _, hits = _hits_for(16, [prompt, "other " + prompt])
    assert hits == 0, "a block matches only when everything before it does"


def test_without_a_block_size_the_cpu_build_caches_in_blocks_of_128_as_vllm_does() -> None:
    prompt = " ".join(f"w{i}" for i in range(299))  # 300 tokens
    _, hits = _hits_for(None, [prompt, prompt], "--profile", "0.32.0+cpu")
    assert hits == 256, "two whole blocks of the CPU build's 128 (vllm/platforms/cpu.py)"
    _, hits = _hits_for(None, [prompt, prompt])
    assert hits == 288, "18 blocks of vLLM's default 16"
