"""A timeline of one LWS as it changes: its pods (UID, revision, phase, Ready), its StatefulSets and its
conditions, sampled from the API server a few times a second in a background thread.

For checks about order and concurrency (the worker StatefulSet appears only after the leader is Ready; a rolling
update never has more than maxUnavailable groups down or more than replicas + maxSurge groups at once). The
API's own timestamps have one-second resolution, too coarse for a simulated group that starts in a second; the
samples carry time.perf_counter. Polling is the measurement here, not synchronisation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fixtures.kube import Kube
from manifests.manifest import NAME_LABEL

REVISION = "leaderworkerset.sigs.k8s.io/template-revision-hash"
GROUP_INDEX = "leaderworkerset.sigs.k8s.io/group-index"
WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
INTERVAL_S = 0.2


@dataclass(frozen=True)
class PodBrief:
    name: str
    uid: str
    group: int | None
    worker: int | None
    revision: str | None
    phase: str
    ready: bool
    deleting: bool


@dataclass(frozen=True)
class Sample:
    t: float  # time.perf_counter()
    pods: dict[str, PodBrief]
    statefulsets: dict[str, str]  # name -> uid
    conditions: dict[str, str]  # LWS condition type -> status

    def leader(self, group: int) -> PodBrief | None:
        return next((p for p in self.pods.values() if p.group == group and p.worker == 0), None)

    def groups(self) -> set[int]:
        return {p.group for p in self.pods.values() if p.group is not None and not p.deleting}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def brief(pod: dict[str, Any]) -> PodBrief:
    meta, status = pod["metadata"], pod.get("status") or {}
    labels = meta.get("labels") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return PodBrief(
        meta["name"],
        meta["uid"],
        _int(labels.get(GROUP_INDEX)),
        _int(labels.get(WORKER_INDEX)),
        labels.get(REVISION),
        str(status.get("phase") or "Pending"),
        ready,
        bool(meta.get("deletionTimestamp")),
    )


def sample(kube: Kube, namespace: str, lws_name: str) -> Sample:
    selector = f"{NAME_LABEL}={lws_name}"
    pods = {p["metadata"]["name"]: brief(p) for p in kube.pods(namespace, selector)}
    sets = {
        s["metadata"]["name"]: s["metadata"]["uid"]
        for s in kube.list_objects("apps/v1", "statefulsets", namespace, selector)
    }
    lws = kube.lws(namespace, lws_name) or {}
    conditions = {
        str(c.get("type")): str(c.get("status")) for c in (lws.get("status") or {}).get("conditions") or []
    }
    return Sample(time.perf_counter(), pods, sets, conditions)


@dataclass
class Timeline:
    kube: Kube
    namespace: str
    lws_name: str
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Timeline:
        self._thread = threading.Thread(target=self._run, name="lws-timeline", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(sample(self.kube, self.namespace, self.lws_name))
            except (
                Exception
            ):  # an API hiccup (or the namespace not there yet) is a missing sample, not a failure
                self.errors += 1
            self._stop.wait(INTERVAL_S)

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        return list(self.samples)
