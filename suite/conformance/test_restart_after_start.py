"""`restartPolicy: RecreateGroupAfterStart` (the run's manifest with that policy, one group, in a namespace of its
own): a crash recreates the started group, and does not while a pod of the group is Pending.

To hold a pod in Pending, the worker template gets a nodeSelector no node has (a rollout recreates the group with
it: the leader runs, the worker stays Pending, Unschedulable), then the leader's container is crashed. LWS reacts
to a container restart within a reconcile (about a second, on the testbed and on clusters alike); the group is
watched for OBSERVE_S after the restart was reported, and must keep every pod.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures import deploy, faults
from fixtures.kube import Kube
from fixtures.lifecycle import Deployed
from fixtures.recovery import group_uids
from fixtures.settings import Settings
from fixtures.variant_plugin import DeployVariant
from suite.conformance.checks import restart_after_start as checks
from suite.conformance.group_isolation import group_state
from suite.conformance.timeline import REVISION
from testbed.wait import NotYet, wait_for

pytestmark = pytest.mark.disruptive
OBSERVE_S = 10.0
NEVER = {"lws-vllm-suite.io/no-such-node": "true"}


def after_start_policy(lws: dict[str, Any]) -> None:
    lws["spec"]["replicas"] = 1
    lws["spec"]["leaderWorkerTemplate"]["restartPolicy"] = "RecreateGroupAfterStart"


@pytest.fixture(scope="module")
def after_start(deploy_variant: DeployVariant) -> Iterator[Deployed]:
    with deploy_variant("rgas", after_start_policy) as deployed:
        yield deployed


def _fail(check: Any, problems: list[str]) -> None:
    assert not problems, f"{check.__doc__}\n" + "\n".join(f"  - {p}" for p in problems)


@pytest.mark.feature("LWS-RESTART", "RecreateGroupAfterStart")
def test_a_crash_recreates_the_started_group(
    kube: Kube, after_start: Deployed, settings: Settings, progress: Any, record_property: Any
) -> None:
    expect = after_start.expect
    deployment = deploy.Deployment(
        after_start.namespace, expect.lws_name, expect.service_name, expect.size, 1
    )
    before = group_uids(kube, expect, 0)
    started = time.monotonic()
    faults.inject(kube, after_start.namespace, faults.target("crash-leader", expect.lws_name))

    def recreated() -> float:
        now = group_uids(kube, expect, 0)
        if set(now) != set(before) or any(now[n] == before[n] for n in before):
            raise NotYet(
                f"group 0 not yet recreated: {sorted(n for n in now if now[n] == before.get(n))} kept"
            )
        done, seen = deploy.observe(kube, deployment)
        if not done:
            raise NotYet(seen)
        return time.monotonic() - started

    took = wait_for(
        recreated, what="group 0 recreated", timeout=settings.timeouts.recovery, progress=progress
    )
    run = checks.GroupFault("crash-leader", before, group_uids(kube, expect, 0), (), None, took)
    record_property("figure", f"group recreated and ready {took:.1f} s after crash-leader")
    _fail(
        checks.a_started_group_is_recreated_after_a_fault,
        checks.a_started_group_is_recreated_after_a_fault(run),
    )


def _hold_a_worker_pending(kube: Kube, deployed: Deployed, settings: Settings, progress: Any) -> list[str]:
    """Roll the group onto a worker template no node accepts; return the Pending pods once the new leader runs."""
    expect = deployed.expect
    leader = f"{expect.lws_name}-0"
    old = ((kube.pod(deployed.namespace, leader) or {}).get("metadata") or {}).get("labels", {}).get(REVISION)
    patch = {"spec": {"leaderWorkerTemplate": {"workerTemplate": {"spec": {"nodeSelector": NEVER}}}}}
    kube.kubectl(
        "patch",
        "leaderworkerset",
        "-n",
        deployed.namespace,
        expect.lws_name,
        "--type=merge",
        "-p",
        json.dumps(patch),
    )

    def pending() -> list[str]:
        pods = {
            p["metadata"]["name"]: p
            for p in kube.pods(deployed.namespace)
            if not p["metadata"].get("deletionTimestamp")
        }
        lead = pods.get(leader)
        if lead is None or lead["metadata"]["labels"].get(REVISION) in (None, old):
            raise NotYet(f"{leader} not yet recreated with the new template")
        if (lead.get("status") or {}).get("phase") != "Running":
            raise NotYet(f"{leader} is {(lead.get('status') or {}).get('phase')}")
        stuck = sorted(
            n for n, p in pods.items() if n != leader and (p.get("status") or {}).get("phase") == "Pending"
        )
        if not stuck:
            raise NotYet(f"no worker Pending yet: {sorted(pods)}")
        return stuck

    return wait_for(
        pending, what="a worker held Pending", timeout=settings.timeouts.recovery, progress=progress
    )


@pytest.mark.feature("LWS-RESTART", "RecreateGroupAfterStart")
def test_a_crash_does_not_recreate_a_group_with_a_pending_pod(
    kube: Kube, after_start: Deployed, settings: Settings, progress: Any, record_property: Any
) -> None:
    expect = after_start.expect
    leader = f"{expect.lws_name}-0"
    stuck = _hold_a_worker_pending(kube, after_start, settings, progress)
    before = {n: uid for n, (uid, _) in group_state(kube, expect, 0).items()}
    restarts_before = group_state(kube, expect, 0)[leader][1]
    faults.inject(kube, after_start.namespace, faults.target("crash-leader", expect.lws_name))

    def restarted() -> float:
        uid, restarts = group_state(kube, expect, 0).get(leader, ("", 0))
        if uid == before[leader] and restarts <= restarts_before:
            raise NotYet(f"{leader}'s container restart not reported yet")
        return time.monotonic()

    since = wait_for(restarted, what=f"{leader} restart reported", timeout=settings.timeouts.recovery)

    def watched() -> dict[str, str]:
        now = {n: uid for n, (uid, _) in group_state(kube, expect, 0).items()}
        if any(now.get(n) != uid for n, uid in before.items()):
            return now  # recreated: the verdict says so
        if time.monotonic() - since < OBSERVE_S:
            raise NotYet(f"group kept its pods for {time.monotonic() - since:.1f} s")
        return now

    after = wait_for(
        watched, what=f"{OBSERVE_S:.0f} s of observation", timeout=OBSERVE_S + settings.timeouts.api
    )
    restarts = group_state(kube, expect, 0).get(leader, ("", 0))[1] - restarts_before
    run = checks.GroupFault("crash-leader", before, after, tuple(stuck), restarts, time.monotonic() - since)
    record_property(
        "figure", f"{stuck} Pending; leader restarted {restarts}x in place, group kept {OBSERVE_S:.0f} s"
    )
    _fail(
        checks.a_group_with_a_pending_pod_is_not_recreated,
        checks.a_group_with_a_pending_pod_is_not_recreated(run),
    )
