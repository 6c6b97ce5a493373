"""Rolling update of a two-group LWS (the run's manifest with replicas: 2, in a namespace of its own) under a
steady load through its leader Service: a template change (env VLLM_LOGGING_LEVEL, as an image or vLLM-argument
change would) replaces the groups within maxUnavailable / maxSurge, holds groups below the partition, moves the
conditions, and the Service keeps serving. The time per group and the failed requests are the key figure.

The cases run in order on the same deployment, each one rollout: the default strategy (maxUnavailable 1,
maxSurge 0), a partition of 1, then maxSurge 1 with maxUnavailable 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fixtures import deploy, lifecycle, variants
from fixtures.kube import Kube
from fixtures.lifecycle import Deployed
from fixtures.plan import Plan
from fixtures.settings import Settings
from fixtures.variant_plugin import DeployVariant
from suite.conformance import rollout_run
from suite.conformance.checks import rollout
from suite.conformance.judging import assert_conformant

pytestmark = pytest.mark.disruptive
PARTITION_HOLD_S = 8.0  # the controller goes on to the next group within a second or two when it may


@pytest.fixture(scope="module")
def two_groups_rolling(deploy_variant: DeployVariant, plan: Plan) -> Iterator[Deployed]:
    replicas = max(2, plan.info.replicas)
    with deploy_variant("roll", variants.with_replicas(replicas), extra_groups=1) as deployed:
        yield deployed


@pytest.mark.feature("LWS-ROLLOUT", "RollingUpdate")
def test_a_template_change_replaces_the_groups_one_at_a_time_while_the_service_serves(
    kube: Kube, two_groups_rolling: Deployed, settings: Settings, progress: Any, record_property: Any
) -> None:
    run = rollout_run.roll(
        kube,
        two_groups_rolling,
        settings,
        progress,
        "INFO",
        rollout_run.rolling_update(maxUnavailable=1, maxSurge=0, partition=0),
    )
    record_property("figure", rollout.figure(run))
    progress(f"rolling update: {rollout.figure(run)}")
    if run.split is not None:
        progress(f"rolling update, the failed requests: {run.split.report()}")
    assert_conformant(run, rollout.groups_are_replaced_within_the_strategy, rollout.the_service_kept_serving)


@pytest.mark.feature("LWS-ROLLOUT", "RolloutPartition")
def test_a_partition_keeps_the_groups_below_it(
    kube: Kube, two_groups_rolling: Deployed, settings: Settings, progress: Any, record_property: Any
) -> None:
    deployed = two_groups_rolling
    run = rollout_run.roll(
        kube,
        deployed,
        settings,
        progress,
        "DEBUG",
        rollout_run.rolling_update(maxUnavailable=1, maxSurge=0, partition=1),
        PARTITION_HOLD_S,
    )
    record_property(
        "figure", f"partition 1: {rollout.figure(run)}; group 0 kept {PARTITION_HOLD_S:.0f} s after"
    )
    try:
        assert_conformant(run, rollout.groups_below_the_partition_are_kept)
    finally:  # release the partition (group 0 then updates too), so the next case starts from one revision
        lifecycle.patch_lws(
            kube, deployed, {"spec": rollout_run.rolling_update(maxUnavailable=1, maxSurge=0, partition=0)}
        )
        deploy.wait_ready(
            kube,
            deployed.deployment,
            settings.timeout_ready,
            progress,
        )


@pytest.mark.feature("LWS-ROLLOUT", "RolloutMaxSurge")
def test_max_surge_adds_a_group_during_the_rollout_and_removes_it(
    kube: Kube, two_groups_rolling: Deployed, settings: Settings, progress: Any, record_property: Any
) -> None:
    run = rollout_run.roll(
        kube,
        two_groups_rolling,
        settings,
        progress,
        "WARNING",
        rollout_run.rolling_update(maxUnavailable=0, maxSurge=1, partition=0),
    )
    record_property("figure", f"maxSurge 1: {rollout.figure(run)}")
    assert_conformant(
        run,
        rollout.the_surge_is_used_and_removed,
        rollout.groups_are_replaced_within_the_strategy,
        rollout.the_service_kept_serving,
    )
