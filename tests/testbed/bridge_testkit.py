"""Pods as the API server hands them to the bridge (testbed/bridge/run.py), for its unit tests."""

from __future__ import annotations

from typing import Any


def bridge_pod(name: str, index: int, restarts: int | None = None) -> dict[str, Any]:
    """Pod `name` of LWS `vllm`'s group 0 (size 2) at worker index `index`, Running; with `restarts`, its
    container's status says how often it restarted."""
    labels = {
        "leaderworkerset.sigs.k8s.io/name": "vllm",
        "leaderworkerset.sigs.k8s.io/group-key": "k",
        "leaderworkerset.sigs.k8s.io/worker-index": str(index),
    }
    status: dict[str, Any] = {"phase": "Running"}
    if restarts is not None:
        status["containerStatuses"] = [{"name": "vllm", "restartCount": restarts}]
    return {
        "metadata": {
            "name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels,
            "annotations": {"leaderworkerset.sigs.k8s.io/size": "2"},
        },
        "spec": {"containers": [{"name": "vllm", "command": ["sh", "-c", "vllm serve m"]}]},
        "status": status,
    }  # fmt: skip
