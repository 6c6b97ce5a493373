"""The LWS feature verdicts (suite/conformance/checks/) fail on observations wrong in their way, and pass on the
right ones: the cases the testbed cannot easily produce (a controller ignoring maxUnavailable, a partition or a
surge; a status that lags), built as the observers record them."""

from __future__ import annotations

from typing import Any

from fixtures.cluster_views import EndpointSliceView, LwsView
from fixtures.snapshot import Expectation
from load.records import RequestRecord
from suite.conformance.checks import lws_status, multi_group, restart_after_start, rollout, startup
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


def test_the_worker_statefulset_before_a_ready_leader_fails_leader_ready() -> None:
    good = [at(0, []), at(1, [pod("vllm-0", 0, 0)]), at(2, [pod("vllm-0", 0, 0)], ("vllm", "vllm-0"))]
    assert startup.workers_start_only_after_the_leader_is_ready(good, "vllm", 1) == []
    bad = [
        at(0, []),
        at(1, [pod("vllm-0", 0, 0, ready=False)], ("vllm", "vllm-0")),
        at(2, [pod("vllm-0", 0, 0)]),
    ]
    assert (
        "appeared at +1.00 s while vllm-0 Running, not Ready"
        in startup.workers_start_only_after_the_leader_is_ready(bad, "vllm", 1)[0]
    )


def rollout_run(
    samples: list[Sample], strategy: rollout.Strategy, load: LoadTally, probe: bool = True
) -> Any:
    return rollout.RolloutRun(2, strategy, samples, {0: "a", 1: "b"}, "new", load, probe, "vllm")


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
    assert (
        rollout.figure(good) == "group 1 replaced in 1.0 s, group 0 replaced in 1.0 s, 0/50 requests failed"
    )
    both_down = one_at_a_time()
    both_down.insert(3, at(2.5, [], **BUSY))
    problems = rollout.groups_are_replaced_within_the_strategy(rollout_run(both_down, strategy, tally(50)))
    assert (
        "only groups [] had a Ready leader at +2.5 s; replicas 2 - maxUnavailable 1 require 1" in problems[0]
    )


def test_failed_requests_without_a_leader_probe_name_the_probe_and_a_long_outage_fails_anyway() -> None:
    strategy = rollout.Strategy(1, 0, 0)
    no_probe = rollout.the_service_kept_serving(
        rollout_run(one_at_a_time(), strategy, tally(50, 1), probe=False)
    )
    assert "has no readinessProbe" in no_probe[0]
    assert (
        rollout.the_service_kept_serving(rollout_run(one_at_a_time(), strategy, tally(50, 2))) == []
    )  # 0.2 s
    long = rollout.the_service_kept_serving(rollout_run(one_at_a_time(), strategy, tally(50, 20)))
    assert "stopped serving for longer than 3 s" in long[0]


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
