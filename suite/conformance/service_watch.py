"""Watch a leader Service's EndpointSlices and the LWS's pods while a fault or a rollout runs, and record a
timeline (suite/conformance/checks/service_timeline.py): each pod becoming a ready endpoint, being listed not
ready, leaving the endpoints, being deleted, gone, or its container dying; and the faults the suite injects
(`mark_fault`). Each change is stamped with time.perf_counter() as it arrives.

A watch, not sampling: an endpoint that is ready for 0.3 s between two samples would be missed, and what the
request split (checks/request_split.py) judges is exactly when the Service changed. Each watch call has a short
server-side timeout and resumes from the last resourceVersion; a watch that breaks is recorded as a problem
(events may be missing) and resumed from a fresh list.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch

from fixtures import deploy
from fixtures.kube import Kube
from fixtures.service_balancer import ServiceBalancer
from fixtures.settings import Settings
from fixtures.snapshot import Expectation
from manifests.manifest import NAME_LABEL
from suite.conformance.checks import request_split
from suite.conformance.checks.request_split import RequestSplit
from suite.conformance.checks.service_timeline import Kind, ServiceEvent, ServiceTimeline
from suite.conformance.steady_load import LoadTally, SteadyLoad
from suite.conformance.timeline import GROUP_INDEX, WORKER_INDEX

WATCH_S = 2  # each watch call's server-side timeout, so stop() returns within about that
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass
class _Pod:
    name: str
    group: int | None
    worker: int | None
    deleting: bool
    restarts: int
    terminated: int  # containers whose state is terminated


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _pod_of(raw: dict[str, Any]) -> _Pod:
    meta, status = raw.get("metadata") or {}, raw.get("status") or {}
    labels = meta.get("labels") or {}
    statuses = status.get("containerStatuses") or []
    return _Pod(
        str(meta.get("name")),
        _int(labels.get(GROUP_INDEX)),
        _int(labels.get(WORKER_INDEX)),
        bool(meta.get("deletionTimestamp")),
        sum(int(c.get("restartCount") or 0) for c in statuses),
        sum(1 for c in statuses if (c.get("state") or {}).get("terminated")),
    )


def _endpoints_of(raw: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """uid -> (pod name, ready) of one EndpointSlice's endpoints that name a pod."""
    found = {}
    for endpoint in raw.get("endpoints") or []:
        ref = endpoint.get("targetRef") or {}
        if ref.get("kind", "Pod") != "Pod" or not ref.get("name"):
            continue
        ready = (endpoint.get("conditions") or {}).get("ready")
        # EndpointSlice API: a nil ready condition is to be read as ready (discovery.k8s.io/v1 EndpointConditions)
        found[str(ref.get("uid") or ref["name"])] = (str(ref["name"]), ready is None or bool(ready))
    return found


@dataclass
class ServiceWatch:
    """Watches svc `service`'s EndpointSlices and the pods of LWS `lws_name` in `namespace` until `stop`."""

    kube: Kube
    namespace: str
    service: str
    lws_name: str
    events: list[ServiceEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _pods: dict[str, _Pod] = field(default_factory=dict)  # by uid
    _slices: dict[str, dict[str, tuple[str, bool]]] = field(default_factory=dict)  # slice name -> endpoints
    _initial: dict[str, str] = field(default_factory=dict)
    _created: dict[str, str] = field(default_factory=dict)  # uid -> creationTimestamp, kept after deletion
    _t0: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> ServiceWatch:
        discovery = client.DiscoveryV1Api(self.kube.api)
        watched: list[tuple[str, Callable[..., Any], str]] = [
            ("pods", self.kube.core.list_namespaced_pod, f"{NAME_LABEL}={self.lws_name}"),
            ("slices", discovery.list_namespaced_endpoint_slice, f"{SERVICE_NAME_LABEL}={self.service}"),
        ]
        versions = [self._list(kind, lister, selector, initial=True) for kind, lister, selector in watched]
        with self._lock:
            self._t0 = time.perf_counter()
            self._initial = {uid: name for uid, (name, ready) in self._endpoints().items() if ready}
        for (kind, lister, selector), rv in zip(watched, versions, strict=True):
            thread = threading.Thread(
                target=self._run, args=(kind, lister, selector, rv), name=f"service-watch-{kind}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def mark_fault(self, pod: str, fault: str) -> None:
        """Record that the suite is about to inject `fault` into `pod` (call it right before)."""
        with self._lock:
            uid = next((u for u, p in self._pods.items() if p.name == pod and not p.deleting), None)
            group, worker = self._place(uid, pod)
            self.events.append(ServiceEvent(time.perf_counter(), "fault", pod, uid, group, worker, fault))

    def stop(self) -> ServiceTimeline:
        """Stop watching (never raises) and return the timeline."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=WATCH_S * 3)
        with self._lock:
            events = tuple(sorted(self.events, key=lambda e: e.t))
            groups = {e.pod: e.group for e in events if e.group is not None}
            groups.update({p.name: p.group for p in self._pods.values() if p.group is not None})
            for name in self._initial.values():
                group = self._place(None, name)[0]
                if name not in groups and group is not None:
                    groups[name] = group
            return ServiceTimeline(
                self.service,
                self._t0,
                dict(self._initial),
                events,
                tuple(self.problems),
                groups,
                dict(self._created),
            )

    # watching -------------------------------------------------------------------------------------------
    def _list(self, kind: str, lister: Callable[..., Any], selector: str, *, initial: bool) -> str:
        response = lister(self.namespace, label_selector=selector, _preload_content=False)
        body = json.loads(response.data)
        items = body.get("items") or []
        with self._lock:
            if kind == "pods":
                seen = set()
                for item in items:
                    self._pod_changed("MODIFIED", item, quiet=initial)
                    seen.add(item["metadata"]["uid"])
                for uid in set(self._pods) - seen:  # gone while the watch was broken
                    self._pod_changed("DELETED", {"metadata": {"uid": uid, "name": self._pods[uid].name}})
            else:
                before = self._endpoints()
                self._slices = {item["metadata"]["name"]: _endpoints_of(item) for item in items}
                if not initial:
                    self._endpoints_changed(before)
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _run(self, kind: str, lister: Callable[..., Any], selector: str, rv: str) -> None:
        while not self._stop.is_set():
            watcher = watch.Watch()
            try:
                for event in watcher.stream(
                    lister,
                    self.namespace,
                    label_selector=selector,
                    resource_version=rv,
                    timeout_seconds=WATCH_S,
                ):
                    raw = event["raw_object"]
                    if event["type"] == "ERROR":  # 410 Gone: the resourceVersion is too old; list again
                        rv = self._list(kind, lister, selector, initial=False)
                        break
                    with self._lock:
                        if kind == "pods":
                            self._pod_changed(str(event["type"]), raw)
                        else:
                            self._slice_changed(str(event["type"]), raw)
                    rv = str((raw.get("metadata") or {}).get("resourceVersion") or rv)
                    if self._stop.is_set():
                        break
            except Exception as exc:  # a watch that breaks may have lost events: say so, list again, go on
                with self._lock:
                    self.problems.append(f"the {kind} watch broke ({type(exc).__name__}: {str(exc)[:200]})")
                if self._stop.wait(0.5):
                    break
                try:
                    rv = self._list(kind, lister, selector, initial=False)
                except Exception as again:  # the API server may be briefly unavailable; try once more later
                    with self._lock:
                        self.problems.append(f"listing {kind} again failed ({type(again).__name__})")
            finally:
                watcher.stop()

    # changes (called with the lock held) --------------------------------------------------------------
    def _emit(self, kind: Kind, pod: str, uid: str | None, detail: str = "") -> None:
        group, worker = self._place(uid, pod)
        self.events.append(ServiceEvent(time.perf_counter(), kind, pod, uid, group, worker, detail))

    def _place(self, uid: str | None, name: str) -> tuple[int | None, int | None]:
        known = self._pods.get(uid or "")
        if known is not None:
            return known.group, known.worker
        rest = name.removeprefix(f"{self.lws_name}-").split("-")  # <lws>-<group>[-<worker>]
        group = _int(rest[0]) if rest else None
        return group, (_int(rest[1]) if len(rest) > 1 else 0) if group is not None else None

    def _pod_changed(self, type_: str, raw: dict[str, Any], quiet: bool = False) -> None:
        uid = str(raw["metadata"]["uid"])
        old = self._pods.get(uid)
        if type_ == "DELETED":
            name = old.name if old else str(raw["metadata"].get("name"))
            self._pods.pop(uid, None)
            if not quiet:
                self._emit("deleted", name, uid)
            return
        new = _pod_of(raw)
        self._pods[uid] = new
        if created := (raw.get("metadata") or {}).get("creationTimestamp"):
            self._created.setdefault(uid, str(created))
        if quiet or old is None:
            if not quiet and new.deleting:
                self._emit("deleting", new.name, uid)
            return
        if new.deleting and not old.deleting:
            self._emit("deleting", new.name, uid)
        if new.restarts > old.restarts or new.terminated > old.terminated:
            detail = (
                f"restart count {old.restarts} -> {new.restarts}"
                if new.restarts > old.restarts
                else "container terminated"
            )
            self._emit("killed", new.name, uid, detail)

    def _slice_changed(self, type_: str, raw: dict[str, Any]) -> None:
        before = self._endpoints()
        name = str(raw["metadata"]["name"])
        if type_ == "DELETED":
            self._slices.pop(name, None)
        else:
            self._slices[name] = _endpoints_of(raw)
        self._endpoints_changed(before)

    def _endpoints(self) -> dict[str, tuple[str, bool]]:
        union: dict[str, tuple[str, bool]] = {}
        for endpoints in self._slices.values():
            for uid, (name, ready) in endpoints.items():
                union[uid] = (name, ready or union.get(uid, (name, False))[1])
        return union

    def _endpoints_changed(self, before: dict[str, tuple[str, bool]]) -> None:
        after = self._endpoints()
        for uid, (name, ready) in after.items():
            was = before.get(uid)
            if ready and (was is None or not was[1]):
                self._emit("ready", name, uid)
            elif not ready and was is not None and was[1]:
                self._emit("not-ready", name, uid)
        for uid, (name, ready) in before.items():
            if uid not in after:
                self._emit("left", name, uid, "" if ready else "already not ready")


def balancer(
    kube: Kube,
    namespace: str,
    service: str | None,
    port: int,
    settings: Settings,
    progress: Callable[[str], None] | None,
) -> ServiceBalancer:
    """The load's way into the Service, as kube-proxy spreads it: the loopback balancer over one
    `kubectl port-forward pod/<leader>` per ready endpoint (fixtures/service_balancer.py), whose response header
    names the pod that carried each request. Not `kubectl port-forward svc/...`: that pins one pod, and its
    failover is kubectl's, not the Service's."""
    if service is None:
        raise deploy.DeployError(
            "the manifest has no Service in front of the leader; add one (see manifests/reference/lws.yaml)"
        )
    return ServiceBalancer(kube, namespace, service, port, settings.timeouts.port_forward).start(progress)


@dataclass
class ServiceUnderLoad:
    """A steady load through the Service (``forward``: the balancer) while its EndpointSlices and pods are
    watched; ``tally`` and ``split`` once the block that ran it has ended without an error."""

    forward: ServiceBalancer
    watch: ServiceWatch
    load: SteadyLoad
    _ended: tuple[LoadTally, RequestSplit] | None = None

    @property
    def tally(self) -> LoadTally:
        return self._result()[0]

    @property
    def split(self) -> RequestSplit:
        return self._result()[1]

    def leader_answers(self, pod: str, model: str | None, timeout: float = 10.0) -> bool:
        """A completion sent to `pod` alone comes back 200 with choices: the balancer's per-pod route, which
        reaches only a ready endpoint of the Service (another group's leader answering does not count)."""
        return completion_ok(self.forward.pod_url(pod), model, timeout)

    def _result(self) -> tuple[LoadTally, RequestSplit]:
        if self._ended is None:
            raise RuntimeError("the load through the Service is still running: read it after its block")
        return self._ended


@contextmanager
def service_under_load(
    kube: Kube,
    namespace: str,
    expect: Expectation,
    settings: Settings,
    progress: Callable[[str], None] | None,
) -> Iterator[ServiceUnderLoad]:
    """Five requests a second through the Service's balancer, its endpoints watched, for the block's length; then
    every failed request placed against the Service's timeline (checks/request_split.py). The watch, the load
    and the balancer stop however the block ends."""
    forward = balancer(kube, namespace, expect.service_name, expect.forward_port, settings, progress)
    try:
        watch = ServiceWatch(kube, namespace, expect.service_name or "", expect.lws_name).start()
        try:
            with SteadyLoad(forward.url, expect.model or "", rate_per_s=5.0) as load:
                run = ServiceUnderLoad(forward, watch, load)
                yield run
        finally:
            timeline = watch.stop()
    finally:
        forward.stop()
    tally = load.stop()
    run._ended = (tally, request_split.split(tally.records, tally.endpoints, timeline))


def completion_ok(url: str, model: str | None, timeout: float) -> bool:
    """POST {url}/v1/completions (two tokens) answers 200 with choices."""
    body = json.dumps({"model": model, "prompt": "ping", "max_tokens": 2, "ignore_eos": True}).encode()
    request = urllib.request.Request(
        f"{url}/v1/completions", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status == 200 and bool(json.loads(resp.read()).get("choices"))
    except (urllib.error.URLError, OSError, ValueError):
        return False
