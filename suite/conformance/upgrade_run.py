"""Upgrade the embedded testbed's LWS in place while two groups serve under load, and record what happened
(checks/upgrade.py judges it).

The groups are a variant of the run's manifest with replicas 2, in a namespace of their own, created by the old
controller. Under five requests a second through their leader Service (service_watch.service_under_load), the
LWS sampled all along (timeline.py), the old controller is stopped and the new release's CRDs, RBAC, webhooks
and controller applied over it, in the order a Helm upgrade applies them (testbed/lws_upgrade.py). Then the groups
are watched until nothing about them has changed for QUIET_S with the LWS Available; a roll the new controller
starts shows within that and is followed to its end. Last, a template change rolls the groups under the new
controller (rollout_run.roll, judged as LWS-ROLLOUT judges it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fixtures import deploy, variants
from fixtures.kube import Kube
from fixtures.lifecycle import Deployed
from fixtures.settings import Settings
from fixtures.snapshot import Expectation
from fixtures.variant_plugin import DeployVariant
from plumbing.wait import NotYet, wait_for
from suite.conformance import rollout_run
from suite.conformance.checks import rollout
from suite.conformance.checks.upgrade import Pods, UpgradeRecord
from suite.conformance.service_watch import service_under_load
from suite.conformance.timeline import REVISION, Sample, Timeline
from testbed.lws_upgrade import upgrade_lws

# The new controller reconciles every LWS when its informers first sync, in well under this; a roll it starts
# shows within it and is then followed to its end.
QUIET_S = 30.0
ROLL_VALUE = "INFO"  # the env value of the template change made after the upgrade (rollout_run.ROLLOUT_ENV)


def pods_of(kube: Kube, namespace: str) -> Pods:
    """Every pod not being deleted: its uid, summed restart count and template revision hash."""
    found = {}
    for pod in kube.pods(namespace):
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
        found[meta["name"]] = (meta["uid"], restarts, (meta.get("labels") or {}).get(REVISION, "?"))
    return found


def settled(
    kube: Kube,
    namespace: str,
    expect: Expectation,
    timeout: float,
    progress: Callable[[str], None] | None = None,
) -> Pods:
    """The pods, once unchanged for QUIET_S with the LWS Available and settled and every pod Ready."""
    deployment = deploy.Deployment(
        namespace, expect.lws_name, expect.service_name, expect.size, expect.replicas
    )
    last: list[Any] = [None, time.monotonic()]

    def quiet() -> Pods:
        now = pods_of(kube, namespace)
        if now != last[0]:
            last[0], last[1] = now, time.monotonic()
        done, seen = deploy.observe(kube, deployment)
        if not done:
            raise NotYet(seen)
        still = time.monotonic() - last[1]
        if still < QUIET_S:
            raise NotYet(f"pods unchanged for {still:.0f} of {QUIET_S:.0f} s; {seen}")
        return now

    return wait_for(
        quiet, what="the groups to settle after the upgrade", timeout=timeout, interval=1.0, progress=progress
    )


def unavailable_spans(samples: list[Sample], t0: float) -> list[str]:
    """Each stretch of samples in which the LWS was not Available=True: '+12.3 s to +40.1 s: Available=False
    (Progressing=True, UpdateInProgress=True)'."""
    spans: list[str] = []
    start: Sample | None = None
    last: Sample | None = None
    for s in [*samples, None]:
        bad = s is not None and s.conditions.get("Available") != "True"
        if bad and start is None:
            start = s
        if not bad and start is not None and last is not None:
            said = ", ".join(f"{k}={v}" for k, v in sorted(start.conditions.items())) or "no conditions"
            spans.append(f"+{start.t - t0:.1f} s to +{last.t - t0:.1f} s: {said}")
            start = None
        last = s
    return spans


def _generation(kube: Kube, namespace: str, name: str) -> int | None:
    lws = kube.lws(namespace, name) or {}
    value = (lws.get("metadata") or {}).get("generation")
    return int(value) if value is not None else None


def observe(
    deploy_variant: DeployVariant,
    kube: Kube,
    testbed_name: str,
    replicas: int,
    settings: Settings,
    progress: Callable[[str], None],
) -> UpgradeRecord:
    """Deploy two groups on the old release, upgrade under load, watch them settle, roll them; the record."""
    a, b = str(settings.lws_upgrade_from), settings.upgrade_to
    record = UpgradeRecord(a, b, replicas=replicas)
    with deploy_variant("upgrade", variants.with_replicas(replicas)) as deployed:
        _upgrade_under_load(kube, deployed, testbed_name, settings, progress, record)
        progress(f"LWS-UPGRADE: {record.from_version} -> {record.to_version}: a template change under {b}")
        run = rollout_run.roll(
            kube,
            deployed,
            settings,
            progress,
            ROLL_VALUE,
            rollout_run.rolling_update(maxUnavailable=1, maxSurge=0, partition=0),
        )
        record.roll_figure = rollout.figure(run)
        record.roll_problems = rollout.groups_are_replaced_within_the_strategy(
            run
        ) + rollout.the_service_kept_serving(run)
    return record


def _upgrade_under_load(
    kube: Kube,
    deployed: Deployed,
    testbed_name: str,
    settings: Settings,
    progress: Callable[[str], None],
    record: UpgradeRecord,
) -> None:
    ns, expect = deployed.namespace, deployed.expect
    record.pods_before = pods_of(kube, ns)
    generation = _generation(kube, ns, expect.lws_name)
    seen = {tuple(e["occurrence"]) for e in kube.events(ns)}
    timeline = Timeline(kube, ns, expect.lws_name)
    with service_under_load(kube, ns, expect, settings, progress) as run:
        timeline.start()
        t0 = time.perf_counter()
        try:
            progress(
                f"LWS-UPGRADE: upgrading LWS {record.from_version} to {record.to_version} in place while "
                f"{expect.replicas} groups serve under load"
            )
            upgrade_lws(testbed_name, record.to_version, progress=progress)
            record.controller_s = time.perf_counter() - t0
            record.pods_after = settled(kube, ns, expect, settings.timeouts.recovery, progress)
            record.observed_s = time.perf_counter() - t0
        finally:
            samples = timeline.stop()
    record.generation = (generation, _generation(kube, ns, expect.lws_name))
    record.events = [
        f"{e['object']} {e['reason']}: {e['message']}"
        for e in kube.events(ns)
        if tuple(e["occurrence"]) not in seen
    ]
    record.samples = len(samples)
    record.unavailable = unavailable_spans(samples, t0)
    record.status_after = dict((kube.lws(ns, expect.lws_name) or {}).get("status") or {})
    record.requests_sent, record.requests_failed = run.tally.sent, len(run.split.failed)
    record.requests_report = run.split.report()
