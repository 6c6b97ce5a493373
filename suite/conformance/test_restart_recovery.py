"""Restart-group recovery: inject each fault into the run's own deployment, prove the whole group is recreated,
and measure how long serving is down, with a steady load running through the fault.

Disruptive: these run after every read-only check of the run has finished, and never beside one
(fixtures/deployment_plugin.py), and only on the suite's own deployment (never with --endpoint).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from fixtures import deploy, faults, lifecycle
from fixtures.deployment_plugin import Deployed, Endpoint
from fixtures.kube import Kube
from fixtures.recovery import (
    Recovery,
    all_group_uids,
    event_occurrences,
    group_restart_counts,
    group_uids,
    observe,
)
from fixtures.run_state import RunState
from fixtures.settings import Settings
from plumbing.wait import NotYet, wait_for
from reports.schema import RecoveryMeasurement
from suite.conformance.checks import recovery as verdicts
from suite.conformance.steady_load import SteadyLoad

pytestmark = pytest.mark.disruptive


def _completion_ok(url: str, model: str | None, timeout: float) -> bool:
    import urllib.error
    import urllib.request

    body = json.dumps({"model": model, "prompt": "ping", "max_tokens": 2, "ignore_eos": True}).encode()
    request = urllib.request.Request(
        f"{url}/v1/completions", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status == 200 and bool(json.loads(resp.read()).get("choices"))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def run_fault(
    kube: Kube,
    deployed: Deployed,
    endpoint: Endpoint,
    settings: Settings,
    fault_name: str,
    progress: Any,
    *,
    restart_policy: str | None = None,
    need_serving: bool = True,
) -> tuple[Recovery, Any]:
    expect = deployed.expect
    fault = faults.target(fault_name, expect.lws_name)  # type: ignore[arg-type]
    groups = all_group_uids(kube, expect)
    rec = Recovery(
        fault,
        restart_policy or expect.restart_policy or "RecreateGroupOnPodRestart",
        groups[0],
        {g: u for g, u in groups.items() if g != 0},
        restart_counts_before=group_restart_counts(kube, expect, 0),
        events_before=event_occurrences(kube, expect.namespace),
    )
    load = SteadyLoad(endpoint.url, expect.model or "", rate_per_s=5.0).start()
    started = time.monotonic()
    progress(f"injecting {fault.name} on {fault.pod}")
    try:
        faults.inject(kube, deployed.namespace, fault)  # FaultRefused skips the test (fault_refusal_plugin)
        observe(
            kube,
            expect,
            rec,
            group=0,
            started=started,
            timeout=settings.timeouts.recovery,
            probe=lambda: _completion_ok(endpoint.url, expect.model, 10),
            progress=progress,
            need_serving=need_serving,
        )
    finally:
        tally = load.stop()
    return rec, tally


def _record(run_state: RunState, rec: Recovery, tally: Any) -> None:
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
    )
    run_state.append_line("recovery", measurement.model_dump_json())


def _figure(rec: Recovery, tally: Any) -> str:
    """The summary's key figure: how long serving took to come back, and the requests lost meanwhile."""
    back = (
        f"serving again after {rec.first_success_s:.1f} s"
        if rec.first_success_s is not None
        else "not serving again"
    )
    return f"{back}, {tally.failed}/{tally.sent} requests failed"


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
    rec, tally = run_fault(kube, deployed, endpoint, settings, fault_name, progress)
    _record(run_state, rec, tally)
    record_property("figure", _figure(rec, tally))
    progress(
        f"{fault_name}: pods replaced {_secs(rec.pods_replaced_s)}, Available {_secs(rec.available_s)}, "
        f"first success {_secs(rec.first_success_s)}; {tally.failed}/{tally.sent} requests failed during the fault"
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
    )
    assert not problems, "\n".join(f"  - {p}" for p in problems)


def _set_restart_policy(kube: Kube, deployed: Deployed, policy: str) -> None:
    lifecycle.patch_lws(kube, deployed, {"spec": {"leaderWorkerTemplate": {"restartPolicy": policy}}})


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
    _set_restart_policy(kube, deployed, "None")
    try:
        deploy.wait_ready(kube, deployment, settings.timeout_ready, progress)
        rec, tally = run_fault(
            kube,
            deployed,
            endpoint,
            settings,
            fault_name,
            progress,
            restart_policy="None",
            need_serving=False,
        )
        _record(run_state, rec, tally)
        kept = len(set(rec.before) - set(rec.replaced()))
        record_property("figure", f"{len(rec.replaced())} pod(s) replaced, {kept} kept their UIDs")
        problems = verdicts.only_the_failed_pod_was_replaced(rec)
        assert not problems, "\n".join(f"  - {p}" for p in problems)
    finally:
        _set_restart_policy(kube, deployed, original)
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
