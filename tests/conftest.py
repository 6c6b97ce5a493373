"""The suite's own tests share one embedded testbed per run, and it has GPUs for one reference group at a time:
every test that uses it is put in one pytest-xdist group (for `--dist loadgroup`). `nox -s tests` runs serially.

A deployment on the embedded default adds the simulated nodes it needs (two groups, a rollout's surge group),
and the testbed never removes nodes on its own. Tests that judge scheduling on the shared testbed expect its
first two nodes only, so after each test that used it, the nodes an earlier test added are removed again
(those with no pod bound to them; a test's leftovers would show up as its own failure)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from testbed.cluster import TestbedInfo
from testbed.nodes import kubectl_runner, node_names

BASE_NODES = 2  # what the testbed starts with (testbed/cluster.py)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "testbed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("testbed-gpus"))


def remove_added_nodes(info: TestbedInfo) -> list[str]:
    """Delete the simulated nodes beyond the testbed's first BASE_NODES that no pod is bound to; their names."""
    kubectl = kubectl_runner(info.kubectl, info.kubeconfig)
    nodes = [n["metadata"]["name"] for n in json.loads(kubectl("get", "nodes", "-o", "json"))["items"]]
    pods = json.loads(kubectl("get", "pods", "--all-namespaces", "-o", "json"))["items"]
    busy = {p["spec"].get("nodeName") for p in pods}
    extra = [n for n in nodes if n not in node_names(BASE_NODES) and n not in busy]
    if extra:
        kubectl("delete", "node", *extra, "--wait=false")
    return extra


@pytest.fixture(autouse=True)
def _shared_testbed_back_to_its_nodes(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "testbed" in request.fixturenames:
        remove_added_nodes(request.getfixturevalue("testbed"))
