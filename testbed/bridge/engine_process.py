"""Start the simulated vLLM engine for one LWS group as a local process, configured from the leader pod.

The leader's container command is read as a kubelet and the multi-node script would read it
(manifests.launch_command): the `vllm serve` arguments become the engine's arguments (with --host/--port
replaced by a free loopback port), and the script path, image and group size let the engine behave like the
vLLM release in the image, failures included.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from manifests.launch_command import expand_kubelet_vars, parse_container
from testbed.bridge.pods import Group
from testbed.bridge.run import LogFiles
from testbed.processes import free_port

SIMULATOR_ONLY_FLAGS = {"host", "port"}


@dataclass
class EngineProcess:
    port: int
    proc: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def engine_argv(group: Group, logs: LogFiles, port: int, time_scale: float) -> list[str]:
    leader = group.leader
    assert leader is not None and leader.container is not None
    raw = {"command": list(leader.container.command), "args": list(leader.container.args)}
    launch = parse_container(raw)
    env = leader.container.env
    argv = [sys.executable, "-m", "testbed.engine"]
    serve = launch.serve
    assert serve is not None and serve.model, "engine_argv needs a leader that runs vllm serve"
    argv.append(expand_kubelet_vars(serve.model, env))
    pod_port = "8000"  # vllm serve's default port
    for flag, value in serve.args.items():
        name = flag.lstrip("-").replace("_", "-")
        if name == "port" and value is not None:
            pod_port = expand_kubelet_vars(value, env)
        if name in SIMULATOR_ONLY_FLAGS or name == "model":
            continue
        argv.append(flag if flag.startswith("--") else f"--{flag}")
        if value is not None:
            argv.append(expand_kubelet_vars(value, env))
    argv += ["--host", "127.0.0.1", "--port", str(port), "--advertised-port", pod_port,
             "--image", leader.container.image,
             "--time-scale", str(time_scale), "--log-file", str(logs.ensure(leader))]
    if launch.script is not None:
        argv += ["--launch-script", launch.script.path]
        size = launch.script.args.get("ray_cluster_size") or launch.script.args.get("--ray_cluster_size")
        if size is not None:
            argv += ["--ray-cluster-size", expand_kubelet_vars(size, env)]
    argv += ["--node-ip", leader.pod_ip or "10.0.0.1"]
    for worker in group.workers:
        argv += ["--worker-log-file", str(logs.ensure(worker)), "--node-ip", worker.pod_ip or "10.0.0.2"]
    return argv


class SubprocessLauncher:
    def __init__(self, log_dir: Path, time_scale: float) -> None:
        self._log_dir = log_dir
        self._time_scale = time_scale

    def start(self, group: Group, logs: LogFiles) -> EngineProcess | None:
        """None when the leader does not run `vllm serve` (nothing to simulate)."""
        assert group.leader is not None and group.leader.container is not None
        launch = parse_container({"command": list(group.leader.container.command),
                                  "args": list(group.leader.container.args)})
        if launch.serve is None or not launch.serve.model:
            return None
        port = free_port()
        argv = engine_argv(group, logs, port, self._time_scale)
        assert group.leader is not None
        self._log_dir.mkdir(parents=True, exist_ok=True)
        out = self._log_dir / f"engine-{group.leader.namespace}-{group.leader.name}-{group.leader.uid[:8]}.log"
        with out.open("ab") as handle:
            handle.write((" ".join(argv) + "\n").encode())
            handle.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT)
        return EngineProcess(port, proc)
