"""Why each request of a steady load failed, judged against what the Service did (checks/service_timeline.py),
so that a user can tell a Service that dropped requests from a pod that was going away.

Each failed request is placed by the pod that carried it (the loopback balancer's `x-lws-vllm-endpoint`
response header; with a plain `kubectl port-forward svc/...` none, then the one ready endpoint if there was
only one) and its send and finish times:

- (a) `going`: in flight on a pod when it left the Service's endpoints, was deleted or killed, or its group lost
  a pod (cause named); or sent to a pod after it was deleted or killed but before the Service took it out (the
  endpoint propagation every Service has). Expected on any cluster; counted, never a failure.
- (b) `taken-out`: sent to a pod that was not a ready endpoint of the Service (it had left the endpoints more
  than PROPAGATION_S before, or was not yet one), or to a ready endpoint that did not serve (a leader Ready
  before vLLM listens: no readiness probe), while another ready leader was there to take it. A MUST-NOT: the
  Service's or the client's fault.
- (c) `no-endpoint`: sent while the Service had no ready endpoint: an outage, allowed only where the check says.
- (d) `other`: none of these (a failure on a serving pod, or a pod the request cannot be placed on).

PROPAGATION_S is the Service's own lag, not the client's: kube-proxy applies endpoint changes at most once a
second by default (kube-proxy `--iptables-min-sync-period` / `--nftables-min-sync-period`, default 1s;
k8s.io/kubernetes@v1.36.3 pkg/proxy/apis/config/v1alpha1/defaults.go), and a client following the
EndpointSlices reacts to the same watch event the split's watch saw. WATCH_LAG_S bounds how much later than the
failure itself the watch sees a container die (the kubelet reports it; kubelet's PLEG relists every second).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from load.records import RequestRecord
from suite.conformance.checks.service_timeline import ServiceEvent, ServiceTimeline

Klass = Literal["going", "taken-out", "no-endpoint", "other"]
CLASSES: tuple[Klass, ...] = ("going", "taken-out", "no-endpoint", "other")
LETTER: dict[str, str] = {"going": "a", "taken-out": "b", "no-endpoint": "c", "other": "d"}
PROPAGATION_S = 1.0
WATCH_LAG_S = 2.0
# failures that say the pod (or its port-forward) took no request at all, as opposed to an answer of the engine
_NOT_SERVED = {"http_502", "connect_error", "connection_reset", "no_done", "client_error"}


@dataclass(frozen=True)
class Failure:
    index: int
    klass: Klass
    endpoint: str | None
    cause: str  # the same text for every request with the same cause, so they group
    error: str
    after_s: float | None = None  # (b): how long after the pod left the endpoints it was sent


@dataclass(frozen=True)
class RequestSplit:
    sent: int
    failed: tuple[Failure, ...]
    served_by: dict[str, int]  # pod -> requests it completed
    watch_problems: tuple[str, ...] = ()
    no_endpoint_s: float = 0.0  # seconds with no ready endpoint at all while the load ran

    def of(self, klass: Klass) -> list[Failure]:
        return [f for f in self.failed if f.klass == klass]

    def counts(self) -> dict[str, int]:
        return {k: len(self.of(k)) for k in CLASSES}

    def causes(self, klass: Klass) -> list[str]:
        """'<count> x <cause>' per distinct cause, most frequent first."""
        grouped: dict[str, list[Failure]] = {}
        for failure in self.of(klass):
            grouped.setdefault(failure.cause, []).append(failure)
        lines = []
        for cause, failures in sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            errors: dict[str, int] = {}
            for f in failures:
                errors[f.error] = errors.get(f.error, 0) + 1
            said = ", ".join(f"{e}: {n}" for e, n in sorted(errors.items()))
            late = [f.after_s for f in failures if f.after_s is not None]
            up_to = f", up to {max(late):.2f} s after" if late else ""
            lines.append(f"{len(failures)} x {cause} ({said}{up_to})")
        return lines

    def figure(self) -> str:
        """'4/51 requests failed: 3 (a) in flight on a pod going, 0 (b) taken-out, 1 (c) no endpoint, 0 (d) other'"""
        c = self.counts()
        return (
            f"{len(self.failed)}/{self.sent} requests failed: {c['going']} (a) on a pod going, "
            f"{c['taken-out']} (b) to a pod the Service had taken out or that did not serve, "
            f"{c['no-endpoint']} (c) with no ready endpoint, {c['other']} (d) other"
        )

    def report(self) -> str:
        """The figure, then every cause by class."""
        lines = [self.figure()]
        for klass in CLASSES:
            for cause in self.causes(klass):
                lines.append(f"  ({LETTER[klass]}) {cause}")
        for problem in self.watch_problems:
            lines.append(f"  watch: {problem} (events may be missing)")
        return "\n".join(lines)


@dataclass
class _Request:
    record: RequestRecord
    endpoint: str | None
    s: float = field(init=False)
    f: float = field(init=False)

    def __post_init__(self) -> None:
        self.s = self.record.sent if self.record.sent is not None else self.record.scheduled
        self.f = self.record.finished if self.record.finished is not None else self.s


def split(
    records: tuple[RequestRecord, ...] | list[RequestRecord],
    endpoints: dict[int, str],
    timeline: ServiceTimeline,
) -> RequestSplit:
    """Classify every failed request of `records` (endpoints: request index -> the pod that carried it)."""
    served: dict[str, int] = {}
    failed = []
    for record in records:
        endpoint = endpoints.get(record.index)
        if record.ok:
            if endpoint is not None:
                served[endpoint] = served.get(endpoint, 0) + 1
            continue
        failed.append(classify(_Request(record, endpoint), timeline))
    gaps = timeline.no_ready_endpoint()
    return RequestSplit(
        len(records),
        tuple(failed),
        served,
        timeline.problems,
        round(sum(end - start for start, end in gaps), 2),
    )


def _fail(r: _Request, klass: Klass, cause: str, after_s: float | None = None) -> Failure:
    return Failure(r.record.index, klass, r.endpoint, cause, r.record.error or "unknown", after_s)


def classify(r: _Request, timeline: ServiceTimeline) -> Failure:
    t0 = timeline.t0
    ready = timeline.ready_at(r.s)
    endpoint = r.endpoint
    if endpoint is None and len(set(ready.values())) == 1:  # no header (plain port-forward): the only one
        endpoint = next(iter(ready.values()))
    if endpoint is None:
        if not ready:
            return _fail(r, "no-endpoint", "sent while the Service had no ready endpoint")
        if r.record.status == 503:
            listed = sorted(set(ready.values()))
            return _fail(r, "other", f"the client had no endpoint while the Service listed {listed}")
        return _fail(r, "other", "the pod that carried it is unknown (no endpoint header)")
    uid = timeline.incarnation(endpoint, r.s)
    group = timeline.groups.get(endpoint)
    since = timeline.became_ready(uid) if uid is not None else None
    others = sorted({name for u, name in ready.items() if u != uid})
    is_ready = uid is not None and uid in ready
    first = _first_going(timeline, group, endpoint, uid, since)
    if first is not None and first.t <= r.s:  # already going when sent
        if is_ready:
            went = _went(first, endpoint, t0)
            return _fail(
                r,
                "going",
                f"sent to {endpoint} after {went}, before the Service took it out (endpoint propagation)",
            )
        left = timeline.left_at(uid, since) if uid is not None and since is not None else None
        return _not_an_endpoint(r, endpoint, others, left, timeline)
    if first is not None and first.t <= r.f + WATCH_LAG_S:
        return _fail(r, "going", f"in flight on {endpoint} when {first.says(t0)}")
    if not is_ready:
        return _not_an_endpoint(r, endpoint, others, None, timeline)
    if others and r.record.error in _NOT_SERVED:
        ready_since = f"+{since - t0:.2f} s" if since is not None and since > t0 else "before the watch"
        return _fail(
            r,
            "taken-out",
            f"sent to {endpoint}, a ready endpoint since {ready_since} that did not serve, while {others} were ready",
        )
    return _fail(r, "other", f"failed on {endpoint}, a ready endpoint that was not going")


def _first_going(
    timeline: ServiceTimeline, group: int | None, endpoint: str, uid: str | None, since: float | None
) -> ServiceEvent | None:
    """The first event, since this incarnation became a ready endpoint, that takes it or its group down; an
    event on a group-mate older than this incarnation is the replaced group's (its old worker going after the new
    leader was up), not this one's."""
    if since is None:
        return None
    events = timeline.going(group, endpoint, since, float("inf"))
    return next(
        (
            e
            for e in events
            if (e.pod != endpoint and not timeline.older_than(e.uid, uid))
            or (e.pod == endpoint and e.uid in (uid, None))
        ),
        None,
    )


def _not_an_endpoint(
    r: _Request, endpoint: str, others: list[str], left: ServiceEvent | None, timeline: ServiceTimeline
) -> Failure:
    """A request sent to a pod that was not a ready endpoint of the Service at the time."""
    if not others:
        return _fail(r, "no-endpoint", "sent while the Service had no ready endpoint")
    if left is None or left.t > r.s:
        return _fail(
            r, "taken-out", f"sent to {endpoint} before it was a ready endpoint, while {others} were ready"
        )
    went = _went(left, endpoint, timeline.t0)
    after = r.s - left.t
    if after <= PROPAGATION_S:
        return _fail(
            r,
            "going",
            f"sent to {endpoint} within {PROPAGATION_S:.0f} s after {went} (endpoint propagation)",
        )
    return _fail(
        r, "taken-out", f"sent to {endpoint} after {went}, while {others} were ready", round(after, 2)
    )


def _went(event: ServiceEvent, endpoint: str, t0: float) -> str:
    """'it was deleted at +3.20 s' for the pod itself, 'its group's vllm-0-1 was deleted at ...' for another."""
    said = event.says(t0)
    return "it " + said.removeprefix(endpoint + " ") if event.pod == endpoint else f"its group's {said}"
