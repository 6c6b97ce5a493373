"""LWS's headless Service: what makes `LWS_LEADER_ADDRESS` resolve inside every group.

LWS v0.9.0 creates, for the default `networkConfig.subdomainPolicy: Shared`, one Service named after the LWS
(sigs.k8s.io/lws@v0.9.0 pkg/controllers/leaderworkerset_controller.go reconcileHeadlessServices), with
`clusterIP: None`, `publishNotReadyAddresses: true` and the selector `leaderworkerset.sigs.k8s.io/name: <lws>`
(pkg/utils/controller/controller_utils.go CreateHeadlessServiceIfNotExists). The leader StatefulSet's
serviceName is the LWS name (leaderworkerset_controller.go, `WithServiceName(lws.Name)`), so each leader pod gets
hostname `<lws>-<group>` and subdomain `<lws>`; the EndpointSlice controller lists the pod with that hostname,
and cluster DNS serves `<lws>-<group>.<lws>.<namespace>`, which is exactly the `LWS_LEADER_ADDRESS` LWS puts into
every pod of the group (pkg/utils/pod/pod_utils.go AddLWSVariables: `<lws>-<group>.<subdomain>.<namespace>`).
Publishing not-ready addresses matters: the workers resolve the leader while it is still starting (Ray, torch
distributed), long before its readiness probe passes.

Pure functions of a HeadlessView, so the same code judges a cluster, the testbed and the self-tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fixtures.kube import Kube
from fixtures.snapshot import Expectation
from manifests.manifest import NAME_LABEL

GROUP_INDEX = "leaderworkerset.sigs.k8s.io/group-index"
WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"


@dataclass(frozen=True)
class HeadlessView:
    lws: dict[str, Any] | None
    service: dict[str, Any] | None
    endpoint_slices: list[dict[str, Any]]
    pods: list[dict[str, Any]]


def subdomain_policy(lws: dict[str, Any] | None) -> str:
    return str(
        (((lws or {}).get("spec") or {}).get("networkConfig") or {}).get("subdomainPolicy") or "Shared"
    )


def observe(kube: Kube, expect: Expectation) -> HeadlessView:
    ns, name = expect.namespace, expect.lws_name
    pods = [p for p in kube.pods(ns, f"{NAME_LABEL}={name}") if not p["metadata"].get("deletionTimestamp")]
    return HeadlessView(
        kube.lws(ns, name),
        kube.get_object("v1", "services", name, ns),
        kube.endpoint_slices(ns, name),
        pods,
    )


def _leaders(view: HeadlessView) -> list[dict[str, Any]]:
    return sorted(
        (p for p in view.pods if (p["metadata"].get("labels") or {}).get(WORKER_INDEX) == "0"),
        key=lambda p: p["metadata"]["name"],
    )


def lws_creates_a_headless_service_publishing_not_ready_pods(
    view: HeadlessView, expect: Expectation
) -> list[str]:
    """MUST (LWS-CORE HeadlessService): a Service named after the LWS exists, owned by it, with clusterIP None,
    publishNotReadyAddresses true and a selector on the LWS name label, so it selects every pod of every group
    and nothing else."""
    name = expect.lws_name
    svc = view.service
    if svc is None:
        return [
            f"no Service {name} in {expect.namespace}: LWS creates its headless Service named after the LWS"
        ]
    spec = svc.get("spec") or {}
    problems = []
    if spec.get("clusterIP") != "None":
        problems.append(f"Service {name} has clusterIP {spec.get('clusterIP')!r}, expected 'None' (headless)")
    if spec.get("publishNotReadyAddresses") is not True:
        problems.append(
            f"Service {name} has publishNotReadyAddresses {spec.get('publishNotReadyAddresses')!r}, expected true: "
            f"workers must resolve a leader that is not Ready yet"
        )
    if (spec.get("selector") or {}) != {NAME_LABEL: name}:
        problems.append(f"Service {name} selects {spec.get('selector')}, expected {{{NAME_LABEL}: {name}}}")
    owners = [o for o in svc["metadata"].get("ownerReferences") or [] if o.get("kind") == "LeaderWorkerSet"]
    if not any(o.get("name") == name and o.get("controller") for o in owners):
        problems.append(
            f"Service {name} is not controlled by LeaderWorkerSet {name} (ownerReferences: {owners})"
        )
    return problems


def leader_address_resolves_through_the_headless_service(
    view: HeadlessView, expect: Expectation
) -> list[str]:
    """MUST (LWS-CORE HeadlessService): every leader pod has hostname <lws>-<group> and subdomain <lws>; the
    headless Service's EndpointSlices list it under that hostname (ready or not); and every pod's
    LWS_LEADER_ADDRESS is <hostname>.<subdomain>.<namespace>, the DNS name that the endpoint makes resolve."""
    name, ns = expect.lws_name, expect.namespace
    endpoints = {
        (ep.get("targetRef") or {}).get("name"): ep
        for slc in view.endpoint_slices
        for ep in slc.get("endpoints") or []
    }
    problems = []
    leaders = _leaders(view)
    if len(leaders) != expect.replicas:
        problems.append(f"{len(leaders)} leader pod(s), expected {expect.replicas}")
    for pod in leaders:
        pod_name = pod["metadata"]["name"]
        group = (pod["metadata"].get("labels") or {}).get(GROUP_INDEX)
        spec = pod.get("spec") or {}
        if spec.get("hostname") != f"{name}-{group}" or spec.get("subdomain") != name:
            problems.append(
                f"{pod_name} has hostname {spec.get('hostname')!r} and subdomain {spec.get('subdomain')!r}, "
                f"expected {name}-{group!s} and {name}"
            )
        ep = endpoints.get(pod_name)
        if ep is None:
            problems.append(f"the EndpointSlices of Service {name} do not list leader {pod_name}")
        elif ep.get("hostname") != f"{name}-{group}":
            problems.append(
                f"the endpoint of {pod_name} has hostname {ep.get('hostname')!r}, expected {name}-{group}: "
                f"{name}-{group}.{name}.{ns} does not resolve"
            )
        want = f"{name}-{group}.{name}.{ns}"
        for member in (p for p in view.pods if (p["metadata"].get("labels") or {}).get(GROUP_INDEX) == group):
            found = _env(member, "LWS_LEADER_ADDRESS")
            if found != want:
                problems.append(
                    f"{member['metadata']['name']} has LWS_LEADER_ADDRESS {found!r}, expected {want}"
                )
    return problems


def _env(pod: dict[str, Any], key: str) -> str | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == key:
                return env.get("value")
    return None


CHECKS = [
    lws_creates_a_headless_service_publishing_not_ready_pods,
    leader_address_resolves_through_the_headless_service,
]
