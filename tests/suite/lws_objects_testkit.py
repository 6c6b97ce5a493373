"""What LWS v0.9.0 and Kubernetes make of the suite's rendered reference manifest, as the API's JSON: the pods
(with the webhook's labels, annotations and env), the StatefulSets, the headless Service, the EndpointSlices,
the nodes and the LWS status. For judging the snapshot checks offline; the e2e self-tests judge the real thing.

Sources, as the checks cite them (suite/conformance/checks/pod_roles.py, headless_service.py, lws_status.py):
labels name/group-index/worker-index/group-key and annotations size/leader-name from
sigs.k8s.io/lws@v0.9.0 pkg/webhooks/pod_webhook.go; LWS_LEADER_ADDRESS, LWS_GROUP_SIZE, LWS_WORKER_INDEX first
in every container's env from pkg/utils/pod/pod_utils.go AddLWSVariables; the headless Service named after the
LWS from pkg/utils/controller/controller_utils.go; the Available condition from leaderworkerset_controller.go.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

from manifests.render import render

P = "leaderworkerset.sigs.k8s.io/"
GPU = "nvidia.com/gpu"
NS = "ns"
LWS_UID = "5b1c7e0a-lws"


@dataclass
class Made:
    """The objects of one ready deployment, to change in place before taking a snapshot of them."""

    lws: dict[str, Any]
    pods: list[dict[str, Any]]
    statefulsets: list[dict[str, Any]]
    service: dict[str, Any]  # the user's leader Service
    leader_slices: list[dict[str, Any]]
    headless: dict[str, Any]  # the Service LWS creates, named after the LWS
    headless_slices: list[dict[str, Any]]
    nodes: list[dict[str, Any]] = field(default_factory=list)

    def pod(self, name: str) -> dict[str, Any]:
        return next(p for p in self.pods if p["metadata"]["name"] == name)


def _owner(kind: str, name: str, uid: str) -> dict[str, Any]:
    api = "leaderworkerset.x-k8s.io/v1" if kind == "LeaderWorkerSet" else "v1"
    return {"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": True}


def _pod(lws: dict[str, Any], group: int, worker: int, node: str) -> dict[str, Any]:
    name, size = lws["metadata"]["name"], lws["spec"]["leaderWorkerTemplate"]["size"]
    role = "leader" if worker == 0 else "worker"
    template = copy.deepcopy(lws["spec"]["leaderWorkerTemplate"][f"{role}Template"])
    leader = f"{name}-{group}"
    pod_name = leader if worker == 0 else f"{leader}-{worker}"
    sts = (
        name if worker == 0 else leader
    )  # the leader StatefulSet is named after the LWS, a group's after its leader
    lws_env = [
        {"name": "LWS_LEADER_ADDRESS", "value": f"{leader}.{name}.{NS}"},
        {"name": "LWS_GROUP_SIZE", "value": str(size)},
        {"name": "LWS_WORKER_INDEX", "value": str(worker)},
    ]
    for container in template["spec"]["containers"]:
        container["env"] = lws_env + container.get("env", [])
    annotations = {P + "size": str(size)} | ({} if worker == 0 else {P + "leader-name": leader})
    labels = {
        **(template.get("metadata") or {}).get("labels", {}),
        P + "name": name,
        P + "group-index": str(group),
        P + "worker-index": str(worker),
        P + "group-key": hashlib.sha1(f"{NS}/{leader}".encode()).hexdigest(),
        P + "template-revision-hash": "6f7d9c5b8",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": NS,
            "uid": f"uid-{pod_name}",
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [_owner("StatefulSet", sts, f"uid-sts-{sts}")],
        },
        "spec": {**template["spec"], "hostname": pod_name, "subdomain": name, "nodeName": node},
        "status": {
            "phase": "Running",
            "podIP": f"10.244.{group}.{worker + 10}",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [
                {"name": c["name"], "ready": True, "restartCount": 0, "state": {"running": {}}}
                for c in template["spec"]["containers"]
            ],
        },
    }


def _slice(name: str, service: str, pods: list[dict[str, Any]], port: int | None, hostnames: bool) -> dict:
    endpoints = [
        {
            "addresses": [p["status"]["podIP"]],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "targetRef": {"kind": "Pod", "namespace": NS, "name": p["metadata"]["name"]},
            **({"hostname": p["spec"]["hostname"]} if hostnames else {}),
        }
        for p in pods
    ]
    ports = [{"name": "http", "port": port, "protocol": "TCP"}] if port is not None else []
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-x7k2p", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def made(topology: str = "tp8-pp2", replicas: int = 1) -> Made:
    """The reference topology deployed, every group Ready on whole nodes of 8 GPUs."""
    objects = render(topology)
    lws = next(o for o in objects if o["kind"] == "LeaderWorkerSet")
    service = next(o for o in objects if o["kind"] == "Service")
    lws["spec"]["replicas"] = replicas
    lws["metadata"] |= {"namespace": NS, "uid": LWS_UID, "generation": 1}
    lws["status"] = {
        "observedGeneration": 1,
        "readyReplicas": replicas,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "AllGroupsReady", "observedGeneration": 1},
            {
                "type": "Progressing",
                "status": "False",
                "reason": "GroupsProgressing",
                "observedGeneration": 1,
            },
        ],
    }
    name, size = lws["metadata"]["name"], lws["spec"]["leaderWorkerTemplate"]["size"]
    pods = [_pod(lws, g, w, f"gpu-node-{g * size + w}") for g in range(replicas) for w in range(size)]
    leaders = [p for p in pods if p["metadata"]["labels"][P + "worker-index"] == "0"]
    sts = [
        {
            "metadata": {"name": name, "ownerReferences": [_owner("LeaderWorkerSet", name, LWS_UID)]},
            "spec": {"replicas": replicas},
        }
    ]
    sts += [
        {
            "metadata": {
                "name": p["metadata"]["name"],
                "ownerReferences": [_owner("Pod", p["metadata"]["name"], p["metadata"]["uid"])],
            },
            "spec": {"replicas": size - 1},
        }
        for p in leaders
    ]
    service["metadata"]["namespace"] = NS
    service["spec"]["clusterIP"] = "10.96.14.3"
    port = service["spec"]["ports"][0]["targetPort"]
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": NS,
            "ownerReferences": [_owner("LeaderWorkerSet", name, LWS_UID)],
        },
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": {P + "name": name}},
    }
    nodes = [
        {"metadata": {"name": f"gpu-node-{i}"}, "status": {"allocatable": {GPU: "8", "cpu": "192"}}}
        for i in range(replicas * size)
    ]
    return Made(
        lws,
        pods,
        sts,
        service,
        [_slice(service["metadata"]["name"], service["metadata"]["name"], leaders, port, hostnames=False)],
        headless,
        [_slice(name, name, pods, None, hostnames=True)],
        nodes,
    )
