"""What the Service did, as a timeline: when each pod of the LWS became a ready endpoint of the leader Service,
stopped being one (listed not ready, e.g. terminating) or left its EndpointSlices, and when the pod was deleted,
gone, or its container died; plus the faults the suite injected. Pure data and queries; the watch that records
it is suite/conformance/service_watch.py.

Times are time.perf_counter() at the moment the watch received the change, the clock the steady load stamps its
requests with, so a request can be placed against the Service's state when it was sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Kind = Literal["ready", "not-ready", "left", "deleting", "deleted", "killed", "fault"]
GOING: frozenset[str] = frozenset({"not-ready", "left", "deleting", "deleted", "killed", "fault"})
# what each kind of event says, in a request's cause
SAYS: dict[str, str] = {
    "not-ready": "was listed not ready in the Service's endpoints",
    "left": "left the Service's endpoints",
    "deleting": "was deleted",
    "deleted": "was gone from the API",
    "killed": "had its container die",
    "fault": "had a fault injected",
}


@dataclass(frozen=True)
class ServiceEvent:
    t: float  # time.perf_counter() when the watch saw it (or when the suite injected the fault)
    kind: Kind
    pod: str
    uid: str | None  # the pod incarnation (names are reused when LWS recreates a group)
    group: int | None
    worker: int | None
    detail: str = ""  # e.g. the fault's name, or "restart count 0 -> 1"

    def says(self, t0: float) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.pod} {SAYS.get(self.kind, self.kind)}{extra} at +{self.t - t0:.2f} s"


@dataclass(frozen=True)
class ServiceTimeline:
    service: str
    t0: float  # when the watch started (after its first listing)
    initial_ready: dict[str, str]  # uid -> pod name: the ready endpoints the first listing found
    events: tuple[ServiceEvent, ...]  # in time order
    problems: tuple[str, ...] = ()  # what may have left events out (a watch that broke)
    groups: dict[str, int] = field(default_factory=dict)  # pod name -> LWS group index
    # uid -> the pod's metadata.creationTimestamp (the API server's clock, whole seconds), as the watch saw it
    created: dict[str, str] = field(default_factory=dict)

    def ready_at(self, t: float) -> dict[str, str]:
        """uid -> pod name of the Service's ready endpoints at time t."""
        ready = dict(self.initial_ready)
        for event in self.events:
            if event.t > t:
                break
            if event.uid is None:
                continue
            if event.kind == "ready":
                ready[event.uid] = event.pod
            elif event.kind in ("not-ready", "left"):
                ready.pop(event.uid, None)
        return ready

    def incarnation(self, pod: str, t: float) -> str | None:
        """The uid of pod `pod` a request sent at t reached: the one that was a ready endpoint then, else the
        latest one known by then (a new pod that was not yet, or an old one that no longer was)."""
        ready = [uid for uid, name in self.ready_at(t).items() if name == pod]
        if ready:
            return ready[0]
        known = [e.uid for e in self.events if e.pod == pod and e.uid is not None and e.t <= t]
        initial = [uid for uid, name in self.initial_ready.items() if name == pod]
        found = known or initial
        return found[-1] if found else None

    def became_ready(self, uid: str) -> float | None:
        """When this incarnation became a ready endpoint (t0 if it already was when the watch started)."""
        if uid in self.initial_ready:
            return self.t0
        return next((e.t for e in self.events if e.uid == uid and e.kind == "ready"), None)

    def left_at(self, uid: str, after: float) -> ServiceEvent | None:
        """The first time after `after` this incarnation stopped being a ready endpoint."""
        return next(
            (e for e in self.events if e.uid == uid and e.kind in ("not-ready", "left") and e.t >= after),
            None,
        )

    def going(self, group: int | None, pod: str, start: float, end: float) -> list[ServiceEvent]:
        """Events in [start, end] that take down the pod `pod` or its group (a worker lost takes its leader
        down with it), in time order."""
        return [
            e
            for e in self.events
            if e.kind in GOING
            and start <= e.t <= end
            and (e.pod == pod or (group is not None and e.group == group and e.kind != "not-ready"))
        ]

    def older_than(self, uid: str | None, than: str | None) -> bool:
        """Pod incarnation `uid` was created before incarnation `than`, by their creationTimestamps (False when
        either is unknown). A worker older than its leader's incarnation belongs to the group that leader
        replaced: LWS creates a group's workers after its leader."""
        mine, theirs = self.created.get(uid or ""), self.created.get(than or "")
        return mine is not None and theirs is not None and _when(mine) < _when(theirs)

    def no_ready_endpoint(self) -> list[tuple[float, float]]:
        """The stretches (start, end) with no ready endpoint at all, end None-free: an open stretch ends at the
        last event."""
        stretches = []
        ready = dict(self.initial_ready)
        since = None if ready else self.t0
        for event in self.events:
            if event.uid is None:
                continue
            if event.kind == "ready":
                ready[event.uid] = event.pod
            elif event.kind in ("not-ready", "left"):
                ready.pop(event.uid, None)
            if not ready and since is None:
                since = event.t
            elif ready and since is not None:
                stretches.append((since, event.t))
                since = None
        if since is not None and self.events:
            stretches.append((since, max(since, self.events[-1].t)))
        return stretches


def _when(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)
