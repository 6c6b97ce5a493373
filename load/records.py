"""One record per request sent: what was asked, when, what came back, and how it ended.

Every time is ``time.perf_counter()`` seconds (CLOCK_MONOTONIC on Linux, so comparable across processes
on one machine). A failed request is a record with ``error`` set, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestRecord:
    index: int
    scheduled: float  # when it was due: its arrival time (open loop) or when its slot freed (closed loop)
    # when it could first be sent: its due time, or later when a concurrency cap held it for a slot; sent -
    # ready is the client's own delay (load/client_check.py), apart from waiting for the server to free a slot
    ready: float | None = None
    sent: float | None = None  # immediately before the request was handed to aiohttp
    chunk_times: list[float] = field(default_factory=list)  # arrival of each token-carrying chunk
    finished: float | None = None  # end of the stream (success) or the moment it failed
    prompt_tokens: int | None = None  # usage.prompt_tokens
    output_tokens: int | None = None  # usage.completion_tokens
    status: int | None = None  # HTTP status, None when no response arrived
    error: str | None = None  # failure reason (README lists them); None = completed
    error_detail: str | None = None
    endpoint: str | None = None  # the pod that served it, from the balancer's x-lws-vllm-endpoint header
    # the streamed text, kept only when a list is given (multi-turn sessions send it back as history)
    text: list[str] | None = None

    @property
    def first_token(self) -> float | None:
        return self.chunk_times[0] if self.chunk_times else None

    @property
    def last_token(self) -> float | None:
        return self.chunk_times[-1] if self.chunk_times else None

    @property
    def ok(self) -> bool:
        return self.error is None and self.finished is not None

    def fail(self, reason: str, detail: str | None, at: float) -> None:
        self.error = reason
        self.error_detail = detail
        self.finished = at
