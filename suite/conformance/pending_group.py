"""Hold a worker of a one-group LWS in Pending, crash the leader's container, and watch whether LWS recreates the
group: what RecreateGroupAfterStart must not do while a pod of the group has not started.

The worker template gets a nodeSelector no node has (a rollout recreates the group with it: the leader runs, the
worker stays Pending, Unschedulable). LWS reacts to a container restart within a reconcile (about a second, on
the testbed and on clusters alike); the group is watched for OBSERVE_S after the restart was reported.
"""

from __future__ import annotations

import time
from typing import Any

from fixtures import faults, lifecycle
from fixtures.kube import Kube
from fixtures.lifecycle import Deployed
from fixtures.settings import Settings
from plumbing.wait import NotYet, wait_for
from suite.conformance.checks.restart_after_start import GroupFault
from suite.conformance.group_isolation import group_state
from suite.conformance.timeline import REVISION

OBSERVE_S = 10.0
NEVER = {"lws-vllm-suite.io/no-such-node": "true"}


def hold_a_worker_pending(kube: Kube, deployed: Deployed, settings: Settings, progress: Any) -> list[str]:
    """Roll the group onto a worker template no node accepts; return the Pending pods once the new leader runs."""
    expect = deployed.expect
    leader = f"{expect.lws_name}-0"
    old = ((kube.pod(deployed.namespace, leader) or {}).get("metadata") or {}).get("labels", {}).get(REVISION)
    patch = {"spec": {"leaderWorkerTemplate": {"workerTemplate": {"spec": {"nodeSelector": NEVER}}}}}
    lifecycle.patch_lws(kube, deployed, patch)

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


def crash_with_a_pending_worker(
    kube: Kube, deployed: Deployed, settings: Settings, progress: Any
) -> GroupFault:
    """Hold a worker Pending, crash the leader, and watch group 0 for OBSERVE_S after the restart is reported."""
    expect = deployed.expect
    leader = f"{expect.lws_name}-0"
    stuck = hold_a_worker_pending(kube, deployed, settings, progress)
    before = {n: uid for n, (uid, _) in group_state(kube, expect, 0).items()}
    restarts_before = group_state(kube, expect, 0)[leader][1]
    faults.inject(kube, deployed.namespace, faults.target("crash-leader", expect.lws_name))

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
    uid, restarts_now = group_state(kube, expect, 0).get(leader, ("", 0))
    # the leader's restarts in place; None when it was replaced (LWS deleted it: a recreation, judged as such)
    restarts = restarts_now - restarts_before if uid == before[leader] else None
    run = GroupFault("crash-leader", before, after, tuple(stuck), restarts, time.monotonic() - since)
    return run
