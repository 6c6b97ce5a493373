"""`startupPolicy: LeaderReady`: LWS creates a group's worker StatefulSet only once the leader pod is Ready.

sigs.k8s.io/lws@v0.9.0 api/leaderworkerset/v1/leaderworkerset_types.go: "LeaderReady creates the workers
statefulset after the leader pod is ready"; pkg/controllers/pod_controller.go returns before creating the worker
StatefulSet while `StartupPolicy == LeaderReady && !IsPodReady(leader)`. (LeaderCreated, the default, creates it
as soon as the leader pod exists.)

Judged on the order of the writes in the API (suite/conformance/api_order.py: a watch, by resourceVersion), not
on samples: a group that starts within one sampling interval would show the leader Ready and the StatefulSet
together, and a check that cannot tell the order cannot fail.
"""

from __future__ import annotations

from typing import Any

from fixtures.variants import template
from suite.conformance.api_order import LISTED, ApiEvent


def leader_ready_variant(lws: dict[str, Any]) -> None:
    """The deployment this check judges: the run's LWS with startupPolicy LeaderReady and no readiness probe on
    the leader. vLLM's leader opens its port (what the reference's tcpSocket probe tests) only once every rank
    of the group has joined, so with the probe a LeaderReady group waits for a worker LWS creates only after
    the leader is Ready: it never starts, on a cluster as on the testbed. Without a probe the leader is Ready
    when its container runs, which is what LeaderReady orders against."""
    lws["spec"]["startupPolicy"] = "LeaderReady"
    for container in template(lws, "leader")["spec"]["containers"]:
        container.pop("readinessProbe", None)


def _first(events: list[ApiEvent], match: Any) -> ApiEvent | None:
    return next((e for e in events if match(e)), None)


def workers_start_only_after_the_leader_is_ready(
    events: list[ApiEvent], lws_name: str, replicas: int, watch_problems: list[str] | None = None
) -> list[str]:
    """MUST (LWS-CORE StartupPolicyLeaderReady): under startupPolicy LeaderReady, no group's worker StatefulSet
    is created, nor any worker pod, before that group's leader pod turned Ready; judged on the API's own order
    of writes (resourceVersion) from a watch started before the LWS was applied."""
    if watch_problems:
        return [f"the watch may have missed events, so the order cannot be judged: {watch_problems[0]}"]
    return [p for group in range(replicas) for p in _group_order(events, lws_name, group)]


def _group_order(events: list[ApiEvent], lws_name: str, group: int) -> list[str]:
    sts = leader = f"{lws_name}-{group}"
    seen = _first(events, lambda e: e.kind == "StatefulSet" and e.name == sts)
    if seen is not None and seen.type == LISTED:
        return [f"worker StatefulSet {sts} already existed when the watch started: cannot judge"]
    created = _first(events, lambda e: e.kind == "StatefulSet" and e.name == sts and e.type == "ADDED")
    ready = _first(
        events,
        lambda e: e.kind == "Pod" and e.group == group and e.worker == 0 and e.ready and e.type != "DELETED",
    )
    ready_at = f"resourceVersion {ready.rv}" if ready is not None else "never"
    if created is None:
        return [f"worker StatefulSet {sts} was never created (leader {leader} Ready at {ready_at})"]
    problems = []
    if ready is None or created.rv < ready.rv:
        problems.append(
            f"worker StatefulSet {sts} was created at resourceVersion {created.rv}, before leader {leader} "
            f"turned Ready (at {ready_at})"
        )
    worker = _first(events, lambda e: e.kind == "Pod" and e.group == group and (e.worker or 0) > 0)
    if worker is not None and (ready is None or worker.rv < ready.rv):
        problems.append(
            f"worker pod {worker.name} existed at resourceVersion {worker.rv}, before leader {leader} "
            f"turned Ready (at {ready_at})"
        )
    return problems


def figure(events: list[ApiEvent], lws_name: str) -> str:
    """'worker StatefulSet at resourceVersion 1250, after leader Ready at 1231' for group 0, or what was seen."""
    created = _first(
        events, lambda e: e.kind == "StatefulSet" and e.name == f"{lws_name}-0" and e.type == "ADDED"
    )
    ready = _first(events, lambda e: e.kind == "Pod" and e.group == 0 and e.worker == 0 and e.ready)
    if created is None or ready is None:
        return f"worker StatefulSet created: {created is not None}, leader Ready seen: {ready is not None}"
    order = "after" if created.rv > ready.rv else "before"
    return f"worker StatefulSet at resourceVersion {created.rv}, {order} leader Ready at {ready.rv}"
