"""The JSON answers of vLLM's API server: how JSON is written, a refusal, a whole (not streamed)
completion or chat completion, and the model list.

JSON is written as Starlette (vLLM's server) writes it: compact, UTF-8, `application/json` without a
charset. Bodies have the fields of the profile's vLLM: from 0.32 (`response_fields_v032` in profiles.py)
the fields it serializes as null when unused, and `system_fingerprint`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from testbed.engine.profiles import Profile
from testbed.engine.request_errors import RequestError, error_body


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def json_response(body: Any, status: int = 200) -> web.Response:
    """JSON as Starlette (vLLM's server) writes it: compact, UTF-8, `application/json` without a charset."""
    return web.Response(body=compact(body).encode(), status=status, content_type="application/json")


def error_response(profile: Profile, err: RequestError) -> web.Response:
    return json_response(error_body(profile, err), status=err.status)


def engine_dead(reason: str) -> RequestError:
    """What vLLM answers once its engine core has died (EngineDeadError)."""
    return RequestError(
        f"EngineCore encountered an issue. See stack trace (above) for the root cause. ({reason})",
        status=500,
        err_type="InternalServerError",
    )


def models_body(
    names: tuple[str, ...], *, created: int, model_path: str, max_model_len: int
) -> dict[str, Any]:
    """GET /v1/models: one entry per served model name."""
    data = [
        {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": model_path,
            "parent": None,
            "max_model_len": max_model_len,
            "permission": [
                {
                    "id": f"modelperm-{hashlib.blake2b(f'{name}:{created}'.encode(), digest_size=8).hexdigest()}",
                    "object": "model_permission",
                    "created": created,
                    "allow_create_engine": False,
                    "allow_sampling": True,
                    "allow_logprobs": True,
                    "allow_search_indices": False,
                    "allow_view": True,
                    "allow_fine_tuning": False,
                    "organization": "*",
                    "group": None,
                    "is_blocking": False,
                }
            ],
        }
        for name in names
    ]
    return {"object": "list", "data": data}


def completion_body(
    *,
    rid: str,
    model: str,
    chat: bool,
    created: int,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    v032: bool,
    fingerprint: str,
) -> dict[str, Any]:
    """A finished request as one JSON body, its fields in vLLM's order."""
    choice = _chat_choice(text, finish_reason, v032) if chat else _text_choice(text, finish_reason, v032)
    body: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
    }
    if v032:
        body.update(service_tier=None, system_fingerprint=fingerprint)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }
    if v032:
        usage["completion_tokens_details"] = None
    body["usage"] = usage
    return {**body, **_v032_extras(chat)} if v032 else body


def _v032_extras(chat: bool) -> dict[str, Any]:
    """The trailing fields vLLM 0.32 serializes (None when unused)."""
    transfer = {"kv_transfer_params": None, "ec_transfer_params": None, "metrics": None}
    if chat:
        return {"prompt_logprobs": None, "prompt_token_ids": None, "prompt_text": None, **transfer}
    return transfer


def _chat_choice(text: str, finish_reason: str, v032: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if v032:
        message.update(refusal=None, annotations=None, audio=None, function_call=None, reasoning=None)
    else:
        message["tool_calls"] = []
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
    }
    if v032:
        choice.update(token_ids=None, routed_experts=None)
    return choice


def _text_choice(text: str, finish_reason: str, v032: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "text": text,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
    }
    if v032:
        choice["token_ids"] = None
    choice["prompt_logprobs"] = None
    if v032:
        choice.update(prompt_token_ids=None, routed_experts=None)
    return choice
