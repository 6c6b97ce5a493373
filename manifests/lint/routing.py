"""Rules on how clients reach the leader: the leader Service (selects this LWS's leader only, on vLLM's port)
and the leader's readinessProbe."""

from __future__ import annotations

from collections.abc import Iterator

from manifests.lint.findings import Finding, LintContext, error, warning
from manifests.manifest import NAME_LABEL, WORKER_INDEX_LABEL, object_ref


def _selects(selector: dict[str, str], labels: dict[str, str | None]) -> bool:
    """Whether a selector matches a pod's labels; a label value None means 'any value'."""
    return all(key in labels and labels[key] in (None, value) for key, value in selector.items())


def check_service(ctx: LintContext) -> Iterator[Finding]:
    info = ctx.info
    service = ctx.manifest.service
    if service is None:
        yield warning(
            "service-missing",
            f"no Service for LWS {info.lws_name!r} in the manifest; add the leader Service (selector "
            f"{NAME_LABEL}: {info.lws_name}, role: leader) so clients reach only the leader",
            ctx.lws_ref,
        )
        return
    ref = object_ref(service)
    selector = info.service_selector or {}
    if selector.get(NAME_LABEL) != info.lws_name:
        yield error(
            "service-selector-name",
            f"the selector {selector} lacks {NAME_LABEL}: {info.lws_name}; without it the Service also "
            "picks pods of any other LWS with the same labels: add it",
            ref,
        )
    # Labels the pods will carry: the template's, plus those LWS sets (group-index and -key: any value).
    lws_labels: dict[str, str | None] = {
        NAME_LABEL: info.lws_name,
        "leaderworkerset.sigs.k8s.io/group-index": None,
        "leaderworkerset.sigs.k8s.io/group-key": None,
    }
    leader_labels = {**info.leader.labels, **lws_labels, WORKER_INDEX_LABEL: "0"}
    worker_labels = {**info.worker.labels, **lws_labels, WORKER_INDEX_LABEL: "1"}
    if info.size > 1 and _selects(selector, worker_labels):
        yield error(
            "service-selects-workers",
            f"the selector {selector} also matches worker pods, which serve nothing on the vLLM port; add "
            f'role: leader (with that label on the leader template only) or {WORKER_INDEX_LABEL}: "0"',
            ref,
        )
    if not _selects({k: v for k, v in selector.items() if k != NAME_LABEL}, leader_labels):
        yield error(
            "service-selects-no-leader",
            f"the selector {selector} matches no leader pod (leader labels: {info.leader.labels}); the "
            "Service gets no endpoints: match the leader template's labels",
            ref,
        )
    target = info.service_target_port
    if isinstance(target, int) and info.port is not None and target != info.port:
        yield error(
            "service-port",
            f"the Service sends traffic to port {target}, but vLLM listens on {info.port} (--port); "
            "make targetPort equal to --port",
            ref,
        )


def check_readiness(ctx: LintContext) -> Iterator[Finding]:
    info = ctx.info
    template = next(t for p, t in ctx.templates() if p.role == "leader")
    containers = (template.get("spec") or {}).get("containers") or []
    probes = [c["readinessProbe"] for c in containers if isinstance(c.get("readinessProbe"), dict)]
    if not probes:
        yield warning(
            "readiness-probe-missing",
            "the leader has no readinessProbe, so it is Ready (and the Service routes to it) long before vLLM "
            "listens; probe the vLLM port (tcpSocket, or httpGet /health)",
            ctx.lws_ref,
        )
        return
    probe = probes[0]
    port = (probe.get("tcpSocket") or probe.get("httpGet") or {}).get("port")
    if isinstance(port, int) and info.port is not None and port != info.port:
        yield warning(
            "readiness-probe-port",
            f"the leader's readinessProbe checks port {port}, but vLLM listens on {info.port}: probe {info.port}",
            ctx.lws_ref,
        )
