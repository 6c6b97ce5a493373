"""A wrong vLLM command in the leader passes every pod-level check and is caught where it shows: a TP x PP
other than the topology's in the log evidence, a served model name other than the manifest's model in
GET /v1/models (tests/suite/wrong_deployment_testkit.py says how the cases run)."""

from __future__ import annotations

import pytest
from wrong_deployment_testkit import (
    PP,
    REFERENCE,
    SERVICE,
    TIMEOUTS,
    TP,
    WrongDeployment,
    failing_checks,
    reference_objects,
    replace_in_leader_command,
)

from fixtures.service_forward import ServicePortForward
from suite.conformance.checks import service_routing

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("testbed-gpus")]


# log evidence ---------------------------------------------------------------------------------------------
def test_tp_in_the_command_not_matching_the_topology_fails_the_log_evidence(wrong: WrongDeployment) -> None:
    """The command says TP 16 x PP 1 (same 16 GPUs, so the group starts and serves): every pod-level check
    passes, and only the engine config seen in the logs gives it away."""
    objects = reference_objects()
    replace_in_leader_command(
        objects,
        "--tensor-parallel-size 8 --pipeline_parallel_size 2",
        "--tensor-parallel-size 16 --pipeline_parallel_size 1",
    )
    wrong.apply(objects)
    wrong.wait_ready(REFERENCE.info.size)
    wrong.wait_endpoints_converged()
    assert failing_checks(wrong.snapshot(), wrong.expect) == {}
    assert (TP, PP) == (8, 2)
    problems = wrong.evidence().problems(tp=TP, pp=PP, size=wrong.expect.size)
    assert problems == [
        "engine config tensor_parallel_size [16], expected 8",
        "engine config pipeline_parallel_size [1], expected 2",
    ], problems


# the API through the Service --------------------------------------------------------------------------------
def test_a_different_served_model_name_fails_the_models_check(wrong: WrongDeployment) -> None:
    """`--served-model-name llama-405b`: the server answers, under a name other than the manifest's model, so
    a client asking for the model by its name gets nothing."""
    objects = reference_objects()
    replace_in_leader_command(objects, "--port 8080", "--port 8080 --served-model-name llama-405b")
    wrong.apply(objects)
    wrong.wait_ready(REFERENCE.info.size)
    wrong.wait_endpoints_converged()
    assert failing_checks(wrong.snapshot(), wrong.expect) == {}
    forward = ServicePortForward(
        wrong.kube, wrong.ns.name, SERVICE, wrong.expect.forward_port, TIMEOUTS.port_forward
    )
    forward.start()
    try:
        problems = service_routing.models_lists_the_served_model(forward.url, wrong.expect, TIMEOUTS.request)
    finally:
        forward.stop()
    assert problems == [
        f"GET /v1/models lists ['llama-405b'], not the manifest's model {REFERENCE.info.model}"
    ]


def test_an_engine_answering_completions_without_usage_fails_only_the_completion_check(
    wrong: WrongDeployment,
) -> None:
    """The leader's command carries the simulator's `--break-answer completion` (an engine whose completions
    lack usage): it reaches the engine as any flag of the command does, the deployment serves, and through the
    Service exactly the completion check fails (each check's own failure, engine by engine:
    tests/testbed/engine/test_engine_broken_answers.py)."""
    objects = reference_objects()
    replace_in_leader_command(objects, "--port 8080", "--port 8080 --break-answer completion")
    wrong.apply(objects)
    wrong.wait_ready(REFERENCE.info.size)
    forward = ServicePortForward(
        wrong.kube, wrong.ns.name, SERVICE, wrong.expect.forward_port, TIMEOUTS.port_forward
    )
    forward.start()
    try:
        verdicts = {
            "completion": service_routing.completion_returns_tokens_and_usage(
                forward.url, wrong.expect, TIMEOUTS.request
            ),
            "streaming": service_routing.streaming_completion_ends_with_done_and_usage(
                forward.url, wrong.expect, TIMEOUTS.request
            ),
            "health": service_routing.health_answers_ok(forward.url, TIMEOUTS.request),
            "metrics": service_routing.metrics_expose_vllm_series(forward.url, TIMEOUTS.request),
        }
    finally:
        forward.stop()
    assert {name: problems for name, problems in verdicts.items() if problems} == {
        "completion": [
            "usage.completion_tokens=None, expected 8 (ignore_eos)",
            "usage.prompt_tokens missing or 0: {}",
        ]
    }
