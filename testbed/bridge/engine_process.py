"""Start the simulated vLLM engine for one LWS group as a local process, configured from the leader pod.

The leader's container command and env are read as a kubelet and the multi-node script would read them
(`testbed.engine.launch.parse_launch`), and `LaunchSpec.engine_argv` builds the engine's command line: the
`vllm serve` arguments replayed with --host/--port replaced by a free loopback port, and the script path,
image and group size that let the engine behave like the vLLM release in the image, failures included.
Only the workers whose own command joins the leader (testbed/bridge/group_join.py) are the engine's nodes.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from plumbing.ports import free_port
from testbed.bridge.group_join import worker_joins
from testbed.bridge.podnet import sandbox_prefix
from testbed.bridge.pods import TIME_SCALE, Group
from testbed.bridge.run import LogFiles
from testbed.engine.launch import LaunchSpec, parse_launch
from testbed.engine.signals import PEER_LOST_SIGNAL

STOP_WAIT_S = 2.0
# node addresses for the engine's log prefixes when a pod has none yet
LEADER_IP_FALLBACK = "10.0.0.1"
WORKER_IP_FALLBACK = "10.0.0.2"


@dataclass
class EngineProcess:
    port: int
    proc: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def healthy(self) -> bool:
        return answers_health(self.port)

    def peer_lost(self) -> None:
        """A worker of the group went away: the engine fails as vLLM's does, at its next model step (testbed/engine/app.py)."""
        if self.proc.poll() is None:
            self.proc.send_signal(PEER_LOST_SIGNAL)

    def terminate(self) -> None:
        """SIGTERM, as a kubelet stops a container; the bridge sends SIGKILL after the grace period (kill)."""
        if self.proc.poll() is None:
            self.proc.terminate()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """The testbed going down: SIGTERM, then SIGKILL after STOP_WAIT_S (an engine with streams in flight
        never ends on SIGTERM, as vLLM 0.32's does not: testbed/engine/app.py)."""
        self.terminate()
        try:
            self.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()


def answers_health(port: int) -> bool:
    """The readiness probe: GET /health on 127.0.0.1:port answers 200 within a second."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def leader_launch(group: Group) -> LaunchSpec:
    """The leader pod's container command, args and env, read as its launch."""
    leader = group.leader
    assert leader is not None and leader.container is not None
    container = leader.container
    return parse_launch(container.command, container.args, container.env, image=container.image or None)


def engine_argv(
    group: Group, logs: LogFiles, port: int, time_scale: float, *, spec: LaunchSpec | None = None
) -> list[str]:
    """The engine's command line for `group` (`spec`: the leader's launch, when already read)."""
    leader = group.leader
    assert leader is not None
    spec = spec or leader_launch(group)
    # Only the workers whose own command reaches this leader are nodes of its cluster (group_join.py); the
    # others leave the leader waiting for them, as on a cluster.
    joined = [j.worker for j in worker_joins(group) if j.joins]
    worker_ips = [w.pod_ip or WORKER_IP_FALLBACK for w in joined]
    return spec.engine_argv(
        port=port,
        node_ips=[leader.pod_ip or LEADER_IP_FALLBACK, *worker_ips],
        log_file=str(logs.ensure(leader)),
        worker_log_files=[str(logs.ensure(w)) for w in joined],
        time_scale=time_scale,
    )


class SubprocessLauncher:
    def __init__(self, log_dir: Path, time_scale: float) -> None:
        self._log_dir = log_dir
        self._time_scale = time_scale

    def start(self, group: Group, logs: LogFiles, uid: int | None = None) -> EngineProcess | None:
        """None when the leader does not run `vllm serve` (nothing to simulate). With `uid`, the simulator
        runs as the leader pod's sandbox user (sim_pods.py) and owns the log files it writes."""
        spec = leader_launch(group)
        if spec.serve is None or not spec.serve.model:
            return None
        port = free_port()
        argv = engine_argv(group, logs, port, _time_scale(group, self._time_scale), spec=spec)
        assert group.leader is not None
        if uid is not None:
            for pod in (group.leader, *group.workers):
                os.chown(logs.ensure(pod), uid, uid)
            argv = [*sandbox_prefix(uid), *argv]
        self._log_dir.mkdir(parents=True, exist_ok=True)
        out = (
            self._log_dir / f"engine-{group.leader.namespace}-{group.leader.name}-{group.leader.uid[:8]}.log"
        )
        with out.open("ab") as handle:
            handle.write((" ".join(argv) + "\n").encode())
            handle.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT)
        return EngineProcess(port, proc)


def _time_scale(group: Group, default: float) -> float:
    """The leader's time-scale annotation if it carries a usable one, else the bridge's default."""
    assert group.leader is not None
    try:
        value = float(group.leader.annotations.get(TIME_SCALE, default))
    except ValueError:
        return default
    return value if value >= 0 else default
