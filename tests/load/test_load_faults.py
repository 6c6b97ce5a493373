"""Every way a request can fail is counted with its reason, never lost: sent = completed + failed.

The reference server runs in its own process; a prompt "@fault=NAME" picks what it does.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest
from load_testkit import MODEL, get_json, post, reference_server

from load.config import Api, Level, RandomWorkload, SweepConfig, Timeouts
from load.level_runner import run_level
from load.metrics import level_metrics
from load.records import RequestRecord
from load.request import Target, new_session
from load.workload import RequestSpec

EXPECTED_REASON = {
    "500": "http_500",
    "429": "http_429",
    "503": "http_503",
    "close": "connection_reset",
    "reset": "connection_reset",
    "malformed": "malformed_sse",
    "truncated": "malformed_sse",
    "no_done": "no_done",
    "no_usage": "no_usage",
    "error_event": "server_error_event",
    "hang": "timeout",
}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with reference_server("--ttft-ms", "2", "--itl-ms", "2") as (url, _):
        yield url


def send(
    url: str, prompts: list[str], *, output_len: int = 4, api: Api = "completions", read_s: float = 5.0
) -> list[RequestRecord]:
    config = SweepConfig(
        endpoint=url,
        model=MODEL,
        api=api,
        workload=RandomWorkload(input_len=1, output_len=output_len),
        levels=(Level(num_requests=len(prompts), concurrency=len(prompts)),),
        timeouts=Timeouts(read_s=read_s),
    )
    specs = [RequestSpec(p, output_len, None) for p in prompts]

    async def go() -> list[RequestRecord]:
        async with new_session() as session:
            run = await run_level(session, Target.from_config(config), config.levels[0], specs, None)
        return run.records

    return asyncio.run(go())


def test_each_fault_fails_its_request_with_its_reason_and_the_rest_complete(server: str) -> None:
    faults = list(EXPECTED_REASON)
    records = send(
        server, [f"@fault={f} please" for f in faults] + ["hello there"] * 4 + ["@fault=big"], read_s=0.5
    )
    by_prompt = {r.index: r for r in records}
    for i, fault in enumerate(faults):
        assert by_prompt[i].error == EXPECTED_REASON[fault], (
            fault,
            by_prompt[i].error,
            by_prompt[i].error_detail,
        )
        assert by_prompt[i].finished is not None and by_prompt[i].error_detail
    assert all(by_prompt[i].ok for i in range(len(faults), len(records))), [
        r.error for r in records[len(faults) :]
    ]
    m = level_metrics(records)
    assert m.requests.sent == len(records) == m.requests.completed + m.requests.failed
    assert m.requests.errors_by_reason == dict(Counter(EXPECTED_REASON.values()))
    assert m.ttft_ms.count == m.requests.completed  # failed requests are not latency samples


def test_an_http_error_keeps_its_status_and_the_servers_message(server: str) -> None:
    (record,) = send(server, ["@fault=429"])
    assert record.status == 429 and record.error == "http_429"
    assert "injected fault" in (record.error_detail or "")


def test_output_tokens_come_from_usage_not_from_counting_chunks() -> None:
    # 9 tokens in chunks of 3, 20 ms apart: 3 chunks. TPOT spreads 40 ms over 8 tokens; ITL is per chunk.
    with reference_server("--ttft-ms", "10", "--itl-ms", "20", "--tokens-per-chunk", "3") as (url, _):
        records = send(url, ["hello"] * 4, output_len=9)
    m = level_metrics(records)
    assert all(r.ok and r.output_tokens == 9 and len(r.chunk_times) == 3 for r in records)
    assert m.tpot_ms.p50 == pytest.approx(5.0, abs=0.5)
    assert m.itl_ms.p50 == pytest.approx(20.0, abs=1.5)


def test_chat_streams_complete_and_the_role_prelude_is_not_a_token(server: str) -> None:
    records = send(server, ["hello"] * 3, api="chat", output_len=5)
    assert all(r.ok and r.output_tokens == 5 and len(r.chunk_times) == 5 for r in records), [
        r.error for r in records
    ]


def test_no_connection_cap_below_the_concurrency() -> None:
    # aiohttp's default connector allows 100 connections; 300 requests must all be in flight at once.
    # The server holds every first token until 300 streams are open: a capped client times out.
    with reference_server("--ttft-ms", "1", "--itl-ms", "1", "--barrier", "300") as (url, _):
        post(url + "/debug/reset")
        records = send(url, ["hello"] * 300, output_len=2, read_s=10)
        stats = get_json(url + "/debug/stats")
    assert all(r.ok for r in records), {r.error for r in records}
    assert stats["peak_running"] == 300
