"""The lint's rules on what pods ask of nodes: GPU limits, fit on a node, enough nodes, and /dev/shm, each failing
on a manifest wrong in its way."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lint_testkit import (
    Broken,
    Objects,
    assert_rule_fires,
    broken_cases,
    leader,
    pod_spec,
    reference,
    run_lint,
    set_gpus,
    worker,
)

from manifests import NodeCapacity

BROKEN: list[Broken] = [
    # (id, how it is broken, code, severity, a phrase the message must hold)
    (
        "pod-bigger-than-node",
        set_gpus("16"),
        "gpu-exceeds-node",
        "error",
        "asks for 16 GPUs but a node has 8",
    ),
    (
        "gpu-requests-differ-from-limits",
        lambda o: leader(o)["resources"]["requests"].__setitem__("nvidia.com/gpu", "4"),
        "extended-resource-limits",
        "error",
        "requests 4 != limits 8",
    ),
    (
        "gpu-requests-without-limits",
        lambda o: leader(o)["resources"]["requests"].__setitem__(
            "nvidia.com/gpu", leader(o)["resources"]["limits"].pop("nvidia.com/gpu")
        ),
        "extended-resource-limits",
        "error",
        "without a limit",
    ),
    (
        "no-dev-shm-on-worker",
        lambda o: worker(o).pop("volumeMounts"),
        "shm-missing",
        "warning",
        "the worker has no /dev/shm volume",
    ),
    (
        "dev-shm-tiny",
        lambda o: pod_spec(o, "leader")["volumes"][0]["emptyDir"].__setitem__("sizeLimit", "64Mi"),
        "shm-small",
        "warning",
        "limited to 64Mi",
    ),
    (
        "dev-shm-on-disk",
        lambda o: pod_spec(o, "leader")["volumes"][0]["emptyDir"].pop("medium"),
        "shm-not-memory",
        "warning",
        "not an emptyDir with medium: Memory",
    ),
]


@pytest.mark.parametrize(("breakage", "code", "severity", "phrase"), broken_cases(BROKEN))
def test_each_rule_fails_on_a_manifest_wrong_in_its_way(
    breakage: Callable[[Objects], None], code: str, severity: str, phrase: str
) -> None:
    assert_rule_fires(breakage, code, severity, phrase)


def test_node_capacity_is_checked_when_given() -> None:
    assert run_lint(reference(), capacity=NodeCapacity(gpus_per_node=8, nodes=2)).findings == ()
    short = run_lint(reference(replicas=2), capacity=NodeCapacity(gpus_per_node=8, nodes=3))
    assert short.codes() == {"not-enough-nodes"}
    assert "need 4 nodes" in short.errors[0].message
    small_nodes = run_lint(reference(), capacity=NodeCapacity(gpus_per_node=4))
    assert small_nodes.codes() == {"gpu-exceeds-node"}
