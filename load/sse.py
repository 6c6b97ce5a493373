"""Incremental ``text/event-stream`` decoder: bytes in, complete ``data`` payloads out.

Frames may arrive split across reads or many to a read; there is no line-length limit (aiohttp's line
reader raises "Chunk too big" on long lines, so the request function reads with ``iter_any()`` and
decodes here). Lines may end in LF, CRLF or CR; comment lines (``:``) and fields other than ``data``
are skipped; several ``data`` lines in one event are joined with LF, as the SSE specification says.

Each event comes with the offset in the byte stream just past its end, so the caller can tell which
socket read completed it. Once a stream uses CR line endings the offsets become the end of the chunk
being fed (an upper bound), since normalising the line endings shifts the positions.
"""

from __future__ import annotations


class SseDecoder:
    __slots__ = ("_buffer", "_buffer_start", "_exact", "_fed")

    def __init__(self) -> None:
        self._buffer = b""
        self._buffer_start = 0  # stream offset of _buffer[0] (while offsets are exact)
        self._fed = 0  # bytes fed so far
        self._exact = True

    def feed(self, chunk: bytes) -> list[tuple[bytes, int]]:
        """(data, stream offset just past the event) for every event completed by this chunk."""
        datas, offsets = self.feed_split(chunk)
        return list(zip(datas, offsets, strict=True))

    def feed_split(self, chunk: bytes) -> tuple[list[bytes], list[int]]:
        """``feed`` as two lists, the data and the offsets: no object per event beyond its data."""
        self._fed += len(chunk)
        buffer = self._buffer + chunk if self._buffer else chunk
        held = b""
        if b"\r" in buffer:
            self._exact = False
            if buffer.endswith(b"\r"):  # may be the first half of CRLF: decide on the next read
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        blocks = buffer.split(b"\n\n")
        self._buffer = blocks.pop() + held
        datas: list[bytes] = []
        offsets: list[int] = []
        if blocks:
            position = self._buffer_start
            exact, fed = self._exact, self._fed
            for block in blocks:
                position += len(block) + 2
                if block[:6] == b"data: " and b"\n" not in block:  # the common single-line frame
                    datas.append(block[6:])
                else:
                    data = _event_data(block)
                    if data is None:
                        continue
                    datas.append(data)
                offsets.append(position if exact else fed)
            self._buffer_start = position
        return datas, offsets

    def finish(self) -> bytes | None:
        """At end of stream: the data of a last event not closed by a blank line, if any.

        A server that ends with ``data: [DONE]\\n`` loses nothing; a frame cut in half comes back as
        its partial data, which the caller rejects as malformed.
        """
        rest, self._buffer = self._buffer.strip(b"\r\n"), b""
        return _event_data(rest.replace(b"\r\n", b"\n")) if rest else None


def _event_data(block: bytes) -> bytes | None:
    lines: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if name == b"data":
            lines.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(lines) if lines else None
