"""Pod roles: each LWS group has the pods, labels, annotations, env, placement, GPUs and owners LWS promises.

Each case runs one check from suite/conformance/checks/pod_roles.py; its docstring states the MUST."""

from __future__ import annotations

import pytest

from fixtures.deployment_plugin import Deployed
from fixtures.snapshot import Snapshot
from suite.conformance.checks import pod_roles

pytestmark = pytest.mark.readonly


@pytest.mark.parametrize("check", pod_roles.CHECKS, ids=lambda check: check.__name__)
def test_pod_roles(check, snapshot: Snapshot, deployed: Deployed) -> None:  # type: ignore[no-untyped-def]
    problems = check(snapshot, deployed.expect)
    assert not problems, f"{check.__doc__.strip()}\n" + "\n".join(f"  - {p}" for p in problems)
