"""Each recovery verdict passes on a conformant recovery and fails, naming the defect, on a wrong one."""

from __future__ import annotations

import dataclasses

from fixtures.faults import target
from fixtures.recovery import Recovery
from suite.conformance.checks import recovery as verdicts

BEFORE = {"vllm-0": "uid-a", "vllm-0-1": "uid-b"}
OTHERS = {1: {"vllm-1": "uid-c", "vllm-1-1": "uid-d"}}


def recovered(
    fault: str = "delete-worker", policy: str = "RecreateGroupOnPodRestart", **changes: object
) -> Recovery:
    rec = Recovery(
        target(fault, "vllm"),
        policy,
        dict(BEFORE),
        OTHERS,
        after={"vllm-0": "uid-e", "vllm-0-1": "uid-f"},
        others_after=dict(OTHERS),
        pods_replaced_s=4.6,
        available_s=4.6,
        first_success_s=5.2,
        endpoints_after=["vllm-0", "vllm-1"],
        recreate_events=[{"reason": "RecreateGroup", "message": "Worker pod vllm-0-1 failed"}],
    )
    return dataclasses.replace(rec, **changes)


def test_a_conformant_recovery_passes_every_verdict() -> None:
    rec = recovered()
    assert verdicts.every_pod_of_the_group_was_replaced(rec) == []
    assert verdicts.lws_recorded_the_group_recreation(rec) == []
    assert verdicts.lws_is_available_again(rec) == []
    assert verdicts.service_endpoints_follow_the_new_leader(rec, "vllm-0") == []
    assert verdicts.serving_resumed(rec) == []
    assert verdicts.other_groups_were_untouched(rec) == []


def test_only_the_worker_replaced_fails_the_group_check_and_names_it() -> None:
    rec = recovered(after={"vllm-0": "uid-a", "vllm-0-1": "uid-f"})
    (problem,) = verdicts.every_pod_of_the_group_was_replaced(rec)
    assert (
        "only ['vllm-0-1'] was replaced; ['vllm-0'] kept their UIDs, so the group was not recreated"
        in problem
    )


def test_the_lws_race_is_named() -> None:
    (problem,) = verdicts.every_pod_of_the_group_was_replaced(recovered(race_suspected=True))
    assert "kubernetes-sigs/lws#998" in problem and "upgrade LWS" in problem


def test_missing_event_unavailable_no_serving_stray_endpoint_and_touched_group_fail() -> None:
    assert verdicts.lws_recorded_the_group_recreation(recovered(recreate_events=[]))
    assert verdicts.lws_recorded_the_group_recreation(recovered("delete-leader", recreate_events=[])) == [], (
        "LWS records no event when the leader itself is deleted"
    )
    assert verdicts.lws_is_available_again(recovered(available_s=None))
    assert verdicts.serving_resumed(recovered(first_success_s=None))
    assert verdicts.service_endpoints_follow_the_new_leader(recovered(endpoints_after=["vllm-0-1"]), "vllm-0")
    assert (
        "include non-leader pods ['vllm-0-1']"
        in verdicts.service_endpoints_follow_the_new_leader(
            recovered(endpoints_after=["vllm-0", "vllm-0-1"]), "vllm-0"
        )[0]
    )
    touched = recovered(others_after={1: {"vllm-1": "uid-x", "vllm-1-1": "uid-d"}})
    assert verdicts.other_groups_were_untouched(touched) == [
        "group(s) [1] changed although the fault was in another group"
    ]


def test_restart_policy_none_contrast() -> None:
    only_worker = recovered(policy="None", after={"vllm-0": "uid-a", "vllm-0-1": "uid-f"})
    assert verdicts.only_the_failed_pod_was_replaced(only_worker) == []
    assert verdicts.only_the_failed_pod_was_replaced(recovered(policy="None")), "the whole group must not go"
    in_place = recovered(
        "crash-worker", policy="None", after=dict(BEFORE), restart_counts_after={"vllm-0-1": 1}
    )
    assert verdicts.only_the_failed_pod_was_replaced(in_place) == []
    no_restart = dataclasses.replace(in_place, restart_counts_after={"vllm-0-1": 0})
    assert verdicts.only_the_failed_pod_was_replaced(no_restart) == [
        "vllm-0-1 shows no container restart after crash-worker (restart count 0 before the fault, 0 after)"
    ]


def test_restarted_in_place_counts_the_restarts_of_this_fault_not_earlier_ones() -> None:
    """A worker that restarted once before (an earlier fault of the run) and not during this crash: the absolute
    count (1) must not pass for a restart; after minus before (0) does not."""
    stale = recovered(
        "crash-worker",
        policy="None",
        after=dict(BEFORE),
        restart_counts_before={"vllm-0-1": 1},
        restart_counts_after={"vllm-0-1": 1},
    )
    assert verdicts.only_the_failed_pod_was_replaced(stale) == [
        "vllm-0-1 shows no container restart after crash-worker (restart count 1 before the fault, 1 after)"
    ]
    restarted = dataclasses.replace(stale, restart_counts_after={"vllm-0-1": 2})
    assert verdicts.only_the_failed_pod_was_replaced(restarted) == []


def test_no_pod_before_the_fault_fails_every_pod_replaced_instead_of_passing_vacuously() -> None:
    empty = recovered(before={}, after={})
    (problem,) = verdicts.every_pod_of_the_group_was_replaced(empty)
    assert "no pod of the group was seen before delete-worker on vllm-0-1" in problem
    (problem,) = verdicts.only_the_failed_pod_was_replaced(recovered(policy="None", before={}, after={}))
    assert "nothing to show replaced" in problem
