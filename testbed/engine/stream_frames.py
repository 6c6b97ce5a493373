"""The SSE frames of a streamed completion or chat completion, as vLLM writes them, built as bytes.

Streams are `data: <json>\\n\\n` frames ending with `data: [DONE]\\n\\n`; a chat stream opens with the
assistant's role; with `stream_options.include_usage` a last frame has `"choices": []` and the usage,
with `continuous_usage_stats` every frame carries the usage so far. Chunks have the fields of the profile's
vLLM (from 0.32: token_ids, system_fingerprint on the last frame, ...; see profiles.py).

Hot path: the JSON of a token frame is a per-request prefix, the token's pre-escaped text and a fixed
suffix, joined as bytes; a stream writes every token that is ready in one `write` (`runner.py` batches
engine steps at time-scale 0), so one core streams tens of thousands of tokens per second.
"""

from __future__ import annotations

import json
from typing import Any

from testbed.engine.profiles import Profile
from testbed.engine.request_errors import error_body
from testbed.engine.responses import engine_dead
from testbed.engine.tokens import VOCAB_BYTES, OutputPlan, token_index

DONE_FRAME = b"data: [DONE]\n\n"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


def error_frames(profile: Profile, reason: str) -> bytes:
    """The engine died mid-stream: vLLM's error as a frame, then [DONE]."""
    err = error_body(profile, engine_dead(reason))
    return b"data: " + json.dumps(err).encode() + b"\n\n" + DONE_FRAME


class StreamFrames:
    """The frames of one request's stream. A token frame = prefix + token text + mid + (null + tail_mid |
    "reason" + tail_last) [+ usage] [+ fingerprint] + "}": the choice's fields after finish_reason, as the
    profile's vLLM has them."""

    def __init__(
        self,
        *,
        rid: str,
        model: str,
        chat: bool,
        created: int,
        prompt_tokens: int,
        include_usage: bool,
        continuous: bool,
        v032: bool,
        fingerprint: str,
    ) -> None:
        self.rid, self.model, self.chat, self.created = rid, model, chat, created
        self.prompt_tokens = prompt_tokens
        self.include_usage, self.continuous, self.v032 = include_usage, continuous, v032
        self.head = json.dumps(
            {
                "id": rid,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": model,
            },
            separators=(",", ":"),
        )[:-1]
        if chat:
            self.prefix = (f"data: {self.head}," + '"choices":[{"index":0,"delta":{"content":"').encode()
            self.mid = b'"},"logprobs":null,"finish_reason":'
            self.tail_mid = b',"token_ids":null}]' if v032 else b"}]"
            self.tail_last = b',"stop_reason":null,"token_ids":null}]' if v032 else b"}]"
        else:
            self.prefix = (f"data: {self.head}," + '"choices":[{"index":0,"text":"').encode()
            self.mid = b'","logprobs":null,"finish_reason":'
            self.tail_mid = self.tail_last = (
                b',"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]'
                if v032
                else b',"stop_reason":null}]'
            )
        self.null_end = b"null" + self.tail_mid + b"}\n\n"
        # vLLM 0.32 stamps its fingerprint on the last frame: the usage frame, else the finishing one
        self.fingerprint = f',"system_fingerprint":"{fingerprint}"'.encode() if v032 else b""
        self.last_fingerprint = b"" if include_usage else self.fingerprint
        self.details = ',"completion_tokens_details":null' if v032 and chat else ""

    def usage_json(self, k: int, more: str | None = None) -> bytes:
        """The usage after `k` generated tokens, as a `,"usage":{...}` fragment."""
        P = self.prompt_tokens
        more = self.details if more is None else more
        return (
            f',"usage":{{"prompt_tokens":{P},"total_tokens":{P + k},"completion_tokens":{k}{more}}}'.encode()
        )

    def role_frame(self) -> bytes:
        """A chat stream's first frame: the assistant's role and empty content."""
        first: dict[str, Any] = {
            "id": self.rid,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
        if self.continuous:
            P = self.prompt_tokens
            usage: dict[str, Any] = {"prompt_tokens": P, "total_tokens": P, "completion_tokens": 0}
            if self.v032:
                usage["completion_tokens_details"] = None
            first["usage"] = usage
        if self.v032:
            first.update(prompt_token_ids=None, prompt_text=None)
        return b"data: " + json.dumps(first, separators=(",", ":")).encode() + b"\n\n"

    def tokens(self, plan: OutputPlan, sent: int, upto: int, finish_reason: str | None) -> list[bytes]:
        """Frames for tokens `sent`..`upto`-1; `finish_reason` is set when the last of them ends the request."""
        frames = []
        last_end = b"" if finish_reason is None else b'"' + finish_reason.encode() + b'"' + self.tail_last
        for i in range(sent, upto):
            tok = VOCAB_BYTES[token_index(plan, i)]
            last = finish_reason is not None and i == upto - 1
            end = last_end if last else (b"null" + self.tail_mid)
            if self.continuous:
                stamp = self.last_fingerprint if last else b""
                frames.append(self.prefix + tok + self.mid + end + self.usage_json(i + 1) + stamp + b"}\n\n")
            elif last:
                frames.append(self.prefix + tok + self.mid + end + self.last_fingerprint + b"}\n\n")
            else:
                frames.append(self.prefix + tok + self.mid + self.null_end)
        return frames

    def closing(self, generated: int) -> list[bytes]:
        """After the last token: the usage frame when asked for, and [DONE]."""
        frames = []
        if self.include_usage:
            frames.append(
                (f"data: {self.head}," + '"choices":[]').encode()
                + self.usage_json(generated, "")
                + self.fingerprint
                + b"}\n\n"
            )
        frames.append(DONE_FRAME)
        return frames
