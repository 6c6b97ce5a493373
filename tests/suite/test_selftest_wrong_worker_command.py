"""A worker whose own command does not reach its leader leaves the group unformed: every pod runs, LWS sees
nothing wrong, and the leader waits for a node that never joins, as with real vLLM. The log evidence says so
(VLLM-MULTINODE), for the Ray launch (a worker dialling another address) and the mp launch (a worker with a
rank the group does not expect). tests/suite/wrong_deployment_testkit.py says how the cases run."""

from __future__ import annotations

import pytest
from wrong_deployment_testkit import (
    LWS,
    PP,
    REFERENCE,
    SERVICE,
    TP,
    WrongDeployment,
    reference_objects,
    replace_in_worker_command,
)

from fixtures import deploy
from manifests.render import Overrides, render

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("testbed-gpus")]


def _never_ready(wrong: WrongDeployment) -> None:
    ready, seen = deploy.observe(
        wrong.kube, deploy.Deployment(wrong.ns.name, LWS, SERVICE, REFERENCE.info.size, 1)
    )
    assert not ready, f"a group whose worker never joined became ready: {seen}"


def test_a_ray_worker_dialling_another_master_address_fails_the_log_evidence(wrong: WrongDeployment) -> None:
    """`--ray_address=` names a host that is not the leader: the worker's Ray node never joins the leader's
    head, which waits for 2 nodes with 1, then vLLM waits for a placement group it cannot have."""
    objects = reference_objects()
    replace_in_worker_command(objects, "--ray_address=$(LWS_LEADER_ADDRESS)", "--ray_address=vllm-9.vllm")
    wrong.apply(objects)
    evidence = wrong.wait_starved()
    _never_ready(wrong)
    problems = evidence.problems(tp=TP, pp=PP, size=REFERENCE.info.size)
    assert "no server-start line (Application startup complete / Starting vLLM API server)" in problems
    assert any(p.startswith("the Ray cluster never reported all 2 nodes active") for p in problems), problems
    assert any("waits for nodes or GPUs the group does not have" in p for p in problems), problems


def test_an_mp_worker_with_a_rank_the_group_does_not_expect_fails_the_log_evidence(
    wrong: WrongDeployment,
) -> None:
    """vLLM's mp launch with the worker's `--node-rank 0` (the leader's own rank): it never joins as node 1,
    and the leader's store waits for the clients of the missing node until it gives up."""
    objects = render(REFERENCE.topology or "tp8-pp2", Overrides(profile="mp"))
    replace_in_worker_command(objects, "--node-rank $(LWS_WORKER_INDEX)", "--node-rank 0")
    wrong.apply(objects)
    evidence = wrong.wait_startup_failed()
    _never_ready(wrong)
    problems = evidence.problems(tp=TP, pp=PP, size=REFERENCE.info.size)
    assert "no server-start line (Application startup complete / Starting vLLM API server)" in problems
    assert any("waiting for clients. 8/16 clients joined" in p for p in problems), problems
