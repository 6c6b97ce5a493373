"""The bridge outlives an API error as a kubelet does: the group is tried again, and later groups are served.

A namespace being deleted refuses new objects with 403 ("being terminated"). A KWOK rule written for a pod in
such a namespace once raised out of the bridge's watch and ended the process, so every later group on the
testbed had a leader that never turned Ready and an empty log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge_testkit import bridge_pod
from kubernetes import client
from kubernetes.client.rest import ApiException

from testbed.bridge.pods import Group
from testbed.bridge.run import Bridge, LogFiles


class FakeEngine:
    port = 40001
    returncode = None

    def alive(self) -> bool:
        return True

    def healthy(self) -> bool:
        return False

    def peer_lost(self) -> None:
        pass

    def terminate(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def stop(self) -> None:
        pass


class Launcher:
    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, group: Group, log_files: LogFiles, uid: int | None = None) -> FakeEngine:
        assert group.leader is not None
        self.started.append(group.leader.name)
        return FakeEngine()


pod = bridge_pod


def test_an_api_error_is_retried_and_does_not_end_the_bridge(tmp_path: Path) -> None:
    launcher = Launcher()
    bridge = Bridge(client.ApiClient(), launcher, tmp_path)
    written: list[dict[str, Any]] = []
    refusals = [ApiException(status=403, reason="Forbidden: namespace ns is being terminated")]

    def apply(body: dict[str, Any]) -> None:
        if refusals:
            raise refusals.pop()
        written.append(body)

    bridge._rules.apply = apply  # type: ignore[method-assign]
    for raw in (pod("vllm-0", 0), pod("vllm-0-1", 1)):
        bridge._observe(raw, deleted=False)
    group_id = ("ns", "k")

    bridge._reconcile_or_retry(group_id)  # the first rule is refused: no exception leaves the bridge
    assert group_id in bridge._retry and launcher.started == []

    bridge._reconcile_or_retry(group_id)  # the retry, as the readiness tick makes it
    assert group_id not in bridge._retry
    assert launcher.started == ["vllm-0"]
    kinds = sorted(body["kind"] for body in written)
    assert kinds == ["Logs", "Logs", "PortForward"], kinds  # both pods' logs, the leader's port once started


def test_a_port_forward_refused_after_the_engine_started_is_written_on_the_retry(tmp_path: Path) -> None:
    launcher = Launcher()
    bridge = Bridge(client.ApiClient(), launcher, tmp_path)
    written: list[str] = []

    def apply(body: dict[str, Any]) -> None:
        if body["kind"] == "PortForward" and "refused" not in written:
            written.append("refused")
            raise ApiException(status=500, reason="etcd leader changed")
        written.append(body["kind"])

    bridge._rules.apply = apply  # type: ignore[method-assign]
    for raw in (pod("vllm-0", 0), pod("vllm-0-1", 1)):
        bridge._observe(raw, deleted=False)
    bridge._reconcile_or_retry(("ns", "k"))
    assert launcher.started == ["vllm-0"] and "PortForward" not in written
    bridge._reconcile_or_retry(("ns", "k"))
    assert launcher.started == ["vllm-0"], "the running engine is kept, not started twice"
    assert written.count("PortForward") == 1
