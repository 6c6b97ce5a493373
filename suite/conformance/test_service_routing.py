"""Service routing: the leader Service reaches the leaders' vLLM API, and only the leaders."""

from __future__ import annotations

import pytest

from fixtures.deployment_plugin import Deployed, Endpoint
from fixtures.settings import Settings
from fixtures.snapshot import Expectation, Snapshot
from suite.conformance.checks import service_routing as routing

pytestmark = pytest.mark.readonly


def _report(check, problems: list[str]) -> str:  # type: ignore[no-untyped-def]
    return f"{check.__doc__.strip()}\n" + "\n".join(f"  - {p}" for p in problems)


def test_service_endpoints_hold_exactly_the_ready_leaders(snapshot: Snapshot, deployed: Deployed) -> None:
    problems = routing.service_endpoints_hold_exactly_the_ready_leaders(snapshot, deployed.expect)
    assert not problems, _report(routing.service_endpoints_hold_exactly_the_ready_leaders, problems)


def _expect_model(endpoint: Endpoint, plan_expect: Expectation | None) -> Expectation:
    if plan_expect is not None:
        return plan_expect
    return Expectation("", "", 1, 1, None, None, 0, endpoint.model, 8080, None, {}, None)


@pytest.fixture(scope="module")
def api_expect(request: pytest.FixtureRequest, endpoint: Endpoint, settings: Settings) -> Expectation:
    deployed = request.getfixturevalue("deployed") if settings.deploys else None
    return _expect_model(endpoint, deployed.expect if deployed else None)


@pytest.mark.parametrize(
    "check",
    [
        routing.models_lists_the_served_model,
        routing.completion_returns_tokens_and_usage,
        routing.streaming_completion_ends_with_done_and_usage,
    ],
    ids=lambda check: check.__name__,
)
def test_api_through_the_service(
    check,
    endpoint: Endpoint,
    api_expect: Expectation,  # type: ignore[no-untyped-def]
    settings: Settings,
) -> None:
    problems = check(endpoint.url, api_expect, settings.timeouts.request)
    assert not problems, _report(check, problems)


@pytest.mark.parametrize(
    "check", [routing.health_answers_ok, routing.metrics_expose_vllm_series], ids=lambda check: check.__name__
)
def test_operational_endpoints(check, endpoint: Endpoint, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    problems = check(endpoint.url, settings.timeouts.request)
    assert not problems, _report(check, problems)
