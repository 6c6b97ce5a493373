"""`restartPolicy: RecreateGroupAfterStart` (the run's manifest with that policy, one group, in a namespace of its
own): a crash recreates the started group, and does not while a pod of the group is Pending.

How a pod is held Pending and the group watched: suite/conformance/pending_group.py.
"""

from __future__ import annotations

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
from plumbing.wait import NotYet, wait_for
from suite.conformance import pending_group
from suite.conformance.checks import restart_after_start as checks

pytestmark = pytest.mark.disruptive


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


@pytest.mark.feature("LWS-RESTART", "RecreateGroupAfterStart")
def test_a_crash_does_not_recreate_a_group_with_a_pending_pod(
    kube: Kube, after_start: Deployed, settings: Settings, progress: Any, record_property: Any
) -> None:
    run = pending_group.crash_with_a_pending_worker(kube, after_start, settings, progress)
    record_property(
        "figure",
        f"{list(run.pending)} Pending; leader restarted {run.leader_restarts}x in place, group kept "
        f"{pending_group.OBSERVE_S:.0f} s",
    )
    _fail(
        checks.a_group_with_a_pending_pod_is_not_recreated,
        checks.a_group_with_a_pending_pod_is_not_recreated(run),
    )
