"""The Locust user measures exactly as the async generator does: same prompts' words, same request body,
same idea of a token-carrying chunk, same failure reasons. (load/locust/locust_stream.py is what the
locustfile uses; importing it does not import Locust.)"""

from __future__ import annotations

import json
import random

import aiohttp
import pytest

from load.locust import locust_stream as ls
from load.records import RequestRecord
from load.request import Target, _clip, _describe, request_body
from load.sse import SseDecoder
from load.sse_events import chat_carries_token, completion_carries_token, take_events
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
    assert ls.completion_carries_token(choices) == completion_carries_token(choices)


@pytest.mark.parametrize("choices", CHAT_CHOICES)
def test_chat_chunks_carry_tokens_as_in_the_async_generator(choices: list) -> None:
    assert ls.chat_carries_token(choices) == chat_carries_token(choices)


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
    failure = take_events([payload], [at], False, record)
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


# One event of each shape a server sends or might send, the API it is read under, and what it must do:
# (failure reason, whether it carries a token, (prompt_tokens, output_tokens)). vLLM's shapes:
# vllm/entrypoints/openai/protocol.py (CompletionStreamResponse, ChatCompletionStreamResponse, ErrorResponse).
NO_USAGE = (None, None)
EVENTS = [
    ("completion chunk", b'{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":'
     b'[{"index":0,"text":"Hi","logprobs":null,"finish_reason":null,"stop_reason":null}]}',
     "completions", (None, True, NO_USAGE)),
    ("completion token with no text yet", b'{"choices":[{"index":0,"text":"","finish_reason":null}]}',
     "completions", (None, True, NO_USAGE)),
    ("completion closing choice", b'{"choices":[{"index":0,"text":"","finish_reason":"length"}]}',
     "completions", (None, False, NO_USAGE)),
    ("two completion choices", b'{"choices":[{"text":"","finish_reason":"stop"},{"text":"x","finish_reason":null}]}',
     "completions", (None, True, NO_USAGE)),
    ("usage chunk", b'{"id":"cmpl-1","object":"text_completion","choices":[],'
     b'"usage":{"prompt_tokens":5,"total_tokens":12,"completion_tokens":7}}', "completions", (None, False, (5, 7))),
    ("token and usage in one chunk", b'{"choices":[{"text":"a","finish_reason":"length"}],'
     b'"usage":{"prompt_tokens":2,"completion_tokens":1}}', "completions", (None, True, (2, 1))),
    ("null usage", b'{"choices":[{"text":"a","finish_reason":null}],"usage":null}', "completions", (None, True, NO_USAGE)),
    ("chat role prelude", b'{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":'
     b'[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}',
     "chat", (None, False, NO_USAGE)),
    ("chat content", b'{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}',
     "chat", (None, True, NO_USAGE)),
    ("chat empty content mid-stream", b'{"choices":[{"index":0,"delta":{"content":""},"finish_reason":null}]}',
     "chat", (None, True, NO_USAGE)),
    ("chat reasoning", b'{"choices":[{"index":0,"delta":{"reasoning_content":"hm"},"finish_reason":null}]}',
     "chat", (None, True, NO_USAGE)),
    ("chat reasoning (newer field)", b'{"choices":[{"index":0,"delta":{"reasoning":"hm"},"finish_reason":null}]}',
     "chat", (None, True, NO_USAGE)),
    ("chat tool call", b'{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"t"}]},"finish_reason":null}]}',
     "chat", (None, True, NO_USAGE)),
    ("chat close", b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}', "chat", (None, False, NO_USAGE)),
    ("chat completion chunk read as completions", b'{"choices":[{"index":0,"delta":{"content":"Hi"},'
     b'"finish_reason":"stop"}]}', "completions", (None, False, NO_USAGE)),
    ("completion chunk read as chat", b'{"choices":[{"index":0,"text":"Hi","finish_reason":null}]}',
     "chat", (None, False, NO_USAGE)),
    ("chat usage", b'{"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}',
     "chat", (None, False, (3, 4))),
    ("error event", b'{"error":{"object":"error","message":"boom","type":"BadRequestError","code":400}}',
     "completions", ("server_error_event", False, NO_USAGE)),
    ("object=error", b'{"object":"error","message":"boom","type":"InternalServerError","param":null,"code":500}',
     "chat", ("server_error_event", False, NO_USAGE)),
    ("malformed JSON", b'{"choices":[', "completions", ("malformed_sse", False, NO_USAGE)),
    ("not JSON at all", b"hello", "chat", ("malformed_sse", False, NO_USAGE)),
    ("not UTF-8", b'{"a":"\xff"}', "completions", ("malformed_sse", False, NO_USAGE)),
    ("JSON list", b"[1, 2]", "completions", ("malformed_sse", False, NO_USAGE)),
    ("JSON string", b'"text"', "chat", ("malformed_sse", False, NO_USAGE)),
    ("JSON null", b"null", "completions", ("malformed_sse", False, NO_USAGE)),
    ("choice not an object", b'{"choices":[1]}', "completions", ("malformed_sse", False, NO_USAGE)),
    ("chat choice not an object", b'{"choices":["x"]}', "chat", ("malformed_sse", False, NO_USAGE)),
    ("choices an object", b'{"choices":{"0":{"text":"a"}}}', "completions", ("malformed_sse", False, NO_USAGE)),
    ("usage without completion_tokens", b'{"choices":[],"usage":{"prompt_tokens":1}}',
     "completions", ("malformed_sse", False, (1, None))),
    ("usage not a number", b'{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":"many"}}',
     "chat", ("malformed_sse", False, (1, None))),
    ("usage a list", b'{"choices":[],"usage":[1]}', "completions", ("malformed_sse", False, NO_USAGE)),
]  # fmt: skip


def _both(payload: bytes, api: str) -> tuple[tuple, tuple]:
    """What the Locust copy and the generator's take_events each make of one event read at t=1."""
    mine, theirs = ls.RawRecord("w", 0, 0.0), RequestRecord(index=0, scheduled=0.0)
    reason = mine.take_event(payload, ls.carries_token_for(api), 1.0)
    failure = take_events([payload], [1.0], api == "chat", theirs)
    assert failure is None or failure[1:] == (payload, 1.0)
    return (
        (reason, mine.chunk_times == [1.0], (mine.prompt_tokens, mine.output_tokens)),
        (failure and failure[0], theirs.chunk_times == [1.0], (theirs.prompt_tokens, theirs.output_tokens)),
    )


@pytest.mark.parametrize(("payload", "api", "expected"), [e[1:] for e in EVENTS], ids=[e[0] for e in EVENTS])
def test_the_locust_copy_reads_every_event_as_the_generator_does(
    payload: bytes, api: str, expected: tuple
) -> None:
    locust, generator = _both(payload, api)
    assert generator == expected
    assert locust == generator


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_the_two_agree_on_every_event_under_either_api(api: str) -> None:
    for name, payload, _, _ in EVENTS:
        locust, generator = _both(payload, api)
        assert locust == generator, name


def test_the_locust_line_reader_frames_a_stream_as_the_generators_decoder() -> None:
    stream = (b': keep-alive\r\n\r\ndata: {"a":\ndata: 1}\n\nevent: x\r\nid: 3\r\ndata:{"b":2}\r\n\r\n'
              b"data: [DONE]\n\ndata: tail")  # fmt: skip
    decoder, lines = ls.SseLines(), SseDecoder()
    by_lines = [d for line in stream.splitlines(keepends=True) if (d := decoder.feed(line)) is not None]
    by_reads = [d for d, _ in lines.feed(stream)]
    assert by_lines == by_reads == [b'{"a":\n1}', b'{"b":2}', b"[DONE]"]
    assert decoder.finish() == lines.finish() == b"tail"


@pytest.mark.parametrize("data", [b"", b"short", "\u00e9".encode() * 200, b"x" * 300, b"\xff" * 301])
def test_a_failures_detail_is_clipped_as_the_generator_clips_it(data: bytes) -> None:
    assert ls.clip(data) == _clip(data)
    assert len(ls.clip(data)) <= 303


@pytest.mark.parametrize("exc", [TimeoutError(), ConnectionResetError(104, "reset"), OSError("no route")])
def test_a_failures_exception_is_described_as_the_generator_describes_it(exc: BaseException) -> None:
    assert ls.describe(exc) == _describe(exc)
    assert ls.describe(exc).startswith(type(exc).__name__)


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
    # every field but the reply text (kept by multi-turn sessions) and the balancer's endpoint header
    assert set(line) - {"type", "worker"} == {f for f in RequestRecord.__dataclass_fields__} - {
        "text",
        "endpoint",
    }
