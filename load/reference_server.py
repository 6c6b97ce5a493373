"""A streaming OpenAI-compatible server with exactly known timing and chosen faults.

The measuring stick for the client: the self-tests and the capacity benchmark run it in a separate
process. It is not a model of vLLM's speed (that is the testbed's engine simulator); every request is
answered alike: response headers at once, the first token chunk ``ttft_ms`` after the request arrived,
then one chunk every ``itl_ms`` on an absolute schedule (no drift), each with ``tokens_per_chunk``
tokens; then the usage chunk and ``data: [DONE]``. ``max_tokens`` tokens in all (``ignore_eos`` is
implied). With ``ttft_ms == itl_ms == 0`` the whole stream goes out in one write (capacity mode).

A raw asyncio protocol rather than aiohttp.web, so one core serves far faster than a client reads and
the server's own overhead stays small. For each request (keyed by its ``X-Request-Id``) it records when
the request arrived and when each chunk was written, with ``time.perf_counter`` (CLOCK_MONOTONIC, the
client's clock), and serves that truth at ``GET /debug/truth``; ``GET /debug/stats`` counts streams
and events; ``POST /debug/reset`` clears both.

Faults, per request by a prompt (or last chat message) that starts with ``@fault=NAME``, or for every
request with ``--fault NAME``: ``500``/``429``/``503`` (an error status and vLLM-shaped JSON body),
``close`` (connection closed before any response), ``reset`` (TCP RST after the first chunk),
``malformed`` (a frame that is not JSON after the first chunk), ``truncated`` (the stream ends inside a
frame), ``no_done`` (no ``[DONE]``), ``no_usage`` (no usage chunk), ``error_event`` (an ``{"error":
...}`` frame mid-stream), ``hang`` (headers, then silence until the client gives up); and ``big``, not a
fault: the first chunk's text is 2 MiB in one SSE line (a client with a line-length limit fails it).

    python -m load.reference_server --port 0 --ttft-ms 50 --itl-ms 20   # prints: listening http://...
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import socket
import struct
import sys
import time
from dataclasses import dataclass
from time import perf_counter
from typing import Any

FAULTS = (
    "500", "429", "503", "close", "reset", "malformed", "truncated", "no_done", "no_usage", "error_event", "hang",
    "big",
)  # fmt: skip
_BIG_FRAME_BYTES = 2 * 1024 * 1024
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 429: b"Too Many Requests", 500: b"Internal Server Error", 503: b"Service Unavailable"}  # fmt: skip
_TOKEN = " hello"
_SO_TIMESTAMPNS = 35  # Linux; not exported by the socket module. Its cmsg is a struct timespec.
_CMSG_SIZE = socket.CMSG_SPACE(16)
_READ_SIZE = 256 * 1024


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    tokens_per_chunk: int = 1
    default_max_tokens: int = 16
    model: str = "reference-model"
    fault: str | None = None  # applied to every request
    record_truth: bool = False
    announce: bool = False  # print "arrived <request id>" on stdout for each request
    barrier: int = 0  # hold every stream's first token until this many streams are open at once


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
        self._cache: dict[tuple[str, int, int], bytes] = {}
        self._frames: dict[tuple[str, bool, int, bool], bytes] = {}
        self._due: dict[int, list[_Stream]] = {}
        self._held: list[_Stream] = []
        self._seq = 0
        self._model_json = json.dumps(config.model)
        self._loop = asyncio.get_running_loop()
        self._clock_offset = perf_counter() - self._loop.time()  # both CLOCK_MONOTONIC: ~0
        self._realtime_offset_ns = time.time_ns() - time.perf_counter_ns()  # kernel stamps are wall clock

    # -- request routing -------------------------------------------------------------------------
    def kernel_time(self, ancillary: list[tuple[int, int, bytes]]) -> float:
        """The kernel's receive time of the bytes just read, on the perf_counter clock."""
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
                seconds, nanoseconds = struct.unpack("qq", data[:16])
                return (seconds * 1_000_000_000 + nanoseconds - self._realtime_offset_ns) / 1e9
        return perf_counter()

    def handle(self, conn: _Connection, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        arrive = conn.received_at
        path = path.split("?", 1)[0]
        if method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
            self._generate(conn, "chat" if "chat" in path else "completions", headers, body, arrive)
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
            conn.respond(404, _error(f"no route {method} {path}", "NotFoundError", 404))

    def _generate(
        self, conn: _Connection, api: str, headers: dict[str, str], body: bytes, arrive: float
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
            conn.respond(400, _error(f"bad request: {exc}", "BadRequestError", 400))
            return
        if request.get("model") != self.config.model:
            conn.respond(
                404, _error(f"The model `{request.get('model')}` does not exist.", "NotFoundError", 404)
            )
            return
        fault = self.config.fault
        if last.startswith("@fault="):
            fault = last.split()[0][len("@fault=") :]
        rid = headers.get("x-request-id") or f"r{self._seq}"
        self._seq += 1
        if self.first_arrival is None:
            self.first_arrival = arrive
        if self.config.announce:
            print(f"arrived {rid}", flush=True)
        prompt_tokens = len(prompt) if isinstance(prompt, list) else len(prompt.split())
        if fault in ("500", "429", "503"):
            conn.respond(int(fault), _error("injected fault", "InternalServerError", int(fault)))
            return
        if fault == "close":
            conn.close()
            return
        if not request.get("stream"):
            conn.respond(
                400, _error("the reference server streams only (stream=true)", "BadRequestError", 400)
            )
            return
        truth = None
        if self.config.record_truth:
            truth = {"arrive": arrive, "writes": [], "tokens": [], "fault": fault}
            self.truth[rid] = truth
        usage = bool((request.get("stream_options") or {}).get("include_usage"))
        _Stream(self, conn, api, max(1, max_tokens), prompt_tokens, usage, fault, arrive, truth).start()

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

    def cached_body(self, api: str, tokens: int, prompt_tokens: int, usage: bool) -> bytes:
        """The whole stream in one piece, for capacity mode."""
        key = (api, tokens * 2 + usage, prompt_tokens)
        body = self._cache.get(key)
        if body is None:
            frames = _Frames(self, api, tokens, prompt_tokens)
            parts = [frames.chunk(j) for j in range(frames.count)]
            if usage:
                parts.append(frames.usage())
            parts.append(_DONE + b"0\r\n\r\n")
            body = b"".join(parts)
            if len(self._cache) < 1024:
                self._cache[key] = body
        return body

    def frame(self, api: str, first: bool, tokens: int, last: bool) -> bytes:
        """One token chunk as an HTTP/1.1 chunk; identical for every stream, so rendered once."""
        key = (api, first, tokens, last)
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = _render_chunk(self._model_json, api, first, tokens, last)
        return frame

    def at(self, due: float, stream: _Stream) -> None:
        """Run ``stream.emit`` at ``due`` (perf_counter seconds), rounded up to the next millisecond.

        One timer per millisecond rather than one per stream: the event loop's wait has millisecond
        resolution anyway, and thousands of streams then cost one timer each millisecond."""
        key = math.ceil(due * 1000.0)
        waiting = self._due.get(key)
        if waiting is None:
            self._due[key] = [stream]
            self._loop.call_at(key / 1000.0 - self._clock_offset, self._fire, key)
        else:
            waiting.append(stream)

    def hold(self, stream: _Stream) -> None:
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


def _render_chunk(model_json: str, api: str, first: bool, tokens: int, last: bool) -> bytes:
    text = json.dumps(_TOKEN * tokens)
    finish = '"length"' if last else "null"
    created = int(time.time())
    if api == "chat":
        head = f'{{"id":"chatcmpl-ref","object":"chat.completion.chunk","created":{created},"model":{model_json},"choices":['
        role = b""
        if first:  # vLLM sends the role prelude with the first output
            role = _frame(f'data: {head}{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}]}}\n\n'.encode())  # fmt: skip
        return role + _frame(f'data: {head}{{"index":0,"delta":{{"content":{text}}},"logprobs":null,"finish_reason":{finish}}}]}}\n\n'.encode())  # fmt: skip
    head = (
        f'{{"id":"cmpl-ref","object":"text_completion","created":{created},"model":{model_json},"choices":['
    )
    return _frame(f'data: {head}{{"index":0,"text":{text},"logprobs":null,"finish_reason":{finish},"stop_reason":null}}],"usage":null}}\n\n'.encode())  # fmt: skip


class _Frames:
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
        return _frame(f'data: {{"id":"ref","object":"{obj}","created":{int(time.time())},"model":{self.app._model_json},"choices":[],"usage":{{"prompt_tokens":{self.prompt_tokens},"total_tokens":{total},"completion_tokens":{self.tokens}}}}}\n\n'.encode())  # fmt: skip


class _Stream:
    def __init__(
        self,
        app: ReferenceServer,
        conn: _Connection,
        api: str,
        tokens: int,
        prompt_tokens: int,
        usage: bool,
        fault: str | None,
        arrive: float,
        truth: dict[str, Any] | None,
    ) -> None:
        self.app, self.conn, self.fault, self.arrive, self.truth, self.usage = (
            app,
            conn,
            fault,
            arrive,
            truth,
            usage,
        )
        self.frames = _Frames(app, api, tokens, prompt_tokens)
        self.next = 0
        self.cancelled = False

    def start(self) -> None:
        conn, app = self.conn, self.app
        conn.stream = self
        app.running += 1
        app.peak_running = max(app.peak_running, app.running)
        header = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"  # fmt: skip
        cfg = app.config
        if self.fault == "hang":
            conn.write(header)
            return
        if cfg.ttft_ms == 0 and cfg.itl_ms == 0 and self.fault is None and self.truth is None:
            body = app.cached_body(self.frames.api, self.frames.tokens, self.frames.prompt_tokens, self.usage)
            conn.write(header + body)
            app.events += self.frames.count
            self._finished()
            return
        conn.write(header)
        if cfg.barrier:
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
        frames, j, fault = self.frames, self.next, self.fault
        if fault == "reset" and j == 1:
            self.conn.reset()
            return
        if fault == "truncated" and j == 1:
            self.conn.write(_frame(b'data: {"choi') + b"0\r\n\r\n")
            self._finished()
            return
        chunk = frames.chunk(j)
        last = j == frames.count - 1
        if fault is not None or last:
            parts = [chunk]
            if j == 0 and fault == "malformed":
                parts.append(_frame(b'data: {"choices": [{"text": "x"\n\n'))
            if j == 0 and fault == "big":  # the token chunk itself, 2 MiB of text on one line
                text = json.dumps("x" * _BIG_FRAME_BYTES)
                parts[0] = _frame(f'data: {{"id":"big","object":"text_completion","created":0,"model":{self.app._model_json},"choices":[{{"index":0,"text":{text},"logprobs":null,"finish_reason":null}}],"usage":null}}\n\n'.encode())  # fmt: skip
            if j == 0 and fault == "error_event":
                parts.append(_frame(b'data: {"error": {"message": "injected", "type": "InternalServerError", "code": 500}}\n\n'))  # fmt: skip
            if last:
                if self.usage and fault != "no_usage":
                    parts.append(frames.usage())
                if fault != "no_done":
                    parts.append(_DONE)
                parts.append(b"0\r\n\r\n")
            chunk = b"".join(parts)
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


class _Connection:
    """One client connection on a raw non-blocking socket.

    Read with ``recvmsg`` so the kernel's receive timestamp (SO_TIMESTAMPNS) comes with the bytes: a
    request "arrives" when its last bytes reached the socket, not when this busy loop got round to
    reading them, so the truth does not include the server's own delays."""

    def __init__(self, app: ReferenceServer, sock: socket.socket) -> None:
        self.app = app
        self.sock = sock
        self.fd = sock.fileno()
        self.buffer = bytearray()
        self.outgoing = bytearray()
        self.stream: _Stream | None = None
        self.received_at = 0.0
        self.open = True
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        app.connections += 1
        app._loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(_READ_SIZE, _CMSG_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        self.received_at = self.app.kernel_time(ancillary)
        self.buffer += data
        if self.stream is None:
            self._serve()

    def write(self, data: bytes) -> None:
        if not self.open:
            return
        if self.outgoing:
            self.outgoing += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            self.outgoing += data[sent:]
            self.app._loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self.outgoing)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        del self.outgoing[:sent]
        if not self.outgoing:
            self.app._loop.remove_writer(self.fd)

    def respond(self, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
            status, _REASONS.get(status, b"Status"), content_type, len(body),
        )  # fmt: skip
        self.write(head + body)

    def close(self) -> None:
        if not self.open:
            return
        self.open = False
        loop = self.app._loop
        loop.remove_reader(self.fd)
        if self.outgoing:
            loop.remove_writer(self.fd)
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None
        self.sock.close()

    def reset(self) -> None:
        """Abort with a TCP RST rather than an orderly close."""
        if self.open:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close()

    def stream_done(self) -> None:
        self.stream = None
        if self.buffer:
            self._serve()

    def _serve(self) -> None:
        while self.stream is None and self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            try:
                method, path, _ = lines[0].split(" ", 2)
            except ValueError:
                self.respond(400, _error("bad request line", "BadRequestError", 400))
                self.close()
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.app.handle(self, method, path, headers, body)


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_DONE = _frame(b"data: [DONE]\n\n")


def _error(message: str, kind: str, code: int) -> bytes:
    return json.dumps(
        {"object": "error", "message": message, "type": kind, "param": None, "code": code}
    ).encode()


async def serve(config: ServerConfig, ready: asyncio.Future[int] | None = None) -> None:
    """Serve until cancelled; ``ready`` receives the bound port (else it is printed on stdout)."""
    app = ReferenceServer(config)
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)  # inherited by accepted sockets
    listener.bind((config.host, config.port))
    listener.listen(4096)
    listener.setblocking(False)
    connections: set[_Connection] = set()

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            connections.add(_Connection(app, sock))

    loop.add_reader(listener.fileno(), accept)
    port = listener.getsockname()[1]
    if ready is not None:
        ready.set_result(port)
    else:
        print(f"listening http://{config.host}:{port}", flush=True)
    gc.collect()
    gc.freeze()
    gc.disable()  # a collector pause would stall every stream at once; the server makes little garbage
    try:
        await asyncio.Event().wait()
    finally:
        loop.remove_reader(listener.fileno())
        listener.close()
        for conn in connections:
            conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load.reference_server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    parser.add_argument("--model", default="reference-model")
    parser.add_argument("--fault", choices=FAULTS)
    parser.add_argument("--truth", action="store_true", help="record per-request timing for GET /debug/truth")
    parser.add_argument("--announce", action="store_true", help='print "arrived <id>" for every request')
    parser.add_argument("--barrier", type=int, default=0, help="hold first tokens until N streams are open")
    args = parser.parse_args(argv)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        ttft_ms=args.ttft_ms,
        itl_ms=args.itl_ms,
        tokens_per_chunk=args.tokens_per_chunk,
        model=args.model,
        fault=args.fault,
        record_truth=args.truth,
        announce=args.announce,
        barrier=args.barrier,
    )
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
