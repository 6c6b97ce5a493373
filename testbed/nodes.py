"""The simulated GPU nodes: Node objects that KWOK manages, shaped like 8-GPU H100 servers.

KWOK's node-initialize stage keeps a status.allocatable that is already set, so the extended resource
`nvidia.com/gpu` survives; once allocatable is set, every resource a pod requests must be listed (pods,
cpu, memory, ephemeral-storage), or the scheduler rejects the pod. No addresses are set: KWOK adds the
Hostname/InternalIP and kubelet port that let the API server reach it for logs and port-forward.
The testbed starts with two; a deployment that needs more (e.g. topology tp8-pp2-r2, or a manifest with more
replicas) gets them added before it is applied (`ensure_nodes`), one node per 8-GPU pod, as a cluster autoscaler
would. Sizes exceed the reference manifest's requests (125 cpu, 1124Gi memory, 800Gi ephemeral storage, 8 GPUs).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from plumbing.wait import NotYet, wait_for

GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class NodeShape:
    gpus: int = 8
    gpu_product: str = "NVIDIA-H100-80GB-HBM3"
    gpu_memory_mib: int = 81559
    cpu: str = "192"
    memory: str = "2Ti"
    ephemeral_storage: str = "4Ti"
    pods: str = "110"


def node_names(count: int) -> list[str]:
    return [f"gpu-node-{index}" for index in range(count)]


def node_manifest(name: str, index: int, shape: NodeShape = NodeShape()) -> dict[str, Any]:
    resources = {
        "cpu": shape.cpu,
        "memory": shape.memory,
        "ephemeral-storage": shape.ephemeral_storage,
        "pods": shape.pods,
        GPU_RESOURCE: str(shape.gpus),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "topology.kubernetes.io/region": "testbed",
                "topology.kubernetes.io/zone": "testbed-a",
                "node.kubernetes.io/instance-type": "sim.8xh100",
                # Labels NVIDIA's GPU feature discovery puts on GPU nodes.
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": shape.gpu_product,
                "nvidia.com/gpu.count": str(shape.gpus),
                "nvidia.com/gpu.memory": str(shape.gpu_memory_mib),
            },
        },
        # Distinct pod CIDRs so simulated pod IPs differ per node; they are never dialled.
        "spec": {"podCIDR": f"10.244.{index + 1}.0/24", "podCIDRs": [f"10.244.{index + 1}.0/24"]},
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
            },
        },
    }


def pods_per_node(gpus_per_pod: int, shape: NodeShape = NodeShape()) -> int:
    return shape.gpus // gpus_per_pod if 0 < gpus_per_pod <= shape.gpus else 1


def nodes_for(pods: int, gpus_per_pod: int, shape: NodeShape = NodeShape()) -> int:
    """Simulated nodes a deployment of `pods` pods with `gpus_per_pod` GPUs each occupies."""
    if gpus_per_pod <= 0:
        return 0
    per_node = pods_per_node(gpus_per_pod, shape)
    return -(-pods // per_node)


def ensure_nodes(
    kubectl: Callable[..., str], count: int, progress: Callable[[str], None] | None = None
) -> None:
    """At least `count` simulated nodes, Ready with 8 GPUs allocatable: adds gpu-node-N up to `count` (the
    existing ones are applied unchanged, so this is idempotent and safe beside another caller doing the same).
    `kubectl(*args, stdin=...)` runs kubectl against the testbed and returns its stdout."""
    docs = [node_manifest(name, i) for i, name in enumerate(node_names(count))]
    kubectl("apply", "--server-side", "--field-manager=testbed", "-f", "-", stdin=yaml.safe_dump_all(docs))

    def nodes_ready() -> list[str]:
        out = json.loads(kubectl("get", "nodes", "-o", "json"))
        ready = [
            n["metadata"]["name"]
            for n in out["items"]
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
            and n["status"].get("allocatable", {}).get(GPU_RESOURCE) == "8"
        ]
        if len(ready) < count:
            raise NotYet(f"{len(ready)}/{count} nodes Ready with 8 GPUs allocatable: {ready}")
        return ready

    wait_for(nodes_ready, what="GPU nodes Ready", timeout=60, progress=progress)


def kubectl_runner(kubectl: Path, kubeconfig: Path) -> Callable[..., str]:
    """A `kubectl(*args, stdin=None)` for ensure_nodes, against the testbed of `kubeconfig`."""

    def run(*args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [str(kubectl), "--kubeconfig", str(kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    return run
