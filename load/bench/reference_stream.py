"""One streamed response of the reference server: its SSE frames, its absolute schedule and its faults.

Response headers at once, the first token chunk ``ttft_ms`` after the request arrived, then one chunk
every ``itl_ms`` on an absolute schedule (no drift), each with ``tokens_per_chunk`` tokens; then the
usage chunk and ``data: [DONE]``. The frames are shaped as vLLM's OpenAI server writes them.
"""

from __future__ import annotations

import json
import math
import time
from time import perf_counter
from typing import TYPE_CHECKING, Any

from load.bench.reference_http import END_OF_BODY, http_chunk

if TYPE_CHECKING:
    from load.bench.reference_handlers import ReferenceServer
    from load.bench.reference_http import Connection

BIG_FRAME_BYTES = 2 * 1024 * 1024
_TOKEN = " hello"
_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"  # fmt: skip
DONE = http_chunk(b"data: [DONE]\n\n")
_MALFORMED = http_chunk(b'data: {"choices": [{"text": "x"\n\n')
_TRUNCATED = http_chunk(b'data: {"choi')
_ERROR_EVENT = http_chunk(b'data: {"error": {"message": "injected", "type": "InternalServerError", "code": 500}}\n\n')  # fmt: skip


def render_chunk(model_json: str, api: str, first: bool, tokens: int, last: bool) -> bytes:
    """One token chunk of ``api`` ("chat" or "completions") as an HTTP chunk; chat's first one has the role."""
    text = json.dumps(_TOKEN * tokens)
    finish = '"length"' if last else "null"
    created = int(time.time())
    if api == "chat":
        head = f'{{"id":"chatcmpl-ref","object":"chat.completion.chunk","created":{created},"model":{model_json},"choices":['
        role = b""
        if first:  # vLLM sends the role prelude with the first output
            role = http_chunk(f'data: {head}{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}]}}\n\n'.encode())  # fmt: skip
        return role + http_chunk(f'data: {head}{{"index":0,"delta":{{"content":{text}}},"logprobs":null,"finish_reason":{finish}}}]}}\n\n'.encode())  # fmt: skip
    head = (
        f'{{"id":"cmpl-ref","object":"text_completion","created":{created},"model":{model_json},"choices":['
    )
    return http_chunk(f'data: {head}{{"index":0,"text":{text},"logprobs":null,"finish_reason":{finish},"stop_reason":null}}],"usage":null}}\n\n'.encode())  # fmt: skip


def _big_chunk(model_json: str) -> bytes:
    """The ``big`` fault's first token chunk: 2 MiB of text on one SSE line."""
    text = json.dumps("x" * BIG_FRAME_BYTES)
    return http_chunk(f'data: {{"id":"big","object":"text_completion","created":0,"model":{model_json},"choices":[{{"index":0,"text":{text},"logprobs":null,"finish_reason":null}}],"usage":null}}\n\n'.encode())  # fmt: skip


class Frames:
    """How one stream's tokens split into chunks, and its frames."""

    def __init__(self, app: ReferenceServer, api: str, tokens: int, prompt_tokens: int) -> None:
        self.app, self.api, self.tokens, self.prompt_tokens = app, api, tokens, prompt_tokens
        self.per_chunk = app.config.tokens_per_chunk
        self.count = math.ceil(tokens / self.per_chunk)

    def size(self, j: int) -> int:
        return min(self.per_chunk, self.tokens - j * self.per_chunk)

    def chunk(self, j: int) -> bytes:
        return self.app.frame(self.api, j == 0, self.size(j), j == self.count - 1)

    def usage(self) -> bytes:
        obj = "chat.completion.chunk" if self.api == "chat" else "text_completion"
        total = self.prompt_tokens + self.tokens
        return http_chunk(f'data: {{"id":"ref","object":"{obj}","created":{int(time.time())},"model":{self.app.model_json},"choices":[],"usage":{{"prompt_tokens":{self.prompt_tokens},"total_tokens":{total},"completion_tokens":{self.tokens}}}}}\n\n'.encode())  # fmt: skip

    def whole(self, usage: bool) -> bytes:
        """The whole stream in one piece (capacity mode)."""
        parts = [self.chunk(j) for j in range(self.count)]
        if usage:
            parts.append(self.usage())
        parts.append(DONE + END_OF_BODY)
        return b"".join(parts)


class Stream:
    """One request's response, written on its schedule; ``fault`` changes what is written (reference_config)."""

    def __init__(
        self,
        app: ReferenceServer,
        conn: Connection,
        frames: Frames,
        usage: bool,
        fault: str | None,
        arrive: float,
        truth: dict[str, Any] | None,
    ) -> None:
        self.app, self.conn, self.frames, self.usage = app, conn, frames, usage
        self.fault, self.arrive, self.truth = fault, arrive, truth
        self.next = 0
        self.cancelled = False

    def start(self) -> None:
        conn, app = self.conn, self.app
        conn.stream = self
        app.running += 1
        app.peak_running = max(app.peak_running, app.running)
        if self.fault == "hang":
            conn.write(_HEADERS)
            return
        if app.config.capacity_mode and self.fault is None and self.truth is None:
            body = app.cached_body(self.frames, self.usage)
            conn.write(_HEADERS + body)
            app.events += self.frames.count
            self._finished()
            return
        conn.write(_HEADERS)
        if app.config.barrier:
            app.hold(self)
        else:
            self._schedule()

    def release(self, at: float) -> None:
        """Start the schedule now: the barrier opened."""
        self.arrive = at
        self._schedule()

    def _schedule(self) -> None:
        cfg = self.app.config
        self.app.at(self.arrive + (cfg.ttft_ms + self.next * cfg.itl_ms) / 1e3, self)

    def emit(self) -> None:
        """Write the next token chunk (with the fault's change, and the end of the stream after the last)."""
        frames, j, fault = self.frames, self.next, self.fault
        if fault == "reset" and j == 1:
            self.conn.reset()
            return
        if fault == "truncated" and j == 1:
            self.conn.write(_TRUNCATED + END_OF_BODY)
            self._finished()
            return
        last = j == frames.count - 1
        chunk = frames.chunk(j) if fault is None and not last else self._faulted_chunk(j, last)
        now = perf_counter()
        self.conn.write(chunk)
        if self.truth is not None:
            self.truth["writes"].append(now)
            self.truth["tokens"].append(frames.size(j))
        self.app.events += 1
        self.next += 1
        if last:
            self._finished()
        else:
            self._schedule()

    def _faulted_chunk(self, j: int, last: bool) -> bytes:
        """Chunk ``j`` with what the fault adds to the first, and the usage, [DONE] and end after the last."""
        fault = self.fault
        parts = [self.frames.chunk(j)]
        if j == 0 and fault == "malformed":
            parts.append(_MALFORMED)
        if j == 0 and fault == "big":  # the token chunk itself, 2 MiB of text on one line
            parts[0] = _big_chunk(self.app.model_json)
        if j == 0 and fault == "error_event":
            parts.append(_ERROR_EVENT)
        if last:
            if self.usage and fault != "no_usage":
                parts.append(self.frames.usage())
            if fault != "no_done":
                parts.append(DONE)
            parts.append(END_OF_BODY)
        return b"".join(parts)

    def _finished(self) -> None:
        app = self.app
        app.running -= 1
        app.streams_done += 1
        app.generation_tokens += self.frames.tokens
        app.prompt_tokens += self.frames.prompt_tokens
        app.last_done = perf_counter()
        self.conn.stream_done()

    def cancel(self) -> None:
        self.cancelled = True
        self.app.running -= 1
