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
    (same UIDs), none of its containers restarted; under a steady load through the leader Service, no request
    that group 0's leader carried failed, and none failed on group 1's leader after the Service had taken it
    out (or on a ready endpoint that did not serve) while group 0's leader was ready (request split class (b)).
    Requests in flight on group 1's leader when it went are counted (class (a)), not judged."""
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
    split = run.split
    on_watched = [f for f in split.failed if f.endpoint == run.watched_leader]
    if on_watched:
        errors: dict[str, int] = {}
        for failure in on_watched:
            errors[failure.error] = errors.get(failure.error, 0) + 1
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
        problems.append(
            f"{len(on_watched)}/{split.sent} requests to group {run.watched}'s leader {run.watched_leader} failed "
            f"during the fault in group {run.faulted} ({reasons})"
        )
    taken_out = [f for f in split.of("taken-out") if f.endpoint != run.watched_leader]
    if taken_out:
        problems.append(
            f"{len(taken_out)}/{split.sent} requests failed on a leader the Service had taken out or that did not "
            f"serve, while group {run.watched}'s leader was ready: {'; '.join(split.causes('taken-out'))}"
        )
    if split.sent == 0:
        problems.append("no request went through the Service during the fault: nothing was measured")
    elif split.served_by and not split.served_by.get(run.watched_leader):
        # the load was placed (the balancer's header), but group 0's leader carried none of it
        served = ", ".join(f"{p}: {n}" for p, n in sorted(split.served_by.items()))
        problems.append(
            f"group {run.watched}'s leader {run.watched_leader} completed no request during the fault "
            f"(completed per pod: {served})"
        )
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
