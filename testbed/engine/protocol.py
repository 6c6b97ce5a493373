"""The OpenAI-compatible request bodies vLLM accepts, checked the way vLLM checks them, and its error shape.

Only what changes the simulation is read (prompt, lengths, EOS handling, streaming and usage options,
seed); sampling knobs such as temperature are accepted and ignored, as they do not change timing.
Error messages are vLLM's (vllm/sampling_params.py, vllm/entrypoints/openai/serving_*.py); the JSON shape
depends on the version: `{"error": {message, type, param, code}}` from ~0.10, before that
`{"object": "error", message, type, param, code}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testbed.engine.profiles import Profile
from testbed.engine.tokens import chat_token_count, prompt_token_count


class RequestError(Exception):
    """A request vLLM would refuse: HTTP status, OpenAI error type, and vLLM's message."""

    def __init__(
        self, message: str, *, status: int = 400, err_type: str = "BadRequestError", param: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.err_type = err_type
        self.param = param


def error_body(profile: Profile, err: RequestError) -> dict[str, Any]:
    info = {"message": err.message, "type": err.err_type, "param": err.param, "code": err.status}
    if profile.has("nested_error_json"):
        return {"error": info}
    return {"object": "error", **info}


@dataclass(frozen=True)
class GenerationRequest:
    chat: bool
    model: str | None
    prompt_tokens: int
    prompt_key: str  # seeds the generated text and length
    max_tokens: int | None  # None: up to max_model_len (chat without a limit)
    min_tokens: int
    ignore_eos: bool
    stream: bool
    include_usage: bool
    continuous_usage: bool
    seed: int | None


def _int_field(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an integer, got {value!r}.", param=name)
    return value


def _bool_field(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be a boolean, got {value!r}.", param=name)
    return value


def _common(
    body: dict[str, Any],
    profile: Profile,
    *,
    chat: bool,
    prompt_tokens: int,
    key: str,
    default_max: int | None,
) -> GenerationRequest:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(f"model must be a string, got {model!r}.", param="model")
    max_tokens = _int_field(body, "max_completion_tokens") if chat else None
    if max_tokens is None:
        max_tokens = _int_field(body, "max_tokens")
    if max_tokens is None:
        max_tokens = default_max
    if max_tokens is not None and max_tokens < 1:
        raise RequestError(f"max_tokens must be at least 1, got {max_tokens}.", param="max_tokens")
    min_tokens = _int_field(body, "min_tokens") or 0
    if min_tokens < 0:
        raise RequestError(
            f"min_tokens must be greater than or equal to 0, got {min_tokens}.", param="min_tokens"
        )
    if max_tokens is not None and min_tokens > max_tokens:
        raise RequestError(
            f"min_tokens must be less than or equal to max_tokens={max_tokens}, got {min_tokens}.",
            param="min_tokens",
        )
    n = _int_field(body, "n")
    if n is not None and n != 1:
        raise RequestError(
            f"n={n} is not supported by the vLLM simulator; send n=1 (one choice per request).", param="n"
        )
    stream = _bool_field(body, "stream", False)
    options = body.get("stream_options")
    include_usage = continuous = False
    if options is not None:
        if not stream:
            raise RequestError(
                "Stream options can only be defined when `stream=True`.", param="stream_options"
            )
        if not isinstance(options, dict):
            raise RequestError(f"stream_options must be an object, got {options!r}.", param="stream_options")
        default = profile.stream_options_default_true
        include_usage = _bool_field(options, "include_usage", default)
        continuous = include_usage and _bool_field(options, "continuous_usage_stats", default)
    seed = _int_field(body, "seed")
    return GenerationRequest(
        chat=chat,
        model=model,
        prompt_tokens=prompt_tokens,
        prompt_key=key,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=_bool_field(body, "ignore_eos", False),
        stream=stream,
        include_usage=include_usage,
        continuous_usage=continuous,
        seed=seed,
    )


def parse_completion(body: Any, profile: Profile) -> GenerationRequest:
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) != 1:
            raise RequestError(
                f"The vLLM simulator takes one prompt per request; got a batch of {len(prompt)}.",
                param="prompt",
            )
        prompt = prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(p, list) for p in prompt):
        if len(prompt) != 1:
            raise RequestError(
                f"The vLLM simulator takes one prompt per request; got a batch of {len(prompt)}.",
                param="prompt",
            )
        prompt = prompt[0]
    if isinstance(prompt, str):
        count, key = prompt_token_count(prompt), prompt
    elif (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        count, key = len(prompt), ",".join(map(str, prompt[:64])) + f"#{len(prompt)}"
    else:
        raise RequestError(
            "prompt must be a string, a list of token ids, or a one-element list of either.", param="prompt"
        )
    if count == 0:
        raise RequestError("The prompt cannot be empty.", param="prompt")
    return _common(body, profile, chat=False, prompt_tokens=count, key=key, default_max=16)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise RequestError(
                    "message content parts must be {'type': 'text', 'text': ...} in the vLLM simulator.",
                    param="messages",
                )
        return " ".join(parts)
    raise RequestError(
        f"message content must be a string or a list of parts, got {content!r}.", param="messages"
    )


def parse_chat(body: Any, profile: Profile) -> GenerationRequest:
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} objects.", param="messages"
        )
    pairs: list[tuple[str, str]] = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestError("each message must be an object with a string 'role'.", param="messages")
        pairs.append((m["role"], _content_text(m.get("content"))))
    key = "\x1e".join(f"{r}\x1f{c}" for r, c in pairs)
    return _common(body, profile, chat=True, prompt_tokens=chat_token_count(pairs), key=key, default_max=None)


def check_context(req: GenerationRequest, max_model_len: int) -> int:
    """The effective max_tokens, or vLLM's refusal when prompt and completion exceed the context."""
    if req.prompt_tokens >= max_model_len:
        raise RequestError(
            f"This model's maximum context length is {max_model_len} tokens. However, your request has "
            f"{req.prompt_tokens} input tokens. Please reduce the length of the input messages.",
            param="messages" if req.chat else "prompt",
        )
    if req.max_tokens is None:
        return max_model_len - req.prompt_tokens
    if req.prompt_tokens + req.max_tokens > max_model_len:
        raise RequestError(
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{req.prompt_tokens + req.max_tokens} tokens ({req.prompt_tokens} in the messages, {req.max_tokens} in the "
            "completion). Please reduce the length of the messages or completion.",
            param="max_tokens",
        )
    return req.max_tokens
