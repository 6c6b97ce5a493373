"""The simulated GPU nodes: two Node objects that KWOK manages, shaped like 8-GPU H100 servers.

KWOK's node-initialize stage keeps a status.allocatable that is already set, so the extended resource
`nvidia.com/gpu` survives; once allocatable is set, every resource a pod requests must be listed (pods,
cpu, memory, ephemeral-storage), or the scheduler rejects the pod. No addresses are set: KWOK adds the
Hostname/InternalIP and kubelet port that let the API server reach it for logs and port-forward.
Sizes exceed the reference manifest's requests (125 cpu, 1124Gi memory, 800Gi ephemeral storage, 8 GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
