"""`startupPolicy: LeaderReady` (the run's manifest with that policy and without the leader's readiness probe,
in a namespace of its own; checks/startup.py `leader_ready_variant` says why the probe goes): the worker
StatefulSet is created only after the leader pod is Ready, judged on the order of the API's writes, watched
from before the LWS is applied (suite/conformance/api_order.py).
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
from suite.conformance.api_order import ApiEvent, ApiWatch
from suite.conformance.checks import startup

pytestmark = pytest.mark.disruptive
LABEL = "lready"


@pytest.fixture(scope="module")
def leader_ready_start(
    deploy_variant: DeployVariant, kube: Kube, plan: Plan, run_state: RunState
) -> Iterator[tuple[Deployed, list[ApiEvent], list[str]]]:
    watched = ApiWatch(kube, variant_namespace(run_state, LABEL), plan.info.lws_name).start()
    try:
        with deploy_variant(LABEL, startup.leader_ready_variant) as deployed:
            yield deployed, watched.stop(), list(watched.problems)
    finally:
        watched.stop()


@pytest.mark.feature("LWS-CORE", "StartupPolicyLeaderReady")
def test_the_worker_statefulset_appears_only_after_the_leader_is_ready(
    leader_ready_start: tuple[Deployed, list[ApiEvent], list[str]], record_property: Any
) -> None:
    deployed, events, watch_problems = leader_ready_start
    expect = deployed.expect
    record_property("figure", startup.figure(events, expect.lws_name))
    problems = startup.workers_start_only_after_the_leader_is_ready(
        events, expect.lws_name, expect.replicas, watch_problems
    )
    assert not problems, f"{startup.workers_start_only_after_the_leader_is_ready.__doc__}\n" + "\n".join(
        f"  - {p}" for p in problems
    )
