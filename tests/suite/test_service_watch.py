"""The Service watch (suite/conformance/service_watch.py) turns EndpointSlice and pod changes, as the API sends
them, into the timeline's events: a leader becoming a ready endpoint, listed not ready, leaving; a pod deleted,
gone, its container dying; and the faults the suite marks."""

from __future__ import annotations

from typing import Any

from suite.conformance.service_watch import ServiceWatch


def slice_of(name: str, *endpoints: tuple[str, str, bool | None]) -> dict[str, Any]:
    eps = []
    for pod, uid, ready in endpoints:
        conditions = {} if ready is None else {"ready": ready}
        eps.append({"targetRef": {"kind": "Pod", "name": pod, "uid": uid}, "conditions": conditions})
    return {"metadata": {"name": name}, "endpoints": eps}


def pod_of(name: str, uid: str, group: int, *, deleting: bool = False, restarts: int = 0) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": uid,
        "labels": {
            "leaderworkerset.sigs.k8s.io/group-index": str(group),
            "leaderworkerset.sigs.k8s.io/worker-index": "0" if name.count("-") == 1 else "1",
        },
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-07T13:00:00Z"
    return {"metadata": meta, "status": {"containerStatuses": [{"restartCount": restarts, "state": {}}]}}


def test_endpoint_and_pod_changes_become_timeline_events() -> None:
    watch = ServiceWatch(None, "ns", "vllm-leader", "vllm")  # type: ignore[arg-type]
    for raw in (pod_of("vllm-0", "a", 0), pod_of("vllm-1", "b", 1), pod_of("vllm-1-1", "w", 1)):
        watch._pod_changed("ADDED", raw, quiet=True)
    watch._slices = {"s1": {"a": ("vllm-0", True), "b": ("vllm-1", True)}}
    watch._initial = {"a": "vllm-0", "b": "vllm-1"}
    watch._pod_changed("MODIFIED", pod_of("vllm-1", "b", 1, deleting=True))
    watch._slice_changed("MODIFIED", slice_of("s1", ("vllm-0", "a", None), ("vllm-1", "b", False)))
    watch._slice_changed("MODIFIED", slice_of("s1", ("vllm-0", "a", True)))
    watch._pod_changed("DELETED", pod_of("vllm-1", "b", 1, deleting=True))
    watch._slice_changed("MODIFIED", slice_of("s1", ("vllm-0", "a", True), ("vllm-1", "c", False)))
    watch._slice_changed("MODIFIED", slice_of("s1", ("vllm-0", "a", True), ("vllm-1", "c", True)))
    watch._pod_changed("MODIFIED", pod_of("vllm-1-1", "w", 1, restarts=1))
    watch.mark_fault("vllm-0", "crash-leader")
    timeline = watch.stop()
    said = [(e.kind, e.pod, e.uid, e.group) for e in timeline.events]
    assert said == [
        ("deleting", "vllm-1", "b", 1),
        ("not-ready", "vllm-1", "b", 1),
        ("left", "vllm-1", "b", 1),
        ("deleted", "vllm-1", "b", 1),
        ("ready", "vllm-1", "c", 1),  # a new endpoint listed not ready first says nothing until it is ready
        ("killed", "vllm-1-1", "w", 1),
        ("fault", "vllm-0", "a", 0),
    ]
    assert timeline.events[-2].detail == "restart count 0 -> 1"
    assert timeline.ready_at(timeline.events[-1].t) == {"a": "vllm-0", "c": "vllm-1"}
    assert timeline.groups["vllm-1"] == 1 and timeline.groups["vllm-0"] == 0
