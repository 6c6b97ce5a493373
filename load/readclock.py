"""When the bytes of a response body came off the socket, rather than when our coroutine saw them.

aiohttp reads the socket in its protocol's ``data_received`` and wakes the reading coroutine one
event-loop turn later; in a busy turn (many streams ready at once) that is milliseconds later, and
timing chunks by the coroutine would charge the client's own queueing to the server. A ReadClock
wraps the connection protocol's ``data_received`` (on that instance only, once per connection) and
notes, for each socket read, the time and how many body bytes the response held then. The request
function then asks when the body up to a given offset had arrived.

It uses only ``ClientResponse.connection.protocol`` and ``StreamReader.total_bytes``; if either is
missing (another aiohttp, another transport), ``attach`` returns None and the caller falls back to
the time the coroutine saw the bytes, the way vLLM bench serve times them.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

import aiohttp


class _Hook:
    """Replaces ``protocol.data_received`` on one protocol instance; forwards every call."""

    __slots__ = ("clock", "original")

    def __init__(self, original: Callable[[bytes], Any]) -> None:
        self.original = original
        self.clock: ReadClock | None = None

    def __call__(self, data: bytes) -> None:
        clock = self.clock
        if clock is None or not data:
            self.original(data)
            return
        now = perf_counter()
        self.original(data)
        clock.note(now)


class ReadClock:
    __slots__ = ("_content", "_cursor", "_hook", "_times", "_totals")

    def __init__(self, content: Any, hook: _Hook) -> None:
        self._content = content
        self._hook = hook
        self._times: list[float] = []
        self._totals: list[int] = []
        self._cursor = 0
        self.note(perf_counter())  # bytes that came with the headers: no earlier time is known

    def note(self, when: float) -> None:
        total = self._content.total_bytes
        if not self._totals or total > self._totals[-1]:
            self._times.append(when)
            self._totals.append(total)

    def arrival(self, offset: int, fallback: float) -> float:
        """When the body's first ``offset`` bytes had all been read (offsets asked in order)."""
        totals = self._totals
        i = self._cursor
        while i < len(totals) and totals[i] < offset:
            i += 1
        self._cursor = i
        return self._times[i] if i < len(totals) else fallback

    def close(self) -> None:
        if self._hook.clock is self:
            self._hook.clock = None


def attach(response: aiohttp.ClientResponse) -> ReadClock | None:
    connection = response.connection
    protocol = connection.protocol if connection is not None else None
    content = response.content
    if protocol is None or not isinstance(getattr(content, "total_bytes", None), int):
        return None
    hook = protocol.__dict__.get("data_received")
    if not isinstance(hook, _Hook):
        try:
            hook = _Hook(protocol.data_received)
            protocol.data_received = hook  # type: ignore[method-assign]
        except AttributeError:  # a protocol without an instance dict
            return None
    clock = ReadClock(content, hook)
    hook.clock = clock
    return clock
