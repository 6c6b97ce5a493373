"""Pod roles: each LWS group has the pods, labels, annotations, env, placement, GPUs and owners LWS promises.

Each case runs one check from suite/conformance/checks/pod_roles.py; its docstring states the MUST."""

from __future__ import annotations

import pytest

from fixtures.deployment_plugin import Deployed
from fixtures.snapshot import Snapshot
from suite.conformance.checks import pod_roles

pytestmark = pytest.mark.readonly

# The LWS-CORE feature each check verifies (reports/conformance_profiles.py).
FEATURES = {
    pod_roles.pods_are_named_by_group_and_worker_index: "PodNaming",
    pod_roles.leader_and_worker_labels_identify_their_group: "PodRoles",
    pod_roles.size_and_leader_name_annotations_are_set: "PodRoles",
    pod_roles.lws_environment_is_injected_first_with_exact_values: "GroupEnvironment",
    pod_roles.leader_and_workers_run_on_different_nodes: "Placement",
    pod_roles.pods_request_and_limit_their_gpus: "Placement",
    pod_roles.worker_statefulsets_are_owned_by_their_leader_pod: "PodRoles",
    pod_roles.lws_reports_available_with_all_replicas_ready: "AvailableCondition",
}


@pytest.mark.parametrize(
    "check",
    [
        pytest.param(  # a check missing from FEATURES has no marker: the run stops at collection, naming it
            check,
            marks=[pytest.mark.feature("LWS-CORE", FEATURES[check])] if check in FEATURES else [],
            id=check.__name__,
        )
        for check in pod_roles.CHECKS
    ],
)
def test_pod_roles(check, snapshot: Snapshot, deployed: Deployed, record_property) -> None:  # type: ignore[no-untyped-def]
    nodes = {pod.node for pod in snapshot.pods} - {None}
    record_property("figure", f"{len(snapshot.pods)} pods on {len(nodes)} nodes")
    problems = check(snapshot, deployed.expect)
    assert not problems, f"{check.__doc__.strip()}\n" + "\n".join(f"  - {p}" for p in problems)
