"""Reading a container's launch command: the Ray bootstrap script call and the `vllm serve` call.

Handles the `sh -c "<script> leader ...; vllm serve MODEL ..."` form of the vLLM docs, a bare
`vllm serve` command, `python3 -m vllm.entrypoints.openai.api_server --model ...` (older docs and the
LWS repo's example), and args only (the image's ENTRYPOINT is `vllm serve`). Flag spellings are
normalised the way vLLM's FlexibleArgumentParser does (`_` -> `-`), so --pipeline_parallel_size and
--pipeline-parallel-size are the same flag.

With `env`, `$(VAR)` in command and args is first expanded as the kubelet does (`$$` is a literal `$`;
an undefined variable stays as written and is listed in `LaunchCommand.unexpanded`). Without it the
command is read as written, which is what a manifest holds before LWS injects its `LWS_*` variables.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

SCRIPT_NAME = "multi-node-serving.sh"
RAY_DEFAULT_PORT = 6379  # the script's --ray_port default
_SHELLS = {"sh", "bash", "env"}  # by basename; `env` for `/usr/bin/env bash -c ...`
_SHELL_C_OPTION = re.compile(r"-[A-Za-z]*c[A-Za-z]*")  # -c, -ec, -xc ...
_OPERATOR_CHARS = ";&|\n"
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
    "disable-custom-all-reduce",
    "disable-uvicorn-access-log",
}
# The kubelet's expansion (k8s third_party/forked/golang/expansion): `$$` -> `$`, `$(NAME)` -> its value.
_KUBELET_REF = re.compile(r"\$(?:\$|\(([^)]*)\))")


def normalize_flag(token: str) -> str:
    name = token.lstrip("-").replace("_", "-").lower()
    return _ALIASES.get(name, name)


def expand_kubelet(value: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand `$(VAR)` as the kubelet does; returns the text and the names `env` does not define
    (left as written, as the kubelet leaves them)."""
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:  # `$$`
            return "$"
        if name in env:
            return env[name]
        missing.append(name)
        return m.group(0)

    return _KUBELET_REF.sub(sub, value), missing


def expand_kubelet_vars(value: str, env: Mapping[str, str]) -> str:
    """Expand $(VAR) as the kubelet does for known vars; unknown ones stay as written."""
    return expand_kubelet(value, env)[0]


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _read_args(tokens: list[str]) -> list[tuple[str | None, str | None, int]]:
    """The words as (flag, value, words taken): flag None is a positional, whose value is the word."""
    items: list[tuple[str | None, str | None, int]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("-") and len(token) > 1:
            name, eq, value = token.partition("=")
            key = normalize_flag(name)
            if eq:
                items.append((key, value, 1))
            elif key not in _BOOLEAN_FLAGS and i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                items.append((key, tokens[i + 1], 2))
            else:
                items.append((key, None, 1))
        else:
            items.append((None, token, 1))
        i += items[-1][2]
    return items


def _parse_flags(tokens: list[str]) -> tuple[list[str], dict[str, str | None]]:
    positionals: list[str] = []
    flags: dict[str, str | None] = {}
    for key, value, _ in _read_args(tokens):
        if key is None:
            positionals.append(value or "")
        else:
            flags[key] = value
    return positionals, flags


class ScriptCall(BaseModel):
    """`bash /vllm-workspace/examples/.../multi-node-serving.sh leader|worker --k=v ...`"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    role: str | None
    args: dict[str, str | None]

    @property
    def ray_cluster_size(self) -> int | None:
        """--ray_cluster_size as a number; None when absent or not one (e.g. `$(LWS_GROUP_SIZE)` unexpanded)."""
        return _int_or_none(self.args.get("ray-cluster-size"))

    @property
    def ray_address(self) -> str | None:
        """--ray_address as written (after expansion, when an env was given); None when absent or empty."""
        return self.args.get("ray-address") or None

    @property
    def ray_port(self) -> int:
        return _int_or_none(self.args.get("ray-port")) or RAY_DEFAULT_PORT


class ServeCall(BaseModel):
    """`vllm serve MODEL --flag value ...` (flag names normalised, last occurrence wins)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None
    args: dict[str, str | None]
    form: str  # "vllm serve" | "api_server" | "entrypoint args"
    argv: tuple[str, ...] = ()  # the words after `serve` (or the module name), as written

    def has(self, flag: str) -> bool:
        return normalize_flag(flag) in self.args

    def value(self, flag: str) -> str | None:
        return self.args.get(normalize_flag(flag))

    def int_value(self, flag: str) -> int | None:
        """The flag's value as a number; None when absent or not a number."""
        return _int_or_none(self.value(flag))

    def flag_argv(self, *, without: Iterable[str] = ()) -> list[str]:
        """The words as written, less the model positional and the flags named in `without` (with their
        values): what to pass on to another `vllm serve`-like command line."""
        dropped = {normalize_flag(flag) for flag in without}
        model_positional = self.form != "api_server"  # api_server takes the model as --model only
        out: list[str] = []
        i = 0
        for key, _, taken in _read_args(list(self.argv)):
            words = self.argv[i : i + taken]
            i += taken
            if key is None and model_positional:
                model_positional = False
            elif key not in dropped:
                out.extend(words)
        return out


class LaunchCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    shell: str | None  # the `sh -c` string, when there is one
    script: ScriptCall | None
    serve: ServeCall | None
    # the shell operator after the script's statement (";" also for a newline); None without one
    then: str | None = None
    other: tuple[str, ...] = ()  # statements that are neither the script nor `vllm serve`, as shell text
    unexpanded: tuple[str, ...] = ()  # $(VAR) names the env given did not define, in order of appearance
    shell_error: str | None = None  # why the `sh -c` string could not be split, when it could not


def _tokenize_shell(text: str) -> list[str]:
    # bash drops backslash-newline (a continued line) before it splits words
    lexer = shlex.shlex(text.replace("\\\n", ""), posix=True, punctuation_chars=_OPERATOR_CHARS)
    lexer.whitespace_split = True
    lexer.whitespace = " \t\r"  # a newline ends a statement, like `;`
    lexer.commenters = ""
    return list(lexer)


def _operator(token: str) -> str | None:
    """`;`, `&&`, `||`, `&`, `|` (a newline reads as `;`), or None for a word."""
    if not token or any(c not in _OPERATOR_CHARS for c in token):
        return None
    return token.replace("\n", "") or ";"


def _statements(tokens: list[str]) -> list[tuple[list[str], str | None]]:
    """Each statement with the operator that follows it (None for the last)."""
    statements: list[tuple[list[str], str | None]] = []
    words: list[str] = []
    for token in tokens:
        op = _operator(token)
        if op is None:
            words.append(token)
        elif words:
            statements.append((words, op))
            words = []
    if words:
        statements.append((words, None))
    return statements


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


def _serve_args(words: list[str], form: str) -> ServeCall:
    positionals, flags = _parse_flags(words)
    model = positionals[0] if positionals and form != "api_server" else flags.get("model")
    return ServeCall(model=model, args=flags, form=form, argv=tuple(words))


def _serve_call(statement: list[str]) -> ServeCall | None:
    words = _strip_prefix(statement)
    for i, token in enumerate(words):
        if token.rsplit("/", 1)[-1] == "vllm" and i + 1 < len(words) and words[i + 1] == "serve":
            return _serve_args(words[i + 2 :], "vllm serve")
        if token == "-m" and i + 1 < len(words) and words[i + 1] == "vllm.entrypoints.openai.api_server":
            return _serve_args(words[i + 2 :], "api_server")
    return None


def _shell_string(argv: list[str]) -> str | None:
    """The script of `sh -c SCRIPT` (also `bash -ec`, `/usr/bin/env bash -c`), or None."""
    if len(argv) < 3 or argv[0].rsplit("/", 1)[-1] not in _SHELLS:
        return None
    c_index = next((i for i, a in enumerate(argv[1:-1], start=1) if _SHELL_C_OPTION.fullmatch(a)), None)
    return argv[c_index + 1] if c_index is not None else None


def parse_container(container: Mapping[str, Any], env: Mapping[str, str] | None = None) -> LaunchCommand:
    """Read a container's command and args, after kubelet expansion from `env` when one is given.
    Unrecognised commands give None parts, never an error."""
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    unexpanded: list[str] = []
    if env is not None:
        expanded = [expand_kubelet(word, env) for word in command + args]
        for _, missing in expanded:
            unexpanded += [name for name in missing if name not in unexpanded]
        words = [text for text, _ in expanded]
        command, args = words[: len(command)], words[len(command) :]
    found = tuple(unexpanded)
    if not command and args:
        # The vLLM image's ENTRYPOINT is ["vllm", "serve"]: args alone are serve's arguments.
        return LaunchCommand(
            shell=None, script=None, serve=_serve_args(args, "entrypoint args"), unexpanded=found
        )
    argv = command + args
    shell = _shell_string(argv)
    statements: list[tuple[list[str], str | None]]
    if shell is None:
        statements = [(argv, None)] if argv else []  # exec form: no shell, so no operators
    else:
        try:
            statements = _statements(_tokenize_shell(shell))
        except ValueError as exc:  # unbalanced quotes: not something we can read
            return LaunchCommand(shell=shell, script=None, serve=None, unexpanded=found, shell_error=str(exc))
    script = serve = None
    then = None
    other: list[str] = []
    for words, op in statements:
        this_script, this_serve = _script_call(words), _serve_call(words)
        if script is None and this_script is not None:
            script, then = this_script, op
        serve = serve or this_serve
        if this_script is None and this_serve is None:
            other.append(shlex.join(words))
    return LaunchCommand(
        shell=shell, script=script, serve=serve, then=then, other=tuple(other), unexpanded=found
    )
