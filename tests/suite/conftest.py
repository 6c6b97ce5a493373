"""Fixtures shared by the e2e self-tests on the testbed (test_selftest_*.py): a Kube client of the testbed and,
per case, a deliberately wrong deployment in a namespace of its own (wrong_deployment_testkit.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wrong_deployment_testkit import TIMEOUTS, WrongDeployment

from fixtures.kube import ClusterTarget, Kube, connect
from testbed.cluster import TestbedInfo


@pytest.fixture(scope="module")
def kube(testbed: TestbedInfo) -> Kube:
    """The testbed's API server, in place of the suite's `kube` fixture (which reads the run's options)."""
    return connect(ClusterTarget(testbed.kubeconfig, None, False, testbed.kubectl), TIMEOUTS.api)


@pytest.fixture
def wrong(kube: Kube, request: pytest.FixtureRequest) -> Iterator[WrongDeployment]:
    """A wrong deployment named for the test, deleted (and its pods gone) after it."""
    deployment = WrongDeployment(
        kube, request.node.name.removeprefix("test_")[:24].replace("_", "-").rstrip("-")
    )
    yield deployment
    deployment.delete()
