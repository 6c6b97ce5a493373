"""The order in which the API server recorded the changes to one LWS's pods and StatefulSets: a watch of each
(from a list's resourceVersion), every event kept with its object's resourceVersion.

For checks about order ("the worker StatefulSet is created only after the leader is Ready"): sampling the API a
few times a second cannot tell two writes apart that land between two samples, and the objects' timestamps
have one-second resolution. resourceVersion can: it is the store's revision of the write, and Kubernetes
guarantees that resource versions of one resource compare as integers in the order of the writes (KEP-5504,
comparable resource versions, GA in 1.35; k8s.io/apimachinery/pkg/util/resourceversion `CompareResourceVersion`:
"only has semantic meaning when the comparison is done on two objects of the same resource"). Pods and
StatefulSets share one etcd, and so one revision counter, unless the API server is told to store them apart
(`--etcd-servers-overrides`); the checks say which comparisons cross the two.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch

from fixtures.kube import Kube
from manifests.manifest import NAME_LABEL
from suite.conformance.timeline import GROUP_INDEX, WORKER_INDEX

WATCH_S = 2  # each watch call's server-side timeout; the next one resumes from the last resourceVersion
LISTED = "LISTED"  # an object that existed when the watch started (from the list, not a watch event)


@dataclass(frozen=True)
class ApiEvent:
    rv: int  # the object's resourceVersion after this write
    kind: str  # "Pod" or "StatefulSet"
    type: str  # LISTED, ADDED, MODIFIED, DELETED
    name: str
    group: int | None
    worker: int | None
    ready: bool  # a pod's Ready condition is True


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def event_of(kind: str, type_: str, raw: dict[str, Any]) -> ApiEvent | None:
    """The event of one object's JSON; None when its resourceVersion is no integer (then nothing can be
    ordered: the watch counts it)."""
    meta = raw.get("metadata") or {}
    rv = _int(meta.get("resourceVersion"))
    if rv is None:
        return None
    labels = meta.get("labels") or {}
    conditions = (raw.get("status") or {}).get("conditions") or []
    return ApiEvent(
        rv,
        kind,
        type_,
        str(meta.get("name")),
        _int(labels.get(GROUP_INDEX)),
        _int(labels.get(WORKER_INDEX)),
        any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
    )


@dataclass
class ApiWatch:
    """Watches the pods and StatefulSets labelled with the LWS's name in a namespace (which need not exist
    yet) until `stop`, which returns every event in resourceVersion order."""

    kube: Kube
    namespace: str
    lws_name: str
    events: list[ApiEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what may have left events out
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> ApiWatch:
        apps = client.AppsV1Api(self.kube.api)
        for kind, lister in (
            ("Pod", self.kube.core.list_namespaced_pod),
            ("StatefulSet", apps.list_namespaced_stateful_set),
        ):
            listed = lister(self.namespace, label_selector=self._selector, _preload_content=False)
            body = _json(listed)
            for item in body.get("items") or []:
                self._add(kind, LISTED, item)
            rv = str((body.get("metadata") or {}).get("resourceVersion") or "")
            thread = threading.Thread(
                target=self._run, args=(kind, lister, rv), name=f"watch-{kind}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def _selector(self) -> str:
        return f"{NAME_LABEL}={self.lws_name}"

    def _add(self, kind: str, type_: str, raw: dict[str, Any]) -> None:
        found = event_of(kind, type_, raw)
        with self._lock:
            if found is None:
                self.problems.append(
                    f"{kind} {raw.get('metadata', {}).get('name')}: resourceVersion is no integer"
                )
            else:
                self.events.append(found)

    def _run(self, kind: str, lister: Callable[..., Any], rv: str) -> None:
        while not self._stop.is_set():
            watcher = watch.Watch()
            try:
                for event in watcher.stream(
                    lister,
                    self.namespace,
                    label_selector=self._selector,
                    resource_version=rv,
                    timeout_seconds=WATCH_S,
                ):
                    raw = event["raw_object"]
                    self._add(kind, str(event["type"]), raw)
                    rv = str((raw.get("metadata") or {}).get("resourceVersion") or rv)
                    if self._stop.is_set():
                        break
            except Exception as exc:  # a watch that breaks may have lost events: say so, and resume
                with self._lock:
                    self.problems.append(f"the {kind} watch broke ({type(exc).__name__}: {str(exc)[:200]})")
                self._stop.wait(0.5)
            finally:
                watcher.stop()

    def stop(self) -> list[ApiEvent]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=WATCH_S * 2)
        with self._lock:
            return sorted(self.events, key=lambda e: e.rv)


def _json(response: Any) -> dict[str, Any]:
    data = json.loads(response.data)
    return data if isinstance(data, dict) else {}
