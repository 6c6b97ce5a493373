"""Each VLLM-API check fails on an engine wrong in exactly its way, and only that check: the simulator's
`--break-answer` answers one route wrongly (a completion without usage, a stream without `[DONE]`, /health 503,
/metrics without vLLM's series) while serving the rest, and the suite's own check functions
(suite/conformance/checks/service_routing.py) judge it over HTTP on 127.0.0.1. That the flag reaches the engine
from a leader pod's command is shown on the testbed (tests/suite/test_selftest_wrong_engine_command.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest
from engine_testkit import run, serving

from fixtures.plan import make_plan
from fixtures.settings import Settings
from suite.conformance.checks import service_routing as routing

MODEL = "facebook/opt-125m"  # a model one simulated GPU holds, so requests are served at once
EXPECT = replace(make_plan(Settings()).expectation("selftest"), model=MODEL)
FAST = (MODEL, "--time-scale", "0")
TIMEOUT_S = 30.0

CHECKS: dict[str, Callable[[str], list[str]]] = {
    "completion": lambda url: routing.completion_returns_tokens_and_usage(url, EXPECT, TIMEOUT_S),
    "streaming": lambda url: routing.streaming_completion_ends_with_done_and_usage(url, EXPECT, TIMEOUT_S),
    "health": lambda url: routing.health_answers_ok(url, TIMEOUT_S),
    "metrics": lambda url: routing.metrics_expose_vllm_series(url, TIMEOUT_S),
}


async def _verdicts(*flags: str) -> dict[str, list[str]]:
    async with serving(*FAST, *flags) as (client, _server):
        url = str(client.make_url("")).rstrip("/")
        # the checks are blocking HTTP clients: run them beside the event loop that serves them
        return {name: await asyncio.to_thread(check, url) for name, check in CHECKS.items()}


def test_an_engine_answering_every_route_rightly_passes_all_four_checks() -> None:
    assert run(_verdicts()) == {name: [] for name in CHECKS}


@pytest.mark.parametrize(
    ("broken", "phrase"),
    [
        ("completion", "usage.completion_tokens=None, expected 8 (ignore_eos)"),
        ("streaming", "stream did not end with data: [DONE]"),
        ("health", "GET /health answered 503"),
        ("metrics", "/metrics lacks ['vllm:num_requests_running'"),
    ],
)
def test_an_engine_wrong_in_one_answer_fails_exactly_that_check(broken: str, phrase: str) -> None:
    verdicts = run(_verdicts("--break-answer", broken))
    failing = {name: problems for name, problems in verdicts.items() if problems}
    assert list(failing) == [broken], failing
    assert any(phrase in problem for problem in failing[broken]), failing[broken]
