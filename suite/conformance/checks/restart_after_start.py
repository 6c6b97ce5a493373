"""`restartPolicy: RecreateGroupAfterStart`: recreate the group like RecreateGroupOnPodRestart, but only once
every pod of the group has started.

sigs.k8s.io/lws@v0.9.0 api/leaderworkerset/v1/leaderworkerset_types.go: "RecreateGroupAfterStart will recreate
all the pods in the group if 1. Any individual pod in the group is recreated; 2. Any containers/init-containers in
a pod is restarted. But this will only happen if all pods in the group have been started (i.e., are not in Pending
phase)." pkg/controllers/pod_controller.go handleRestartPolicy skips the recreation while pendingPodsInGroup
finds a pod of the group Pending (or fewer pods than the group size).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupFault:
    fault: str
    before: dict[str, str]  # pod name -> uid, at the fault
    after: dict[str, str]  # pod name -> uid, at the end of the observation
    pending: tuple[str, ...]  # pods of the group Pending at the fault
    leader_restarts: int | None  # the leader container's restarts seen after the fault (crash faults)
    observed_s: float | None  # how long the group was watched after the fault


def replaced(run: GroupFault) -> list[str]:
    return sorted(n for n, uid in run.before.items() if run.after.get(n) != uid)


def a_started_group_is_recreated_after_a_fault(run: GroupFault) -> list[str]:
    """MUST (LWS-RESTART RecreateGroupAfterStart): once every pod of the group has started, a crashed container
    recreates the whole group, as RecreateGroupOnPodRestart does: every pod gets a new UID."""
    if run.pending:
        return [
            f"pods {list(run.pending)} were Pending at the fault: the group had not started, cannot judge"
        ]
    kept = sorted(set(run.before) - set(replaced(run)))
    if kept:
        return [f"after {run.fault}, {kept} kept their UIDs: the started group was not recreated"]
    return []


def a_group_with_a_pending_pod_is_not_recreated(run: GroupFault) -> list[str]:
    """MUST (LWS-RESTART RecreateGroupAfterStart): while a pod of the group is still Pending, a crashed container
    is restarted in place (the kubelet's restart) and the group is not recreated: every pod keeps its UID for the
    whole observation."""
    if not run.pending:
        return ["no pod of the group was Pending at the fault: the check needs one, cannot judge"]
    if run.leader_restarts is not None and run.leader_restarts < 1:
        return [f"the {run.fault} fault never restarted the leader's container: nothing happened to judge"]
    recreated = replaced(run)
    # A recreation deletes the group's started pods (the leader, and its workers with it). A pod still Pending
    # has no container; its StatefulSet may replace it on its own (e.g. on a template change), which is not
    # the group being recreated.
    if any(name not in run.pending for name in recreated):
        return [
            f"after {run.fault} with {list(run.pending)} Pending, LWS recreated {recreated} (new UIDs): "
            f"RecreateGroupAfterStart must wait until every pod has started"
        ]
    return []
