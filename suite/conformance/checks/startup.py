"""`startupPolicy: LeaderReady`: LWS creates a group's worker StatefulSet only once the leader pod is Ready.

sigs.k8s.io/lws@v0.9.0 api/leaderworkerset/v1/leaderworkerset_types.go: "LeaderReady creates the workers
statefulset after the leader pod is ready"; pkg/controllers/pod_controller.go returns before creating the worker
StatefulSet while `StartupPolicy == LeaderReady && !IsPodReady(leader)`. (LeaderCreated, the default, creates it
as soon as the leader pod exists.)
"""

from __future__ import annotations

from suite.conformance.timeline import Sample


def _state(sample: Sample, group: int, lws_name: str) -> str:
    leader = sample.leader(group)
    if leader is None:
        return f"{lws_name}-{group} absent"
    return f"{leader.name} {leader.phase}{'/Ready' if leader.ready else ', not Ready'}"


def workers_start_only_after_the_leader_is_ready(
    samples: list[Sample], lws_name: str, replicas: int
) -> list[str]:
    """MUST (LWS-CORE StartupPolicyLeaderReady): under startupPolicy LeaderReady, no group's worker StatefulSet
    (nor any worker pod) exists before that group's leader pod is Ready; judged on a timeline sampled from the
    moment the LWS was applied."""
    if not samples:
        return ["no sample of the deployment was taken: nothing to judge"]
    t0 = samples[0].t
    problems = []
    for group in range(replicas):
        sts = f"{lws_name}-{group}"
        if sts in samples[0].statefulsets:
            problems.append(
                f"worker StatefulSet {sts} already existed when the timeline started: cannot judge"
            )
            continue
        first = next((s for s in samples if sts in s.statefulsets), None)
        ready = next((s for s in samples if (lead := s.leader(group)) is not None and lead.ready), None)
        ready_at = f"+{ready.t - t0:.2f} s" if ready is not None else "never"
        if first is None:
            problems.append(f"worker StatefulSet {sts} never appeared (leader Ready {ready_at})")
            continue
        leader = first.leader(group)
        if leader is None or not leader.ready:
            problems.append(
                f"worker StatefulSet {sts} appeared at +{first.t - t0:.2f} s while {_state(first, group, lws_name)}; "
                f"the leader became Ready at {ready_at}"
            )
        early = next(
            (
                s
                for s in samples
                if any(p.group == group and p.worker and p.worker > 0 for p in s.pods.values())
            ),
            None,
        )
        if (
            early is not None
            and not ((lead := early.leader(group)) is not None and lead.ready)
            and leader
            and leader.ready
        ):
            problems.append(
                f"a worker pod of group {group} existed at +{early.t - t0:.2f} s before its leader was Ready"
            )
    return problems


def figure(samples: list[Sample], lws_name: str) -> str:
    """'worker StatefulSet 0.41 s after leader Ready' for group 0, or what was seen."""
    if not samples:
        return "no samples"
    sts = f"{lws_name}-0"
    first = next((s for s in samples if sts in s.statefulsets), None)
    ready = next((s for s in samples if (lead := s.leader(0)) is not None and lead.ready), None)
    if first is None or ready is None:
        return f"worker StatefulSet seen: {first is not None}, leader Ready seen: {ready is not None}"
    return f"worker StatefulSet {first.t - ready.t:+.2f} s after leader Ready"
