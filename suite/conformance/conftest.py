"""Shared fixtures of the read-only conformance checks: one snapshot of the deployment per module."""

from __future__ import annotations

import pytest

from fixtures.deployment_plugin import Deployed
from fixtures.kube import Kube
from fixtures.snapshot import Snapshot, take


@pytest.fixture(scope="module")
def snapshot(kube: Kube, deployed: Deployed) -> Snapshot:
    return take(kube, deployed.expect)
