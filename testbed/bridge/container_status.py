"""What a kubelet writes to a pod's status when its container exits while the pod stays (restartPolicy
Always): restartCount + 1, lastState.terminated with the exit code, Ready false. The testbed's bridge is the
kubelet of its pods, so it reports their containers' deaths this way, and LWS reacts as it does on a node."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from testbed.bridge.podnet import kill_all_of
from testbed.bridge.pods import PodView
from testbed.stages import ENGINE_READY

log = logging.getLogger("bridge.kubelet")


def report_death(core: client.CoreV1Api, pod: PodView, incarnation: int, returncode: int, uid: int) -> None:
    """A container's main process (run under the pod's sandbox user `uid`) exited with `returncode`: the
    container is gone, so is every process it started; then report the restart as a kubelet does."""
    left = kill_all_of(uid)
    if left:
        log.info("pod %s/%s: killed %d leftover processes", pod.namespace, pod.name, left)
    report_restart(core, pod, incarnation, exit_code_of(returncode))


def exit_code_of(returncode: int) -> int:
    """A process's exit status as a container runtime reports it: 128 + N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def report_restart(core: client.CoreV1Api, pod: PodView, incarnation: int, exit_code: int) -> None:
    """The container of `pod` that started at restartCount `incarnation` exited with `exit_code`. A pod with a
    readiness probe turns unready until the probe passes again (the bridge marks it); one without is ready
    again as soon as its new container runs, as a kubelet reports it."""
    assert pod.container is not None
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status: dict[str, Any] = {
        "containerStatuses": [
            {
                "name": pod.container.name,
                "restartCount": incarnation + 1,
                "ready": not pod.has_readiness_probe,
                "lastState": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Error" if exit_code else "Completed",
                        "finishedAt": now,
                    }
                },
                "state": {"running": {"startedAt": now}},
            }
        ],
    }
    if pod.has_readiness_probe:
        status["conditions"] = [
            {"type": "Ready", "status": "False"},
            {"type": "ContainersReady", "status": "False"},
        ]
    log.warning(
        "pod %s/%s: container exited with code %d; reporting the restart", pod.namespace, pod.name, exit_code
    )
    try:
        if pod.has_readiness_probe:
            annotations = {"metadata": {"annotations": {ENGINE_READY: "false"}}}
            core.patch_namespaced_pod(pod.name, pod.namespace, annotations)
        core.patch_namespaced_pod_status(pod.name, pod.namespace, {"status": status})
    except ApiException as exc:
        if exc.status != 404:
            log.warning("pod %s/%s: cannot report the restart: %s", pod.namespace, pod.name, exc.reason)
