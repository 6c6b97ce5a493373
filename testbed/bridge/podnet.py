"""The pod network and process sandbox of the real-engine testbed (`--engine vllm-cpu`).

Real vLLM listens where it likes: its torch.distributed store binds every address of the host (`*:29500`),
and its HTTP server binds 0.0.0.0 unless told otherwise. On these machines nothing may listen on a real
interface, so the real engine's pods run inside one private network namespace the testbed creates
(`ip netns add`), which has nothing but a loopback interface:

- each pod gets its own loopback address there (127.42.x.y), its "pod IP": `VLLM_HOST_IP`, the address
  `LWS_LEADER_ADDRESS` resolves to, and the `--host` its `vllm serve` binds;
- the host side reaches a pod only through a relay (testbed/bridge/relay.py) that accepts on 127.0.0.1 of
  the host and connects inside the namespace: KWOK's port-forward rules and the bridge's readiness probe
  use it, and nothing else crosses.

Each pod's processes also run under a user id of their own (setpriv, no privileges but reading files:
CAP_DAC_READ_SEARCH, so the engine under the user's cache can be read). A signal sent with that user id
reaches exactly that pod's processes, as one sent inside a container reaches only the container: this is
what lets a crash sent through `kubectl exec POD` (KWOK's Exec rule runs it as the pod's user) crash that pod
and nothing else. The user id is the testbed's container boundary: the pods, their stand-ins and the exec'd
commands all share the testbed's cgroup and the host's PID namespace, so a command that keeps to its own
cgroup (the suite's, fixtures/faults.py) is kept to the pod by the kernel's permission check on signals.
Each pod runs one container (the first); a second container of a pod is not run. Both need root;
`require_root()` says so in one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class PodNetworkError(RuntimeError):
    """The namespace or sandbox cannot be set up; the message says why and what to do."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise PodNetworkError(
            "the real engine (--engine vllm-cpu) runs its pods in a private network namespace under "
            "per-pod user ids, which needs root; run as root (as CI does) or use --engine sim"
        )


def netns_name(testbed_name: str) -> str:
    digest = hashlib.sha1(testbed_name.encode()).hexdigest()[:10]
    return f"lws-suite-{digest}"


@dataclass
class PodNetwork:
    name: str  # the network namespace

    def create(self) -> None:
        require_root()
        self.delete()
        for argv in (
            ["ip", "netns", "add", self.name],
            ["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"],
        ):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise PodNetworkError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")

    def delete(self) -> None:
        if Path(f"/run/netns/{self.name}").exists():
            subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, check=False)
        shutil.rmtree(Path("/etc/netns") / self.name, ignore_errors=True)

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def interfaces(self) -> list[str]:
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, "ip", "-o", "link"],
            capture_output=True,
            text=True,
            check=False,
        )
        return [line.split(":")[1].strip() for line in done.stdout.splitlines() if ":" in line]


def pod_home(uid: int) -> Path:
    """A pod's HOME and TMPDIR root: short, because vLLM binds ZeroMQ sockets under TMPDIR and a Unix socket
    path may not exceed 107 bytes."""
    return Path(tempfile.gettempdir()) / f"lws-pod-{uid}"


def kill_testbed_leftovers(testbed_name: str, ids: range) -> int:
    """SIGKILL every process running under one of this testbed's pod user ids (`ids`: the range it recorded,
    pod_uids.py), and the port relays into its network namespace (they run as root), remove the pods' homes;
    how many processes there were."""
    killed = _kill([pid for pid, uid in process_uids().items() if uid in ids])
    killed += _kill(relay_pids(netns_name(testbed_name)))
    for home in Path(tempfile.gettempdir()).glob("lws-pod-*"):
        if home.name.removeprefix("lws-pod-").isdigit() and int(home.name.removeprefix("lws-pod-")) in ids:
            shutil.rmtree(home, ignore_errors=True)
    return killed


def sandbox_prefix(uid: int) -> list[str]:
    """Run as `uid` (own group, no supplementary groups), able to read files anywhere but nothing more."""
    caps = "+dac_read_search"
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        f"--inh-caps={caps}",
        f"--ambient-caps={caps}",
        "--",
    ]


def process_uids() -> dict[int, int]:
    """The real user id of every process on the machine, by pid (one pass over /proc)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    found[int(entry.name)] = int(line.split()[1])
                    break
        except (OSError, ValueError):
            continue
    return found


def processes_of(uid: int) -> list[int]:
    """Pids whose real user id is `uid` (everything a pod's sandbox started, daemons included)."""
    return [pid for pid, owner in process_uids().items() if owner == uid]


def kill_all_of(uid: int) -> int:
    """SIGKILL every process of `uid`; how many there were."""
    return _kill(processes_of(uid))


def relay_pids(netns: str) -> list[int]:
    """Processes running `testbed.bridge.relay --netns NETNS` (relay.py): the host ends of one testbed's pods."""
    wanted = ["testbed.bridge.relay", "--netns", netns]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(words[i : i + 3] == wanted for i in range(len(words))):
            found.append(int(entry.name))
    return found


def _kill(pids: list[int]) -> int:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)
