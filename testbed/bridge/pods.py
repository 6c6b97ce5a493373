"""A typed view of the LWS pods the bridge cares about, and how they group. Pure: no API calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from manifests.manifest import pod_dns_names

LWS_NAME = "leaderworkerset.sigs.k8s.io/name"
GROUP_KEY = "leaderworkerset.sigs.k8s.io/group-key"
GROUP_INDEX = "leaderworkerset.sigs.k8s.io/group-index"
WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
SIZE = "leaderworkerset.sigs.k8s.io/size"
# Testbed-only: how fast the group's simulated engine runs (1 = real time). Set on the leader pod template.
TIME_SCALE = "testbed.lws-vllm-suite.io/time-scale"
# Without it, engines run 50x faster than the modelled GPUs: start-up in about a second, for quick checks.
DEFAULT_TIME_SCALE = 0.02
T = TypeVar("T")


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: dict[str, str]
    ports: tuple[int, ...]


@dataclass(frozen=True)
class PodView:
    namespace: str
    name: str
    uid: str
    lws_name: str
    group_key: str
    worker_index: int
    size: int
    phase: str
    deleting: bool
    restart_count: int
    pod_ip: str | None
    node_name: str | None
    container: Container | None
    all_containers: tuple[Container, ...] = field(default=())
    annotations: dict[str, str] = field(default_factory=dict)
    has_readiness_probe: bool = False
    # spec.hostname / spec.subdomain: the pod's DNS name under its headless Service
    hostname: str | None = None
    subdomain: str | None = None
    # spec.terminationGracePeriodSeconds (Kubernetes' default 30 when unset): how long a kubelet waits after
    # SIGTERM before SIGKILL
    grace_s: float = 30.0

    @property
    def dns_names(self) -> tuple[str, ...]:
        """`<hostname>.<subdomain>.<namespace>[.svc[.cluster.local]]`, as cluster DNS would answer for it."""
        if not self.hostname or not self.subdomain:
            return ()
        return pod_dns_names(self.hostname, self.subdomain, self.namespace)

    @property
    def is_leader(self) -> bool:
        return self.worker_index == 0

    @property
    def running(self) -> bool:
        return self.phase == "Running" and not self.deleting

    @property
    def group_id(self) -> tuple[str, str]:
        return (self.namespace, self.group_key)


def _env(container: dict[str, Any]) -> dict[str, str]:
    """Literal env values only; valueFrom (secrets, downward API) is left out: the simulator never needs a
    secret, and a token must never reach a file the testbed writes."""
    return {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}


def _container(raw: dict[str, Any]) -> Container:
    return Container(
        name=raw["name"],
        image=raw.get("image", ""),
        command=tuple(raw.get("command") or ()),
        args=tuple(raw.get("args") or ()),
        env=_env(raw),
        ports=tuple(p["containerPort"] for p in raw.get("ports") or []),
    )


def pod_view(pod: dict[str, Any]) -> PodView | None:
    """A PodView for an LWS pod the webhook has labelled; None for anything else."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    if LWS_NAME not in labels or GROUP_KEY not in labels or WORKER_INDEX not in labels:
        return None
    containers = tuple(_container(c) for c in spec.get("containers") or [])
    restarts = sum(
        int(s.get("restartCount") or 0)
        for s in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
    )
    return PodView(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        lws_name=labels[LWS_NAME],
        group_key=labels[GROUP_KEY],
        worker_index=int(labels[WORKER_INDEX]),
        size=int(annotations.get(SIZE, "1")),
        phase=status.get("phase") or "Pending",
        deleting=meta.get("deletionTimestamp") is not None,
        restart_count=restarts,
        pod_ip=status.get("podIP"),
        node_name=spec.get("nodeName"),
        container=containers[0] if containers else None,
        all_containers=containers,
        annotations=dict(annotations),
        has_readiness_probe=any("readinessProbe" in c for c in spec.get("containers") or []),
        hostname=spec.get("hostname"),
        subdomain=spec.get("subdomain"),
        grace_s=float(spec["terminationGracePeriodSeconds"])
        if spec.get("terminationGracePeriodSeconds") is not None
        else 30.0,
    )


@dataclass(frozen=True)
class Group:
    """One LWS group as the bridge sees it now."""

    leader: PodView | None
    workers: tuple[PodView, ...]

    @property
    def complete(self) -> bool:
        """The leader and size-1 workers all run: the Ray cluster can reach its size."""
        if self.leader is None or not self.leader.running:
            return False
        running = [w for w in self.workers if w.running]
        return len(running) >= self.leader.size - 1


def group_of(pods: list[PodView]) -> Group:
    live = [p for p in pods if not p.deleting]
    leaders = [p for p in live if p.is_leader]
    workers = tuple(sorted((p for p in live if not p.is_leader), key=lambda p: p.worker_index))
    return Group(leaders[0] if leaders else None, workers)


def stop_gone(running: dict[str, T], pods: dict[str, PodView], stop: Callable[[T], None]) -> None:
    """Stop and forget what runs for a pod (`running`, by pod uid) that is gone or being deleted: the first step
    of the real-engine and the stand-in reconcilers alike."""
    for uid, thing in list(running.items()):
        pod = pods.get(uid)
        if pod is None or pod.deleting:
            stop(thing)
            del running[uid]
