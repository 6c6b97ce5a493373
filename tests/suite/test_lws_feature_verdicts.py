"""The LWS feature verdicts (suite/conformance/checks/) fail on observations wrong in their way, and pass on the
right ones: the cases the testbed cannot easily produce (a controller ignoring maxUnavailable, a partition or a
surge; a status that lags), built as the observers record them."""

from __future__ import annotations

from typing import Any

from fixtures.cluster_views import EndpointSliceView, LwsView
from fixtures.snapshot import Expectation
from load.records import RequestRecord
from suite.conformance.api_order import ApiEvent, event_of
from suite.conformance.checks import (
    lws_status,
    multi_group,
    request_split,
    restart_after_start,
    rollout,
    startup,
)
from suite.conformance.checks.service_timeline import ServiceEvent, ServiceTimeline
from suite.conformance.steady_load import LoadTally
from suite.conformance.timeline import PodBrief, Sample

EXPECT = Expectation("vllm", "ns", 2, 2, 8, 2, 8, "m", 8080, "vllm-leader", {"role": "leader"}, None)


def lws(generation: int = 2, observed: int = 2, **conditions: tuple[str, str]) -> LwsView:
    conds = [
        {"type": k, "status": s, "reason": r, "observedGeneration": observed}
        for k, (s, r) in conditions.items()
    ]
    return LwsView.from_json(
        {
            "metadata": {"generation": generation},
            "status": {"observedGeneration": observed, "conditions": conds},
        }
    )


def test_available_needs_its_reason_and_the_current_generation() -> None:
    assert lws_status.lws_is_available_with_its_reason(lws(Available=("True", "AllGroupsReady"))) == []
    wrong = lws_status.lws_is_available_with_its_reason(lws(Available=("False", "GroupsProgressing")))
    assert "expected True with reason AllGroupsReady" in wrong[0]
    lagging = lws(generation=3, observed=2, Available=("True", "AllGroupsReady"))
    assert (
        "computed for generation 2, the LWS is at 3"
        in lws_status.lws_is_available_with_its_reason(lagging)[0]
    )
    assert lws_status.observed_generation_caught_up(lagging) == [
        "status.observedGeneration is 2, metadata.generation is 3"
    ]


def pod(
    name: str, group: int, worker: int, *, uid: str = "u", revision: str = "old", ready: bool = True
) -> PodBrief:
    return PodBrief(name, uid, group, worker, revision, "Running", ready, False)


def at(t: float, pods: list[PodBrief], sets: tuple[str, ...] = (), **conditions: str) -> Sample:
    return Sample(t, {p.name: p for p in pods}, {s: "uid" for s in sets}, dict(conditions))


def tally(ok: int, failed: int = 0) -> LoadTally:
    records = []
    for i in range(ok + failed):
        record = RequestRecord(index=i, scheduled=float(i) * 0.2, sent=float(i) * 0.2)
        if i >= ok // 2 and i < ok // 2 + failed:  # a run of failures in the middle of the load
            record.error = "connect_error"
        else:
            record.finished = record.scheduled + 0.1
        records.append(record)
    return LoadTally(ok + failed, ok, failed, {"connect_error": failed} if failed else {}, tuple(records))


def api(
    rv: int,
    kind: str,
    type_: str,
    name: str,
    group: int | None = None,
    worker: int | None = None,
    ready: bool = False,
) -> ApiEvent:
    return ApiEvent(rv, kind, type_, name, group, worker, ready)


def leader(rv: int, type_: str, ready: bool) -> ApiEvent:
    return api(rv, "Pod", type_, "vllm-0", 0, 0, ready)


def test_the_worker_statefulset_created_before_the_leader_turned_ready_fails_leader_ready() -> None:
    """Judged on the order of the API's writes: a StatefulSet created one write before the leader's Ready
    fails, however close in time the two were (a sampler would have seen them in one sample)."""
    sts = api(104, "StatefulSet", "ADDED", "vllm-0")
    good = [
        leader(101, "ADDED", False),
        leader(103, "MODIFIED", True),
        sts,
        api(106, "Pod", "ADDED", "vllm-0-1", 0, 1),
    ]
    assert startup.workers_start_only_after_the_leader_is_ready(good, "vllm", 1) == []
    assert (
        startup.figure(good, "vllm") == "worker StatefulSet at resourceVersion 104, after leader Ready at 103"
    )
    early = api(102, "StatefulSet", "ADDED", "vllm-0")
    bad = [
        leader(101, "ADDED", False),
        early,
        leader(103, "MODIFIED", True),
        api(104, "Pod", "ADDED", "vllm-0-1", 0, 1),
    ]
    assert startup.workers_start_only_after_the_leader_is_ready(bad, "vllm", 1) == [
        "worker StatefulSet vllm-0 was created at resourceVersion 102, before leader vllm-0 turned Ready "
        "(at resourceVersion 103)"
    ]
    worker_first = [
        leader(101, "ADDED", False),
        api(102, "Pod", "ADDED", "vllm-0-1", 0, 1),
        leader(103, "MODIFIED", True),
        sts,
    ]
    assert startup.workers_start_only_after_the_leader_is_ready(worker_first, "vllm", 1) == [
        "worker pod vllm-0-1 existed at resourceVersion 102, before leader vllm-0 turned Ready (at resourceVersion 103)"
    ]


def test_leader_ready_cannot_pass_without_a_judgeable_order() -> None:
    listed = [api(90, "StatefulSet", "LISTED", "vllm-0"), leader(101, "MODIFIED", True)]
    assert (
        "already existed when the watch started"
        in startup.workers_start_only_after_the_leader_is_ready(listed, "vllm", 1)[0]
    )
    assert startup.workers_start_only_after_the_leader_is_ready([leader(101, "ADDED", True)], "vllm", 1) == [
        "worker StatefulSet vllm-0 was never created (leader vllm-0 Ready at resourceVersion 101)"
    ]
    good = [leader(101, "ADDED", True), api(102, "StatefulSet", "ADDED", "vllm-0")]
    assert (
        "the watch may have missed events"
        in startup.workers_start_only_after_the_leader_is_ready(
            good, "vllm", 1, ["the Pod watch broke (ApiException: Gone)"]
        )[0]
    )


def test_an_api_event_carries_the_resource_version_group_worker_and_readiness() -> None:
    raw = {
        "metadata": {
            "name": "vllm-0",
            "resourceVersion": "1234",
            "labels": {
                "leaderworkerset.sigs.k8s.io/group-index": "0",
                "leaderworkerset.sigs.k8s.io/worker-index": "0",
            },
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert event_of("Pod", "MODIFIED", raw) == ApiEvent(1234, "Pod", "MODIFIED", "vllm-0", 0, 0, True)
    assert event_of("Pod", "MODIFIED", {"metadata": {"name": "x", "resourceVersion": "opaque-v1"}}) is None


def service(*events: tuple[float, str, str, str]) -> ServiceTimeline:
    """vllm-0 (uid a) and vllm-1 (uid b) ready endpoints when the watch starts, then `events`."""
    return ServiceTimeline(
        "vllm-leader",
        0.0,
        {"a": "vllm-0", "b": "vllm-1"},
        tuple(ServiceEvent(t, kind, pod, uid, int(pod[-1]), 0) for t, kind, pod, uid in events),  # type: ignore[arg-type]
        groups={"vllm-0": 0, "vllm-1": 1},
    )


# vllm-1 deleted by the rollout at +4.9 s and taken out of the Service at +4.95 s: the failures of tally(50, n)
# (sent from +5.0 s on, to vllm-1) are within the Service's endpoint propagation
PROMPT = service((4.9, "deleting", "vllm-1", "b"), (4.95, "not-ready", "vllm-1", "b"))
# taken out at +2.0 s: the client still sends there 3 s later
LATE = service((1.9, "deleting", "vllm-1", "b"), (2.0, "not-ready", "vllm-1", "b"))
# both leaders out at once
NONE = service((4.9, "not-ready", "vllm-1", "b"), (4.9, "not-ready", "vllm-0", "a"))


def rollout_run(
    samples: list[Sample],
    strategy: rollout.Strategy,
    load: LoadTally,
    probe: bool = True,
    timeline: ServiceTimeline = PROMPT,
) -> Any:
    endpoints = {r.index: "vllm-1" for r in load.records}
    split = request_split.split(load.records, endpoints, timeline)
    return rollout.RolloutRun(2, strategy, samples, {0: "a", 1: "b"}, "new", load, probe, "vllm", split)


OLD = [pod("vllm-0", 0, 0, uid="a"), pod("vllm-1", 1, 0, uid="b")]
DONE = {"Available": "True", "Progressing": "False", "UpdateInProgress": "False"}
BUSY = {"Available": "True", "Progressing": "True", "UpdateInProgress": "True"}


def one_at_a_time() -> list[Sample]:
    return [
        at(0, OLD, **DONE),
        at(1, [OLD[0]], **BUSY),
        at(2, [OLD[0], pod("vllm-1", 1, 0, uid="c", revision="new")], **BUSY),
        at(3, [pod("vllm-1", 1, 0, uid="c", revision="new")], **BUSY),
        at(
            4,
            [pod("vllm-0", 0, 0, uid="d", revision="new"), pod("vllm-1", 1, 0, uid="c", revision="new")],
            **DONE,
        ),
    ]


def test_a_rollout_within_its_strategy_passes_and_two_groups_down_at_once_fail() -> None:
    strategy = rollout.Strategy(1, 0, 0)
    good = rollout_run(one_at_a_time(), strategy, tally(50))
    assert rollout.groups_are_replaced_within_the_strategy(good) == []
    assert rollout.the_service_kept_serving(good) == []
    assert rollout.figure(good).startswith(
        "group 1 replaced in 1.0 s, group 0 replaced in 1.0 s, 0/50 requests failed: 0 (a) on a pod going, 0 (b)"
    )
    both_down = one_at_a_time()
    both_down.insert(3, at(2.5, [], **BUSY))
    problems = rollout.groups_are_replaced_within_the_strategy(rollout_run(both_down, strategy, tally(50)))
    assert (
        "only groups [] had a Ready leader at +2.5 s; replicas 2 - maxUnavailable 1 require 1" in problems[0]
    )


def test_requests_sent_to_a_leader_the_service_had_taken_out_fail_and_name_a_missing_probe() -> None:
    strategy = rollout.Strategy(1, 0, 0)
    prompt = rollout_run(one_at_a_time(), strategy, tally(50, 2))
    assert rollout.the_service_kept_serving(prompt) == []  # within the Service's endpoint propagation: (a)
    assert prompt.split.counts()["going"] == 2
    late = rollout.the_service_kept_serving(
        rollout_run(one_at_a_time(), strategy, tally(50, 2), timeline=LATE)
    )
    assert (
        "2/52 requests through the Service failed during the rollout on a leader the Service had taken out"
        in (late[0])
    )
    assert "sent to vllm-1 after it was listed not ready in the Service's endpoints at +2.00 s" in late[0]
    assert "readinessProbe" not in late[0]
    no_probe = rollout.the_service_kept_serving(
        rollout_run(one_at_a_time(), strategy, tally(50, 2), probe=False, timeline=LATE)
    )
    assert "has no readinessProbe" in no_probe[0]
    outage = rollout.the_service_kept_serving(
        rollout_run(one_at_a_time(), strategy, tally(50, 2), timeline=NONE)
    )
    assert "2/52 requests were sent while the Service had no ready endpoint" in outage[0]
    assert "replicas 2 - maxUnavailable 1 keep a group available" in outage[0]
    # with maxUnavailable 2 both groups may be down at once: an outage is allowed
    both = rollout_run(one_at_a_time(), rollout.Strategy(2, 0, 0), tally(50, 2), timeline=NONE)
    assert rollout.the_service_kept_serving(both) == []


def test_a_partition_that_does_not_hold_fails() -> None:
    strategy = rollout.Strategy(1, 0, 1)
    assert (
        rollout.groups_below_the_partition_are_kept(rollout_run(one_at_a_time()[:3], strategy, tally(9)))
        == []
    )
    broken = rollout.groups_below_the_partition_are_kept(rollout_run(one_at_a_time(), strategy, tally(9)))
    assert "group 0 is below partition 1 but its leader was replaced or deleted at +3.0 s" in broken[0]


def test_a_surge_never_used_or_left_behind_fails() -> None:
    surge = rollout.Strategy(0, 1, 0)
    assert (
        "no surge group was ever created"
        in rollout.the_surge_is_used_and_removed(rollout_run(one_at_a_time(), surge, tally(9)))[0]
    )
    left = [*one_at_a_time(), at(5, [*OLD, pod("vllm-2", 2, 0, uid="e")], **DONE)]
    assert "surge groups [2] still exist after the rollout" in rollout.the_surge_is_used_and_removed(
        rollout_run(left, surge, tally(9))
    )


def test_the_service_must_list_every_leader() -> None:
    def slices(*names: str) -> list[EndpointSliceView]:
        endpoints = [{"targetRef": {"name": n}, "conditions": {"ready": True}} for n in names]
        return [EndpointSliceView.from_json({"endpoints": endpoints})]

    assert multi_group.service_spreads_over_every_leader(slices("vllm-0", "vllm-1"), EXPECT) == []
    assert (
        "leaders ['vllm-1'] are not among them"
        in multi_group.service_spreads_over_every_leader(slices("vllm-0"), EXPECT)[0]
    )


def test_recreate_group_after_start_verdicts() -> None:
    fault = restart_after_start.GroupFault
    before = {"vllm-0": "a", "vllm-0-1": "b"}
    assert (
        restart_after_start.a_group_with_a_pending_pod_is_not_recreated(
            fault("crash-leader", before, before, ("vllm-0-1",), 1, 10.0)
        )
        == []
    )
    recreated = fault("crash-leader", before, {"vllm-0": "c", "vllm-0-1": "d"}, ("vllm-0-1",), 1, 3.0)
    assert (
        "LWS recreated ['vllm-0', 'vllm-0-1']"
        in restart_after_start.a_group_with_a_pending_pod_is_not_recreated(recreated)[0]
    )
    only_the_pending_pod = fault(
        "crash-leader", before, {"vllm-0": "a", "vllm-0-1": "d"}, ("vllm-0-1",), 1, 10.0
    )
    assert restart_after_start.a_group_with_a_pending_pod_is_not_recreated(only_the_pending_pod) == []
    kept = fault("crash-leader", before, {"vllm-0": "a", "vllm-0-1": "d"}, (), None, 3.0)
    assert (
        "['vllm-0'] kept their UIDs"
        in restart_after_start.a_started_group_is_recreated_after_a_fault(kept)[0]
    )
