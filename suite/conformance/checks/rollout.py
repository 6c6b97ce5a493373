"""Rolling update of a multi-group LWS: what a template change (a new image, a vLLM argument or setting) must do.

LWS v0.9.0 rolls groups through its leader StatefulSet (sigs.k8s.io/lws@v0.9.0 pkg/controllers/
leaderworkerset_controller.go rollingUpdateParameters): at most `maxUnavailable` groups unavailable and at most
`maxSurge` extra groups at once, groups below `partition` never updated (api/leaderworkerset/v1/
leaderworkerset_types.go RollingUpdateConfiguration); conditions Progressing (reason GroupsProgressing) and
UpdateInProgress (GroupsUpdating) are True while it runs and Available again at the end (makeCondition).
A group is available when its leader is Ready, so the leader's readiness probe is what keeps the Service on
groups that serve: without one, a new leader is Ready (and an endpoint) before vLLM listens.

Pure functions of a RolloutRun (timeline samples, the steady load's tally, the strategy), so the self-tests
judge a wrong deployment with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

from suite.conformance.checks.request_split import RequestSplit
from suite.conformance.steady_load import LoadTally
from suite.conformance.timeline import Sample


@dataclass(frozen=True)
class Strategy:
    max_unavailable: int
    max_surge: int
    partition: int


@dataclass(frozen=True)
class RolloutRun:
    replicas: int
    strategy: Strategy
    samples: list[Sample]
    old_leaders: dict[int, str]  # group -> leader uid before the change
    new_revision: str | None  # the revision every updated pod carries
    tally: LoadTally
    leader_has_probe: bool
    lws_name: str
    split: RequestSplit | None = None  # the failed requests against the Service's timeline (request_split)


def _available(sample: Sample) -> list[int]:
    """Groups (surge groups included) whose leader is Ready and not going."""
    return sorted(
        p.group
        for p in sample.pods.values()
        if p.worker == 0 and p.group is not None and p.ready and not p.deleting
    )


def group_times(run: RolloutRun) -> dict[int, float | None]:
    """Per group: seconds from its old leader going (deleting, gone or replaced) to a leader of the new revision
    being Ready; None when not seen."""
    times: dict[int, float | None] = {}
    for group, old_uid in run.old_leaders.items():
        gone = next(
            (
                s.t
                for s in run.samples
                if (lead := s.leader(group)) is None or lead.uid != old_uid or lead.deleting
            ),
            None,
        )
        up = next(
            (
                s.t
                for s in run.samples
                if (lead := s.leader(group)) is not None
                and lead.revision == run.new_revision
                and lead.ready
                and not lead.deleting
            ),
            None,
        )
        times[group] = round(up - gone, 2) if gone is not None and up is not None and up >= gone else None
    return times


def _not_updated(run: RolloutRun) -> list[int]:
    """The groups the rollout must update (partition and above) never seen with a Ready leader of the new
    revision."""
    times = group_times(run)
    return [group for group in range(run.strategy.partition, run.replicas) if times.get(group) is None]


def groups_are_replaced_within_the_strategy(run: RolloutRun) -> list[str]:
    """MUST (LWS-ROLLOUT RollingUpdate): every group at or above the partition is replaced by one of the new
    revision, at least replicas - maxUnavailable groups (surge groups counted) have a Ready leader throughout, never more than replicas + maxSurge
    groups exist at once, and Progressing and UpdateInProgress are True during the rollout."""
    problems = []
    if not run.samples:
        return ["no sample of the rollout was taken"]
    t0 = run.samples[0].t
    worst = min(run.samples, key=lambda s: len(_available(s)))
    floor = run.replicas - run.strategy.max_unavailable
    if len(_available(worst)) < floor:
        problems.append(
            f"only groups {_available(worst)} had a Ready leader at +{worst.t - t0:.1f} s; replicas {run.replicas} "
            f"- maxUnavailable {run.strategy.max_unavailable} require {floor}"
        )
    most = max(run.samples, key=lambda s: len(s.groups()))
    if len(most.groups()) > run.replicas + run.strategy.max_surge:
        problems.append(
            f"{len(most.groups())} groups {sorted(most.groups())} existed at once at +{most.t - t0:.1f} s; "
            f"replicas {run.replicas} + maxSurge {run.strategy.max_surge} allow {run.replicas + run.strategy.max_surge}"
        )
    for group in _not_updated(run):
        problems.append(
            f"group {group} was not seen replaced by a Ready leader of revision {run.new_revision}"
        )
    for kind in ("Progressing", "UpdateInProgress"):
        if not any(s.conditions.get(kind) == "True" for s in run.samples):
            problems.append(f"condition {kind} was never True during the rollout")
    last = run.samples[-1]
    if last.conditions.get("UpdateInProgress") == "True" or last.conditions.get("Available") != "True":
        problems.append(
            f"at the end: conditions {last.conditions}, expected Available True and no update in progress"
        )
    return problems


def the_service_kept_serving(run: RolloutRun) -> list[str]:
    """MUST (LWS-ROLLOUT RollingUpdate): through the rollout the leader Service sends no request to a pod it had
    taken out of its endpoints, nor to a ready endpoint that does not serve, while another leader was ready
    (request split class (b)); and while the strategy keeps a group available (replicas - maxUnavailable >= 1)
    it always has a ready endpoint (class (c)). Requests in flight on a leader when it is deleted, or sent to it
    within the Service's endpoint propagation, fail on any cluster (class (a)) and are counted, not judged.
    Without a readiness probe on the leader, each new leader is Ready, and an endpoint, before vLLM listens: the
    problem then names the probe."""
    if run.tally.sent == 0:
        return ["no request was sent during the rollout: nothing measured"]
    if run.split is None:
        return ["the Service was not watched during the rollout: the failed requests cannot be placed"]
    problems = []
    split = run.split
    taken_out = split.of("taken-out")
    if taken_out:
        causes = "; ".join(split.causes("taken-out"))
        line = (
            f"{len(taken_out)}/{run.tally.sent} requests through the Service failed during the rollout on a leader "
            f"the Service had taken out or that did not serve, while another leader was ready: {causes}"
        )
        if not run.leader_has_probe:
            line += (
                "; the leader container has no readinessProbe, so each new leader was Ready and an endpoint of "
                "the Service before vLLM listened: add one (the reference's tcpSocket on the serving port)"
            )
        problems.append(line)
    outage = split.of("no-endpoint")
    if outage and run.replicas - run.strategy.max_unavailable >= 1:
        problems.append(
            f"{len(outage)}/{run.tally.sent} requests were sent while the Service had no ready endpoint "
            f"({split.no_endpoint_s:.2f} s in all), though replicas {run.replicas} - maxUnavailable "
            f"{run.strategy.max_unavailable} keep a group available"
        )
    return problems


def figure(run: RolloutRun) -> str:
    """'group 1 replaced in 14.2 s, group 0 in 13.8 s, 2/230 requests failed: 2 (a) on a pod going, ...'"""
    times = group_times(run)
    order = sorted(
        (g for g in times if times[g] is not None),
        key=lambda g: next(
            (s.t for s in run.samples if (lead := s.leader(g)) and lead.revision == run.new_revision), 0.0
        ),
    )
    parts = [f"group {g} replaced in {times[g]:.1f} s" for g in order]
    parts += [f"group {g} not replaced" for g in times if times[g] is None]
    failed = (
        run.split.figure()
        if run.split is not None
        else f"{run.tally.failed}/{run.tally.sent} requests failed"
    )
    return ", ".join(parts) + f", {failed}"


def groups_below_the_partition_are_kept(run: RolloutRun) -> list[str]:
    """MUST (LWS-ROLLOUT RolloutPartition): with rollingUpdateConfiguration.partition P, groups 0..P-1 keep their
    leader (same UID, old revision) for the whole rollout, while groups P.. are updated."""
    problems = []
    for group in range(run.strategy.partition):
        touched = next(
            (
                s
                for s in run.samples
                if (lead := s.leader(group)) is None or lead.uid != run.old_leaders.get(group)
            ),
            None,
        )
        if touched is not None:
            problems.append(
                f"group {group} is below partition {run.strategy.partition} but its leader was replaced or deleted "
                f"at +{touched.t - run.samples[0].t:.1f} s"
            )
    for group in _not_updated(run):
        problems.append(
            f"group {group} is at or above partition {run.strategy.partition} and was not updated"
        )
    return problems


def the_surge_is_used_and_removed(run: RolloutRun) -> list[str]:
    """MUST (LWS-ROLLOUT RolloutMaxSurge): with maxSurge S > 0, extra groups (indices replicas..replicas+S-1) are
    created during the rollout, never more than S, and are gone when it ends."""
    extra = sorted({g for s in run.samples for g in s.groups() if g >= run.replicas})
    problems = []
    if run.strategy.max_surge > 0 and not extra:
        problems.append(f"maxSurge is {run.strategy.max_surge} but no surge group was ever created")
    if len(extra) > run.strategy.max_surge:
        problems.append(f"surge groups {extra} exceed maxSurge {run.strategy.max_surge}")
    left = sorted(g for g in run.samples[-1].groups() if g >= run.replicas) if run.samples else []
    if left:
        problems.append(f"surge groups {left} still exist after the rollout")
    return problems
