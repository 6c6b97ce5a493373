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

Pure functions of a HeadlessView (typed views, fixtures/cluster_views.py), so the same code judges a cluster, the testbed and the self-tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from fixtures.cluster_views import EndpointSliceView, LwsView, PodView, ServiceView
from fixtures.kube import Kube
from fixtures.snapshot import Expectation
from manifests.manifest import NAME_LABEL


@dataclass(frozen=True)
class HeadlessView:
    lws: LwsView | None
    service: ServiceView | None  # the Service named after the LWS
    endpoint_slices: tuple[EndpointSliceView, ...]
    pods: tuple[PodView, ...]


def subdomain_policy(lws: LwsView | None) -> str:
    return lws.subdomain_policy if lws is not None else "Shared"


def observe(kube: Kube, expect: Expectation) -> HeadlessView:
    ns, name = expect.namespace, expect.lws_name
    pods = (PodView.from_json(p) for p in kube.pods(ns, f"{NAME_LABEL}={name}"))
    service = kube.get_object("v1", "services", name, ns)
    return HeadlessView(
        LwsView.maybe(kube.lws(ns, name)),
        ServiceView.from_json(service) if service is not None else None,
        tuple(EndpointSliceView.from_json(s) for s in kube.endpoint_slices(ns, name)),
        tuple(p for p in pods if not p.deleting),
    )


def _leaders(view: HeadlessView) -> list[PodView]:
    return sorted((p for p in view.pods if p.worker_index == "0"), key=lambda p: p.name)


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
    problems = []
    if svc.cluster_ip != "None":
        problems.append(f"Service {name} has clusterIP {svc.cluster_ip!r}, expected 'None' (headless)")
    if svc.publish_not_ready is not True:
        problems.append(
            f"Service {name} has publishNotReadyAddresses {svc.publish_not_ready!r}, expected true: "
            f"workers must resolve a leader that is not Ready yet"
        )
    if svc.selector != {NAME_LABEL: name}:
        problems.append(f"Service {name} selects {dict(svc.selector)}, expected {{{NAME_LABEL}: {name}}}")
    owners = [o for o in svc.owners if o.kind == "LeaderWorkerSet"]
    if not any(o.name == name and o.controller for o in owners):
        problems.append(
            f"Service {name} is not controlled by LeaderWorkerSet {name} "
            f"(ownerReferences: {[(o.kind, o.name) for o in owners]})"
        )
    return problems


def leader_address_resolves_through_the_headless_service(
    view: HeadlessView, expect: Expectation
) -> list[str]:
    """MUST (LWS-CORE HeadlessService): every leader pod has hostname <lws>-<group> and subdomain <lws>; the
    headless Service's EndpointSlices list it under that hostname (ready or not); and every pod's
    LWS_LEADER_ADDRESS is <hostname>.<subdomain>.<namespace>, the DNS name that the endpoint makes resolve."""
    name, ns = expect.lws_name, expect.namespace
    endpoints = {ep.target: ep for slc in view.endpoint_slices for ep in slc.endpoints}
    problems = []
    leaders = _leaders(view)
    if len(leaders) != expect.replicas:
        problems.append(f"{len(leaders)} leader pod(s), expected {expect.replicas}")
    for pod in leaders:
        pod_name, group = pod.name, pod.group_index
        if pod.hostname != f"{name}-{group}" or pod.subdomain != name:
            problems.append(
                f"{pod_name} has hostname {pod.hostname!r} and subdomain {pod.subdomain!r}, "
                f"expected {name}-{group!s} and {name}"
            )
        ep = endpoints.get(pod_name)
        if ep is None:
            problems.append(f"the EndpointSlices of Service {name} do not list leader {pod_name}")
        elif ep.hostname != f"{name}-{group}":
            problems.append(
                f"the endpoint of {pod_name} has hostname {ep.hostname!r}, expected {name}-{group}: "
                f"{name}-{group}.{name}.{ns} does not resolve"
            )
        want = f"{name}-{group}.{name}.{ns}"
        for member in (p for p in view.pods if p.group_index == group):
            found = member.env("LWS_LEADER_ADDRESS")
            if found != want:
                problems.append(f"{member.name} has LWS_LEADER_ADDRESS {found!r}, expected {want}")
    return problems


CHECKS = [
    lws_creates_a_headless_service_publishing_not_ready_pods,
    leader_address_resolves_through_the_headless_service,
]
