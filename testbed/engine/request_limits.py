"""What a parsed request runs with: its max_tokens against the context, then vLLM's sampling checks.

The order of the checks is vLLM's: the prompt against the context, then the sampling parameters with
max_tokens as it will run (vllm SamplingParams._verify_args). By version (`profiles.py`): up to 0.31 a
prompt plus max_tokens over the context is refused; from 0.32 max_tokens is cut to the context left and
only max_tokens > max_model_len is refused, and temperature is at most 2.
"""

from __future__ import annotations

import math

from testbed.engine.profiles import Profile
from testbed.engine.protocol import GenerationRequest
from testbed.engine.request_errors import RequestError, invalid


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
