"""The OpenAI-compatible request bodies vLLM accepts, read and type-checked the way vLLM reads them.

Only what changes the simulation is used (prompt, lengths, EOS handling, streaming and usage options,
seed); the sampling knobs (temperature, top_p, ...) are read as numbers here, checked as vLLM's
SamplingParams checks them in `request_limits.py`, and otherwise ignored, as they do not change timing.
The body's types are checked first (pydantic, in vLLM); a refusal is a `RequestError`
(`request_errors.py`), worded by version as `profiles.py` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from testbed.engine.profiles import Profile
from testbed.engine.request_errors import RequestError, body_error, invalid
from testbed.engine.tokens import chat_token_ids, prompt_token_ids

SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
)


@dataclass(frozen=True)
class GenerationRequest:
    chat: bool
    model: str | None
    prompt_tokens: int
    prompt_key: str  # seeds the generated text and length
    max_tokens: int | None  # as requested; None: the default (16 for completions, the context for chat)
    min_tokens: int
    ignore_eos: bool
    stream: bool
    include_usage: bool
    continuous_usage: bool
    seed: int | None
    max_tokens_param: str = "max_tokens"  # or "max_completion_tokens" (chat)
    prompt_ids: tuple[int, ...] = ()  # the prompt's token ids (tokens.py), for the prefix cache
    default_max: int | None = None
    sampling: dict[str, float] = field(default_factory=dict)


def _int_field(profile: Profile, body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and not value.is_integer():
            kind, msg = (
                "int_from_float",
                "Input should be a valid integer, got a number with a fractional part",
            )
        elif isinstance(value, float):
            return int(value)
        elif isinstance(value, str):
            kind, msg = "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
        else:
            kind, msg = "int_type", "Input should be a valid integer"
        raise body_error(profile, name, value, kind, msg, f"{name} must be an integer, got {value!r}.")
    return value


def _number_field(profile: Profile, body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):
            kind, msg = "float_parsing", "Input should be a valid number, unable to parse string as a number"
        else:
            kind, msg = "float_type", "Input should be a valid number"
        raise body_error(profile, name, value, kind, msg, f"{name} must be a number, got {value!r}.")
    return float(value)


def _bool_field(
    profile: Profile, body: dict[str, Any], name: str, default: bool, loc: str | None = None
) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        if isinstance(value, str):
            kind, msg = "bool_parsing", "Input should be a valid boolean, unable to interpret input"
        else:
            kind, msg = "bool_type", "Input should be a valid boolean"
        raise body_error(profile, name, value, kind, msg, f"{name} must be a boolean, got {value!r}.", loc)
    return value


def _common(
    body: dict[str, Any],
    profile: Profile,
    *,
    chat: bool,
    prompt_tokens: int,
    key: str,
    default_max: int | None,
    prompt_ids: tuple[int, ...] = (),
) -> GenerationRequest:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise body_error(
            profile, "model", model, "string_type", "Input should be a valid string", f"model must be a string, got {model!r}."
        )  # fmt: skip
    param = "max_tokens"
    max_tokens = _int_field(profile, body, "max_completion_tokens") if chat else None
    if max_tokens is not None:
        param = "max_completion_tokens"
    else:
        max_tokens = _int_field(profile, body, "max_tokens")
    min_tokens = _int_field(profile, body, "min_tokens") or 0
    n = _int_field(profile, body, "n")
    if n is not None and n != 1:
        raise RequestError(
            f"n={n} is not supported by the vLLM simulator; send n=1 (one choice per request).", param="n"
        )
    sampling = {name: v for name in SAMPLING_FIELDS if (v := _number_field(profile, body, name)) is not None}
    stream = _bool_field(profile, body, "stream", False)
    options = body.get("stream_options")
    include_usage = continuous = False
    if options is not None:
        if not isinstance(options, dict):
            raise body_error(
                profile, "stream_options", options, "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from",
                f"stream_options must be an object, got {options!r}.",
            )  # fmt: skip
        default = profile.stream_options_default_true
        include_usage = _bool_field(
            profile, options, "include_usage", default, "body.stream_options.include_usage"
        )
        continuous = include_usage and _bool_field(
            profile, options, "continuous_usage_stats", default, "body.stream_options.continuous_usage_stats"
        )
        if not stream:
            raise invalid(profile, "Stream options can only be defined when `stream=True`.", "stream_options")
    seed = _int_field(profile, body, "seed")
    return GenerationRequest(
        chat=chat,
        model=model,
        prompt_tokens=prompt_tokens,
        prompt_key=key,
        prompt_ids=prompt_ids,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=_bool_field(profile, body, "ignore_eos", False),
        stream=stream,
        include_usage=include_usage,
        continuous_usage=continuous,
        seed=seed,
        max_tokens_param=param,
        default_max=default_max,
        sampling=sampling,
    )


def _not_an_object(profile: Profile, body: Any) -> RequestError:
    return body_error(
        profile, "body", body, "model_attributes_type",
        "Input should be a valid dictionary or object to extract fields from",
        "The request body must be a JSON object.", loc="body",
    )  # fmt: skip


def parse_completion(body: Any, profile: Profile) -> GenerationRequest:
    if not isinstance(body, dict):
        raise _not_an_object(profile, body)
    prompt = body.get("prompt")
    if (prompt is None or prompt in ("", [])) and profile.has("validation_error_param"):
        raise invalid(profile, "Either prompt or prompt_embeds must be provided and non-empty.", "prompt")
    # A batch: a list of prompts (strings) or of token-id lists. A single token-id list stays as it is.
    if (
        isinstance(prompt, list)
        and prompt
        and any(all(isinstance(p, kind) for p in prompt) for kind in (str, list))
    ):
        if len(prompt) != 1:
            raise RequestError(
                f"The vLLM simulator takes one prompt per request; got a batch of {len(prompt)}.",
                param="prompt",
            )
        prompt = prompt[0]
    if isinstance(prompt, str):
        ids, key = tuple(prompt_token_ids(prompt)), prompt
    elif (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        ids, key = tuple(prompt), ",".join(map(str, prompt[:64])) + f"#{len(prompt)}"
    else:
        raise body_error(
            profile, "prompt", prompt, "string_type", "Input should be a valid string",
            "prompt must be a string, a list of token ids, or a one-element list of either.",
        )  # fmt: skip
    if not ids:
        raise RequestError("The prompt cannot be empty.", param="prompt")
    return _common(body, profile, chat=False, prompt_tokens=len(ids), key=key, default_max=16, prompt_ids=ids)


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


def chat_pairs(messages: Any) -> list[tuple[str, str]]:
    """(role, text) of each message; RequestError for one that is not a message."""
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} objects.", param="messages"
        )
    pairs: list[tuple[str, str]] = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestError("each message must be an object with a string 'role'.", param="messages")
        pairs.append((m["role"], _content_text(m.get("content"))))
    return pairs


def parse_chat(body: Any, profile: Profile) -> GenerationRequest:
    if not isinstance(body, dict):
        raise _not_an_object(profile, body)
    messages = body.get("messages")
    if isinstance(messages, list) and not messages and profile.has("validation_error_param"):
        raise RequestError(
            "Cannot apply chat template to an empty conversation. Provide at least one message."
        )
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} objects.", param="messages"
        )
    pairs = chat_pairs(messages)
    key = "\x1e".join(f"{r}\x1f{c}" for r, c in pairs)
    ids = tuple(chat_token_ids(pairs))
    return _common(
        body, profile, chat=True, prompt_tokens=len(ids), key=key, default_max=None, prompt_ids=ids
    )
