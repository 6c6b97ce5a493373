"""Several LWS groups behind one Service: each group is its own failure domain, and the Service spreads over
every group's leader.

LWS recreates a group through its leader pod (deleting it with foreground propagation takes the group's worker
StatefulSet along; sigs.k8s.io/lws@v0.9.0 pkg/controllers/pod_controller.go handleRestartPolicy); the leader
StatefulSet replaces only that ordinal, so no other group is deleted, restarted or cut off.
"""

from __future__ import annotations

from collections.abc import Sequence

from fixtures.cluster_views import EndpointSliceView
from fixtures.snapshot import Expectation
from suite.conformance.group_isolation import IsolationRun


def a_fault_in_one_group_leaves_the_others_untouched(run: IsolationRun) -> list[str]:
    """MUST (LWS-RESTART GroupIsolation): after a fault in group 1 and its recovery, group 0 has the same pods
    (same UIDs), none of its containers restarted, and every request sent to group 0's leader meanwhile
    succeeded."""
    problems = []
    before, after = run.watched_before, run.watched_after
    replaced = sorted(n for n in before if after.get(n, ("", 0))[0] != before[n][0])
    if replaced:
        problems.append(
            f"{run.fault} in group {run.faulted} replaced pods of group {run.watched}: {replaced} have new UIDs "
            f"or are gone"
        )
    restarted = sorted(
        n for n in before if n in after and after[n][0] == before[n][0] and after[n][1] > before[n][1]
    )
    if restarted:
        problems.append(
            f"{run.fault} in group {run.faulted} restarted containers of group {run.watched}: {restarted}"
        )
    if run.tally.failed:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(run.tally.errors_by_reason.items()))
        problems.append(
            f"{run.tally.failed}/{run.tally.sent} requests to group {run.watched}'s leader failed during the fault "
            f"in group {run.faulted} ({reasons})"
        )
    if run.tally.sent == 0:
        problems.append(f"no request reached group {run.watched} during the fault: nothing was measured")
    if run.faulted_after == run.faulted_before:
        problems.append(f"the fault did not change group {run.faulted}: the check observed nothing")
    return problems


def service_spreads_over_every_leader(slices: Sequence[EndpointSliceView], expect: Expectation) -> list[str]:
    """MUST (LWS-CORE MultiGroupServiceSpread): with several groups, the leader Service's EndpointSlices list
    every group's leader as a ready endpoint, so load spreads over all model replicas."""
    ready = sorted(ep.target or "?" for slc in slices for ep in slc.endpoints if ep.ready)
    want = [f"{expect.lws_name}-{g}" for g in range(expect.replicas)]
    missing = [name for name in want if name not in ready]
    if missing:
        return [
            f"Service {expect.service_name} has ready endpoints {ready}; leaders {missing} are not among them"
        ]
    return []
