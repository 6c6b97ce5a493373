"""Rules on what the pods ask of a node: GPUs and other extended resources (limits, fit on a node, enough nodes)
and the /dev/shm volume NCCL and vLLM need."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from manifests.lint.findings import Finding, LintContext, error, warning
from manifests.quantity import GI, parse_bytes

SHM_MIN_BYTES = 1 * GI  # the runtime default is 64 MiB; the docs use 15Gi


def _extended(resource: str) -> bool:
    domain = resource.split("/", 1)[0] if "/" in resource else ""
    return bool(domain) and domain != "kubernetes.io" and not domain.endswith(".kubernetes.io")


def check_gpu_resources(ctx: LintContext) -> Iterator[Finding]:
    node_gpus = ctx.capacity.gpus_per_node
    for pod, template in ctx.templates():
        for container in (template.get("spec") or {}).get("containers") or []:
            resources = container.get("resources") or {}
            limits = resources.get("limits") or {}
            requests = resources.get("requests") or {}
            for name in sorted({*limits, *requests}):
                if not _extended(name):
                    continue
                if name in requests and name not in limits:
                    yield error(
                        "extended-resource-limits",
                        f"{pod.role} container {container.get('name')!r} requests {name} without a limit; "
                        "extended resources cannot be overcommitted: set limits (requests then default to them)",
                        ctx.lws_ref,
                    )
                elif name in requests and str(requests[name]) != str(limits[name]):
                    yield error(
                        "extended-resource-limits",
                        f"{pod.role} container {container.get('name')!r} has {name} requests "
                        f"{requests[name]} != limits {limits[name]}; the API server rejects that: make them equal",
                        ctx.lws_ref,
                    )
        if pod.gpus > node_gpus:
            yield error(
                "gpu-exceeds-node",
                f"a {pod.role} pod asks for {pod.gpus} GPUs but a node has {node_gpus}; a pod cannot span "
                "nodes, so it stays Pending: lower GPUs per pod and raise the group size",
                ctx.lws_ref,
            )
    nodes = ctx.capacity.nodes
    gpus = max(ctx.info.gpus_per_pod, ctx.info.worker_gpus_per_pod or 0)
    if nodes is not None and 0 < gpus <= node_gpus:
        pods = ctx.info.size * ctx.info.replicas
        needed = math.ceil(pods / (node_gpus // gpus))
        if needed > nodes:
            yield error(
                "not-enough-nodes",
                f"{ctx.info.replicas} group(s) of {ctx.info.size} pods x {gpus} GPUs need {needed} nodes with "
                f"{node_gpus} GPUs, the cluster has {nodes}; lower replicas or add nodes",
                ctx.lws_ref,
            )


def _vllm_container(template: dict[str, Any], name: str | None) -> dict[str, Any]:
    containers = (template.get("spec") or {}).get("containers") or []
    return next((c for c in containers if c.get("name") == name), containers[0] if containers else {})


def check_shm(ctx: LintContext) -> Iterator[Finding]:
    for pod, template in ctx.templates():
        spec = template.get("spec") or {}
        container = _vllm_container(template, pod.container)
        mount = next(
            (m for m in container.get("volumeMounts") or [] if m.get("mountPath") == "/dev/shm"), None
        )
        if mount is None:
            yield warning(
                "shm-missing",
                f"the {pod.role} has no /dev/shm volume, so it gets the runtime's 64 MiB, too little for NCCL "
                "and vLLM's shared-memory broadcast: mount an emptyDir with medium: Memory (the docs use 15Gi)",
                ctx.lws_ref,
            )
            continue
        volume: dict[str, Any] = next(
            (v for v in spec.get("volumes") or [] if v.get("name") == mount.get("name")), {}
        )
        empty_dir = volume.get("emptyDir")
        if not isinstance(empty_dir, dict) or empty_dir.get("medium") != "Memory":
            yield warning(
                "shm-not-memory",
                f"the {pod.role}'s /dev/shm volume {mount.get('name')!r} is not an emptyDir with medium: Memory; "
                "shared memory on disk is slow or not shared: use emptyDir {medium: Memory}",
                ctx.lws_ref,
            )
            continue
        size = empty_dir.get("sizeLimit")
        size_bytes = parse_bytes(size) if size is not None else None
        if size_bytes is not None and size_bytes < SHM_MIN_BYTES:
            yield warning(
                "shm-small",
                f"the {pod.role}'s /dev/shm is limited to {size}; NCCL and vLLM need more with TP > 1: "
                "use at least 1Gi (the docs use 15Gi)",
                ctx.lws_ref,
            )
