"""Verdicts on one observed recovery (fixtures/recovery.py): pure functions, [] means conformant.

With restartPolicy RecreateGroupOnPodRestart, a fault in any pod of a TP x PP group must recreate the whole
group, because a half-restarted Ray cluster never recovers (lws:pkg/controllers/pod_controller.go
handleRestartPolicy; research/lws_vllm.md §3). With None, only the failed pod is replaced (StatefulSet
semantics), which is the contrast case.
"""

from __future__ import annotations

from fixtures.recovery import Recovery
from suite.conformance.checks.request_split import RequestSplit

RACE = (
    "LWS skipped the group recreation: only {pod} came back (new UID) while the leader kept its UID. This is "
    "the known LWS race kubernetes-sigs/lws#998 (the worker StatefulSet recreates the worker before LWS sees "
    "the deletion), fixed by PR #999 after v0.10.0: upgrade LWS"
)

NOTHING_BEFORE = (
    "no pod of the group was seen before {fault} on {pod}, so there is nothing to show replaced: the group was "
    "not running when the fault was injected"
)


def every_pod_of_the_group_was_replaced(rec: Recovery) -> list[str]:
    """MUST (RecreateGroupOnPodRestart): after a fault in one pod, every pod of the group is new (no UID in
    common with before) and Ready."""
    if not rec.before:
        return [NOTHING_BEFORE.format(fault=rec.fault.name, pod=rec.fault.pod)]
    if rec.race_suspected:
        return [RACE.format(pod=rec.fault.pod)]
    kept = sorted(n for n, uid in rec.after.items() if rec.before.get(n) == uid)
    if kept:
        return [
            f"after {rec.fault.name} on {rec.fault.pod}, only {rec.replaced() or 'no pod'} was replaced; "
            f"{kept} kept their UIDs, so the group was not recreated"
        ]
    if rec.pods_replaced_s is None:
        return [f"the group's pods were not all replaced and Ready: {rec.last_seen}"]
    return []


def lws_recorded_the_group_recreation(rec: Recovery) -> list[str]:
    """MUST: LWS records an event when it recreates a group (reason RecreateGroup since v0.9.0,
    RecreateGroupOnPodRestart before), on the LWS, naming the group, after the fault (fixtures/recovery.py
    recreate_events). Deleting the leader is the exception: LWS sees the leader already
    deleting and leaves the teardown to the garbage collector, without an event."""
    if rec.fault.name == "delete-leader":
        return []
    if not rec.recreate_events:
        return [f"no RecreateGroup/RecreateGroupOnPodRestart event after {rec.fault.name} on {rec.fault.pod}"]
    return []


def lws_is_available_again(rec: Recovery) -> list[str]:
    """MUST: after the recreation the LWS condition Available is True again with all replicas ready."""
    return [] if rec.available_s is not None else [f"LWS not Available again: {rec.last_seen}"]


def service_endpoints_follow_the_new_leader(rec: Recovery, leader: str) -> list[str]:
    """MUST: the Service's ready endpoints name the new leader pod and no other pod of the group."""
    if leader not in rec.endpoints_after:
        return [f"Service endpoints after recovery: {rec.endpoints_after}, expected the new {leader}"]
    strays = [n for n in rec.endpoints_after if n in rec.before and n != leader]
    return [f"Service endpoints include non-leader pods {strays}"] if strays else []


def serving_resumed(rec: Recovery) -> list[str]:
    """MUST: after the recovery the group's new leader, a ready endpoint of the Service, answers a completion
    (sent to it alone: with several groups another leader answers all along)."""
    return (
        []
        if rec.first_success_s is not None
        else [f"no completion succeeded after recovery: {rec.last_seen}"]
    )


def other_groups_were_untouched(rec: Recovery) -> list[str]:
    """MUST: a fault in one group leaves every other group's pods (and UIDs) as they were."""
    touched = sorted(g for g, uids in rec.others_before.items() if rec.others_after.get(g) != uids)
    return [f"group(s) {touched} changed although the fault was in another group"] if touched else []


def only_the_failed_pod_was_replaced(rec: Recovery) -> list[str]:
    """MUST (restartPolicy None): only the deleted pod is replaced; a crashed container restarts in place (its
    restart count goes up during this fault: after minus before); the rest of the group keeps its UIDs."""
    if not rec.before:
        return [NOTHING_BEFORE.format(fault=rec.fault.name, pod=rec.fault.pod)]
    expected = [] if rec.fault.is_crash else [rec.fault.pod]
    replaced = rec.replaced()
    if replaced != expected:
        return [
            f"with restartPolicy None, {rec.fault.name} on {rec.fault.pod} replaced {replaced or 'no pod'}; "
            f"expected {expected or 'no pod (the container restarts in place)'}"
        ]
    if rec.fault.is_crash and rec.restarts(rec.fault.pod) < 1:
        before = rec.restart_counts_before.get(rec.fault.pod, 0)
        after = rec.restart_counts_after.get(rec.fault.pod, 0)
        return [
            f"{rec.fault.pod} shows no container restart after {rec.fault.name} "
            f"(restart count {before} before the fault, {after} after)"
        ]
    return []


def the_service_sent_nothing_to_a_leader_it_had_taken_out(split: RequestSplit) -> list[str]:
    """MUST (the Service during a recovery): no request of the steady load fails on a leader that the Service
    had taken out of its endpoints (beyond its endpoint propagation), or on a ready endpoint that did not serve,
    while another leader was ready (request split class (b)). Requests in flight on the faulted group, or sent
    while the Service had no ready endpoint, are counted (classes (a), (c)), not judged: a group that is recreated
    cannot serve meanwhile."""
    taken_out = split.of("taken-out")
    if not taken_out:
        return []
    return [
        f"{len(taken_out)}/{split.sent} requests failed on a leader the Service had taken out or that did not "
        f"serve, while another leader was ready: {'; '.join(split.causes('taken-out'))}"
    ]
