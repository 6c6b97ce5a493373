"""The LWS-UPGRADE verdicts (suite/conformance/checks/upgrade.py) fail on upgrades wrong in their way and pass on
the right ones, judged on records built as suite/conformance/upgrade_run.py records them. The e2e self-test
(tests/fixtures/test_selftest_lws_upgrade_e2e.py) makes a real controller upgrade that rolls the groups."""

from __future__ import annotations

import dataclasses
from typing import Any

from suite.conformance.checks import upgrade
from suite.conformance.checks.upgrade import UpgradeRecord
from suite.conformance.timeline import Sample
from suite.conformance.upgrade_run import unavailable_spans

PODS = {
    "vllm-0": ("u0", 0, "788dc5dbd8"),
    "vllm-0-1": ("u01", 0, "788dc5dbd8"),
    "vllm-1": ("u1", 0, "788dc5dbd8"),
    "vllm-1-1": ("u11", 0, "788dc5dbd8"),
}
STATUS_V09: dict[str, Any] = {
    "observedGeneration": 1,
    "conditions": [{"type": "Available", "status": "True", "observedGeneration": 1}],
}


def record(**changes: Any) -> UpgradeRecord:
    base = UpgradeRecord(
        "v0.8.0",
        "v0.9.0",
        replicas=2,
        controller_s=16.8,
        observed_s=47.0,
        generation=(1, 1),
        pods_before=dict(PODS),
        pods_after=dict(PODS),
        requests_sent=237,
        samples=200,
        status_after=STATUS_V09,
        roll_figure="group 1 replaced in 3.1 s, group 0 replaced in 3.0 s, 0/40 requests failed",
    )
    return dataclasses.replace(base, **changes)


def test_an_upgrade_that_leaves_everything_alone_passes_every_check() -> None:
    good = record()
    for check in (
        upgrade.groups_are_left_alone,
        upgrade.every_request_was_served,
        upgrade.stayed_available,
        upgrade.has_the_new_status_fields,
        upgrade.rolls_after_the_upgrade,
    ):
        assert check(good) == [], check.__name__
    assert upgrade.figure(good) == (
        "LWS v0.8.0 -> v0.9.0 in place: controller replaced in 16.8 s, settled after 47.0 s; group 0: untouched; "
        "group 1: untouched; 0/237 requests failed"
    )


def test_groups_rolled_by_the_new_controller_fail_naming_the_hash_and_its_events() -> None:
    rolled = {name: (uid + "-new", 0, "7c9f94f6f6") for name, (uid, _, _) in PODS.items()}
    bad = record(
        from_version="v0.7.0",
        to_version="v0.8.0",
        pods_after=rolled,
        events=["LeaderWorkerSet/vllm GroupsProgressing: Replicas are progressing"],
    )
    (problem,) = upgrade.groups_are_left_alone(bad)
    assert "disturbed 2 of 2 group(s), the LWS spec unchanged (generation 1)" in problem
    assert "vllm-0 recreated, revision 788dc5dbd8 -> 7c9f94f6f6" in problem
    assert "GroupsProgressing: Replicas are progressing" in problem


def test_a_restart_or_a_lost_pod_is_a_disturbance_too() -> None:
    after = dict(PODS)
    after["vllm-1-1"] = ("u11", 1, "788dc5dbd8")
    del after["vllm-0-1"]
    (problem,) = upgrade.groups_are_left_alone(record(pods_after=after))
    assert "group 0: vllm-0-1 gone" in problem and "group 1: vllm-1-1 restarted 1x" in problem
    assert "the new controller recorded no event about it" in problem
    assert upgrade.groups_are_left_alone(record(pods_before={})) == [
        "no pod was seen before the upgrade: nothing to compare"
    ]


def test_failed_requests_and_an_unmeasured_load_fail() -> None:
    (problem,) = upgrade.every_request_was_served(
        record(requests_failed=5, requests_report="5/280 failed: 4 (a) on a pod going, 1 (d) other")
    )
    assert problem.startswith("5/237 requests through the Service failed during the upgrade v0.8.0 -> v0.9.0")
    assert upgrade.every_request_was_served(record(requests_sent=0)) == [
        "no request was sent during the upgrade: nothing measured"
    ]


def test_an_lws_that_was_not_available_or_not_watched_fails() -> None:
    (problem,) = upgrade.stayed_available(record(unavailable=["+12.0 s to +20.5 s: Available=False"]))
    assert "not Available during the upgrade" in problem and "+12.0 s to +20.5 s" in problem
    assert upgrade.stayed_available(record(samples=0)) != []


def test_the_new_releases_status_fields_are_required_only_where_it_writes_them() -> None:
    stale = {"conditions": [{"type": "Available", "status": "True"}]}  # a v0.8 status, not reconciled by v0.9
    problems = upgrade.has_the_new_status_fields(record(status_after=stale))
    assert problems[0].startswith("status.observedGeneration is None, not the LWS's generation 1")
    assert problems[1] == "conditions without observedGeneration 1: Available (None)"
    assert upgrade.new_fields_to_check(record()) is None
    old = record(from_version="v0.7.0", to_version="v0.8.0", status_after=stale)
    assert upgrade.has_the_new_status_fields(old) == []
    assert "v0.8.0 writes no status field that v0.7.0 lacks" in str(upgrade.new_fields_to_check(old))


def test_the_roll_after_the_upgrade_passes_on_its_problems() -> None:
    assert upgrade.rolls_after_the_upgrade(record(roll_problems=["group 1 was not replaced"])) == [
        "group 1 was not replaced"
    ]
    assert upgrade.rolls_after_the_upgrade(record(roll_figure=None)) == [
        "no template change was made after the upgrade"
    ]


def test_a_downgrade_is_known_and_the_record_survives_the_run_state() -> None:
    assert record(from_version="v0.9.0", to_version="v0.8.0").downgrade and not record().downgrade
    raw = dataclasses.asdict(record())
    raw["generation"] = list(raw["generation"])  # as JSON gives it back
    raw["pods_before"] = {k: list(v) for k, v in raw["pods_before"].items()}
    assert UpgradeRecord.of(raw) == record()


def test_unavailable_spans_are_stretches_of_samples() -> None:
    def at(t: float, available: str) -> Sample:
        return Sample(t, {}, {}, {"Available": available, "Progressing": "True"})

    samples = [at(10.0, "True"), at(11.0, "False"), at(12.5, "False"), at(13.0, "True"), at(14.0, "False")]
    assert unavailable_spans(samples, 10.0) == [
        "+1.0 s to +2.5 s: Available=False, Progressing=True",
        "+4.0 s to +4.0 s: Available=False, Progressing=True",
    ]
    assert unavailable_spans([at(10.0, "True")], 10.0) == []
