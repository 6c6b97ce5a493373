"""`startupPolicy: LeaderReady` (the run's manifest with that policy, in a namespace of its own): the worker
StatefulSet appears only after the leader pod is Ready, judged on a timeline sampled from the moment the LWS is
applied (suite/conformance/timeline.py).

The variant also drops the leader's readiness probe. vLLM's leader opens its port (what the reference's
tcpSocket probe tests) only once every rank of the group has joined, so with the probe a LeaderReady group would
wait for a worker that LWS creates only after the leader is Ready: it never starts, on a cluster as on the
testbed. Without a probe the leader is Ready when its container runs, which is what LeaderReady orders against.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fixtures.kube import Kube
from fixtures.lifecycle import Deployed
from fixtures.plan import Plan
from fixtures.run_state import RunState
from fixtures.variant_plugin import DeployVariant, variant_namespace
from fixtures.variants import template
from suite.conformance.checks import startup
from suite.conformance.timeline import Sample, Timeline

pytestmark = pytest.mark.disruptive
LABEL = "lready"


def leader_ready_policy(lws: dict[str, Any]) -> None:
    lws["spec"]["startupPolicy"] = "LeaderReady"
    for container in template(lws, "leader")["spec"]["containers"]:
        container.pop("readinessProbe", None)


@pytest.fixture(scope="module")
def leader_ready_start(
    deploy_variant: DeployVariant, kube: Kube, plan: Plan, run_state: RunState
) -> Iterator[tuple[Deployed, list[Sample]]]:
    timeline = Timeline(kube, variant_namespace(run_state, LABEL), plan.info.lws_name).start()
    try:
        with deploy_variant(LABEL, leader_ready_policy) as deployed:
            yield deployed, timeline.stop()
    finally:
        timeline.stop()


@pytest.mark.feature("LWS-CORE", "StartupPolicyLeaderReady")
def test_the_worker_statefulset_appears_only_after_the_leader_is_ready(
    leader_ready_start: tuple[Deployed, list[Sample]], record_property: Any
) -> None:
    deployed, samples = leader_ready_start
    expect = deployed.expect
    record_property("figure", startup.figure(samples, expect.lws_name))
    problems = startup.workers_start_only_after_the_leader_is_ready(samples, expect.lws_name, expect.replicas)
    assert not problems, f"{startup.workers_start_only_after_the_leader_is_ready.__doc__}\n" + "\n".join(
        f"  - {p}" for p in problems
    )
