"""The reference server's routes and its shared state: the OpenAI endpoints, ``/metrics``, ``/debug/*``.

For each request (keyed by its ``X-Request-Id``) the server can record when it arrived and when each chunk
was written, with ``time.perf_counter`` (CLOCK_MONOTONIC, the client's clock), and serves that truth at
``GET /debug/truth``; ``GET /debug/stats`` counts streams and events; ``POST /debug/reset`` clears both.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import struct
import time
from time import perf_counter
from typing import TYPE_CHECKING, Any

from load.bench.reference_config import ERROR_STATUS_FAULTS, ServerConfig, request_fault
from load.bench.reference_http import SO_TIMESTAMPNS, error_body
from load.bench.reference_stream import Frames, Stream, render_chunk

if TYPE_CHECKING:
    from load.bench.reference_http import Connection

_CACHED_BODIES = 1024  # capacity mode keeps this many whole streams rendered


class ReferenceServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.truth: dict[str, dict[str, Any]] = {}
        self.streams_done = 0
        self.events = 0
        self.first_arrival: float | None = None
        self.last_done: float | None = None
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.running = 0
        self.peak_running = 0
        self.connections = 0  # accepted since start (or the last reset)
        self.model_json = json.dumps(config.model)
        self.loop = asyncio.get_running_loop()
        self._cache: dict[tuple[str, int, int], bytes] = {}
        self._frames: dict[tuple[str, bool, int, bool], bytes] = {}
        self._due: dict[int, list[Stream]] = {}
        self._held: list[Stream] = []
        self._seq = 0
        self._clock_offset = perf_counter() - self.loop.time()  # both CLOCK_MONOTONIC: ~0
        self._realtime_offset_ns = time.time_ns() - time.perf_counter_ns()  # kernel stamps are wall clock

    # -- request routing -------------------------------------------------------------------------
    def kernel_time(self, ancillary: list[tuple[int, int, bytes]]) -> float:
        """The kernel's receive time of the bytes just read, on the perf_counter clock."""
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                seconds, nanoseconds = struct.unpack("qq", data[:16])
                return (seconds * 1_000_000_000 + nanoseconds - self._realtime_offset_ns) / 1e9
        return perf_counter()

    def handle(self, conn: Connection, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        arrive = conn.received_at
        path = path.split("?", 1)[0]
        if method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
            self._generate(conn, "chat" if "chat" in path else "completions", headers, body, arrive)
        elif method == "POST" and path == "/tokenize":
            self._tokenize(conn, body)
        elif method == "GET" and path == "/v1/models":
            conn.respond(200, json.dumps({"object": "list", "data": [{"id": self.config.model, "object": "model", "owned_by": "reference"}]}).encode())  # fmt: skip
        elif method == "GET" and path == "/health":
            conn.respond(200, b"")
        elif method == "GET" and path == "/version":
            conn.respond(200, b'{"version": "reference"}')
        elif method == "GET" and path == "/metrics":
            conn.respond(200, self._metrics_text().encode(), b"text/plain; version=0.0.4")
        elif method == "GET" and path == "/debug/truth":
            conn.respond(200, json.dumps({"requests": self.truth}).encode())
        elif method == "GET" and path == "/debug/stats":
            stats = {"streams": self.streams_done, "events": self.events, "connections": self.connections, "peak_running": self.peak_running, "first_arrival": self.first_arrival, "last_done": self.last_done}  # fmt: skip
            conn.respond(200, json.dumps(stats).encode())
        elif method == "POST" and path == "/debug/reset":
            self.truth.clear()
            self.streams_done = self.events = self.connections = self.peak_running = 0
            self.first_arrival = self.last_done = None
            conn.respond(200, b"{}")
        else:
            conn.respond(404, error_body(f"no route {method} {path}", "NotFoundError", 404))

    def _tokenize(self, conn: Connection, body: bytes) -> None:
        """vLLM's POST /tokenize in this server's tokens: one a whitespace-separated word, as it counts
        usage.prompt_tokens (a chat request's contents joined)."""
        try:
            request = json.loads(body)
            if "messages" in request:
                text = " ".join(str(m.get("content", "")) for m in request["messages"])
            else:
                text = str(request["prompt"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            conn.respond(400, error_body(f"bad request: {exc}", "BadRequestError", 400))
            return
        tokens = list(range(len(text.split())))
        answer = {"count": len(tokens), "max_model_len": 1 << 20, "tokens": tokens, "token_strs": None}
        conn.respond(200, json.dumps(answer).encode())

    def _generate(
        self, conn: Connection, api: str, headers: dict[str, str], body: bytes, arrive: float
    ) -> None:
        try:
            request = json.loads(body)
            if api == "chat":
                messages = request["messages"]
                prompt = " ".join(str(m.get("content", "")) for m in messages)
                last = str(messages[-1].get("content", "")) if messages else ""
            else:
                prompt = request["prompt"]
                last = prompt if isinstance(prompt, str) else ""
            max_tokens = int(request.get("max_tokens") or request.get("max_completion_tokens") or self.config.default_max_tokens)  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            conn.respond(400, error_body(f"bad request: {exc}", "BadRequestError", 400))
            return
        if request.get("model") != self.config.model:
            conn.respond(
                404, error_body(f"The model `{request.get('model')}` does not exist.", "NotFoundError", 404)
            )
            return
        fault = request_fault(self.config, last)
        rid = headers.get("x-request-id") or f"r{self._seq}"
        self._seq += 1
        if self.first_arrival is None:
            self.first_arrival = arrive
        if self.config.announce:
            print(f"arrived {rid}", flush=True)
        prompt_tokens = len(prompt) if isinstance(prompt, list) else len(prompt.split())
        if fault in ERROR_STATUS_FAULTS:
            conn.respond(int(fault), error_body("injected fault", "InternalServerError", int(fault)))
            return
        if fault == "close":
            conn.close()
            return
        if not request.get("stream"):
            conn.respond(
                400, error_body("the reference server streams only (stream=true)", "BadRequestError", 400)
            )
            return
        truth = None
        if self.config.record_truth:
            truth = {"arrive": arrive, "writes": [], "tokens": [], "fault": fault}
            self.truth[rid] = truth
        usage = bool((request.get("stream_options") or {}).get("include_usage"))
        frames = Frames(self, api, max(1, max_tokens), prompt_tokens)
        Stream(self, conn, frames, usage, fault, arrive, truth).start()

    def _metrics_text(self) -> str:
        label = f'{{model_name="{self.config.model}"}}'
        return (
            "# HELP vllm:num_requests_running Requests running.\n# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{label} {self.running}\n"
            "# HELP vllm:prompt_tokens_total Prompt tokens.\n# TYPE vllm:prompt_tokens_total counter\n"
            f"vllm:prompt_tokens_total{label} {self.prompt_tokens}\n"
            "# HELP vllm:generation_tokens_total Generation tokens.\n# TYPE vllm:generation_tokens_total counter\n"
            f"vllm:generation_tokens_total{label} {self.generation_tokens}\n"
            "# HELP vllm:request_success_total Finished requests.\n# TYPE vllm:request_success_total counter\n"
            f"vllm:request_success_total{label} {self.streams_done}\n"
        )

    # -- rendering and timing, shared by every stream ------------------------------------------
    def cached_body(self, frames: Frames, usage: bool) -> bytes:
        """The whole stream in one piece, for capacity mode; identical for equal shapes, so kept."""
        key = (frames.api, frames.tokens * 2 + usage, frames.prompt_tokens)
        body = self._cache.get(key)
        if body is None:
            body = frames.whole(usage)
            if len(self._cache) < _CACHED_BODIES:
                self._cache[key] = body
        return body

    def frame(self, api: str, first: bool, tokens: int, last: bool) -> bytes:
        """One token chunk as an HTTP/1.1 chunk; identical for every stream, so rendered once."""
        key = (api, first, tokens, last)
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = render_chunk(self.model_json, api, first, tokens, last)
        return frame

    def at(self, due: float, stream: Stream) -> None:
        """Run ``stream.emit`` at ``due`` (perf_counter seconds), rounded up to the next millisecond.

        One timer per millisecond rather than one per stream: the event loop's wait has millisecond
        resolution anyway, and thousands of streams then cost one timer each millisecond."""
        key = math.ceil(due * 1000.0)
        waiting = self._due.get(key)
        if waiting is None:
            self._due[key] = [stream]
            self.loop.call_at(key / 1000.0 - self._clock_offset, self._fire, key)
        else:
            waiting.append(stream)

    def hold(self, stream: Stream) -> None:
        """Keep streams waiting until ``barrier`` of them are open, then start them all together:
        proves that many requests were in flight at once, however slowly they were sent."""
        self._held.append(stream)
        if self.running >= self.config.barrier:
            held, self._held = self._held, []
            now = perf_counter()
            for waiting in held:
                if not waiting.cancelled:
                    waiting.release(now)

    def _fire(self, key: int) -> None:
        for stream in self._due.pop(key, ()):
            if not stream.cancelled:
                stream.emit()
