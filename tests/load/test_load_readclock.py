"""The read clock: every socket read timed, under asyncio's event loop and under uvloop, and bodies read
in batches with nothing lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import aiohttp
import pytest
import uvloop
from load_testkit import MODEL, reference_server

from load import readclock
from load.config import Level, RandomWorkload, SweepConfig
from load.records import RequestRecord
from load.request import Target, new_session, request_body, send_request
from load.workload import RequestSpec

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.fixture(scope="module")
def paced() -> Iterator[str]:
    with reference_server("--ttft-ms", "5", "--itl-ms", "50") as (url, _):
        yield url


@pytest.fixture(scope="module")
def fast() -> Iterator[str]:
    with reference_server() as (url, _):
        yield url


def _run(loop: str, coro: Callable[[], object]) -> object:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(coro())  # type: ignore[arg-type]


@pytest.mark.parametrize("loop", LOOPS)
def test_every_socket_read_is_timed_under(loop: str, paced: str) -> None:
    """uvloop binds ``protocol.data_received`` when a connection is made: a hook set on the instance
    afterwards never fires there, and chunk times would silently be the coroutine's."""
    tokens = 6

    async def reads() -> int:
        async with new_session() as session:
            body = {"model": MODEL, "prompt": "hi", "max_tokens": tokens, "stream": True}
            async with session.post(paced + "/v1/completions", json=body) as response:
                clock = readclock.attach(response)
                assert clock is not None, "the session's connections do not time their reads"
                while await clock.read():
                    pass
                return clock.reads

    # One read per token 50 ms apart; a machine stalling for longer may merge a few, never all.
    assert _run(loop, reads) >= tokens // 2


def _config(url: str, output_len: int) -> SweepConfig:
    return SweepConfig(
        endpoint=url,
        model=MODEL,
        workload=RandomWorkload(input_len=8, output_len=output_len),
        levels=(Level(num_requests=1, concurrency=1),),
    )


@pytest.mark.parametrize("loop", LOOPS)
def test_long_responses_are_read_in_batches_with_every_event_timed(loop: str, fast: str) -> None:
    """8k-token responses written at once: 2 MB bodies, many batches each, every token kept."""
    tokens, streams = 8192, 4
    target = Target.from_config(_config(fast, tokens))
    body = request_body(target, RequestSpec(" ".join(["hello"] * 32768), tokens, 32768))

    async def records() -> list[RequestRecord]:
        async with new_session() as session:
            done = [RequestRecord(index=i, scheduled=0.0) for i in range(streams)]
            headers = {"Content-Type": "application/json"}
            await asyncio.gather(*(send_request(session, target, body, headers, r) for r in done))
            return done

    for record in _run(loop, records):  # type: ignore[attr-defined]
        assert record.ok, (record.error, record.error_detail)
        assert (record.output_tokens, record.prompt_tokens) == (tokens, 32768)
        assert len(record.chunk_times) == tokens
        assert record.chunk_times == sorted(record.chunk_times)
        assert record.sent is not None and record.sent <= record.chunk_times[0]


def test_a_read_is_handed_over_within_the_batch_time_while_the_stream_stays_open() -> None:
    """The first token comes at once and the next 3 s later: the reader sees the first long before
    the stream ends (so an error event is acted on while the stream is still open)."""
    with reference_server("--ttft-ms", "1", "--itl-ms", "3000") as (url, _):

        async def first_data_after() -> float:
            async with new_session() as session:
                body = {"model": MODEL, "prompt": "hi", "max_tokens": 2, "stream": True}
                async with session.post(url + "/v1/completions", json=body) as response:
                    clock = readclock.attach(response)
                    assert clock is not None
                    started = time.perf_counter()
                    while b"text" not in await clock.read():
                        pass
                    return time.perf_counter() - started

        assert asyncio.run(first_data_after()) < 1.5


def test_a_session_without_timed_connections_still_measures_by_the_coroutine(fast: str) -> None:
    target = Target.from_config(_config(fast, 16))
    body = request_body(target, RequestSpec("a b c", 16, 3))

    async def record() -> RequestRecord:
        async with aiohttp.ClientSession() as session:  # aiohttp's own protocol: no read clock
            done = RequestRecord(index=0, scheduled=0.0)
            await send_request(session, target, body, {"Content-Type": "application/json"}, done)
            return done

    result = asyncio.run(record())
    assert result.ok, (result.error, result.error_detail)
    assert len(result.chunk_times) == result.output_tokens == 16
