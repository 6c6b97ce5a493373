"""Run one rolling update of a deployed LWS under a steady load through its leader Service, sampling the LWS
all along (suite/conformance/timeline.py), until the rollout has settled."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fixtures import deploy, lifecycle
from fixtures.kube import Kube
from fixtures.lifecycle import Deployed
from fixtures.settings import Settings
from fixtures.variants import template
from plumbing.wait import NotYet, wait_for
from suite.conformance.checks.rollout import RolloutRun, Strategy
from suite.conformance.service_watch import service_under_load
from suite.conformance.timeline import Timeline, sample

ROLLOUT_ENV = "VLLM_LOGGING_LEVEL"  # a real vLLM setting; changing it changes the template, hence a rollout


def strategy_of(lws: dict[str, Any]) -> Strategy:
    config = ((lws.get("spec") or {}).get("rolloutStrategy") or {}).get("rollingUpdateConfiguration") or {}
    replicas = int((lws.get("spec") or {}).get("replicas", 1))

    def scaled(value: Any, default: int, round_up: bool) -> int:
        if value is None:
            return default
        if isinstance(value, str) and value.endswith("%"):
            exact = replicas * int(value[:-1]) / 100
            return int(-(-exact // 1)) if round_up else int(exact)
        return int(value)

    return Strategy(
        max_unavailable=scaled(config.get("maxUnavailable"), 1, False),
        max_surge=min(scaled(config.get("maxSurge"), 0, True), replicas),
        partition=int(config.get("partition") or 0),
    )


def rolling_update(**config: Any) -> dict[str, Any]:
    """The rolloutStrategy of a RollingUpdate with this rollingUpdateConfiguration (maxUnavailable=1, ...)."""
    return {"rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": config}}


def template_patch(lws: dict[str, Any], value: str) -> dict[str, Any]:
    """A JSON merge patch setting env ROLLOUT_ENV=value on the leader's and the worker's first container."""
    patch: dict[str, Any] = {}
    lwt = lws["spec"]["leaderWorkerTemplate"]
    for key in ("leaderTemplate", "workerTemplate"):
        if key not in lwt:
            continue
        role = "leader" if key == "leaderTemplate" else "worker"
        containers = [dict(c) for c in template(lws, role)["spec"]["containers"]]
        env = [e for e in containers[0].get("env") or [] if e.get("name") != ROLLOUT_ENV]
        containers[0]["env"] = [*env, {"name": ROLLOUT_ENV, "value": value}]
        patch[key] = {"spec": {"containers": containers}}
    return {"spec": {"leaderWorkerTemplate": patch}}


def roll(
    kube: Kube,
    deployed: Deployed,
    settings: Settings,
    progress: Callable[[str], None],
    value: str,
    extra: dict[str, Any] | None = None,
    hold_s: float = 0.0,
) -> RolloutRun:
    """Change the template (and `extra`, merged into the LWS spec, e.g. a rolloutStrategy) under load; wait
    until every group at or above the partition runs the new revision and the LWS is ready and settled; then keep
    sampling `hold_s` more (an observation window: a partition must still hold when the controller has had time
    to go on)."""
    expect, ns = deployed.expect, deployed.namespace
    lws = kube.lws(ns, expect.lws_name)
    assert lws is not None, f"LWS {ns}/{expect.lws_name} is gone"
    patch = template_patch(lws, value)
    patch["spec"].update(extra or {})
    strategy = strategy_of({"spec": {**lws["spec"], **patch["spec"]}})
    has_probe = any(c.get("readinessProbe") for c in template(lws, "leader")["spec"]["containers"])
    first = sample(kube, ns, expect.lws_name)
    old = {g: lead.uid for g in range(expect.replicas) if (lead := first.leader(g)) is not None}
    with service_under_load(kube, ns, expect, settings, progress) as run:
        timeline = Timeline(kube, ns, expect.lws_name).start()
        try:
            lifecycle.patch_lws(kube, deployed, patch)
            revision = _wait_rolled(kube, deployed, settings, strategy, old, progress)
            if hold_s > 0:
                _observe_for(hold_s)
        finally:
            samples = timeline.stop()
    # the state _wait_rolled accepted, which the sampler (a beat behind) may not have seen yet
    samples.append(sample(kube, ns, expect.lws_name))
    return RolloutRun(
        expect.replicas, strategy, samples, old, revision, run.tally, has_probe, expect.lws_name, run.split
    )


def _observe_for(seconds: float) -> None:
    until = time.monotonic() + seconds

    def elapsed() -> None:
        if time.monotonic() < until:
            raise NotYet(f"{until - time.monotonic():.1f} s of observation left")

    wait_for(elapsed, what="the observation window", timeout=seconds + 5, interval=0.5)


def _wait_rolled(
    kube: Kube,
    deployed: Deployed,
    settings: Settings,
    strategy: Strategy,
    old: dict[int, str],
    progress: Callable[[str], None],
) -> str | None:
    expect = deployed.expect
    deployment = deployed.deployment

    def rolled() -> str | None:
        now = sample(kube, deployed.namespace, expect.lws_name)
        updated = [
            g
            for g in range(strategy.partition, expect.replicas)
            if (lead := now.leader(g)) and lead.uid != old.get(g)
        ]
        if len(updated) < expect.replicas - strategy.partition:
            raise NotYet(f"groups updated so far: {updated}")
        if strategy.partition == 0:
            done, seen = deploy.observe(kube, deployment)
            if not done:
                raise NotYet(seen)
        revisions = {lead.revision for g in updated if (lead := now.leader(g)) and lead.ready}
        if len(revisions) != 1 or len([g for g in updated if (lead := now.leader(g)) and lead.ready]) < len(
            updated
        ):
            raise NotYet(
                f"updated leaders not all Ready yet: {sorted(p.name for p in now.pods.values() if p.ready)} Ready"
            )
        if any(g >= expect.replicas for g in now.groups()):
            raise NotYet(f"surge groups still there: {sorted(now.groups())}")
        return revisions.pop()

    # groups are replaced one after another, each bounded as a recovery is (a real engine's group takes minutes)
    groups = max(1, expect.replicas - strategy.partition)
    return wait_for(
        rolled, what="the rollout to finish", timeout=settings.timeouts.recovery * groups, progress=progress
    )
