"""The Locust user measures exactly as the async generator does: same prompts' words, same request body,
same idea of a token-carrying chunk, same failure reasons. (load/locust_stream.py is what the locustfile
uses; importing it does not import Locust.)"""

from __future__ import annotations

import json
import random

import aiohttp
import pytest

from load import locust_stream as ls
from load.records import RequestRecord
from load.request import Target, _chat_carries_token, _completion_carries_token, _take_events, request_body
from load.workload import WORDS, RequestSpec

COMPLETION_CHOICES = [
    [{"index": 0, "text": "Hello", "finish_reason": None}],
    [{"index": 0, "text": "", "finish_reason": None}],  # a token that decodes to no text yet
    [{"index": 0, "text": "", "finish_reason": "length"}],  # the closing choice carries none
    [{"index": 0, "text": " end", "finish_reason": "stop"}],
    [{"index": 0, "text": "", "finish_reason": "stop"}, {"index": 1, "text": "x", "finish_reason": None}],
]
CHAT_CHOICES = [
    [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],  # role prelude
    [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
    [{"index": 0, "delta": {"content": ""}, "finish_reason": None}],
    [{"index": 0, "delta": {"reasoning_content": "think"}, "finish_reason": None}],
    [{"index": 0, "delta": {"tool_calls": [{"id": "t"}]}, "finish_reason": None}],
    [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}],
]


def test_prompts_use_the_async_generators_words() -> None:
    assert ls.WORDS == WORDS
    text = ls.prompt(random.Random(1), 50)
    assert len(text.split()) == 50 and set(text.split()) <= set(WORDS)


@pytest.mark.parametrize("choices", COMPLETION_CHOICES)
def test_completion_chunks_carry_tokens_as_in_the_async_generator(choices: list) -> None:
    assert ls.completion_carries_token(choices) == _completion_carries_token(choices)


@pytest.mark.parametrize("choices", CHAT_CHOICES)
def test_chat_chunks_carry_tokens_as_in_the_async_generator(choices: list) -> None:
    assert ls.chat_carries_token(choices) == _chat_carries_token(choices)


@pytest.mark.parametrize("api", ["completions", "chat"])
@pytest.mark.parametrize("ignore_eos", [True, False])
def test_request_body_is_the_async_generators(api: str, ignore_eos: bool) -> None:
    target = Target("http://x", "m", api, ignore_eos, {}, {}, aiohttp.ClientTimeout(), 1.0)  # type: ignore[arg-type]
    expected = request_body(target, RequestSpec("a b c", 7, 3))
    assert json.loads(ls.request_body("m", api, "a b c", 7, ignore_eos)) == json.loads(expected)


STREAM = [
    b'{"choices":[{"index":0,"text":"a","finish_reason":null}]}',
    b'{"choices":[{"index":0,"text":"","finish_reason":null}]}',
    b'{"choices":[{"index":0,"text":"b","finish_reason":"length"}]}',
    b'{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}}',
]


def _take_event(payload: bytes, record: RequestRecord, at: float) -> str | None:
    failure = _take_events([payload], [at], False, record)
    return None if failure is None else failure[0]


def test_events_fill_a_record_as_the_async_generator_fills_its_own() -> None:
    mine, theirs = ls.RawRecord("w", 0, 0.0), RequestRecord(index=0, scheduled=0.0)
    for n, payload in enumerate(STREAM):
        assert mine.take_event(payload, ls.completion_carries_token, float(n)) is None
        assert _take_event(payload, theirs, float(n)) is None
    assert mine.chunk_times == theirs.chunk_times == [0.0, 1.0, 2.0]
    assert (mine.prompt_tokens, mine.output_tokens) == (theirs.prompt_tokens, theirs.output_tokens) == (4, 3)
    for bad, reason in ((b"{not json", "malformed_sse"), (b'{"error":{"message":"x"}}', "server_error_event"),
                        (b'{"choices":[],"usage":{"prompt_tokens":1}}', "malformed_sse")):  # fmt: skip
        assert ls.RawRecord("w", 1, 0.0).take_event(bad, ls.completion_carries_token, 0.0) == reason
        assert _take_event(bad, RequestRecord(index=1, scheduled=0.0), 0.0) == reason


def test_a_stream_must_end_with_done_tokens_and_usage() -> None:
    ok = ls.RawRecord("w", 0, 0.0)
    ok.sent = 0.0
    for n, payload in enumerate(STREAM):
        ok.take_event(payload, ls.completion_carries_token, float(n + 1))
    ok.close(saw_done=True, at=5.0)
    assert ok.ok and ok.finished == 5.0
    assert (ok.ttft_ms(), ok.e2el_ms(), ok.tpot_ms()) == (1000.0, 3000.0, 1000.0)

    cut = ls.RawRecord("w", 1, 0.0)
    cut.take_event(STREAM[0], ls.completion_carries_token, 1.0)
    cut.close(saw_done=False, at=2.0)
    assert (cut.error, cut.finished, cut.ttft_ms()) == ("no_done", 2.0, None)

    silent = ls.RawRecord("w", 2, 0.0)
    silent.close(saw_done=True, at=2.0)
    assert silent.error == "no_tokens"

    no_usage = ls.RawRecord("w", 3, 0.0)
    no_usage.take_event(STREAM[0], ls.completion_carries_token, 1.0)
    no_usage.close(saw_done=True, at=2.0)
    assert no_usage.error == "no_usage"


def test_the_first_failure_reason_is_kept() -> None:
    record = ls.RawRecord("w", 0, 0.0)
    record.fail("timeout", "no data", 1.0)
    record.fail("interrupted", "stopped", 2.0)
    assert (record.error, record.finished) == ("timeout", 1.0)


def test_sse_lines_join_data_skip_comments_and_accept_crlf() -> None:
    decoder = ls.SseLines()
    lines = [b": keep-alive\n", b"data: {\"a\":\n", b"data: 1}\n", b"\n", b"event: x\r\n", b"data: [DONE]\r\n",
             b"\r\n", b"data: tail"]  # fmt: skip
    events = [e for e in (decoder.feed(line) for line in lines) if e is not None]
    assert events == [b'{"a":\n1}', b"[DONE]"]
    assert decoder.finish() == b"tail"
    assert decoder.finish() is None


def test_raw_lines_are_json_with_a_clock_anchor() -> None:
    anchor = json.loads(ls.worker_line("host-1", "worker", 3))
    assert anchor["type"] == "worker" and anchor["format"] == ls.RECORD_FORMAT and anchor["index"] == 3
    assert isinstance(anchor["perf"], float) and isinstance(anchor["wall"], float)
    record = ls.RawRecord("host-1", 7, 1.5)
    record.sent = 1.6
    line = json.loads(record.line())
    assert line["type"] == "request" and line["worker"] == "host-1" and line["index"] == 7
    assert set(line) - {"type", "worker"} == {f for f in RequestRecord.__dataclass_fields__}
