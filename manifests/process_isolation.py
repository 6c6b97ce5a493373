"""Which fields of a pod spec let a process in one of its containers see or signal processes outside it.

A crash fault (fixtures/faults.py) runs a signalling command inside a container. It relies on the container's
boundary, and these fields take it down:
- `spec.hostPID: true`: the container sees every process of the node (the kubelet, the container runtime,
  other tenants' pods); as root it may signal them all;
- `spec.shareProcessNamespace: true`: the pod's containers share one PID namespace whose PID 1 is the pause
  process, so each container sees and, as root, may signal the others;
- `securityContext.privileged: true` on any container: the runtime drops no capability and hides nothing of
  /proc and /sys, so nothing the suite relies on to stay inside the container holds.

The same reading serves the preflight lint (a warning on the pod templates, manifests/lint/lws_object.py) and
the fault's refusal on the live pod. Pure: a pod spec in, the fields that break the boundary out.
"""

from __future__ import annotations

from typing import Any

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def boundary_breaches(pod_spec: dict[str, Any]) -> list[str]:
    """The fields of `pod_spec` (a pod's or a pod template's `spec`) that open the container boundary, each
    named as a user would find it (`spec.hostPID`, `spec.containers[vllm].securityContext.privileged`)."""
    found = [f"spec.{name}" for name in ("hostPID", "shareProcessNamespace") if pod_spec.get(name) is True]
    for kind in CONTAINER_LISTS:
        for container in pod_spec.get(kind) or []:
            if ((container.get("securityContext") or {}).get("privileged")) is True:
                found.append(f"spec.{kind}[{container.get('name')}].securityContext.privileged")
    return found
