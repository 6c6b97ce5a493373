"""Restart-group recovery: inject each fault into the run's own deployment, prove the whole group is recreated,
and measure how long serving is down, with a steady load running through the fault.

Disruptive: these run after every read-only check of the run has finished, and never beside one
(fixtures/deployment_plugin.py), and only on the suite's own deployment (never with --endpoint).
"""

from __future__ import annotations

from typing import Any

import pytest

from fixtures import deploy, faults, lifecycle
from fixtures.deployment_plugin import Deployed, Endpoint
from fixtures.kube import Kube
from fixtures.lws_release import LwsRelease
from fixtures.recovery import (
    Recovery,
    group_uids,
)
from fixtures.run_state import RunState
from fixtures.settings import Settings
from plumbing.wait import NotYet, wait_for
from reports.schema import RecoveryMeasurement
from suite.conformance import fault_run
from suite.conformance.checks import recovery as verdicts
from suite.conformance.checks import request_split
from suite.conformance.checks.request_split import RequestSplit
from suite.conformance.steady_load import LoadTally

pytestmark = pytest.mark.disruptive


def _record(run_state: RunState, rec: Recovery, tally: LoadTally, split: RequestSplit) -> None:
    """One line of the run's recovery record, validated against the result schema as it is written."""
    measurement = RecoveryMeasurement(
        fault=rec.fault.name,
        restart_policy=rec.restart_policy,
        group_recreated=rec.must_recreate_group
        and bool(rec.before)
        and not rec.race_suspected
        and set(rec.replaced()) == set(rec.before),
        pods_replaced_s=rec.pods_replaced_s,
        available_s=rec.available_s,
        first_success_s=rec.first_success_s,
        requests_sent=tally.sent,
        requests_failed=tally.failed,
        errors_by_reason=tally.errors_by_reason,
        race_detected=rec.race_suspected,
        failed_by_class=split.counts(),
        failure_causes={k: split.causes(k) for k in request_split.CLASSES if split.of(k)},
    )
    run_state.append_line("recovery", measurement.model_dump_json())


def _figure(rec: Recovery, split: RequestSplit) -> str:
    """The summary's key figure: how long serving took to come back, and the requests lost meanwhile."""
    back = (
        f"serving again after {rec.first_success_s:.1f} s"
        if rec.first_success_s is not None
        else "not serving again"
    )
    return f"{back}, {split.figure()}"


@pytest.mark.feature("LWS-RESTART", "RecreateGroupOnPodRestart")
@pytest.mark.parametrize("fault_name", faults.FAULTS)
def test_a_fault_in_one_pod_recreates_the_whole_group(
    fault_name: str,
    kube: Kube,
    exclusive_deployment: Deployed,
    endpoint: Endpoint,
    settings: Settings,
    run_state: RunState,
    progress: Any,
    record_property: Any,
) -> None:
    """MUST (RecreateGroupOnPodRestart): deleting or crashing any pod of the group replaces every pod, LWS
    records it, the LWS is Available again, the Service follows the new leader, serving resumes, and other
    groups are untouched. Recovery times and the requests that failed meanwhile go into the run's result."""
    deployed = exclusive_deployment  # a manifest with another restartPolicy fails here, as it should
    rec, tally, split = fault_run.run_fault(kube, deployed, settings, fault_name, progress)
    _record(run_state, rec, tally, split)
    record_property("figure", _figure(rec, split))
    progress(
        f"{fault_name}: pods replaced {_secs(rec.pods_replaced_s)}, Available {_secs(rec.available_s)}, "
        f"first success {_secs(rec.first_success_s)}; during the fault {split.report()}"
    )
    if rec.race_suspected:  # everything else would only restate it
        pytest.fail(verdicts.every_pod_of_the_group_was_replaced(rec)[0])
    problems = (
        verdicts.every_pod_of_the_group_was_replaced(rec)
        + verdicts.lws_recorded_the_group_recreation(rec)
        + verdicts.lws_is_available_again(rec)
        + verdicts.service_endpoints_follow_the_new_leader(rec, f"{deployed.expect.lws_name}-0")
        + verdicts.serving_resumed(rec)
        + verdicts.other_groups_were_untouched(rec)
        + verdicts.the_service_sent_nothing_to_a_leader_it_had_taken_out(split)
    )
    assert not problems, "\n".join(f"  - {p}" for p in problems)


REVISION = "leaderworkerset.sigs.k8s.io/template-revision-hash"


def _leader_revision(kube: Kube, deployed: Deployed) -> str | None:
    sts = kube.get_object("apps/v1", "statefulsets", deployed.expect.lws_name, deployed.namespace) or {}
    return ((sts.get("metadata") or {}).get("labels") or {}).get(REVISION)


def _set_restart_policy(
    kube: Kube, deployed: Deployed, policy: str, release: LwsRelease | None = None
) -> None:
    """Change the policy. The template revision covers the whole leaderWorkerTemplate, restartPolicy included
    (sigs.k8s.io/lws@v0.7.0..v0.9.0 pkg/utils/revision/revision_utils.go getPatch), so the change rolls the
    group. A release without status.observedGeneration (before v0.9.0) gives no sign that its controller has
    seen the change, and deploy.wait_ready would pass on the old, still Available group: there, wait until the
    leader StatefulSet carries a new revision (its template-revision-hash label, which the controller sets:
    v0.7.0 pkg/controllers/leaderworkerset_controller.go constructLeaderStatefulSetApplyConfiguration)."""
    lws = kube.lws(deployed.namespace, deployed.expect.lws_name) or {}
    current = ((lws.get("spec") or {}).get("leaderWorkerTemplate") or {}).get("restartPolicy")
    before = _leader_revision(kube, deployed)
    lifecycle.patch_lws(kube, deployed, {"spec": {"leaderWorkerTemplate": {"restartPolicy": policy}}})
    if release is None or release.observed_generation or current == policy or before is None:
        return

    def new_revision() -> str:
        now = _leader_revision(kube, deployed)
        if now is None or now == before:
            raise NotYet(f"leader StatefulSet still at revision {before}")
        return now

    revision = wait_for(
        new_revision, what=f"LWS {release.version} to take restartPolicy {policy}", timeout=60
    )

    def leaders_replaced() -> None:  # the policy's own rollout done, so the fault is not mixed with it
        for group in range(deployed.expect.replicas):
            pod = kube.pod(deployed.namespace, f"{deployed.expect.lws_name}-{group}") or {}
            meta = pod.get("metadata") or {}
            if (meta.get("labels") or {}).get(REVISION) != revision or meta.get("deletionTimestamp"):
                raise NotYet(f"leader of group {group} not yet at revision {revision}")

    wait_for(leaders_replaced, what=f"the leaders at restartPolicy {policy}'s revision", timeout=300)


@pytest.mark.feature("LWS-RESTART", "RestartPolicyNone")
@pytest.mark.parametrize("fault_name", ["delete-worker", "crash-worker"])
def test_with_restart_policy_none_only_the_failed_pod_is_replaced(
    fault_name: str,
    kube: Kube,
    exclusive_deployment: Deployed,
    endpoint: Endpoint,
    settings: Settings,
    run_state: RunState,
    progress: Any,
    record_property: Any,
    lws_release: LwsRelease,
) -> None:
    """The contrast case, MUST (restartPolicy None): StatefulSet semantics. A deleted pod alone is replaced and a
    crashed container restarts in place; the rest of the group keeps its UIDs. (On real vLLM this leaves a
    half-restarted Ray cluster, which is why the reference uses RecreateGroupOnPodRestart.) Afterwards the
    original policy is restored and the group recreated, so later checks see a healthy deployment."""
    deployed = exclusive_deployment
    fault = faults.target(fault_name, deployed.expect.lws_name)  # type: ignore[arg-type]
    if fault.is_crash:  # refused before the restart policy is changed
        faults.refuse_if_uncontained(kube, deployed.namespace, fault)
    original = deployed.expect.restart_policy or "RecreateGroupOnPodRestart"
    deployment = deployed.deployment
    _set_restart_policy(kube, deployed, "None", lws_release)
    try:
        deploy.wait_ready(kube, deployment, settings.timeout_ready, progress)
        rec, tally, split = fault_run.run_fault(
            kube,
            deployed,
            settings,
            fault_name,
            progress,
            restart_policy="None",
            need_serving=False,
        )
        _record(run_state, rec, tally, split)
        kept = len(set(rec.before) - set(rec.replaced()))
        record_property("figure", f"{len(rec.replaced())} pod(s) replaced, {kept} kept their UIDs")
        problems = verdicts.only_the_failed_pod_was_replaced(rec)
        assert not problems, "\n".join(f"  - {p}" for p in problems)
    finally:
        _set_restart_policy(kube, deployed, original, lws_release)
        leader = f"{deployed.expect.lws_name}-0"
        old = group_uids(kube, deployed.expect, 0).get(leader)
        kube.kubectl("delete", "pod", "-n", deployed.namespace, leader, "--wait=false")

        def leader_replaced() -> None:
            if group_uids(kube, deployed.expect, 0).get(leader) in (None, old):
                raise NotYet(f"{leader} not yet replaced")

        wait_for(
            leader_replaced, what=f"{leader} replaced", timeout=settings.timeouts.recovery, progress=progress
        )
        deploy.wait_ready(kube, deployment, settings.timeout_ready, progress)


def _secs(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f} s"
