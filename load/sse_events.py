"""What the events of an OpenAI-compatible completions stream mean for a request's record: the one place
the generator interprets an SSE event's data (load/sse.py cuts the stream into events; load/request.py
reads the stream and applies each event here).

An event's data (anything but ``[DONE]``) is a JSON object; one that is not, or whose ``choices`` or
``usage`` are not shaped as the API defines them, fails the request as ``malformed_sse``. An object with an
``error`` key or ``"object": "error"`` fails it as ``server_error_event``. Output tokens come from the
server's ``usage`` (``stream_options.include_usage``), never from counting chunks; a token-carrying chunk
records its time:

- completions: a choice whose ``text`` is non-empty or whose ``finish_reason`` is still null (vLLM streams
  a token that decodes to no text yet as an empty-text chunk); a closing choice with empty text and a
  finish reason carries none;
- chat: a delta with non-empty ``content``, ``reasoning_content``, ``reasoning`` or ``tool_calls``, or an
  empty ``content`` delta mid-stream that is not the role prelude; the role-only prelude carries none
  (vLLM issue #3759).

The in-cluster Locust user keeps a standard-library copy of this (load/locust/locust_stream.py
``RawRecord.take_event``); tests/load/test_locust_stream.py feeds both the same events.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Callable
from typing import Any

from load.records import RequestRecord

_fast_loads: Callable[[bytes], Any] | None
try:  # an optional accelerator (3-5x faster per frame); results are identical without it
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = None

# The reasons an event fails a request with (load/README's failure reasons).
MALFORMED = "malformed_sse"
SERVER_ERROR = "server_error_event"


def take_events(
    datas: list[bytes], times: list[float], chat: bool, record: RequestRecord
) -> tuple[str, bytes, float] | None:
    """Apply events' data, each read at its time, to the record; return the first failure (reason,
    data, time) or None. One tight loop per batch: this runs for every event of every stream."""
    loads = _fast_loads or decode_json
    chunk_times = record.chunk_times
    for data, at in zip(datas, times, strict=True):
        try:
            event = loads(data)
        except ValueError:
            return MALFORMED, data, at
        if type(event) is not dict:
            return MALFORMED, data, at
        if "error" in event or event.get("object") == "error":
            return SERVER_ERROR, data, at
        choices = event.get("choices")
        if choices:
            try:
                if chat:
                    carries = chat_carries_token(choices)
                elif type(choices) is list and len(choices) == 1:  # the common case, inline
                    choice = choices[0]
                    carries = bool(choice.get("text")) or choice.get("finish_reason") is None
                else:
                    carries = completion_carries_token(choices)
            except (AttributeError, TypeError):  # choices that are not a list of objects
                return MALFORMED, data, at
            if carries:
                chunk_times.append(at)
                if record.text is not None:
                    record.text.append(streamed_text(choices, chat))
        usage = event.get("usage")
        if usage:
            try:
                record.prompt_tokens = int(usage["prompt_tokens"])
                record.output_tokens = int(usage["completion_tokens"])
            except (KeyError, TypeError, ValueError):
                return MALFORMED, data, at
    return None


def streamed_text(choices: list[Any], chat: bool) -> str:
    """The text a token-carrying chunk adds (the first choice's; the load sends n = 1)."""
    choice = choices[0]
    return str((choice.get("delta") or {}).get("content") or "") if chat else str(choice.get("text") or "")


def completion_carries_token(choices: list[Any]) -> bool:
    """A completions choice with text, or still open (vLLM streams a token with no text yet as "")."""
    return any(choice.get("text") or choice.get("finish_reason") is None for choice in choices)


def chat_carries_token(choices: list[Any]) -> bool:
    """A chat delta with content, reasoning or tool calls, or an empty mid-stream content delta; the
    role-only prelude carries none."""
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


_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed: the C scanner


def decode_json(data: bytes) -> Any:
    """One JSON document from bytes; ValueError if it is not exactly that.

    The C scanner called directly is about twice as fast as ``json.loads`` on small frames."""
    if _fast_loads is not None:
        return _fast_loads(data)
    text = data.decode().strip()  # UnicodeDecodeError is a ValueError
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("data after the JSON document")
    return value
