"""Service routing: the leader Service reaches the leaders' vLLM API, and only the leaders."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fixtures.deployment_plugin import Deployed, Endpoint
from fixtures.settings import Settings
from fixtures.snapshot import Expectation, Snapshot
from suite.conformance.checks import service_routing as routing

pytestmark = pytest.mark.readonly


def _report(check, problems: list[str]) -> str:  # type: ignore[no-untyped-def]
    return f"{check.__doc__.strip()}\n" + "\n".join(f"  - {p}" for p in problems)


@pytest.mark.feature("VLLM-API", "ServiceRouting")
def test_service_endpoints_hold_exactly_the_ready_leaders(
    snapshot: Snapshot, deployed: Deployed, record_property: Any
) -> None:
    endpoints = [e for s in snapshot.endpoint_slices for e in s.endpoints if e.ready]
    record_property("figure", f"{len(endpoints)} ready endpoint(s) for {deployed.expect.replicas} leader(s)")
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


@pytest.mark.feature("VLLM-API", "OpenAIAPI")
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
    record_property: Any,
) -> None:
    started = time.perf_counter()
    problems = check(endpoint.url, api_expect, settings.timeouts.request)
    record_property("figure", f"answered in {time.perf_counter() - started:.2f} s through the Service")
    assert not problems, _report(check, problems)


@pytest.mark.parametrize(
    "check",
    [
        pytest.param(routing.health_answers_ok, marks=pytest.mark.feature("VLLM-API", "OpenAIAPI")),
        pytest.param(routing.metrics_expose_vllm_series, marks=pytest.mark.feature("VLLM-API", "Metrics")),
    ],
    ids=lambda check: check.__name__,
)
def test_operational_endpoints(check, endpoint: Endpoint, settings: Settings, record_property: Any) -> None:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    problems = check(endpoint.url, settings.timeouts.request)
    record_property("figure", f"answered in {time.perf_counter() - started:.2f} s through the Service")
    assert not problems, _report(check, problems)
