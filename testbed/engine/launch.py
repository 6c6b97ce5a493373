"""A pod's container command and env, read as vLLM's LWS launch: which role, which script, which `vllm serve`.

The bridge calls `parse_launch(command, args, env, image=...)` for a pod and gets a typed `LaunchSpec`;
`LaunchSpec.engine_argv(...)` turns the leader's spec into the simulator's command line.

What is understood:
- `$(VAR)` in command and args expanded from the container env as the kubelet does (`$$(VAR)` stays a
  literal `$(VAR)`; an undefined variable is left as written, and recorded in `problems`);
- `sh -c` / `bash -c` scripts: the parts joined by `;`, `&&` or newlines, each one
  `bash .../multi-node-serving.sh leader --ray_cluster_size=N` / `worker --ray_address=A`,
  `vllm serve MODEL ...`, `python3 -m vllm.entrypoints.openai.api_server --model MODEL ...`, or anything
  else (kept as `other`);
- no command: the image's entrypoint `vllm serve` with the container args.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from testbed.engine.profiles import Profile

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/bash"}
_SPLIT = re.compile(r"\s*(;|&&|\n)\s*")


def expand_vars(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Kubelet expansion of `$(VAR)`; returns the text and the names it could not resolve."""
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        if name in env:
            return env[name]
        missing.append(name)
        return m.group(0)

    # "$$(VAR)" -> "$(VAR)": handle the escape before variables
    out = re.sub(r"\$\$\(", "\x00(", text)
    out = _VAR.sub(sub, out).replace("\x00(", "$(")
    return out, missing


@dataclass(frozen=True)
class ScriptCall:
    """`bash <path> leader|worker [--ray_cluster_size=N] [--ray_address=A] [--ray_port=P] ...`"""

    path: str
    role: str  # "leader", "worker" or what was written
    ray_cluster_size: int | None
    ray_address: str | None
    ray_port: int
    extra: tuple[str, ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServeCall:
    """`vllm serve MODEL args...` (or the api_server module form): the model and the rest verbatim."""

    model: str | None
    args: tuple[str, ...]
    entrypoint: str  # "vllm serve" or "api_server"

    def flag(self, name: str) -> str | None:
        """The value of `--name` (dash or underscore spelling, `--x v` or `--x=v`), last one wins."""
        wanted = name.lstrip("-").replace("_", "-")
        value: str | None = None
        args = list(self.args)
        for i, a in enumerate(args):
            if not a.startswith("--"):
                continue
            key, eq, val = a[2:].partition("=")
            if key.replace("_", "-") != wanted:
                continue
            if eq:
                value = val
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
            else:
                value = ""
        return value

    def int_flag(self, name: str, default: int) -> int:
        v = self.flag(name)
        try:
            return int(v) if v not in (None, "") else default
        except ValueError:
            return default


@dataclass(frozen=True)
class LaunchSpec:
    role: str  # "leader" (serves), "worker" (joins the leader) or "unknown"
    script: ScriptCall | None
    serve: ServeCall | None
    then: str  # how the script and vllm serve are joined: ";" (serve runs anyway) or "&&"
    image: str | None
    env: Mapping[str, str] = field(default_factory=dict)
    other: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def tensor_parallel_size(self) -> int:
        return self.serve.int_flag("tensor-parallel-size", 1) if self.serve else 1

    @property
    def pipeline_parallel_size(self) -> int:
        return self.serve.int_flag("pipeline-parallel-size", 1) if self.serve else 1

    @property
    def port(self) -> int:
        return self.serve.int_flag("port", 8000) if self.serve else 8000

    def engine_argv(
        self,
        *,
        port: int,
        node_ips: Sequence[str] = (),
        log_file: str | None = None,
        worker_log_files: Sequence[str] = (),
        time_scale: float | None = None,
        startup_seconds: float | None = None,
        status_file: str | None = None,
        extra: Sequence[str] = (),
        python: str | None = None,
    ) -> list[str]:
        """The simulator's command line for this (leader) spec: `vllm serve`'s model and flags replayed,
        the pod's own --host/--port replaced by loopback and `port` (the pod's port shows in the logs)."""
        if self.serve is None or self.serve.model is None:
            raise ValueError(
                f"this pod does not run `vllm serve` (role {self.role}); only a leader spec starts an engine"
            )
        argv = [python or sys.executable, "-m", "testbed.engine", self.serve.model]
        skip_next = False
        for i, a in enumerate(self.serve.args):
            if skip_next:
                skip_next = False
                continue
            key = a[2:].partition("=")[0].replace("_", "-") if a.startswith("--") else None
            if key in ("host", "port", "model"):
                has_value = (
                    "=" not in a
                    and i + 1 < len(self.serve.args)
                    and not self.serve.args[i + 1].startswith("--")
                )
                skip_next = has_value
                continue
            argv.append(a)
        argv += ["--port", str(port), "--advertised-port", str(self.port)]
        if self.image:
            argv += ["--image", self.image]
        if self.script is not None:
            argv += ["--launch-script", self.script.path]
            if self.script.ray_cluster_size is not None:
                argv += ["--ray-cluster-size", str(self.script.ray_cluster_size)]
            if self.then == "&&":
                argv += ["--script-then", "on-success"]
        for ip in node_ips:
            argv += ["--node-ip", ip]
        if log_file:
            argv += ["--log-file", log_file]
        for f in worker_log_files:
            argv += ["--worker-log-file", f]
        if time_scale is not None:
            argv += ["--time-scale", repr(time_scale)]
        if startup_seconds is not None:
            argv += ["--startup-seconds", repr(startup_seconds)]
        if status_file:
            argv += ["--status-file", status_file]
        return argv + list(extra)


def _parse_script(tokens: list[str], problems: list[str]) -> ScriptCall:
    path = tokens[1] if tokens[0] in ("bash", "sh", "/bin/bash", "/bin/sh") else tokens[0]
    rest = tokens[2:] if tokens[0] in ("bash", "sh", "/bin/bash", "/bin/sh") else tokens[1:]
    role = rest[0] if rest else ""
    size: int | None = None
    address: str | None = None
    port = 6379
    extra: list[str] = []
    mine: list[str] = []
    for a in rest[1:]:
        key, _, val = a.partition("=")
        if key == "--ray_cluster_size":
            try:
                size = int(val)
            except ValueError:
                mine.append(f"--ray_cluster_size={val!r} is not a number (is LWS_GROUP_SIZE set?)")
        elif key == "--ray_address":
            address = val or None
            if "$(" in val:
                mine.append(f"--ray_address={val} was not expanded (is LWS_LEADER_ADDRESS set?)")
        elif key == "--ray_port":
            port = int(val) if val.isdigit() else port
        else:
            extra.append(a)
    problems.extend(mine)
    return ScriptCall(
        path=path,
        role=role,
        ray_cluster_size=size,
        ray_address=address,
        ray_port=port,
        extra=tuple(extra),
        problems=tuple(mine),
    )


def _parse_serve(tokens: list[str]) -> ServeCall | None:
    if len(tokens) >= 2 and tokens[0].endswith("vllm") and tokens[1] == "serve":
        rest = tokens[2:]
        model = rest[0] if rest and not rest[0].startswith("-") else None
        args = rest[1:] if model is not None else rest
        call = ServeCall(model=model, args=tuple(args), entrypoint="vllm serve")
        if model is None:
            model = call.flag("model")
            call = ServeCall(model=model, args=tuple(args), entrypoint="vllm serve")
        return call
    if "vllm.entrypoints.openai.api_server" in tokens:
        i = tokens.index("vllm.entrypoints.openai.api_server")
        call = ServeCall(model=None, args=tuple(tokens[i + 1 :]), entrypoint="api_server")
        return ServeCall(model=call.flag("model"), args=call.args, entrypoint="api_server")
    return None


def parse_launch(
    command: Sequence[str] | None,
    args: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    image: str | None = None,
) -> LaunchSpec:
    """Read a container's command/args/env (see module docstring)."""
    env = dict(env or {})
    problems: list[str] = []
    expanded: list[str] = []
    for part in list(command or []) + list(args or []):
        text, missing = expand_vars(part, env)
        problems.extend(
            f"$({name}) is not defined in the container env; the kubelet leaves it as written"
            for name in missing
        )
        expanded.append(text)
    if not command:
        # the image's ENTRYPOINT ["vllm", "serve"] with the container args
        entry = _parse_serve(["vllm", "serve", *expanded])
        return LaunchSpec(
            role="leader", script=None, serve=entry, then=";", image=image, env=env, problems=tuple(problems)
        )
    if (
        expanded
        and expanded[0].rsplit("/", 1)[-1] in {s.rsplit("/", 1)[-1] for s in _SHELLS}
        and "-c" in expanded[1:3]
    ):
        script_text = expanded[expanded.index("-c") + 1] if expanded.index("-c") + 1 < len(expanded) else ""
        pieces = _SPLIT.split(script_text.strip())
        segments = pieces[0::2]
        joiners = pieces[1::2]
    else:
        segments = [shlex.join(expanded)]
        joiners = []
    script: ScriptCall | None = None
    serve: ServeCall | None = None
    other: list[str] = []
    then = ";"
    for idx, seg in enumerate(segments):
        seg = seg.strip()
        if not seg:
            continue
        try:
            tokens = shlex.split(seg)
        except ValueError as exc:
            problems.append(f"cannot split {seg!r} as a shell command: {exc}")
            continue
        if any(t.endswith("multi-node-serving.sh") for t in tokens[:2]):
            script = _parse_script(tokens, problems)
            if idx < len(joiners) and joiners[idx] == "&&":
                then = "&&"
            continue
        call = _parse_serve(tokens)
        if call is not None:
            serve = call
            continue
        other.append(seg)
    if (script is not None and script.role == "worker") or (
        serve is not None and serve.flag("headless") is not None
    ):
        role = "worker"
    elif serve is not None:
        role = "leader"
    else:
        role = "unknown"
    return LaunchSpec(
        role=role,
        script=script,
        serve=serve,
        then=then,
        image=image,
        env=env,
        other=tuple(other),
        problems=tuple(problems),
    )


def worker_script_failure(spec: LaunchSpec, profile: Profile) -> tuple[str, int] | None:
    """What a worker pod's own container prints and exits with when its launch script cannot run in this
    image: (the line, the exit code), or None when it runs (then it blocks in `ray start --block`, and the
    engine writes its Ray lines into that worker's log file when the leader's engine starts)."""
    if spec.script is None:
        return None
    if profile.multi_node_script != spec.script.path:
        return f"bash: {spec.script.path}: No such file or directory", 127
    if spec.script.role == "worker" and not spec.script.ray_address:
        return "Error: Missing argument --ray_address", 1
    if spec.script.role == "leader" and spec.script.ray_cluster_size is None:
        return "Error: Missing argument --ray_cluster_size", 1
    return None
