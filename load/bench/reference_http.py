"""The reference server's HTTP/1.1: one client connection on a raw non-blocking socket, and chunked framing.

A raw socket rather than aiohttp.web keeps the server's own overhead small (one core serves far faster
than a client reads). Requests are read with ``recvmsg`` so the kernel's receive timestamp
(SO_TIMESTAMPNS) comes with the bytes.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from load.bench.reference_handlers import ReferenceServer
    from load.bench.reference_stream import Stream

SO_TIMESTAMPNS = 35  # Linux; not exported by the socket module. Its cmsg is a struct timespec.
_CMSG_SIZE = socket.CMSG_SPACE(16)
_READ_SIZE = 256 * 1024
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 429: b"Too Many Requests", 500: b"Internal Server Error", 503: b"Service Unavailable"}  # fmt: skip
END_OF_BODY = b"0\r\n\r\n"  # the last chunk of a chunked body


def http_chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a ``Transfer-Encoding: chunked`` body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def error_body(message: str, kind: str, code: int) -> bytes:
    """A JSON error body as vLLM's OpenAI server writes it."""
    return json.dumps(
        {"object": "error", "message": message, "type": kind, "param": None, "code": code}
    ).encode()


class Connection:
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
        self.stream: Stream | None = None
        self.received_at = 0.0
        self.open = True
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        app.connections += 1
        app.loop.add_reader(self.fd, self._readable)

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
            self.app.loop.add_writer(self.fd, self._writable)

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
            self.app.loop.remove_writer(self.fd)

    def respond(self, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
            status, _REASONS.get(status, b"Status"), content_type, len(body),
        )  # fmt: skip
        self.write(head + body)

    def close(self) -> None:
        if not self.open:
            return
        self.open = False
        loop = self.app.loop
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
                self.respond(400, error_body("bad request line", "BadRequestError", 400))
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
