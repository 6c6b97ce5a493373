"""The OpenAI-compatible request bodies vLLM accepts, checked the way vLLM checks them, and its error shape.

Only what changes the simulation is used (prompt, lengths, EOS handling, streaming and usage options,
seed); the sampling knobs (temperature, top_p, ...) are checked as vLLM's SamplingParams checks them and
otherwise ignored, as they do not change timing.
Error messages are vLLM's (vllm/sampling_params.py, vllm/renderers/params.py,
vllm/entrypoints/serve/exception_handling); the JSON shape depends on the version:
`{"error": {message, type, param, code}}` from ~0.10, before that `{"object": "error", message, ...}`.
The order of the checks is vLLM's: the body's types (pydantic), the prompt against the context, then the
sampling parameters with max_tokens as it will run.
By version (`profiles.py`): up to 0.31 a prompt plus max_tokens over the context is refused; from 0.32
max_tokens is cut to the context left and only max_tokens > max_model_len is refused, a request error
names its parameter (`param`, message suffix `(parameter=..., value=...)`), a body of the wrong type is
refused the way pydantic words it (`"type": "Bad Request"`, `param` `body.<field>`), and temperature is
at most 2.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from testbed.engine.profiles import Profile
from testbed.engine.tokens import chat_token_count, prompt_token_count

SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
)


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


def invalid(
    profile: Profile,
    message: str,
    param: str | None = None,
    value: Any = None,
    *,
    legacy_param: str | None = None,
) -> RequestError:
    """vLLM's VLLMValidationError: from 0.32 it names the parameter (and the value) it refuses. Older
    profiles keep the simulator's earlier answer: the message alone, `legacy_param` (default `param`)."""
    if not profile.has("validation_error_param"):
        return RequestError(message, param=legacy_param or param)
    extras = [f"parameter={param}"] if param is not None else []
    if value is not None:
        extras.append(f"value={value}")
    return RequestError(f"{message} ({', '.join(extras)})" if extras else message, param=param)


def _pydantic_input(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict):
        return f"<{type(value).__name__} of {len(value)} items>"
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def body_error(
    profile: Profile, name: str, value: Any, kind: str, msg: str, legacy: str, loc: str | None = None
) -> RequestError:
    """A body field of the wrong type: pydantic's wording from 0.32, the simulator's own before."""
    if not profile.has("validation_error_param"):
        return RequestError(legacy, param=name)
    where = loc or f"body.{name}"
    err = {"type": kind, "loc": where, "msg": msg, "input": _pydantic_input(value)}
    return RequestError(f"1 validation error:\n  {err!r}", err_type="Bad Request", param=where)


def json_error(profile: Profile, exc: json.JSONDecodeError) -> RequestError:
    """A body that is not JSON (FastAPI reports it as a validation error at the failing position)."""
    if not profile.has("validation_error_param"):
        return RequestError(f"The request body is not valid JSON: {exc}")
    err = {
        "type": "json_invalid",
        "loc": f"body.{exc.pos}",
        "msg": "JSON decode error",
        "input": "<dict of 0 items>",
        "ctx": {"error": exc.msg},
    }
    return RequestError(f"1 validation error:\n  {err!r}", err_type="Bad Request", param=f"body.{exc.pos}")


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
        raise body_error(
            profile, "prompt", prompt, "string_type", "Input should be a valid string",
            "prompt must be a string, a list of token ids, or a one-element list of either.",
        )  # fmt: skip
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
    pairs: list[tuple[str, str]] = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestError("each message must be an object with a string 'role'.", param="messages")
        pairs.append((m["role"], _content_text(m.get("content"))))
    key = "\x1e".join(f"{r}\x1f{c}" for r, c in pairs)
    return _common(body, profile, chat=True, prompt_tokens=chat_token_count(pairs), key=key, default_max=None)


def check_context(req: GenerationRequest, max_model_len: int, profile: Profile) -> int:
    """The max_tokens the request runs with, or vLLM's refusal: the context first, then the sampling
    parameters (vllm SamplingParams._verify_args order)."""
    if profile.has("max_tokens_clamped"):
        max_tokens = _clamped(req, max_model_len, profile)
    else:
        max_tokens = _refused_past_context(req, max_model_len)
    _check_sampling(req, max_tokens, profile)
    return max_tokens


def _clamped(req: GenerationRequest, max_model_len: int, profile: Profile) -> int:
    """vLLM 0.32: max_tokens past max_model_len is refused, a prompt past it too; else max_tokens is cut
    to what the context leaves (vllm renderers/params.py TokenizeParams, serve/utils get_max_tokens)."""
    param = req.max_tokens_param
    if req.max_tokens is not None and req.max_tokens > max_model_len:
        raise invalid(
            profile,
            f"{param}={req.max_tokens} cannot be greater than max_model_len={max_model_len}. "
            "Please request fewer output tokens.",
            param,
            req.max_tokens,
        )
    if req.prompt_tokens > max_model_len:
        # the tokenizer stops one token past the limit, so vLLM says "at least" that many
        seen = min(req.prompt_tokens, max_model_len + 1)
        qualifier = "at least " if seen == max_model_len + 1 else ""
        raise invalid(
            profile,
            f"This model's maximum context length is {max_model_len} tokens. However, your prompt contains "
            f"{qualifier}{seen} input tokens, which exceeds this limit even without any output tokens. "
            "Please reduce the length of the input prompt.",
            "input_tokens",
            seen,
        )
    room = max_model_len - req.prompt_tokens
    wanted = req.max_tokens if req.max_tokens is not None else req.default_max
    return room if wanted is None else min(wanted, room)


def _refused_past_context(req: GenerationRequest, max_model_len: int) -> int:
    """Before 0.32: a prompt that fills the context, or prompt + max_tokens past it, is refused."""
    if req.prompt_tokens >= max_model_len:
        raise RequestError(
            f"This model's maximum context length is {max_model_len} tokens. However, your request has "
            f"{req.prompt_tokens} input tokens. Please reduce the length of the input messages.",
            param="messages" if req.chat else "prompt",
        )
    wanted = req.max_tokens if req.max_tokens is not None else req.default_max
    if wanted is None:
        return max_model_len - req.prompt_tokens
    if wanted >= 1 and req.prompt_tokens + wanted > max_model_len:
        raise RequestError(
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{req.prompt_tokens + wanted} tokens ({req.prompt_tokens} in the messages, {wanted} in the "
            "completion). Please reduce the length of the messages or completion.",
            param="max_tokens",
        )
    return wanted


def _check_sampling(req: GenerationRequest, max_tokens: int, profile: Profile) -> None:
    s = req.sampling
    for name in ("presence_penalty", "frequency_penalty"):
        if name in s and not -2.0 <= s[name] <= 2.0:
            raise invalid(profile, f"{name} must be in [-2, 2], got {s[name]}.")
    rep = s.get("repetition_penalty")
    if rep is not None and (not math.isfinite(rep) or rep <= 0.0):
        raise invalid(profile, f"repetition_penalty must be greater than zero, got {rep}.")
    temp = s.get("temperature")
    if temp is not None:
        if not math.isfinite(temp):
            raise invalid(profile, f"temperature must be a finite number, got {temp}.", "temperature", temp)
        if temp < 0.0:
            raise invalid(profile, f"temperature must be non-negative, got {temp}.", "temperature", temp)
        if temp > 2.0 and profile.has("validation_error_param"):
            raise invalid(profile, f"temperature must be in [0, 2], got {temp}.", "temperature", temp)
    top_p = s.get("top_p")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise invalid(profile, f"top_p must be in (0, 1], got {top_p}.", "top_p", top_p)
    top_k = s.get("top_k")
    if top_k is not None and top_k < -1:
        raise invalid(profile, f"top_k must be 0 (disable), or at least 1, got {int(top_k)}.")
    min_p = s.get("min_p")
    if min_p is not None and not 0.0 <= min_p <= 1.0:
        raise invalid(profile, f"min_p must be in [0, 1], got {min_p}.")
    if max_tokens < 1:
        raise invalid(profile, f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens", max_tokens)
    if req.min_tokens < 0:
        raise invalid(
            profile,
            f"min_tokens must be greater than or equal to 0, got {req.min_tokens}.",
            legacy_param="min_tokens",
        )
    if req.min_tokens > max_tokens:
        raise invalid(
            profile,
            f"min_tokens must be less than or equal to max_tokens={max_tokens}, got {req.min_tokens}.",
            legacy_param="min_tokens",
        )
