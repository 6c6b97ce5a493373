"""vLLM's refusals of a request: the exception the checks raise and the JSON the server answers with.

Messages are vLLM's (vllm/sampling_params.py, vllm/renderers/params.py,
vllm/entrypoints/serve/exception_handling); the JSON shape depends on the version (`profiles.py`):
`{"error": {message, type, param, code}}` from ~0.10, before that `{"object": "error", message, ...}`.
From 0.32 a request error names its parameter (`param`, message suffix `(parameter=..., value=...)`), and
a body of the wrong type is refused the way pydantic words it (`"type": "Bad Request"`, `param`
`body.<field>`).
"""

from __future__ import annotations

import json
from typing import Any

from testbed.engine.profiles import Profile


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
