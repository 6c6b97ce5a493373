"""A simulated leader stops serving when a peer of its group goes away, as real vLLM does: the bridge tells the
group's engine once a worker pod is deleted or its container restarts (a crash), whatever the restart policy.
(Real vLLM, CPU build, restartPolicy None: every request failed after the worker was deleted or crashed.)"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from bridge_testkit import bridge_pod
from kubernetes import client

from testbed.bridge.pods import Group
from testbed.bridge.run import Bridge, LogFiles


class Engine:
    port = 40001
    returncode = None

    def __init__(self) -> None:
        self.lost = 0

    def alive(self) -> bool:
        return True

    def healthy(self) -> bool:
        return True

    def peer_lost(self) -> None:
        self.lost += 1

    def terminate(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def stop(self) -> None:
        pass


class Launcher:
    def __init__(self) -> None:
        self.engines: list[Engine] = []

    def start(self, group: Group, log_files: LogFiles, uid: int | None = None) -> Engine:
        self.engines.append(Engine())
        return self.engines[-1]


def pod(name: str, index: int, restarts: int = 0) -> dict[str, Any]:
    return bridge_pod(name, index, restarts)


def serving_bridge(tmp_path: Path) -> tuple[Bridge, Launcher]:
    launcher = Launcher()
    bridge = Bridge(client.ApiClient(), launcher, tmp_path)
    bridge._rules.apply = lambda body: None  # type: ignore[method-assign]
    bridge._set_engine_ready = lambda namespace, name, ready: None  # type: ignore[method-assign]
    for raw in (pod("vllm-0", 0), pod("vllm-0-1", 1)):
        bridge._observe(raw, deleted=False)
    bridge._reconcile(("ns", "k"))
    assert len(launcher.engines) == 1
    return bridge, launcher


def test_deleting_a_worker_makes_the_leaders_engine_lose_its_peer_once(tmp_path: Path) -> None:
    bridge, launcher = serving_bridge(tmp_path)
    bridge._reconcile(("ns", "k"))
    assert launcher.engines[0].lost == 0  # nothing went away: it keeps serving
    deleting = pod("vllm-0-1", 1)
    deleting["metadata"]["deletionTimestamp"] = "2026-12-07T01:00:00Z"
    bridge._observe(deleting, deleted=False)
    bridge._reconcile(("ns", "k"))
    bridge._observe(deleting, deleted=True)
    bridge._reconcile(("ns", "k"))
    assert launcher.engines[0].lost == 1


def test_a_worker_container_restart_makes_the_leaders_engine_lose_its_peer(tmp_path: Path) -> None:
    bridge, launcher = serving_bridge(tmp_path)
    bridge._observe(pod("vllm-0-1", 1, restarts=1), deleted=False)
    bridge._reconcile(("ns", "k"))
    assert launcher.engines[0].lost == 1


def test_a_leader_restart_is_not_a_lost_peer(tmp_path: Path) -> None:
    """The leader's own restart ends its engine (a new one starts); nothing is signalled to the old one."""
    bridge, launcher = serving_bridge(tmp_path)
    leader = copy.deepcopy(pod("vllm-0", 0, restarts=1))
    bridge._observe(leader, deleted=False)
    bridge._reconcile(("ns", "k"))
    assert [e.lost for e in launcher.engines] == [0, 0]
