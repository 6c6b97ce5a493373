"""KWOK `Logs` and `PortForward` objects that point the API server's log and port-forward requests for a pod
at files and ports on 127.0.0.1. KWOK matches them to pods by namespace and name, so pod names that LWS
reuses across group recreation (vllm-0, vllm-0-1) are re-pointed at the new pod's files and engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

GROUP, VERSION = "kwok.x-k8s.io", "v1alpha1"
FIELD_MANAGER = "testbed-bridge"
PLURALS = {"Logs": "logs", "PortForward": "portforwards", "Exec": "execs"}


def logs_object(namespace: str, pod: str, current: Path, previous: Path | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"logsFile": str(current), "follow": True}
    if previous is not None:
        entry["previousLogsFile"] = str(previous)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Logs",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {"logs": [entry]},
    }


def port_forward_object(namespace: str, pod: str, ports: dict[int, int]) -> dict[str, Any]:
    """ports maps the pod's containerPort to the local engine port on 127.0.0.1."""
    forwards = [
        {"ports": [pod_port], "target": {"address": "127.0.0.1", "port": local}}
        for pod_port, local in sorted(ports.items())
    ]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PortForward",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {"forwards": forwards},
    }


def exec_object(namespace: str, pod: str, uid: int) -> dict[str, Any]:
    """`kubectl exec` into the pod runs the command on this machine as the pod's own user id (see
    testbed/bridge/podnet.py), so it can signal the pod's processes and no others."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Exec",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {
            "execs": [{"local": {"workDir": "/", "securityContext": {"runAsUser": uid, "runAsGroup": uid}}}]
        },
    }


class KwokRules:
    def __init__(self, api: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api)

    def apply(self, body: dict[str, Any]) -> None:
        plural = PLURALS[body["kind"]]
        self._custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            body["metadata"]["namespace"],
            plural,
            body["metadata"]["name"],
            body,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def delete(self, kind: str, namespace: str, name: str) -> None:
        plural = PLURALS[kind]
        try:
            self._custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except ApiException as exc:
            if exc.status != 404:
                raise
