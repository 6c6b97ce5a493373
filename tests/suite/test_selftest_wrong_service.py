"""A wrong leader Service fails the Service endpoint check, naming the defect, and only that check: the
reference deployment, correct, with its Service replaced by one that selects every pod, the worker only, or
targets vLLM's default port (tests/suite/wrong_deployment_testkit.py says how the cases run)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from wrong_deployment_testkit import (
    LEADER,
    LWS,
    REFERENCE,
    WORKER,
    P,
    WrongDeployment,
    assert_fails_exactly,
    failing_checks,
    reference_objects,
    service_of,
)

from fixtures.kube import Kube

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("testbed-gpus")]


# Service routing ------------------------------------------------------------------------------------------
@pytest.fixture(scope="class")
def reference_group(kube: Kube) -> Iterator[WrongDeployment]:
    """The reference deployment, correct; each case of the class replaces only its Service. Class-scoped, so
    its GPUs are free again before the cases after the class deploy."""
    deployment = WrongDeployment(kube, "service")
    try:
        deployment.apply(reference_objects())
        deployment.wait_ready(REFERENCE.info.size)
        deployment.wait_endpoints_converged()
        assert failing_checks(deployment.snapshot(), deployment.expect) == {}, "the reference itself fails"
        yield deployment
    finally:
        deployment.delete()


def _select_every_pod(svc: dict[str, Any]) -> None:
    svc["spec"]["selector"] = {P + "name": LWS}


def _select_the_worker(svc: dict[str, Any]) -> None:
    svc["spec"]["selector"] = {P + "name": LWS, P + "worker-index": "1"}


def _target_vllm_default_port(svc: dict[str, Any]) -> None:
    svc["spec"]["ports"][0]["targetPort"] = 8000  # vllm serve's default port, not the manifest's --port 8080


class TestAWrongServiceFailsTheServiceEndpointCheck:
    @pytest.mark.parametrize(
        ("change", "phrases"),
        [
            pytest.param(
                _select_every_pod,
                [f"routes to non-leader pods ['{WORKER}']", "must select leaders only"],
                id="selector-without-role-selects-every-pod",
            ),
            pytest.param(
                _select_the_worker,
                [
                    f"routes to non-leader pods ['{WORKER}']",
                    f"has no ready endpoint for leader(s) ['{LEADER}']",
                ],
                id="selector-selects-the-worker-only",
            ),
            pytest.param(
                _target_vllm_default_port, ["endpoint ports [8000], expected [8080]"], id="target-port-8000"
            ),
        ],
    )
    def test_the_service_endpoint_check_names_the_defect(
        self, change: Callable[[dict[str, Any]], None], phrases: list[str], reference_group: WrongDeployment
    ) -> None:
        objects = reference_objects()
        change(service_of(objects))
        reference_group.apply([service_of(objects)])
        try:
            reference_group.wait_endpoints_converged()
            failing = failing_checks(reference_group.snapshot(), reference_group.expect)
            assert_fails_exactly(failing, {"service_endpoints_hold_exactly_the_ready_leaders": phrases})
        finally:
            reference_group.apply([service_of(reference_objects())])
            reference_group.wait_endpoints_converged()
