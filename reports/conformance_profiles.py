"""The conformance profiles: named groups of features, each core (every conformant deployment passes it) or
extended (optional: tested where the LWS version, its CRD schema and the deployment support it).

Modelled on the Gateway API conformance suite (kubernetes-sigs/gateway-api, conformance/utils/suite/profiles.go
and features.go: a profile lists its core and extended features; a test names the features it exercises, and a
test that exercises any extended feature of a profile counts at that profile's extended level,
conformance/utils/suite/reports.go `isTestExtended`). Tests name their features with
`@pytest.mark.feature("<PROFILE>", "<Feature>")`; docs/conformance-report.md lists them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    name: str
    profile: str
    extended: bool
    description: str

    @property
    def key(self) -> str:
        return f"{self.profile}/{self.name}"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    core: tuple[Feature, ...]
    extended: tuple[Feature, ...] = ()

    @property
    def features(self) -> tuple[Feature, ...]:
        return self.core + self.extended


def _profile(name: str, description: str, core: dict[str, str], extended: dict[str, str]) -> Profile:
    return Profile(
        name,
        description,
        tuple(Feature(f, name, False, d) for f, d in core.items()),
        tuple(Feature(f, name, True, d) for f, d in extended.items()),
    )


PROFILES: tuple[Profile, ...] = (
    _profile(
        "LWS-CORE",
        "What every vLLM deployment on LWS relies on: roles, env, naming, placement, headless Service, Available.",
        {
            "PodRoles": "leader and worker pods carry LWS's labels and annotations; each group's worker "
            "StatefulSet is owned by its leader pod",
            "GroupEnvironment": "LWS_LEADER_ADDRESS, LWS_GROUP_SIZE and LWS_WORKER_INDEX come first in every "
            "container's env, with exact values",
            "PodNaming": "pods are named <lws>-<group> (leader) and <lws>-<group>-<worker>",
            "Placement": "a group's pods run on different nodes and request and limit their GPUs",
            "HeadlessService": "LWS's headless Service (ClusterIP None, publishNotReadyAddresses) holds the "
            "leader under the hostname and subdomain that make LWS_LEADER_ADDRESS resolve",
            "AvailableCondition": "the LWS reports Available, with its reason, once every group is ready",
        },
        {
            "StartupPolicyLeaderReady": "startupPolicy LeaderReady: the worker StatefulSet appears only after "
            "the leader is Ready",
            "MultiGroupServiceSpread": "with two or more replicas the leader Service spreads over every "
            "group's leader",
        },
    ),
    _profile(
        "LWS-RESTART",
        "How LWS restarts a group when one of its pods fails, under each restart policy.",
        {
            "RecreateGroupOnPodRestart": "a deleted or crashed pod makes LWS recreate the whole group; it is "
            "Available again and serving resumes",
        },
        {
            "RestartPolicyNone": "restartPolicy None: only the failed pod is replaced; the rest of the group "
            "keeps running",
            "GroupIsolation": "a fault in one group leaves the other groups' pods and serving untouched",
            "RecreateGroupAfterStart": "restartPolicy RecreateGroupAfterStart: the group is recreated once it "
            "has started, not while a pod is still Pending",
        },
    ),
    _profile(
        "LWS-ROLLOUT",
        "Rolling updates of the LWS template under a steady load.",
        {
            "RollingUpdate": "a template change replaces groups one at a time within maxUnavailable, the "
            "conditions move, and the Service keeps serving",
        },
        {
            "RolloutPartition": "rolloutStrategy partition: groups below the partition keep the old template",
            "RolloutMaxSurge": "rolloutStrategy maxSurge: extra groups come up during the update and go after",
        },
    ),
    _profile(
        "LWS-UPGRADE",
        "The LWS controller and its CRDs upgraded in place (--lws-upgrade-from) while groups serve under load.",
        {
            "UpgradeLeavesGroups": "no pod of a running group is recreated, restarted or given another "
            "template revision hash by the upgrade (the LWS spec unchanged); the new controller's events listed",
            "UpgradeServesEveryRequest": "no request sent through the leader Service during the upgrade fails",
            "UpgradeStaysAvailable": "the LWS stays Available throughout and, after the upgrade, carries the new "
            "release's status fields (observedGeneration from v0.9.0)",
            "RollsAfterUpgrade": "a template change made after the upgrade rolls the groups out within the "
            "strategy while the Service serves",
        },
        {},
    ),
    _profile(
        "VLLM-MULTINODE",
        "vLLM really runs across the group's pods and nodes, as its logs show.",
        {
            "LogEvidence": "the engine logs show the server started with the topology's TP and PP, the "
            "launch at full size, and no crash (Traceback, NCCL error, RuntimeError)",
            "RanksAcrossNodes": "every TP x PP rank loaded its weights, attributed to a pod of the group, on "
            "at least two nodes",
        },
        {},
    ),
    _profile(
        "VLLM-API",
        "vLLM's API as users reach it: through the leader Service.",
        {
            "ServiceRouting": "the leader Service's endpoints are exactly the ready leaders",
            "OpenAIAPI": "/v1/models, /v1/completions with usage, streaming to [DONE], and /health, through "
            "the Service",
            "Metrics": "/metrics exposes vLLM's vllm: series",
        },
        {},
    ),
)

BY_NAME: dict[str, Profile] = {p.name: p for p in PROFILES}
# run when asked for with --lws-upgrade-from, not by default: it upgrades the testbed's LWS in place
UPGRADE_PROFILE = "LWS-UPGRADE"
DEFAULT_PROFILES: tuple[str, ...] = tuple(name for name in BY_NAME if name != UPGRADE_PROFILE)
FEATURES: dict[str, Feature] = {f.name: f for p in PROFILES for f in p.features}


class UnknownName(ValueError):
    """A profile or feature name that is not in the registry; the message lists the valid ones."""


def profile(name: str) -> Profile:
    if name not in BY_NAME:
        raise UnknownName(f"unknown conformance profile {name!r}; choose from {', '.join(BY_NAME)}")
    return BY_NAME[name]


def feature(name: str) -> Feature:
    if name not in FEATURES:
        raise UnknownName(f"unknown feature {name!r}; choose from {', '.join(FEATURES)}")
    return FEATURES[name]


def feature_of(profile_name: str, feature_name: str) -> Feature:
    """The feature a test marker names: the profile must exist and list the feature."""
    found = profile(profile_name)
    for candidate in found.features:
        if candidate.name == feature_name:
            return candidate
    raise UnknownName(
        f"profile {profile_name} has no feature {feature_name!r}; its features are "
        f"{', '.join(f.name for f in found.features)}"
    )


def extended_names(names: Iterable[str]) -> set[str]:
    return {n for n in names if FEATURES[n].extended}
