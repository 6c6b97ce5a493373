"""The bridge stops a deleted leader's engine as a kubelet stops a container: SIGTERM at once, SIGKILL only after
the pod's terminationGracePeriodSeconds (capped on the testbed), checked on its readiness tick; nothing waits
meanwhile, so the bridge's lock is never held through a grace period (an engine with streams in flight does not
end on SIGTERM, as vLLM 0.32's does not: testbed/engine/app.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bridge_testkit import bridge_pod
from kubernetes import client

from testbed.bridge import run as bridge_run
from testbed.bridge.pods import Group
from testbed.bridge.run import Bridge, LogFiles


class HangingEngine:
    """An engine that ignores SIGTERM (streams in flight) until it is killed."""

    port = 40002
    returncode = None

    def __init__(self) -> None:
        self.signals: list[str] = []

    def alive(self) -> bool:
        return "KILL" not in self.signals

    def healthy(self) -> bool:
        return True

    def peer_lost(self) -> None:
        pass

    def terminate(self) -> None:
        self.signals.append("TERM")

    def kill(self) -> None:
        self.signals.append("KILL")

    def stop(self) -> None:
        self.signals.append("STOP")


class Launcher:
    def __init__(self) -> None:
        self.engines: list[HangingEngine] = []

    def start(self, group: Group, log_files: LogFiles, uid: int | None = None) -> HangingEngine:
        self.engines.append(HangingEngine())
        return self.engines[-1]


def leader(grace: int | None) -> dict[str, Any]:
    raw = bridge_pod("vllm-0", 0)
    if grace is not None:
        raw["spec"]["terminationGracePeriodSeconds"] = grace
    return raw


@pytest.mark.parametrize(("grace", "kill_after"), [(3, 3.0), (None, bridge_run.MAX_GRACE_S)])
def test_a_deleted_leaders_engine_gets_sigterm_then_sigkill_after_the_grace_period(
    grace: int | None, kill_after: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr(bridge_run.time, "monotonic", lambda: now[0])
    launcher = Launcher()
    bridge = Bridge(client.ApiClient(), launcher, tmp_path)
    bridge._rules.apply = lambda body: None  # type: ignore[method-assign]
    bridge._set_engine_ready = lambda namespace, name, ready: None  # type: ignore[method-assign]
    for raw in (leader(grace), bridge_pod("vllm-0-1", 1)):
        bridge._observe(raw, deleted=False)
    bridge._reconcile(("ns", "k"))
    (engine,) = launcher.engines
    deleting = leader(grace)
    deleting["metadata"]["deletionTimestamp"] = "2026-12-07T01:00:00Z"
    bridge._observe(deleting, deleted=False)
    bridge._reconcile(("ns", "k"))
    assert engine.signals == ["TERM"]
    now[0] += kill_after - 0.1
    bridge._kill_after_grace()
    assert engine.signals == ["TERM"]  # still in its grace period
    assert bridge._lock.acquire(blocking=False)  # and nobody holds the bridge's lock meanwhile
    bridge._lock.release()
    now[0] += 0.2
    bridge._kill_after_grace()
    assert engine.signals == ["TERM", "KILL"]
    bridge._kill_after_grace()
    assert engine.signals == ["TERM", "KILL"]  # killed once, then forgotten
