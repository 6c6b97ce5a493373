"""The LWS controller upgraded in place under load: what the upgrade must leave alone (LWS-UPGRADE).

What LWS users report about upgrades is that they disturbed running groups: a new controller that hashes the same
template differently rolls every group (kubernetes-sigs/lws#797, v0.7.0 to v0.8.0, fixed by #798 in v0.9.0; also
#281), and CRD changes that deleted workloads (#880). For a multi-node vLLM group with RecreateGroupOnPodRestart
one recreate is a reload of the model: most of an hour for a 405B one. So the verdict is strict: any pod recreated,
restarted or relabelled with another `template-revision-hash` while the user's LWS spec did not change fails it,
whatever the new controller's events say (they are listed as its reasons).

Pure functions of an UpgradeRecord (suite/conformance/upgrade_run.py observes it), so the self-tests and the unit
tests judge a wrong upgrade with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fixtures.lws_release import OBSERVED_GENERATION_SINCE, LwsRelease, version_tuple

Pods = dict[str, tuple[str, int, str]]  # pod name -> (uid, restart count, template revision hash)
EVENTS_SHOWN = 6


@dataclass
class UpgradeRecord:
    """What one in-place upgrade did, as plain data (written to the run's state for pytest-xdist workers)."""

    from_version: str
    to_version: str
    skipped: str | None = None  # why no upgrade was made (the checks skip with it)
    error: str | None = None  # what went wrong making or watching it (the checks fail with it)
    replicas: int = 0
    controller_s: float | None = None  # the old controller stopped to the new one started
    observed_s: float | None = None  # the upgrade's start to the groups settled
    generation: tuple[int | None, int | None] = (None, None)  # the LWS's metadata.generation before, after
    pods_before: Pods = field(default_factory=dict)
    pods_after: Pods = field(default_factory=dict)
    events: list[str] = field(default_factory=list)  # events first seen after the upgrade began
    requests_sent: int = 0
    requests_failed: int = 0
    requests_report: str = ""  # the request split's account of the failures
    samples: int = 0  # samples of the LWS taken while it was watched
    unavailable: list[str] = field(default_factory=list)  # when the LWS was not Available, and what it said
    status_after: dict[str, Any] = field(default_factory=dict)  # the LWS's status once settled
    roll_figure: str | None = None
    roll_problems: list[str] = field(default_factory=list)

    @property
    def downgrade(self) -> bool:
        a, b = version_tuple(self.from_version), version_tuple(self.to_version)
        return a is not None and b is not None and b < a

    @staticmethod
    def of(raw: dict[str, Any]) -> UpgradeRecord:
        record = UpgradeRecord(**raw)
        record.generation = (raw["generation"][0], raw["generation"][1])
        record.pods_before = {k: (v[0], int(v[1]), v[2]) for k, v in raw["pods_before"].items()}
        record.pods_after = {k: (v[0], int(v[1]), v[2]) for k, v in raw["pods_after"].items()}
        return record


def what_happened(before: Pods, after: Pods) -> dict[str, str]:
    """Per group: 'untouched', or what changed (pods recreated, added or gone, restarts, the revision hash)."""
    groups: dict[str, list[str]] = {}
    for name in sorted(set(before) | set(after)):
        group = name.split("-")[1] if "-" in name else "?"
        old, new = before.get(name), after.get(name)
        changes = groups.setdefault(group, [])
        if old is None or new is None:
            changes.append(f"{name} {'added' if old is None else 'gone'}")
            continue
        found = []
        if old[0] != new[0]:
            found.append("recreated")
        if new[1] > old[1]:
            found.append(f"restarted {new[1] - old[1]}x")
        if old[2] != new[2]:
            found.append(f"revision {old[2]} -> {new[2]}")
        if found:
            changes.append(f"{name} {', '.join(found)}")
    return {g: "; ".join(c) or "untouched" for g, c in sorted(groups.items())}


def figure(record: UpgradeRecord) -> str:
    """'LWS v0.8.0 -> v0.9.0 in place: controller replaced in 16.8 s, settled after 45.2 s; group 0: untouched;
    group 1: untouched; 0/237 requests failed'"""
    if record.skipped or record.error:
        return f"LWS {record.from_version} -> {record.to_version}: {record.skipped or record.error}"
    happened = what_happened(record.pods_before, record.pods_after)
    timing = f"controller replaced in {record.controller_s or 0:.1f} s, settled after {record.observed_s or 0:.1f} s"
    groups = "; ".join(f"group {g}: {h}" for g, h in happened.items())
    return (
        f"LWS {record.from_version} -> {record.to_version} in place: {timing}; {groups}; "
        f"{record.requests_failed}/{record.requests_sent} requests failed"
    )


def _said(record: UpgradeRecord) -> str:
    if not record.events:
        return "the new controller recorded no event about it"
    shown = "; ".join(record.events[:EVENTS_SHOWN])
    more = len(record.events) - EVENTS_SHOWN
    return f"events since the upgrade began: {shown}" + (f" (and {more} more)" if more > 0 else "")


def groups_are_left_alone(record: UpgradeRecord) -> list[str]:
    """MUST (LWS-UPGRADE UpgradeLeavesGroups): no pod of a running group is recreated, restarted or given another
    `template-revision-hash` label by the upgrade. The spec is the user's and did not change; a new controller
    that rolls or recreates the groups anyway costs each multi-node vLLM group a model reload. The events the
    new controller recorded are listed with the problem, as its reasons; they do not excuse it."""
    if not record.pods_before:
        return ["no pod was seen before the upgrade: nothing to compare"]
    happened = what_happened(record.pods_before, record.pods_after)
    touched = {g: h for g, h in happened.items() if h != "untouched"}
    if not touched:
        return []
    before, after = record.generation
    spec = (
        f"the LWS spec unchanged (generation {before})"
        if before == after
        else f"the LWS generation moved {before} -> {after} (a spec written during the upgrade)"
    )
    lines = "; ".join(f"group {g}: {h}" for g, h in touched.items())
    return [
        f"the upgrade {record.from_version} -> {record.to_version} disturbed {len(touched)} of {len(happened)} "
        f"group(s), {spec}: {lines}; {_said(record)}"
    ]


def every_request_was_served(record: UpgradeRecord) -> list[str]:
    """MUST (LWS-UPGRADE UpgradeServesEveryRequest): no request sent through the leader Service while the
    controller was replaced and the groups settled fails. Replacing a controller does not touch a running pod,
    so any failure is the upgrade's doing."""
    if record.requests_sent == 0:
        return ["no request was sent during the upgrade: nothing measured"]
    if record.requests_failed == 0:
        return []
    return [
        f"{record.requests_failed}/{record.requests_sent} requests through the Service failed during the upgrade "
        f"{record.from_version} -> {record.to_version}: {record.requests_report}"
    ]


def stayed_available(record: UpgradeRecord) -> list[str]:
    """MUST (LWS-UPGRADE UpgradeStaysAvailable): the LWS reports Available=True in every sample taken from the
    start of the upgrade until the groups settled."""
    if record.samples == 0:
        return ["the LWS was not sampled during the upgrade: its Available condition is unknown"]
    if not record.unavailable:
        return []
    return [
        f"the LWS was not Available during the upgrade {record.from_version} -> {record.to_version}: "
        + "; ".join(record.unavailable)
    ]


def has_the_new_status_fields(record: UpgradeRecord) -> list[str]:
    """MUST (LWS-UPGRADE UpgradeStaysAvailable): once the new controller has reconciled, the LWS's status carries
    the fields its release writes: from v0.9.0 `status.observedGeneration` and each condition's
    `observedGeneration`, equal to the LWS's generation (sigs.k8s.io/lws@v0.9.0
    pkg/controllers/leaderworkerset_controller.go updateStatus and makeCondition)."""
    release = LwsRelease(record.to_version)
    if not release.observed_generation:
        return []
    generation = record.generation[1]
    status = record.status_after
    problems = []
    if status.get("observedGeneration") != generation:
        problems.append(
            f"status.observedGeneration is {status.get('observedGeneration')!r}, not the LWS's generation "
            f"{generation} (LWS {record.to_version} writes it; since {OBSERVED_GENERATION_SINCE})"
        )
    stale = [
        f"{c.get('type')} ({c.get('observedGeneration')!r})"
        for c in status.get("conditions") or []
        if c.get("observedGeneration") != generation
    ]
    if stale:
        problems.append(f"conditions without observedGeneration {generation}: {', '.join(stale)}")
    if not status.get("conditions"):
        problems.append("the LWS has no conditions after the upgrade")
    return problems


def new_fields_to_check(record: UpgradeRecord) -> str | None:
    """Why there is no new status field to check on this upgrade, or None when there is."""
    if LwsRelease(record.to_version).observed_generation:
        return None
    if record.downgrade:
        return (
            f"LWS {record.to_version} writes none of the status fields {record.from_version} added "
            f"(observedGeneration from {OBSERVED_GENERATION_SINCE}); a downgrade leaves them as they were"
        )
    return (
        f"LWS {record.to_version} writes no status field that {record.from_version} lacks "
        f"(observedGeneration arrives in {OBSERVED_GENERATION_SINCE})"
    )


def rolls_after_the_upgrade(record: UpgradeRecord) -> list[str]:
    """MUST (LWS-UPGRADE RollsAfterUpgrade): a template change made after the upgrade, on the groups the old
    controller created, rolls them out as LWS-ROLLOUT RollingUpdate requires (checks/rollout.py)."""
    if record.roll_figure is None:
        return ["no template change was made after the upgrade"]
    return list(record.roll_problems)
