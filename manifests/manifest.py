"""The in-memory form of a manifest: one LeaderWorkerSet, optionally its leader Service, and whatever
else the file holds. Rendered topologies and `--manifest FILE` both end up here.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

LWS_API_GROUP = "leaderworkerset.x-k8s.io"
LWS_KIND = "LeaderWorkerSet"
NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"


class ManifestError(ValueError):
    """The input is not a usable LWS manifest; the message says what was expected and seen."""


def is_lws(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == LWS_KIND and str(obj.get("apiVersion", "")).startswith(f"{LWS_API_GROUP}/")


def object_ref(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def _lws_count_problem(objects: tuple[dict[str, Any], ...] | list[dict[str, Any]], source: str) -> str | None:
    count = sum(1 for o in objects if is_lws(o))
    if count == 0:
        found = ", ".join(object_ref(o) for o in objects) or "no objects"
        return (
            f"{source}: no LeaderWorkerSet (apiVersion {LWS_API_GROUP}/v1, kind {LWS_KIND}) in it; "
            f"found: {found}"
        )
    if count > 1:
        return f"{source}: {count} LeaderWorkerSets in one file; give one per file"
    return None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    objects: tuple[dict[str, Any], ...]
    source: str = "<rendered>"

    @model_validator(mode="after")
    def _exactly_one_lws(self) -> Manifest:
        problem = _lws_count_problem(self.objects, self.source)
        if problem:
            raise ValueError(problem)
        return self

    @classmethod
    def from_objects(cls, objects: list[dict[str, Any]], source: str = "<rendered>") -> Manifest:
        """Build from plain objects; raises ManifestError unless exactly one LWS is among them."""
        problem = _lws_count_problem(objects, source)
        if problem:
            raise ManifestError(problem)
        return cls(objects=tuple(copy.deepcopy(o) for o in objects), source=source)

    @property
    def lws(self) -> dict[str, Any]:
        return next(o for o in self.objects if is_lws(o))

    @property
    def lws_name(self) -> str:
        return str((self.lws.get("metadata") or {}).get("name", ""))

    @property
    def services(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == "Service" and o.get("apiVersion") == "v1"]

    @property
    def service(self) -> dict[str, Any] | None:
        """The Service that fronts this LWS: the one whose selector names it, else the only one."""
        services = self.services
        for svc in services:
            if ((svc.get("spec") or {}).get("selector") or {}).get(NAME_LABEL) == self.lws_name:
                return svc
        return services[0] if len(services) == 1 else None

    def to_objects(self) -> list[dict[str, Any]]:
        """A deep copy, safe to change."""
        return [copy.deepcopy(o) for o in self.objects]


def pod_dns_names(hostname: str, subdomain: str, namespace: str) -> tuple[str, ...]:
    """The names cluster DNS answers for a pod with spec.hostname and spec.subdomain under its headless
    Service: `<hostname>.<subdomain>.<namespace>[.svc[.cluster.local]]` (what LWS_LEADER_ADDRESS names)."""
    short = f"{hostname}.{subdomain}.{namespace}"
    return (short, f"{short}.svc", f"{short}.svc.cluster.local")
