"""A pod's container command and env, read as vLLM's LWS launch: which role, which script, which `vllm serve`.

The bridge calls `parse_launch(command, args, env, image=...)` for a pod and gets a typed `LaunchSpec`;
`LaunchSpec.engine_argv(...)` turns the leader's spec into the simulator's command line.

The reading itself is `manifests.launch_command.parse_container` (one parser for the lint, `describe()`
and the testbed): `$(VAR)` expanded from the container env as the kubelet does, `sh -c` scripts split
into statements joined by `;`, `&&` or newlines, the multi-node script call, `vllm serve MODEL ...` and
`python3 -m vllm.entrypoints.openai.api_server --model MODEL ...`, and the image's entrypoint
`vllm serve` when there is no command. This module adds what the testbed makes of it: the pod's role,
the problems a user would want to hear about, and the simulator's argv.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from manifests.launch_command import ScriptCall, ServeCall, parse_container
from manifests.launch_command import expand_kubelet as expand_vars
from testbed.engine.cli import EXECUTE_TIMEOUT_ENV
from testbed.engine.profiles import Profile

__all__ = ["LaunchSpec", "ScriptCall", "ServeCall", "expand_vars", "parse_launch", "worker_script_failure"]

VLLM_DEFAULT_PORT = 8000
# vllm serve's own flags that the simulator replaces: it binds loopback on a free port, and takes the
# model as its positional argument.
_REPLACED_FLAGS = ("host", "port", "model")


@dataclass(frozen=True)
class LaunchSpec:
    role: str  # "leader" (serves), "worker" (joins the leader or runs headless) or "unknown"
    script: ScriptCall | None
    serve: ServeCall | None
    then: str  # how the script and vllm serve are joined: ";" (serve runs anyway) or "&&"
    image: str | None
    env: Mapping[str, str] = field(default_factory=dict)
    other: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def _int_flag(self, flag: str, default: int) -> int:
        value = self.serve.int_value(flag) if self.serve else None
        return default if value is None else value

    @property
    def tensor_parallel_size(self) -> int:
        return self._int_flag("tensor-parallel-size", 1)

    @property
    def pipeline_parallel_size(self) -> int:
        return self._int_flag("pipeline-parallel-size", 1)

    @property
    def port(self) -> int:
        return self._int_flag("port", VLLM_DEFAULT_PORT)

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
        the pod's own --host/--port replaced by loopback and `port` (the pod's port shows in the logs).
        `node_ips` and `worker_log_files` go in worker-index order, the leader's node first."""
        if self.serve is None or self.serve.model is None:
            raise ValueError(
                f"this pod does not run `vllm serve` (role {self.role}); only a leader spec starts an engine"
            )
        argv = [python or sys.executable, "-m", "testbed.engine", self.serve.model]
        argv += self.serve.flag_argv(without=_REPLACED_FLAGS)
        argv += ["--host", "127.0.0.1", "--port", str(port), "--advertised-port", str(self.port)]
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
        if (timeout := self.env.get(EXECUTE_TIMEOUT_ENV)) is not None:  # the pod's, as vLLM would read it
            argv += ["--execute-model-timeout", timeout]
        if time_scale is not None:
            argv += ["--time-scale", repr(time_scale)]
        if startup_seconds is not None:
            argv += ["--startup-seconds", repr(startup_seconds)]
        if status_file:
            argv += ["--status-file", status_file]
        return argv + list(extra)


def _script_problems(script: ScriptCall) -> list[str]:
    """What the multi-node script would stumble on: a group size that is not a number, an unexpanded
    leader address."""
    problems = []
    size = script.args.get("ray-cluster-size")
    if size is not None and script.ray_cluster_size is None:
        problems.append(f"--ray_cluster_size={size!r} is not a number (is LWS_GROUP_SIZE set?)")
    address = script.args.get("ray-address")
    if address is not None and "$(" in address:
        problems.append(f"--ray_address={address} was not expanded (is LWS_LEADER_ADDRESS set?)")
    return problems


def parse_launch(
    command: Sequence[str] | None,
    args: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    image: str | None = None,
) -> LaunchSpec:
    """Read a container's command/args/env (see module docstring)."""
    env = dict(env or {})
    launch = parse_container({"command": list(command or []), "args": list(args or [])}, env=env)
    problems = [
        f"$({name}) is not defined in the container env; the kubelet leaves it as written"
        for name in launch.unexpanded
    ]
    if launch.shell_error is not None:
        problems.append(f"cannot split {launch.shell!r} as a shell command: {launch.shell_error}")
    script, serve = launch.script, launch.serve
    if script is not None:
        problems += _script_problems(script)
    if (script is not None and script.role == "worker") or (serve is not None and serve.has("headless")):
        role = "worker"
    elif serve is not None:
        role = "leader"
    else:
        role = "unknown"
    return LaunchSpec(
        role=role,
        script=script,
        serve=serve,
        then="&&" if launch.then == "&&" else ";",
        image=image,
        env=env,
        other=launch.other,
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
