"""Telling token-like values apart, and keeping them out of anything printed or saved.

The lint reports that a token is written in plain text without printing it. Fixtures can run
redact_objects() on objects before saving them as artifacts.
"""

from __future__ import annotations

import copy
import re
from typing import Any

_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH)", re.IGNORECASE
)
_SECRET_VALUE = re.compile(
    r"^(hf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|sk-[A-Za-z0-9_-]{20,}"  # OpenAI-style
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})$"  # JWT
)


def is_secret_env(name: str, value: str) -> bool:
    """True if an env var with a literal value looks like it carries a credential."""
    return bool(value) and (bool(_SECRET_NAME.search(name)) or bool(_SECRET_VALUE.match(value.strip())))


def redacted(value: str) -> str:
    return f"<redacted, {len(value)} characters>"


def _redact_pod_spec(spec: dict[str, Any]) -> None:
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            for env in container.get("env") or []:
                value = env.get("value")
                if isinstance(value, str) and is_secret_env(str(env.get("name", "")), value):
                    env["value"] = redacted(value)


def _walk_pod_specs(obj: Any) -> None:
    if isinstance(obj, dict):
        if "containers" in obj and isinstance(obj["containers"], list):
            _redact_pod_spec(obj)
        for value in obj.values():
            _walk_pod_specs(value)
    elif isinstance(obj, list):
        for item in obj:
            _walk_pod_specs(item)


def redact_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy with Secret data and token-like literal env values replaced by a length note."""
    result = copy.deepcopy(objects)
    for obj in result:
        if obj.get("kind") == "Secret":
            for field in ("data", "stringData"):
                if isinstance(obj.get(field), dict):
                    obj[field] = {k: redacted(str(v)) for k, v in obj[field].items()}
        _walk_pod_specs(obj)
    return result
