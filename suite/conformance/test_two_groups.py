"""Two LWS groups (the run's manifest with replicas: 2, in a namespace of its own): the Service spreads over
both leaders, and a fault in group 1 leaves group 0's pods and serving untouched.

The run's main deployment has one group (the reference), where "other groups are untouched" cannot fail; this
module deploys the two-group variant itself (fixtures/variant_plugin.py) and deletes it at the end. With a
manifest that already has two or more replicas, the variant keeps its count.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures import faults, variants
from fixtures.cluster_views import EndpointSliceView
from fixtures.kube import Kube
from fixtures.lifecycle import Deployed
from fixtures.plan import Plan
from fixtures.settings import Settings
from fixtures.variant_plugin import DeployVariant
from plumbing.wait import NotYet, WaitTimeout, wait_for
from suite.conformance import group_isolation
from suite.conformance.checks import multi_group

pytestmark = pytest.mark.disruptive


@pytest.fixture(scope="module")
def two_groups(deploy_variant: DeployVariant, plan: Plan) -> Iterator[Deployed]:
    with deploy_variant("r2", variants.with_replicas(max(2, plan.info.replicas))) as deployed:
        yield deployed


@pytest.mark.feature("LWS-CORE", "MultiGroupServiceSpread")
def test_the_service_spreads_over_both_leaders(
    kube: Kube, two_groups: Deployed, settings: Settings, record_property: Any
) -> None:
    expect = two_groups.expect
    if expect.service_name is None:
        pytest.fail(
            "the manifest has no Service in front of the leaders; add one (see manifests/reference/lws.yaml)"
        )

    def spread() -> None:
        slices = kube.endpoint_slices(two_groups.namespace, expect.service_name or "")
        problems = multi_group.service_spreads_over_every_leader(
            [EndpointSliceView.from_json(s) for s in slices], expect
        )
        if problems:
            raise NotYet("; ".join(problems))

    # The EndpointSlice controller follows pod readiness a moment later, on any cluster: a leader that has just
    # turned Ready may not be listed yet. The MUST is that it is listed within the endpoints timeout.
    started = time.monotonic()
    try:
        wait_for(
            spread,
            what=f"svc/{expect.service_name} to list every leader",
            timeout=settings.timeouts.endpoints,
        )
    except WaitTimeout as exc:
        pytest.fail(f"{multi_group.service_spreads_over_every_leader.__doc__}\n  - {exc}")
    waited = time.monotonic() - started
    record_property(
        "figure", f"svc/{expect.service_name} over {expect.replicas} leaders after {waited:.1f} s"
    )


@pytest.mark.feature("LWS-RESTART", "GroupIsolation")
@pytest.mark.parametrize("fault_name", ["delete-worker", "crash-leader"])
def test_a_fault_in_group_1_leaves_group_0_untouched(
    fault_name: faults.FaultName,
    kube: Kube,
    two_groups: Deployed,
    settings: Settings,
    progress: Any,
    record_property: Any,
) -> None:
    expect = two_groups.expect
    fault = faults.target(fault_name, expect.lws_name, group=1)
    run = group_isolation.run(
        kube,
        expect,
        settings,
        fault_name,
        lambda: faults.inject(kube, two_groups.namespace, fault),
        progress,
        fault_pod=fault.pod,
    )
    figure = (
        f"group 1 recovered in {run.recovered_s:.1f} s; group 0: {len(run.watched_after)} pods kept; "
        f"{run.split.figure()}"
    )
    record_property("figure", figure)
    progress(f"{fault_name} in group 1: group 0: {len(run.watched_after)} pods kept; {run.split.report()}")
    problems = multi_group.a_fault_in_one_group_leaves_the_others_untouched(run)
    assert not problems, (
        f"{multi_group.a_fault_in_one_group_leaves_the_others_untouched.__doc__}\n"
        + "\n".join(f"  - {p}" for p in problems)
    )
