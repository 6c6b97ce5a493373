"""What the Locust user needs besides Locust: prompts, request bodies, SSE parsing, raw records.

Standard library only, because it ships next to the locustfile (the in-cluster ConfigMap holds both
files, and a stock ``locustio/locust`` image has neither numpy nor this suite). The locustfile imports it
as the top-level module ``locust_stream`` (Locust puts the locustfile's directory on ``sys.path``); the
suite's own code imports it as ``load.locust.locust_stream``. Hence the file name, which repeats its
package's: in the ConfigMap and on Locust's ``sys.path`` it stands alone, beside ``locustfile.py``, and a
bare ``stream`` would say nothing there.

The measurement follows load/request.py and load/sse_events.py exactly (the self-tests compare the two
on the same chunks): ``sent`` is taken just before the request is handed to the HTTP client, a chunk's
time is when the read that completed its event returned, output tokens are the server's
``usage.completion_tokens``, and every way a request can go wrong ends as a reason on the record (the
reasons are load/README's: ``http_<status>``, ``timeout``, ``connect_error``, ``connection_reset``,
``client_error``, ``malformed_sse``, ``server_error_event``, ``no_done``, ``no_tokens``, ``no_usage``,
``interrupted``).

Raw records are JSON lines (format ``RECORD_FORMAT``), two kinds:
- ``{"type": "worker", "worker": ID, "perf": P, "wall": W, ...}``: one per process that ran users; P and W
  are ``time.perf_counter()`` and ``time.time()`` read together, so records from different machines can
  be put on one time line (perf_counter is only comparable within one machine);
- ``{"type": "request", "worker": ID, "index": N, "scheduled": .., "sent": .., "chunk_times": [..],
  "finished": .., "prompt_tokens": .., "output_tokens": .., "status": .., "error": .., "error_detail": ..}``
  with every time in that worker's ``perf_counter`` seconds (the fields of load/records.py RequestRecord).
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from collections.abc import Callable
from typing import Any

RECORD_FORMAT = 1
API_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
SLO_NAMES = ("ttft_ms", "tpot_ms", "e2el_ms")
DETAIL_LIMIT = 300

# A copy of load/workload.py WORDS (this file runs in a stock Locust image: standard library only, no load/;
# a self-test keeps the two equal): each one token in common BPE vocabularies, so a prompt of N words is about
# N tokens, as the async generator's prompts are.
_WORDS_TEXT = """the of and to in is that for it as was with be by on not he this are or his from at which but
    have an they you were her she there one all we their has been if more when will would who so no out
    up into do any time my than only new some could these two may first then very also after our made
    well over back year most where much before good through work way down even want because day same
    man must still life home such long own last here why might under never world few both city hand
    part place high land small young old since state great set end big north group light left water
    side black open white off game name sea week power story plan food fire red music art
    sun school tree door road table book river money room house night line order point stone"""
WORDS: tuple[str, ...] = tuple(_WORDS_TEXT.split())


def prompt(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(WORDS, k=words))


def request_body(model: str, api: str, text: str, output_len: int, ignore_eos: bool) -> bytes:
    """The body load/request.py sends: streaming, usage in the last chunk, ``ignore_eos`` if asked."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": output_len,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if api == "chat":
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = text
    if ignore_eos:
        body["ignore_eos"] = True
    return json.dumps(body, separators=(",", ":")).encode()


# A copy of load/sse_events.py (completion_carries_token, chat_carries_token and, in RawRecord.take_event,
# take_events): this file ships next to the locustfile into a stock locustio/locust image, so it may use the
# standard library only and cannot import load/. tests/load/test_locust_stream.py feeds both the same events
# and asserts they agree; change both together.
def completion_carries_token(choices: list[Any]) -> bool:
    """A completions choice with text, or still open (vLLM streams a token with no text yet as "")."""
    return any(choice.get("text") or choice.get("finish_reason") is None for choice in choices)


def chat_carries_token(choices: list[Any]) -> bool:
    """A chat delta with content, reasoning or tool calls, or an empty mid-stream content delta; the
    role-only prelude carries none (vLLM issue #3759)."""
    for choice in choices:
        delta = choice.get("delta") or {}
        if (
            delta.get("content")
            or delta.get("reasoning_content")
            or delta.get("reasoning")
            or delta.get("tool_calls")
        ):
            return True
        if "content" in delta and "role" not in delta and choice.get("finish_reason") is None:
            return True
    return False


def carries_token_for(api: str) -> Callable[[list[Any]], bool]:
    return chat_carries_token if api == "chat" else completion_carries_token


class SseLines:
    """``text/event-stream`` fed one line at a time (as geventhttpclient's ``readline`` returns them):
    ``feed`` returns the event's data when a blank line completes it. LF and CRLF line endings; comment
    lines and fields other than ``data`` are skipped; several ``data`` lines are joined with LF.

    The framing rules of load/sse.py ``SseDecoder`` (which is fed whole socket reads), written again
    for a line reader in the standard library only (this file runs in a stock Locust image); a self-test
    feeds both the same stream."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: list[bytes] = []

    def feed(self, line: bytes) -> bytes | None:
        line = line.rstrip(b"\r\n")
        if not line:
            if not self._data:
                return None
            data, self._data = b"\n".join(self._data), []
            return data
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if name == b"data":
            self._data.append(value[1:] if value.startswith(b" ") else value)
        return None

    def finish(self) -> bytes | None:
        """At the end of the stream: the data of a last event not closed by a blank line, if any."""
        return self.feed(b"")


class RawRecord:
    """One request as the Locust user measured it; ``line()`` is its JSON line (see the module doc)."""

    __slots__ = (
        "chunk_times",
        "error",
        "error_detail",
        "finished",
        "index",
        "output_tokens",
        "prompt_tokens",
        "ready",
        "scheduled",
        "sent",
        "status",
        "worker",
    )

    def __init__(self, worker: str, index: int, scheduled: float) -> None:
        self.worker = worker
        self.index = index
        self.scheduled = scheduled
        self.ready = scheduled  # a Locust user sends as soon as its task starts: nothing holds it for a slot
        self.sent: float | None = None
        self.chunk_times: list[float] = []
        self.finished: float | None = None
        self.prompt_tokens: int | None = None
        self.output_tokens: int | None = None
        self.status: int | None = None
        self.error: str | None = None
        self.error_detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.finished is not None

    def fail(self, reason: str, detail: str | None, at: float) -> None:
        if self.error is None:  # the first reason is the cause; later ones are consequences
            self.error = reason
            self.error_detail = detail
            self.finished = at

    def take_event(self, payload: bytes, carries_token: Callable[[list[Any]], bool], at: float) -> str | None:
        """Apply one event's data (not ``[DONE]``); return a failure reason or None.

        A standard-library copy of load/sse_events.py ``take_events`` for one event (this file runs in a
        stock Locust image: see the comment above completion_carries_token); keep the two in step."""
        try:
            event = json.loads(payload)
        except ValueError:
            return "malformed_sse"
        if not isinstance(event, dict):
            return "malformed_sse"
        if "error" in event or event.get("object") == "error":
            return "server_error_event"
        choices = event.get("choices")
        if choices:
            try:
                carries = carries_token(choices)
            except (AttributeError, TypeError):  # choices that are not a list of objects
                return "malformed_sse"
            if carries:
                self.chunk_times.append(at)
        usage = event.get("usage")
        if usage:
            try:
                self.prompt_tokens = int(usage["prompt_tokens"])
                self.output_tokens = int(usage["completion_tokens"])
            except (KeyError, TypeError, ValueError):
                return "malformed_sse"
        return None

    def close(self, saw_done: bool, at: float) -> None:
        """The stream ended: complete the record or name what was missing."""
        if not saw_done:
            self.fail("no_done", "the stream ended without data: [DONE]", at)
        elif not self.chunk_times:
            self.fail("no_tokens", "the stream carried no token", at)
        elif self.output_tokens is None:
            self.fail("no_usage", "no usage.completion_tokens (stream_options.include_usage)", at)
        elif self.error is None:
            self.finished = at

    # Locust's view of the request, in milliseconds ----------------------------------------------------
    def ttft_ms(self) -> float | None:
        if not self.ok or self.sent is None:
            return None
        return (self.chunk_times[0] - self.sent) * 1e3

    def e2el_ms(self) -> float | None:
        if not self.ok or self.sent is None:
            return None
        return (self.chunk_times[-1] - self.sent) * 1e3

    def tpot_ms(self) -> float | None:
        n = self.output_tokens
        if not self.ok or n is None or n < 2:
            return None
        return (self.chunk_times[-1] - self.chunk_times[0]) * 1e3 / (n - 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "request",
            "worker": self.worker,
            "index": self.index,
            "scheduled": self.scheduled,
            "ready": self.ready,
            "sent": self.sent,
            "chunk_times": self.chunk_times,
            "finished": self.finished,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "status": self.status,
            "error": self.error,
            "error_detail": self.error_detail,
        }

    def line(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))


def worker_id() -> str:
    """host-pid: unique per process here and across pods (a pod's hostname is its name)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def worker_line(worker: str, role: str, index: int | None) -> str:
    """The clock anchor of one process: perf_counter and wall clock read back to back."""
    perf, wall = time.perf_counter(), time.time()
    return json.dumps(
        {
            "type": "worker",
            "format": RECORD_FORMAT,
            "worker": worker,
            "role": role,
            "index": index,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "perf": perf,
            "wall": wall,
        },
        separators=(",", ":"),
    )


# clip and describe: copies of load/request.py _clip and _describe (a failure's detail reads the same from
# both generators), for the same reason as above: a stock Locust image, standard library only.
def clip(data: bytes) -> str:
    text = data[:DETAIL_LIMIT].decode("utf-8", "replace")
    return text + ("..." if len(data) > DETAIL_LIMIT else "")


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
