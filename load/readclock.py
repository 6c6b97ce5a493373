"""When the bytes of a response body came off the socket, and reading them in batches.

aiohttp reads the socket in its protocol's ``data_received`` and wakes the reading coroutine one
event-loop turn later; in a busy turn (many streams ready at once) that is milliseconds later, and
timing chunks by the coroutine would charge the client's own queueing to the server. Waking a
coroutine for every read is also a large part of a streaming client's cost per event when each read
carries one event (a decode loop's one token per stream per step).

So the connection protocol is aiohttp's own ``ResponseHandler`` subclassed (``TimedResponseHandler``,
given to the connector as its protocol factory): its ``data_received`` notes the time of each read
and how many body bytes the response held then, and wakes the reading coroutine only when a batch
is waiting (``BATCH_BYTES``, or a read ``BATCH_SECONDS`` old), the body ended or the connection was
lost. The request function decodes
each batch at once and asks when the body up to a given offset had arrived. Overriding the method
on the class works under any event loop: uvloop binds ``protocol.data_received`` once when the
connection is made, so a hook set on the instance later is never called there.

It relies on ``TCPConnector._factory``, ``ClientResponse.connection.protocol`` and
``StreamReader.total_bytes``; if aiohttp changes those, ``attach`` returns None and the caller reads
chunk by chunk, timed when the coroutine sees them (the way vLLM bench serve times them). A self-test
checks the precise path is active with this aiohttp, under asyncio's loop and uvloop.
"""

from __future__ import annotations

import asyncio
import functools
from time import perf_counter
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

BATCH_BYTES = 64 * 1024  # body bytes that wake the reader before the end (bounds memory per stream)
# and the longest a read waits to be decoded (one timer per batch): spreads the decoding over the
# stream rather than all of it at its end (streams that end together, as in a decode loop, would queue
# their next requests behind it), and an error event is seen while the stream is open; one wake-up of
# the reader per 100 ms instead of one per read.
BATCH_SECONDS = 0.1


class TimedResponseHandler(ResponseHandler):
    """aiohttp's client protocol, noting the time of every socket read for the clock attached."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.last_read: float | None = None
        self.clock: ReadClock | None = None

    def data_received(self, data: bytes) -> None:
        if not data:  # aiohttp resuming its parser (resume_reading), not a read
            super().data_received(data)
            return
        now = self.last_read = perf_counter()
        super().data_received(data)
        clock = self.clock
        if clock is not None:  # ReadClock.note, inlined: this runs for every read of every stream
            total = clock._content.total_bytes
            if total > clock._last_total:
                clock._last_total = total
                clock._times.append(now)
                clock._totals.append(total)
                if clock._waiter is not None:
                    if total - clock._taken >= BATCH_BYTES:
                        clock.wake()
                    elif clock._timer is None:
                        clock._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        clock = self.clock
        if clock is not None:
            clock._lost = True
            clock.wake()


def timed_connector(**kwargs: Any) -> aiohttp.TCPConnector:
    """A ``TCPConnector`` whose connections time their reads (call inside the running loop)."""
    connector = aiohttp.TCPConnector(**kwargs)
    if callable(getattr(connector, "_factory", None)):
        factory = functools.partial(TimedResponseHandler, loop=asyncio.get_running_loop())
        connector._factory = factory  # type: ignore[assignment]  # a subclass: typeshed's partial is invariant
    return connector


class ReadClock:
    __slots__ = (
        "_content", "_cursor", "_forgotten", "_handler", "_last_total", "_loop", "_lost", "_taken", "_taken_at",
        "_timer", "_times", "_totals", "_waiter",
    )  # fmt: skip

    def __init__(self, content: Any, handler: TimedResponseHandler) -> None:
        self._content = content
        self._handler = handler
        self._times: list[float] = []
        self._totals: list[int] = []
        self._last_total = 0
        self._cursor = 0
        self._forgotten = 0  # reads dropped from _times once decoded
        self._taken = 0  # body bytes handed to the reader so far
        self._taken_at = perf_counter()  # when the reader last took them
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None  # wakes the reader BATCH_SECONDS after a read
        self._loop = asyncio.get_running_loop()
        self._lost = False  # the connection was lost
        # Bytes that came before this clock (with the headers): the latest read is their upper bound.
        self.note(handler.last_read or perf_counter())
        content.on_eof(self.wake)

    def note(self, when: float) -> None:
        total = self._content.total_bytes
        if total > self._last_total:
            self._last_total = total
            self._times.append(when)
            self._totals.append(total)

    def _due(self, now: float) -> bool:
        """Whether the bytes waiting are a batch: enough of them, or waiting long enough."""
        waiting = self._last_total - self._taken
        return waiting >= BATCH_BYTES or (waiting > 0 and now - self._taken_at >= BATCH_SECONDS)

    def _arm(self) -> None:
        self._timer = self._loop.call_later(BATCH_SECONDS, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def read(self) -> bytes:
        """The body bytes waiting, once a batch is (or the body ended: then b""); raises as
        ``StreamReader.readany`` does when the connection failed."""
        content = self._content
        while not (
            self._lost or content.is_eof() or content.exception() is not None or self._due(perf_counter())
        ):
            if self._timer is None and self._last_total > self._taken:
                self._arm()
            self._waiter = waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        self._trim()
        if _CAN_DRAIN and content.exception() is None and content._buffer and not content._buffer_offset:
            data = _drain(content)
        else:
            data = await content.readany()
        self._taken += len(data)
        self._taken_at = perf_counter()
        return data

    @property
    def last_read(self) -> float | None:
        return self._handler.last_read

    def arrivals(self, offsets: list[int], count: int) -> list[float]:
        """When the body's first ``offset`` bytes had all been read, for the first ``count`` offsets
        (asked in increasing order across calls)."""
        totals, times = self._totals, self._times
        i = self._cursor
        last = len(totals) - 1
        out: list[float] = []
        for offset in offsets[:count]:
            while i < last and totals[i] < offset:
                i += 1
            out.append(times[i])
        self._cursor = i
        return out

    def _trim(self) -> None:
        """Forget the reads before the one last asked about (offsets are asked in order)."""
        if self._cursor:
            del self._totals[: self._cursor], self._times[: self._cursor]
            self._forgotten += self._cursor
            self._cursor = 0

    @property
    def reads(self) -> int:
        """Socket reads that brought body bytes since the clock was attached (the first counts the
        bytes that came before it, with the headers)."""
        return self._forgotten + len(self._times)

    def close(self) -> None:
        if self._handler.clock is self:
            self._handler.clock = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.wake()


# StreamReader.readany() takes its buffer piece by piece (one piece per HTTP chunk, so per event here)
# and calls the protocol's resume_reading(), which re-enters data_received(b""), for every piece: a
# good part of the client's work per event. _drain takes the whole buffer at once and
# resumes once, with the same effect on the reader's state; it is used only while StreamReader has
# the fields it relies on (as aiohttp 3.14 does), else readany() is. The self-tests read 2 MB bodies
# through it and check every event arrived.
_DRAIN_FIELDS = {"_buffer", "_buffer_offset", "_size", "_cursor", "_http_chunk_splits", "_protocol"}
_CAN_DRAIN = set(getattr(aiohttp.StreamReader, "__slots__", ())) >= _DRAIN_FIELDS


def _drain(content: Any) -> bytes:
    buffer = content._buffer
    data = b"".join(buffer)
    buffer.clear()
    size = len(data)
    content._size -= size
    content._cursor += size
    splits = content._http_chunk_splits
    if splits:
        splits.clear()  # HTTP chunk ends up to the cursor: readany() drops them as it passes them
    content._protocol.resume_reading()
    return data


def attach(response: aiohttp.ClientResponse) -> ReadClock | None:
    connection = response.connection
    handler = connection.protocol if connection is not None else None
    content = response.content
    if not isinstance(handler, TimedResponseHandler) or not isinstance(
        getattr(content, "total_bytes", None), int
    ):
        return None
    clock = ReadClock(content, handler)
    handler.clock = clock
    return clock
