"""`restartPolicy: RecreateGroupAfterStart` (the run's manifest with that policy, one group, in a namespace of its
own): a crash recreates the started group, and does not while a pod of the group is Pending.

How a pod is held Pending and the group watched: suite/conformance/pending_group.py.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures import deploy, faults
from fixtures.kube import Kube
from fixtures.lifecycle import Deployed
from fixtures.lws_release import RECREATE_AFTER_START_ANNOTATION, LwsRelease
from fixtures.recovery import group_uids
from fixtures.settings import Settings
from fixtures.variant_plugin import DeployVariant
from plumbing.wait import NotYet, wait_for
from reports.conformance_report import Support
from suite.conformance import pending_group
from suite.conformance.checks import restart_after_start as checks

pytestmark = pytest.mark.disruptive


def after_start_policy(lws: dict[str, Any], form: str | None = "restartPolicy") -> None:
    """RecreateGroupAfterStart in the release's own form (fixtures/lws_release.py): the restartPolicy value
    (LWS v0.9.0 on), or v0.8's annotation beside restartPolicy RecreateGroupOnPodRestart."""
    lws["spec"]["replicas"] = 1
    if form == "annotation":
        lws["spec"]["leaderWorkerTemplate"]["restartPolicy"] = "RecreateGroupOnPodRestart"
        annotations = lws["metadata"].setdefault("annotations", {})
        annotations[RECREATE_AFTER_START_ANNOTATION] = "true"
    else:
        lws["spec"]["leaderWorkerTemplate"]["restartPolicy"] = "RecreateGroupAfterStart"


@pytest.fixture(scope="module")
def after_start(
    deploy_variant: DeployVariant, lws_release: LwsRelease, feature_support: Support
) -> Iterator[Deployed]:
    # A module fixture is set up before the function-scoped feature gate (fixtures/conformance_plugin.py) could
    # skip the test: on a release without the feature (v0.7.0) the variant would be refused by the API server.
    if "RecreateGroupAfterStart" not in feature_support.supported:
        why = feature_support.reasons.get("RecreateGroupAfterStart", "")
        pytest.skip(f"unsupported feature LWS-RESTART/RecreateGroupAfterStart: {why}")
    form = lws_release.recreate_after_start
    with deploy_variant("rgas", functools.partial(after_start_policy, form=form)) as deployed:
        yield deployed


def _form(release: LwsRelease) -> str:
    if release.recreate_after_start == "annotation":
        return f"LWS {release.version}: the annotation form, {RECREATE_AFTER_START_ANNOTATION}"
    return f"LWS {release.version or 'version unknown'}: restartPolicy RecreateGroupAfterStart"


def _fail(check: Any, problems: list[str]) -> None:
    assert not problems, f"{check.__doc__}\n" + "\n".join(f"  - {p}" for p in problems)


@pytest.mark.feature("LWS-RESTART", "RecreateGroupAfterStart")
def test_a_crash_recreates_the_started_group(
    kube: Kube,
    after_start: Deployed,
    settings: Settings,
    progress: Any,
    record_property: Any,
    lws_release: LwsRelease,
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
    record_property(
        "figure",
        f"group recreated and ready {took:.1f} s after crash-leader ({_form(lws_release)})",
    )
    _fail(
        checks.a_started_group_is_recreated_after_a_fault,
        checks.a_started_group_is_recreated_after_a_fault(run),
    )


@pytest.mark.feature("LWS-RESTART", "RecreateGroupAfterStart")
def test_a_crash_does_not_recreate_a_group_with_a_pending_pod(
    kube: Kube,
    after_start: Deployed,
    settings: Settings,
    progress: Any,
    record_property: Any,
    lws_release: LwsRelease,
) -> None:
    run = pending_group.crash_with_a_pending_worker(kube, after_start, settings, progress)
    record_property(
        "figure",
        f"{list(run.pending)} Pending; leader restarted {run.leader_restarts}x in place, group kept "
        f"{pending_group.OBSERVE_S:.0f} s ({_form(lws_release)})",
    )
    _fail(
        checks.a_group_with_a_pending_pod_is_not_recreated,
        checks.a_group_with_a_pending_pod_is_not_recreated(run),
    )
