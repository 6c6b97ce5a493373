"""The request function: one streaming request to /v1/completions or /v1/chat/completions.

Measured as docs/architecture.md defines, with one clock (``perf_counter``): ``sent`` is the moment the
request's bytes are written to the socket (aiohttp's request-chunk-sent trace; the moment before
``post`` if they never are); a chunk's time is the moment the socket read that completed it returned
(``readclock``), before any parsing or queueing in our event loop. Output tokens come from the
server's ``usage`` (``stream_options.include_usage``), never from counting chunks. Every way a request
can go wrong ends as a reason on the record; nothing but a bug raises.

What each event's data means (token-carrying chunks, usage, error events) is load/sse_events.py's
``take_events``, the generator's one interpretation of an event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import aiohttp

from load import readclock
from load.balancer_api import ENDPOINT_HEADER
from load.config import Api, SweepConfig
from load.records import RequestRecord
from load.sse import SseDecoder
from load.sse_events import take_events
from load.workload import RequestSpec

_fast_dumps: Callable[[Any], bytes] | None
try:  # an optional accelerator; results are identical without it
    from orjson import dumps as _fast_dumps
except ImportError:  # pragma: no cover - depends on the environment
    _fast_dumps = None

API_PATHS: dict[str, str] = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
_DETAIL_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how every request of a run is sent."""

    base_url: str
    model: str
    api: Api
    ignore_eos: bool
    headers: Mapping[str, str]
    extra_body: Mapping[str, Any]
    timeout: aiohttp.ClientTimeout  # total and connect; the read timeout is ours (see _Watchdog)
    read_timeout_s: float

    @property
    def url(self) -> str:
        return self.base_url + API_PATHS[self.api]

    @classmethod
    def from_config(cls, config: SweepConfig) -> Target:
        t = config.timeouts
        return cls(
            base_url=config.base_url,
            model=config.model,
            api=config.api,
            ignore_eos=config.ignore_eos,
            headers=dict(config.headers),
            extra_body=dict(config.extra_body),
            timeout=aiohttp.ClientTimeout(total=t.request_s, sock_connect=t.connect_s),
            read_timeout_s=t.read_s,
        )


def request_body(
    target: Target, spec: RequestSpec, messages: Sequence[tuple[str, str]] | None = None
) -> bytes:
    """The JSON body; ``messages`` (role, content) for a chat request with history (load/conversations.py)."""
    body: dict[str, Any] = {
        "model": target.model,
        "max_tokens": spec.output_len,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if target.api == "chat":
        body["messages"] = (
            [{"role": r, "content": c} for r, c in messages]
            if messages is not None
            else [{"role": "user", "content": spec.prompt}]
        )
    else:
        body["prompt"] = spec.prompt
    if target.ignore_eos:
        body["ignore_eos"] = True
    body.update(target.extra_body)
    if _fast_dumps is not None:  # compact UTF-8 JSON, as below; much faster on 32k-token prompts
        return _fast_dumps(body)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class _Watchdog:
    """The read timeout: fails the request after ``limit`` seconds without a read.

    aiohttp's ``sock_read`` re-arms a timer on every socket read; at thousands of reads a second the
    event loop's timer heap fills with cancelled timers and its periodic clean-up stalls every stream
    for milliseconds. This one timer is re-armed only when it fires and finds recent activity."""

    __slots__ = ("clock", "fired", "handle", "last", "limit", "loop", "task")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.last = perf_counter()
        self.clock: readclock.ReadClock | None = None  # its reads count as activity too
        self.fired = False
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.handle = self.loop.call_later(limit, self._check)

    def _check(self) -> None:
        last = self.last
        if self.clock is not None:
            last = max(last, self.clock.last_read or last)
        idle = perf_counter() - last
        if idle >= self.limit:
            self.fired = True
            if self.task is not None:
                self.task.cancel()
        else:
            self.handle = self.loop.call_later(self.limit - idle, self._check)

    def owns_cancellation(self) -> bool:
        """Whether the cancellation being handled was ours alone (a timeout, not a stop)."""
        return self.fired and (self.task is None or self.task.uncancel() == 0)

    def close(self) -> None:
        self.handle.cancel()


async def send_request(
    session: aiohttp.ClientSession,
    target: Target,
    body: bytes,
    headers: Mapping[str, str],
    record: RequestRecord,
) -> None:
    """Send one request and fill ``record`` in; returns normally whatever the server did."""
    chat = target.api == "chat"
    decoder = SseDecoder()
    done = False
    watchdog = _Watchdog(target.read_timeout_s)
    record.sent = perf_counter()  # replaced by the moment the bytes are written, if they are (see below)
    try:
        async with session.post(
            target.url, data=body, headers=headers, timeout=target.timeout, trace_request_ctx=record
        ) as response:
            record.status = response.status
            record.endpoint = response.headers.get(ENDPOINT_HEADER)  # set only through the loopback balancer
            if response.status != 200:
                record.fail(f"http_{response.status}", await _error_text(response), perf_counter())
                return
            clock = readclock.attach(response)
            watchdog.clock = clock
            content = response.content
            try:
                while data := await (clock.read() if clock is not None else content.readany()):
                    seen = perf_counter()
                    if clock is None:
                        watchdog.last = seen
                    if done:
                        continue  # read to the end, so the connection can be reused
                    datas, offsets = decoder.feed_split(data)
                    if b"[DONE]" in datas:
                        del datas[datas.index(b"[DONE]") :]
                        done = True
                    times = clock.arrivals(offsets, len(datas)) if clock is not None else [seen] * len(datas)
                    failure = take_events(datas, times, chat, record)
                    if failure is not None:
                        record.fail(failure[0], _clip(failure[1]), failure[2])
                        return
            finally:
                if clock is not None:
                    clock.close()
            end = perf_counter()
            tail = decoder.finish()
            if tail == b"[DONE]":
                done = True
            elif tail is not None and not done and (failure := take_events([tail], [end], chat, record)):
                record.fail(failure[0], _clip(tail), end)
                return
            if not done:
                record.fail("no_done", "the stream ended without data: [DONE]", end)
            elif not record.chunk_times:
                record.fail("no_tokens", "the stream carried no token", end)
            elif record.output_tokens is None:
                record.fail("no_usage", "no usage.completion_tokens (stream_options.include_usage)", end)
            else:
                record.finished = end
    except asyncio.CancelledError:
        if not watchdog.owns_cancellation():
            raise
        record.fail("timeout", f"no data for {target.read_timeout_s:g} s", perf_counter())
    except TimeoutError as exc:  # the total or connect timeout (asyncio's and aiohttp's alike)
        record.fail("timeout", _describe(exc), perf_counter())
    except aiohttp.ClientConnectorError as exc:
        record.fail("connect_error", _describe(exc), perf_counter())
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
        record.fail("connection_reset", _describe(exc), perf_counter())
    except aiohttp.ClientError as exc:
        record.fail("client_error", _describe(exc), perf_counter())
    finally:
        watchdog.close()


async def _error_text(response: aiohttp.ClientResponse) -> str:
    try:
        return _clip(await response.content.read(_DETAIL_LIMIT))
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"(body unreadable: {_describe(exc)})"


def _clip(data: bytes) -> str:
    text = data[:_DETAIL_LIMIT].decode("utf-8", "replace")
    return text + ("..." if len(data) > _DETAIL_LIMIT else "")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _on_body_sent(
    session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestChunkSentParams
) -> None:
    """Re-stamp ``sent`` just before the request's bytes go to the socket (headers and body leave in
    one write). On Python < 3.12 aiohttp writes the body from a separate task, one loop turn after
    ``post`` is called; under load that turn can take milliseconds, which belong to the client (they
    show as schedule lag), not to the server's TTFT."""
    record = context.trace_request_ctx
    if isinstance(record, RequestRecord):
        record.sent = perf_counter()


def new_session() -> aiohttp.ClientSession:
    """One session for a whole run (call inside the running loop), with an explicit connector.

    ``limit=0`` lifts aiohttp's default cap of 100 connections, which would silently cap concurrency;
    ``read_bufsize`` of 4 MiB keeps large frames from being read in 64 KiB slices; responses are not
    decompressed and ask for identity encoding, so no proxy holds the stream back to compress it.
    """
    connector = readclock.timed_connector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
    tracing = aiohttp.TraceConfig()
    tracing.on_request_chunk_sent.append(_on_body_sent)
    return aiohttp.ClientSession(
        connector=connector,
        trace_configs=[tracing],
        read_bufsize=4 * 1024 * 1024,
        auto_decompress=False,
        headers={"Accept-Encoding": "identity"},
        timeout=aiohttp.ClientTimeout(total=None),
    )
