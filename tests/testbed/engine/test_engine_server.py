"""The OpenAI-compatible API as a client sees it: raw SSE frames, usage, lengths, errors, routes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from engine_testkit import parse_sse, run, serving

MODEL = "facebook/opt-125m"
FAST = (MODEL, "--time-scale", "0")


async def _post(client: Any, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    resp = await client.post(path, json=body)
    return resp.status, await resp.read()


def test_a_stream_is_well_formed_ends_with_done_and_its_usage_matches_the_tokens() -> None:
    async def go() -> list[Any]:
        async with serving(*FAST) as (client, _):
            status, raw = await _post(
                client,
                "/v1/completions",
                {
                    "model": MODEL,
                    "prompt": "Hello, world!",
                    "max_tokens": 40,
                    "ignore_eos": True,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            )
            assert status == 200
            return parse_sse(raw)

    frames = run(go())
    chunks, usage = frames[:-2], frames[-2]
    assert all(c["object"] == "text_completion" and len(c["choices"]) == 1 for c in chunks)
    assert len({c["id"] for c in frames[:-1]}) == 1
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 39 + ["length"]
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 5, "total_tokens": 45, "completion_tokens": 40}


@pytest.mark.parametrize("n", [1, 7, 300])
def test_ignore_eos_with_max_tokens_yields_exactly_that_many_tokens(n: int) -> None:
    async def go() -> list[Any]:
        async with serving(*FAST) as (client, _):
            _, raw = await _post(
                client,
                "/v1/completions",
                {"prompt": "x", "max_tokens": n, "ignore_eos": True, "stream": True},
            )
            return parse_sse(raw)

    frames = run(go())
    assert sum(1 for f in frames[:-1] if f["choices"]) == n


def test_without_ignore_eos_a_request_may_stop_early_but_not_before_min_tokens() -> None:
    async def go() -> list[dict[str, Any]]:
        out = []
        async with serving(*FAST) as (client, _):
            for i in range(40):
                _, raw = await _post(
                    client, "/v1/completions", {"prompt": f"prompt {i}", "max_tokens": 200, "min_tokens": 20}
                )

                out.append(json.loads(raw))
        return out

    bodies = run(go())
    lengths = [b["usage"]["completion_tokens"] for b in bodies]
    reasons = {b["choices"][0]["finish_reason"] for b in bodies}
    assert min(lengths) >= 20 and max(lengths) <= 200
    assert "stop" in reasons  # a seeded EOS point before max_tokens for some prompts
    assert all(
        (b["choices"][0]["finish_reason"] == "length") == (b["usage"]["completion_tokens"] == 200)
        for b in bodies
    )


def test_the_same_seed_and_prompt_give_the_same_text() -> None:
    async def go() -> tuple[str, str, str]:
        async with serving(*FAST) as (client, _):
            body = {"prompt": "determinism", "max_tokens": 30}
            a = (await (await client.post("/v1/completions", json=body)).json())["choices"][0]["text"]
            b = (await (await client.post("/v1/completions", json=body)).json())["choices"][0]["text"]
            c = (await (await client.post("/v1/completions", json={**body, "seed": 7})).json())["choices"][0][
                "text"
            ]
            return a, b, c

    a, b, c = run(go())
    assert a == b and a != c


def test_continuous_usage_stats_put_running_usage_on_every_chunk() -> None:
    async def go() -> list[Any]:
        async with serving(*FAST) as (client, _):
            _, raw = await _post(
                client,
                "/v1/completions",
                {
                    "prompt": "a b c",
                    "max_tokens": 5,
                    "ignore_eos": True,
                    "stream": True,
                    "stream_options": {"include_usage": True, "continuous_usage_stats": True},
                },
            )
            return parse_sse(raw)

    frames = run(go())
    assert [f["usage"]["completion_tokens"] for f in frames[:-1]] == [1, 2, 3, 4, 5, 5]
    assert all(f["usage"]["prompt_tokens"] == 4 for f in frames[:-1])


def test_chat_stream_starts_with_the_assistant_role_and_carries_content_deltas() -> None:
    async def go() -> list[Any]:
        async with serving(*FAST) as (client, _):
            _, raw = await _post(
                client,
                "/v1/chat/completions",
                {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "hi there"}],
                    "max_completion_tokens": 6,
                    "ignore_eos": True,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            )
            return parse_sse(raw)

    frames = run(go())
    assert frames[0]["object"] == "chat.completion.chunk"
    assert frames[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [f["choices"][0]["delta"]["content"] for f in frames[1:-2]]
    assert len(content) == 6 and all(content)
    assert frames[-2]["usage"]["completion_tokens"] == 6
    assert frames[-3]["choices"][0]["finish_reason"] == "length"


def test_non_streaming_chat_returns_the_whole_message_and_usage() -> None:
    async def go() -> dict[str, Any]:
        async with serving(*FAST) as (client, _):
            resp = await client.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "ignore_eos": True},
            )
            assert resp.status == 200
            return await resp.json()

    body = run(go())
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert len(body["choices"][0]["message"]["content"].split()) == 4
    assert body["usage"]["completion_tokens"] == 4
    assert body["usage"]["prompt_tokens"] == 1 + 4 + 5 + 1  # BOS + reply header + message template + "hi"


def test_token_id_prompts_count_one_token_per_id() -> None:
    async def go() -> dict[str, Any]:
        async with serving(*FAST) as (client, _):
            return await (
                await client.post("/v1/completions", json={"prompt": list(range(100)), "max_tokens": 2})
            ).json()

    assert run(go())["usage"]["prompt_tokens"] == 100


def test_unknown_model_is_404_in_vllms_error_shape() -> None:
    async def go() -> tuple[int, dict[str, Any]]:
        async with serving(*FAST) as (client, _):
            resp = await client.post("/v1/completions", json={"model": "nope/model", "prompt": "x"})
            return resp.status, await resp.json()

    status, body = run(go())
    assert status == 404
    assert body == {
        "error": {
            "message": "The model `nope/model` does not exist. Valid aliases: facebook/opt-125m.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }


def test_legacy_vllm_errors_are_flat_objects() -> None:
    async def go() -> tuple[int, dict[str, Any]]:
        async with serving(*FAST, "--profile", "v0.6.3") as (client, _):
            resp = await client.post("/v1/completions", json={"model": "nope", "prompt": "x"})
            return resp.status, await resp.json()

    status, body = run(go())
    assert status == 404 and body["object"] == "error" and body["type"] == "NotFoundError"


@pytest.mark.parametrize(
    ("profile", "body", "err_type", "param", "fragment"),
    [
        ("v0.10.1", {"prompt": "x", "max_tokens": 0}, "BadRequestError", "max_tokens", "must be at least 1"),
        (
            "v0.10.1",
            {"prompt": "x", "max_tokens": 5, "min_tokens": 9},
            "BadRequestError",
            "min_tokens",
            "min_tokens must be less than or equal to max_tokens=5",
        ),
        (
            "v0.10.1",
            {"prompt": "x", "stream_options": {"include_usage": True}},
            "BadRequestError",
            "stream_options",
            "Stream options can only be defined when `stream=True`",
        ),
        ("v0.10.1", {"prompt": 12}, "BadRequestError", "prompt", "prompt must be"),
        (
            "v0.10.1",
            {"prompt": "x", "max_tokens": 5000},
            "BadRequestError",
            "max_tokens",
            "maximum context length is 2048 tokens",
        ),
        (
            "v0.10.1",
            {"prompt": "x", "max_tokens": "ten"},
            "BadRequestError",
            "max_tokens",
            "must be an integer",
        ),
        # from 0.32 (as the real 0.32.0 answers): the parameter is named, type errors are pydantic's
        (
            "latest",
            {"prompt": "x", "max_tokens": 0},
            "BadRequestError",
            "max_tokens",
            "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)",
        ),
        (
            "latest",
            {"prompt": "x", "max_tokens": 5000},
            "BadRequestError",
            "max_tokens",
            "max_tokens=5000 cannot be greater than max_model_len=2048",
        ),
        ("latest", {"prompt": "x " * 3000}, "BadRequestError", "input_tokens", "at least 2049 input tokens"),
        ("latest", {"prompt": "x", "temperature": 2.5}, "BadRequestError", "temperature", "in [0, 2]"),
        ("latest", {"prompt": "x", "top_p": 0}, "BadRequestError", "top_p", "top_p must be in (0, 1]"),
        ("latest", {"prompt": "x", "max_tokens": "ten"}, "Bad Request", "body.max_tokens", "'int_parsing'"),
        ("latest", {"prompt": 12}, "Bad Request", "body.prompt", "validation error"),
    ],
)
def test_bad_requests_are_400_with_vllms_message(
    profile: str, body: dict[str, Any], err_type: str, param: str | None, fragment: str
) -> None:
    async def go() -> tuple[int, dict[str, Any]]:
        async with serving(*FAST, "--profile", profile) as (client, _):
            resp = await client.post("/v1/completions", json=body)
            return resp.status, await resp.json()

    status, err = run(go())
    assert status == 400
    assert (err["error"]["type"], err["error"]["param"]) == (err_type, param)
    assert fragment in err["error"]["message"], err


def test_from_032_max_tokens_past_the_context_is_cut_to_what_is_left() -> None:
    """vLLM 0.32 runs prompt + max_tokens > max_model_len with max_tokens cut (0.10 refused it)."""

    async def go(profile: str) -> tuple[int, dict[str, Any]]:
        async with serving(*FAST, "--max-model-len", "64", "--profile", profile) as (client, _):
            body = {"prompt": list(range(40)), "max_tokens": 60, "ignore_eos": True}
            resp = await client.post("/v1/completions", json=body)
            return resp.status, await resp.json()

    status, body = run(go("0.32.0"))
    assert status == 200 and body["usage"]["completion_tokens"] == 24
    assert body["choices"][0]["finish_reason"] == "length"
    assert run(go("0.10.1"))[0] == 400


def test_invalid_json_is_400() -> None:
    async def go() -> int:
        async with serving(*FAST) as (client, _):
            return (
                await client.post(
                    "/v1/completions", data=b"{not json", headers={"Content-Type": "application/json"}
                )
            ).status

    assert run(go()) == 400


def test_models_health_and_version_routes() -> None:
    async def go() -> tuple[dict[str, Any], int, bytes, dict[str, Any]]:
        async with serving(
            MODEL, "--time-scale", "0", "--served-model-name", "opt", "--profile", "v0.10.1"
        ) as (client, _):
            models = await (await client.get("/v1/models")).json()
            health = await client.get("/health")
            return models, health.status, await health.read(), await (await client.get("/version")).json()

    models, health_status, health_body, version = run(go())
    assert models["object"] == "list"
    card = models["data"][0]
    assert (
        card["id"] == "opt"
        and card["owned_by"] == "vllm"
        and card["root"] == MODEL
        and card["max_model_len"] == 2048
    )
    assert health_status == 200 and health_body == b""
    assert version == {"version": "0.10.1", "simulator": "lws-vllm-suite"}


def test_a_crash_turns_health_503_and_fails_open_streams() -> None:
    async def go() -> tuple[int, int, int]:
        async with serving(MODEL, "--time-scale", "1", "--enable-test-hooks") as (client, _server):
            stream = await client.post(
                "/v1/completions",
                json={"prompt": "x", "max_tokens": 1000, "ignore_eos": True, "stream": True},
            )
            await stream.content.readuntil(b"\n\n")  # the stream is running
            crash = await client.post("/_sim/crash")
            raw = await stream.read()
            assert b'"InternalServerError"' in raw and raw.endswith(b"data: [DONE]\n\n")
            after = await client.post("/v1/completions", json={"prompt": "x"})
            return crash.status, (await client.get("/health")).status, after.status

    crash, health, after = run(go())
    assert (crash, health, after) == (200, 503, 500)


def test_api_key_is_enforced_when_set() -> None:
    async def go() -> tuple[int, int]:
        async with serving(*FAST, "--api-key", "s3cret") as (client, _):
            denied = await client.post("/v1/completions", json={"prompt": "x"})
            ok = await client.post(
                "/v1/completions", json={"prompt": "x"}, headers={"Authorization": "Bearer s3cret"}
            )
            return denied.status, ok.status

    assert run(go()) == (401, 200)


def test_a_lost_node_stalls_the_next_step_until_the_execute_timeout_then_every_request_fails() -> None:
    """As real vLLM's leader (CPU build, tests/testbed/engine/test_fidelity_peer_loss.py): it does not notice a
    lost node until a model step needs it; /health answers 200 meanwhile, and the request waits out the
    execute-model timeout, then fails with the engine."""

    async def go() -> tuple[int, float, int, bytes, int]:
        loop = asyncio.get_running_loop()
        async with serving(*FAST, "--execute-model-timeout", "0.5") as (client, server):
            server.lose_peer("lost")
            health_before = (await client.get("/health")).status
            sent = loop.time()
            status, body = await _post(client, "/v1/completions", {"prompt": "x", "max_tokens": 4})
            waited = loop.time() - sent
            return health_before, waited, status, body, (await client.get("/health")).status

    health_before, waited, status, body, health_after = run(go())
    assert health_before == 200
    assert waited >= 0.5 and status == 500 and b'"InternalServerError"' in body
    assert b"execute_model timed out" in body
    assert health_after == 503


def test_a_stream_in_flight_when_a_node_is_lost_stops_and_then_fails() -> None:
    async def go() -> tuple[bytes, int]:
        async with serving(MODEL, "--time-scale", "1", "--execute-model-timeout", "0.3") as (client, server):
            stream = await client.post(
                "/v1/completions",
                json={"prompt": "x", "max_tokens": 1000, "ignore_eos": True, "stream": True},
            )
            await stream.content.readuntil(b"\n\n")  # the stream is running; its first frame read
            made = sum(s.req.generated for s in server._live if s.req is not None)
            server.lose_peer("lost")
            return await stream.read(), made

    raw, made = run(go())
    assert b'"InternalServerError"' in raw and raw.endswith(b"data: [DONE]\n\n")
    # only the tokens made before the loss, then the error frame and [DONE] (an engine that went on would have
    # sent about 200 tokens in those 0.3 s)
    assert raw.count(b"data: ") - 2 <= made - 1, raw[:400]
