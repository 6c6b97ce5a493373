"""The bridge: makes each LWS group on the testbed serve and log like a vLLM group on GPU nodes.

It watches LWS pods (label leaderworkerset.sigs.k8s.io/name) and, per group:
- once the leader and all its workers run (the Ray cluster can reach its size), starts a simulated vLLM engine
  configured from the leader's own command line and env, on a free 127.0.0.1 port;
- points KWOK `PortForward` rules for the leader at that port (so `kubectl port-forward svc/vllm-leader` reaches
  it) and KWOK `Logs` rules for every pod at CRI-format files the engine writes (so `kubectl logs` reads them);
- when the leader is deleted, stops the engine; when a container's restart count rises (a crash, as a kubelet
  would report it), the engine restarts and the old log becomes the `--previous` log.
The new group LWS creates after a recreation gets a new engine and new log files (keyed by pod UID).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from testbed.bridge.group_join import worker_joins
from testbed.bridge.kwok_rules import KwokRules, logs_object, port_forward_object
from testbed.bridge.local_pod_spec import MAX_GRACE_S
from testbed.bridge.local_pods import LocalPods
from testbed.bridge.pods import LWS_NAME, Group, PodView, group_of, pod_view
from testbed.bridge.sim_pods import SimSandboxes
from testbed.bridge.suite_pods import SuitePods
from testbed.stages import ENGINE_READY

log = logging.getLogger("bridge")


class Engine(Protocol):
    port: int

    @property
    def returncode(self) -> int | None: ...

    def alive(self) -> bool: ...

    def healthy(self) -> bool: ...

    def peer_lost(self) -> None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def stop(self) -> None: ...


class EngineLauncher(Protocol):
    def start(self, group: Group, log_files: LogFiles, uid: int | None = None) -> Engine | None: ...


@dataclass(frozen=True)
class LogFiles:
    """Where each pod of a group logs, keyed by pod UID so a recreated pod gets a fresh file."""

    root: Path

    def current(self, pod: PodView) -> Path:
        return self.root / pod.namespace / pod.name / f"{pod.uid}.{pod.restart_count}.log"

    def previous(self, pod: PodView) -> Path | None:
        if pod.restart_count == 0:
            return None
        return self.root / pod.namespace / pod.name / f"{pod.uid}.{pod.restart_count - 1}.log"

    def ensure(self, pod: PodView) -> Path:
        path = self.current(pod)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        return path


@dataclass
class RunningEngine:
    leader_uid: str
    leader_namespace: str
    leader_name: str
    leader_restarts: int
    worker_uids: tuple[str, ...]
    engine: Engine
    ready_marked: bool = False
    pointed: bool = False  # its port-forward rule (and a restarted leader's not-ready mark) written
    uid: int | None = None  # the leader pod's sandbox user id (sim_pods.py), when sandboxed
    death_reported: bool = False
    worker_restarts: tuple[int, ...] = ()  # each worker's restart count when the engine started
    peer_lost: bool = False  # the engine was told a worker of its group went away


class RealPodsLike(Protocol):
    """testbed/bridge/real_pods.py: every pod's container as a real process (the real engine)."""

    def reconcile(self, pods: dict[str, PodView]) -> None: ...

    def poll(self) -> list[Any]: ...

    def port_of(self, namespace: str, name: str) -> int | None: ...

    def stop_all(self) -> None: ...


class Bridge:
    def __init__(
        self,
        api: client.ApiClient,
        launcher: EngineLauncher,
        state_dir: Path,
        real_pods: Callable[[KwokRules, LogFiles], RealPodsLike] | None = None,
        sandboxes: Callable[[KwokRules], SimSandboxes] | None = None,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._rules = KwokRules(api)
        self._launcher = launcher
        self._logs = LogFiles(state_dir / "pods")
        # With the real engine every pod runs its own command (real_pods.py) and no simulator is started.
        self._real = real_pods(self._rules, self._logs) if real_pods is not None else None
        # With the simulator, each pod's sandbox (sim_pods.py): crashes arrive through `kubectl exec`.
        self._sandboxes = sandboxes(self._rules) if sandboxes is not None else None
        self._state_dir = state_dir
        self._pods: dict[str, PodView] = {}  # by uid
        self._engines: dict[tuple[str, str], RunningEngine] = {}  # by group id
        # engines sent SIGTERM for a pod that went (deleted, replaced): SIGKILL at the deadline (monotonic)
        self._terminating: list[tuple[Engine, float, str]] = []
        self._retry: set[tuple[str, str]] = set()  # groups whose last reconcile an error cut short
        self._pointed: dict[
            tuple[str, str], tuple[str, int]
        ] = {}  # (ns, pod) -> (uid, restarts) rules written
        self._stop = threading.Event()
        self._lock = threading.RLock()  # the watch thread and the readiness thread share _engines
        # Pods labelled run-locally (the in-cluster Locust master and workers) run as local processes, their
        # Service names pointed at engine ports from engine_port(): testbed/bridge/local_pods.py.
        self._local_pods = LocalPods(api, state_dir / "local-pods", self.engine_port)
        # Pods of the suite's own image (its Job, its CronJob) run from this checkout: testbed/bridge/suite_pods.py.
        self._suite_pods = SuitePods(
            api, state_dir / "suite-pods", lambda ns, pod, _port: self.engine_port(ns, pod)
        )

    # event loop -------------------------------------------------------------------------------------
    def run(self) -> None:
        """List, then watch from the list's resourceVersion; relist when the watch expires (410 Gone)."""
        threading.Thread(target=self._readiness_loop, name="readiness", daemon=True).start()
        self._local_pods.start()
        while not self._stop.is_set():
            try:
                listing = self._core.list_pod_for_all_namespaces(label_selector=LWS_NAME)
                with self._lock:
                    self._pods = {}
                    for pod in listing.items:
                        self._observe(self._core.api_client.sanitize_for_serialization(pod), deleted=False)
                    self._reconcile_all()
                (self._state_dir / "ready").touch()
                self._suite_pods.start()  # after the first list: the bridge reports ready without waiting on it
                self._watch(str(listing.metadata.resource_version))  # type: ignore[union-attr]
            except ApiException as exc:
                if exc.status == 410:
                    log.info("watch expired (410); relisting")
                    continue
                log.warning("pod list or watch failed (%s %s); relisting", exc.status, exc.reason)
                self._stop.wait(1.0)  # back-off before the next list, not a synchronisation
            except (
                urllib3.exceptions.HTTPError,
                OSError,
            ) as exc:  # a watch cut off, the API server restarting
                log.warning("pod list or watch failed (%s); relisting", exc)
                self._stop.wait(1.0)

    def _watch(self, resource_version: str) -> None:
        stream = watch.Watch()
        for event in stream.stream(
            self._core.list_pod_for_all_namespaces,
            label_selector=LWS_NAME,
            resource_version=resource_version,
            timeout_seconds=300,
            _preload_content=True,
        ):
            if self._stop.is_set():
                stream.stop()
                return
            raw = self._core.api_client.sanitize_for_serialization(event["object"])
            with self._lock:
                view = self._observe(raw, deleted=event["type"] == "DELETED")
                if view is not None:
                    self._reconcile_or_retry(view.group_id)
                self._reap_dead_engines()

    def stop(self) -> None:
        self._stop.set()
        self._local_pods.stop()
        self._suite_pods.stop()
        with self._lock:
            if self._real is not None:
                self._real.stop_all()
            if self._sandboxes is not None:
                self._sandboxes.stop_all()
            for running in self._engines.values():
                running.engine.stop()
            self._engines.clear()
            for engine, _deadline, _what in self._terminating:
                engine.stop()
            self._terminating.clear()

    def engine_port(self, namespace: str, pod: str) -> int | None:
        """The local port of the engine whose leader is this pod (for local pods' Service names), or None."""
        with self._lock:
            if self._real is not None:
                return self._real.port_of(namespace, pod)
            for running in self._engines.values():
                if (running.leader_namespace, running.leader_name) == (namespace, pod):
                    return running.engine.port
        return None

    # readiness --------------------------------------------------------------------------------------
    def _readiness_loop(self) -> None:
        """Mark a leader ready (annotation -> KWOK stage pod-probe-ready) once its engine answers /health,
        as the kubelet's readiness probe would. Polls every 0.2 s: the engine's start-up is simulated time."""
        while not self._stop.wait(0.2):
            try:
                self._readiness_tick()
            except Exception:  # a kubelet's prober outlives one failed API call
                log.exception("readiness tick failed; trying again")

    def _readiness_tick(self) -> None:
        with self._lock:
            for group_id in sorted(self._retry):
                self._reconcile_or_retry(group_id)
        if self._real is not None:
            self._probe_real_pods()
            return
        with self._lock:
            self._reap_dead_engines()
            self._kill_after_grace()
            if self._sandboxes is not None:
                self._sandboxes.poll()
            pending = [r for r in self._engines.values() if not r.ready_marked]
        for running in pending:
            if running.engine.healthy():
                self._set_engine_ready(running.leader_namespace, running.leader_name, True)
                running.ready_marked = True

    def _probe_real_pods(self) -> None:
        assert self._real is not None
        with self._lock:
            pending = self._real.poll()
        for container in pending:
            if container.healthy():
                self._set_engine_ready(container.pod.namespace, container.pod.name, True)
                container.ready_marked = True

    def _set_engine_ready(self, namespace: str, name: str, ready: bool) -> None:
        body = {"metadata": {"annotations": {ENGINE_READY: "true" if ready else "false"}}}
        try:
            self._core.patch_namespaced_pod(name, namespace, body)
            if not ready:  # what a kubelet reports while a restarted container's probe has not passed
                status = {
                    "status": {
                        "conditions": [
                            {"type": "Ready", "status": "False"},
                            {"type": "ContainersReady", "status": "False"},
                        ]
                    }
                }
                self._core.patch_namespaced_pod_status(name, namespace, status)
        except ApiException as exc:
            if exc.status != 404:  # the pod went away meanwhile: nothing to mark
                raise

    # state ------------------------------------------------------------------------------------------
    def _observe(self, raw: dict[str, Any], *, deleted: bool) -> PodView | None:
        view = pod_view(raw)
        if view is None:
            return None
        if deleted:
            self._pods.pop(view.uid, None)
        else:
            self._pods[view.uid] = view
        return view

    def _group_pods(self, group_id: tuple[str, str]) -> list[PodView]:
        return [p for p in self._pods.values() if p.group_id == group_id]

    def _reconcile_all(self) -> None:
        for group_id in {p.group_id for p in self._pods.values()} | set(self._engines):
            self._reconcile_or_retry(group_id)

    def _reconcile_or_retry(self, group_id: tuple[str, str]) -> None:
        """Reconcile a group; an error (an API error, a namespace being deleted refusing new KWOK rules with
        403) is logged and the group tried again on the next readiness tick, as a kubelet retries: never the
        end of the bridge, whose death would leave every later group unserved."""
        try:
            self._reconcile(group_id)
        except ApiException as exc:
            if group_id not in self._retry:
                log.warning("group %s: API error %s %s; trying again", group_id, exc.status, exc.reason)
            self._retry.add(group_id)
        except Exception:  # one group's trouble (a process that would not start) never ends the others'
            if group_id not in self._retry:
                log.exception("group %s: reconcile failed; trying again", group_id)
            self._retry.add(group_id)
        else:
            self._retry.discard(group_id)

    def _reconcile(self, group_id: tuple[str, str]) -> None:
        group = group_of(self._group_pods(group_id))
        for pod in (group.leader, *group.workers):
            if pod is not None and pod.running:
                self._point_logs(pod)
        if self._real is not None:
            self._real.reconcile(self._pods)
            return
        if self._sandboxes is not None:
            self._sandboxes.reconcile(self._pods, frozenset(r.leader_uid for r in self._engines.values()))
        running = self._engines.get(group_id)
        if running is not None and not running.peer_lost and (gone := self._peer_gone(running)) is not None:
            log.info("group %s: %s; its engine loses that node", group_id, gone)
            running.engine.peer_lost()
            running.peer_lost = True
        if running is not None and not self._still_valid(running, group):
            self._terminate(running)
            del self._engines[group_id]
            running = None
        if running is None and group.complete and group.leader is not None:
            log.info("starting engine for %s/%s", group.leader.namespace, group.leader.name)
            for join in worker_joins(group):
                if not join.joins:  # the leader will wait for it, as on a cluster
                    log.warning("worker %s does not join its leader: %s", join.worker.name, join.problem)
            uid = None
            if self._sandboxes is not None:
                self._sandboxes.retire(group.leader.uid)  # its stand-in, while the group was incomplete
                uid = self._sandboxes.uid_of(group.leader)
            engine = self._launcher.start(group, self._logs, uid)
            if engine is None:
                log.warning(
                    "leader %s/%s runs no `vllm serve`; no engine", group.leader.namespace, group.leader.name
                )
                return
            self._engines[group_id] = RunningEngine(
                group.leader.uid,
                group.leader.namespace,
                group.leader.name,
                group.leader.restart_count,
                tuple(w.uid for w in group.workers),
                engine,
                uid=uid,
                worker_restarts=tuple(w.restart_count for w in group.workers),
            )
            running = self._engines[group_id]
        if running is not None and not running.pointed and group.leader is not None:
            if running.leader_restarts > 0:
                self._set_engine_ready(group.leader.namespace, group.leader.name, False)
            self._point_port_forward(group.leader, running.engine.port)
            running.pointed = True

    def _terminate(self, running: RunningEngine) -> None:
        """Stop the engine as a kubelet stops a container: SIGTERM now, SIGKILL once the leader pod's
        terminationGracePeriodSeconds (at most MAX_GRACE_S here) have passed (_kill_after_grace, on the readiness
        tick). Nothing waits here: the bridge's lock is never held through a grace period."""
        leader = self._pods.get(running.leader_uid)
        grace = min(leader.grace_s if leader is not None else 30.0, MAX_GRACE_S)
        what = f"{running.leader_namespace}/{running.leader_name}"
        log.info(
            "stopping engine of %s (leader %s): SIGTERM, SIGKILL after %.0f s",
            what,
            running.leader_uid,
            grace,
        )
        running.engine.terminate()
        self._terminating.append((running.engine, time.monotonic() + grace, what))

    def _kill_after_grace(self) -> None:
        now = time.monotonic()
        still = []
        for engine, deadline, what in self._terminating:
            if not engine.alive():
                continue
            if now >= deadline:
                log.info("engine of %s still running after its grace period: SIGKILL", what)
                engine.kill()
                continue
            still.append((engine, deadline, what))
        self._terminating = still

    @staticmethod
    def _still_valid(running: RunningEngine, group: Group) -> bool:
        """An engine serves one incarnation of a leader container; a new leader or a restart ends it."""
        leader = group.leader
        return (
            leader is not None
            and leader.running
            and leader.uid == running.leader_uid
            and leader.restart_count == running.leader_restarts
        )

    def _peer_gone(self, running: RunningEngine) -> str | None:
        """Which worker the engine's group lost since the engine started, if any: a worker pod deleted (or
        being deleted) or its container restarted (a crash). Real vLLM loses the ranks on that node with it
        and stops serving (measured on vLLM's CPU build: every request failed until the group was
        recreated), whatever the LWS restart policy then does."""
        for uid, restarts in zip(running.worker_uids, running.worker_restarts, strict=True):
            pod = self._pods.get(uid)
            if pod is None or pod.deleting:
                return f"worker pod {pod.name if pod else uid} was deleted"
            if pod.restart_count != restarts:
                return f"worker pod {pod.name}'s container restarted"
        return None

    def _reap_dead_engines(self) -> None:
        """A simulator that died is the leader container's death: reported as its kubelet would, once."""
        for group_id, running in list(self._engines.items()):
            if running.engine.alive() or running.death_reported:
                continue
            running.death_reported = True
            log.warning("engine for group %s exited", group_id)
            leader = self._pods.get(running.leader_uid)
            if self._sandboxes is not None and leader is not None and running.uid is not None:
                code = running.engine.returncode or 0
                self._sandboxes.report_engine_death(leader, running.leader_restarts, code, running.uid)

    # KWOK rules -------------------------------------------------------------------------------------
    def _point_logs(self, pod: PodView) -> None:
        key = (pod.namespace, pod.name)
        if self._pointed.get(key) == (pod.uid, pod.restart_count):
            return
        current = self._logs.ensure(pod)
        self._rules.apply(logs_object(pod.namespace, pod.name, current, self._logs.previous(pod)))
        self._pointed[key] = (pod.uid, pod.restart_count)

    def _point_port_forward(self, leader: PodView, port: int) -> None:
        pod_ports = {p for c in leader.all_containers for p in c.ports} or {8080}
        self._rules.apply(port_forward_object(leader.namespace, leader.name, dict.fromkeys(pod_ports, port)))
