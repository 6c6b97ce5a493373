"""Reading a container's launch command: the Ray bootstrap script call and the `vllm serve` call.

Handles the `sh -c "<script> leader ...; vllm serve MODEL ..."` form of the vLLM docs, a bare
`vllm serve` command, `python3 -m vllm.entrypoints.openai.api_server --model ...` (older docs and the
LWS repo's example), and args only (the image's ENTRYPOINT is `vllm serve`). Flag spellings are
normalised the way vLLM's FlexibleArgumentParser does (`_` -> `-`), so --pipeline_parallel_size and
--pipeline-parallel-size are the same flag.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict

SCRIPT_NAME = "multi-node-serving.sh"
_SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/bash", "/usr/bin/env"}
_SEPARATORS = {";", "&&", "||", "&", "|"}
_ALIASES = {"tp": "tensor-parallel-size", "pp": "pipeline-parallel-size", "dp": "data-parallel-size"}
# vLLM flags that take no value, so the token after them is not eaten as their value.
_BOOLEAN_FLAGS = {
    "headless",
    "enforce-eager",
    "trust-remote-code",
    "disable-log-requests",
    "disable-log-stats",
    "enable-prefix-caching",
    "no-enable-prefix-caching",
    "enable-chunked-prefill",
    "enable-auto-tool-choice",
    "enable-force-include-usage",
}
_KUBELET_VAR = re.compile(r"\$\((\w+)\)")


def normalize_flag(token: str) -> str:
    name = token.lstrip("-").replace("_", "-").lower()
    return _ALIASES.get(name, name)


def expand_kubelet_vars(value: str, env: dict[str, str]) -> str:
    """Expand $(VAR) as the kubelet does for known vars; unknown ones stay as written."""
    return _KUBELET_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), value)


def _parse_flags(tokens: list[str]) -> tuple[list[str], dict[str, str | None]]:
    positionals: list[str] = []
    flags: dict[str, str | None] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("-") and len(token) > 1:
            name, eq, value = token.partition("=")
            key = normalize_flag(name)
            if eq:
                flags[key] = value
            elif key not in _BOOLEAN_FLAGS and i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                flags[key] = tokens[i + 1]
                i += 1
            else:
                flags[key] = None
        else:
            positionals.append(token)
        i += 1
    return positionals, flags


class ScriptCall(BaseModel):
    """`bash /vllm-workspace/examples/.../multi-node-serving.sh leader|worker --k=v ...`"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    role: str | None
    args: dict[str, str | None]


class ServeCall(BaseModel):
    """`vllm serve MODEL --flag value ...` (flag names normalised, last occurrence wins)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None
    args: dict[str, str | None]
    form: str  # "vllm serve" | "api_server" | "entrypoint args"

    def has(self, flag: str) -> bool:
        return normalize_flag(flag) in self.args

    def value(self, flag: str) -> str | None:
        return self.args.get(normalize_flag(flag))


class LaunchCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    shell: str | None  # the `sh -c` string, when there is one
    script: ScriptCall | None
    serve: ServeCall | None


def _tokenize_shell(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def _statements(tokens: list[str]) -> list[list[str]]:
    statements: list[list[str]] = [[]]
    for token in tokens:
        if token in _SEPARATORS:
            statements.append([])
        else:
            statements[-1].append(token)
    return [s for s in statements if s]


def _strip_prefix(statement: list[str]) -> list[str]:
    """Drop `exec`, `env`, and leading VAR=value assignments."""
    i = 0
    while i < len(statement) and (
        statement[i] in {"exec", "env"} or re.match(r"^[A-Za-z_]\w*=", statement[i])
    ):
        i += 1
    return statement[i:]


def _script_call(statement: list[str]) -> ScriptCall | None:
    for i, token in enumerate(statement):
        if token.endswith(SCRIPT_NAME):
            rest = statement[i + 1 :]
            role = rest[0] if rest and not rest[0].startswith("-") else None
            _, flags = _parse_flags(rest[1:] if role else rest)
            return ScriptCall(path=token, role=role, args=flags)
    return None


def _serve_call(statement: list[str]) -> ServeCall | None:
    words = _strip_prefix(statement)
    for i, token in enumerate(words):
        if token.rsplit("/", 1)[-1] == "vllm" and i + 1 < len(words) and words[i + 1] == "serve":
            positionals, flags = _parse_flags(words[i + 2 :])
            model = positionals[0] if positionals else flags.get("model")
            return ServeCall(model=model, args=flags, form="vllm serve")
        if token == "-m" and i + 1 < len(words) and words[i + 1] == "vllm.entrypoints.openai.api_server":
            _, flags = _parse_flags(words[i + 2 :])
            return ServeCall(model=flags.get("model"), args=flags, form="api_server")
    return None


def parse_container(container: dict[str, Any]) -> LaunchCommand:
    """Read a container's command and args. Unrecognised commands give None parts, never an error."""
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    argv = command + args
    if not command and args:
        # The vLLM image's ENTRYPOINT is ["vllm", "serve"]: args alone are serve's arguments.
        positionals, flags = _parse_flags(args)
        model = positionals[0] if positionals else flags.get("model")
        return LaunchCommand(
            shell=None, script=None, serve=ServeCall(model=model, args=flags, form="entrypoint args")
        )
    if len(argv) >= 3 and argv[0] in _SHELLS and any(a.startswith("-") and "c" in a for a in argv[1:-1]):
        c_index = next(i for i, a in enumerate(argv[1:], start=1) if a.startswith("-") and "c" in a)
        shell = " ".join(argv[c_index + 1 : c_index + 2])
        try:
            tokens = _tokenize_shell(shell)
        except ValueError:  # unbalanced quotes: not something we can read
            return LaunchCommand(shell=shell, script=None, serve=None)
    else:
        shell = None
        tokens = argv
    script = None
    serve = None
    for statement in _statements(tokens):
        script = script or _script_call(statement)
        serve = serve or _serve_call(statement)
    return LaunchCommand(shell=shell, script=script, serve=serve)
