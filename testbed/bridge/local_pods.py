"""The controller for pods labelled ``testbed.lws-vllm-suite.io/run-locally: "true"``: each runs its container
as a local process.

The testbed has no container runtime: KWOK only pretends pods run. For a pod that carries the label (the
in-cluster Locust master and workers, load/locust/manifests.py), the bridge does what a kubelet would, on
127.0.0.1 and nowhere else. What a pod asks to run (command, env, volumes, ports, Service names made local)
is read by testbed/bridge/local_pod_spec.py; this module watches the pods and does it:

- **Waiting**: until every Service name the pod uses resolves to a Ready local backend, the pod waits
  (checked twice a second).
- **Ports**: each ``containerPort`` gets a free 127.0.0.1 port when the pod is first seen; KWOK
  ``PortForward`` rules point every containerPort at its local port, so ``kubectl port-forward pod/... or
  svc/...`` reaches the process.
- **Logs**: stdout and stderr go to a CRI-format file with a KWOK ``Logs`` rule, so ``kubectl logs`` works.
- **Lifecycle**: the process is stopped (SIGTERM to its process group, SIGKILL after the pod's grace
  period, at most 10 s) when the pod is deleted. When it exits on its own, the container status shows
  ``terminated`` with its exit code (phase Succeeded/Failed for ``restartPolicy: Never``); it is not
  restarted. A pod that cannot start (a command not installed here, an unsupported volume) says why in its
  log and is reported as exited with code 127.

Never dialled: pod IPs and ClusterIPs (the testbed's addresses are fake).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from plumbing.ports import free_port
from testbed.bridge.kwok_rules import KwokRules, logs_object, port_forward_object
from testbed.bridge.local_pod_spec import (
    LOOPBACK,
    RUN_LOCALLY,
    CannotRunLocally,
    LocalPod,
    NotResolvable,
    config_map_files,
    local_pod,
    mount_paths,
    ready_backends,
    require_command,
    service_backend_port,
    terminated_status,
    volume_kind,
    what_to_run,
)
from testbed.engine.logsink import cri_timestamp
from testbed.processes import signal_and_wait

RETRY_S = 0.5

log = logging.getLogger("bridge.local-pods")


@dataclass
class _Running:
    pod: LocalPod
    proc: subprocess.Popen[bytes]
    ports: dict[int, int]
    threads: list[threading.Thread] = field(default_factory=list)
    exit_reported: bool = False


class LocalPods:
    """Watches run-locally pods and keeps one local process per running pod (see the module doc)."""

    def __init__(
        self, api: client.ApiClient, state_dir: Path, engine_port: Callable[[str, str], int | None]
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._rules = KwokRules(api)
        self._state_dir = state_dir
        self._engine_port = engine_port
        self._pods: dict[str, LocalPod] = {}  # by uid: every run-locally pod seen and not deleted
        # by uid: containerPort -> local port, fixed when the pod is first seen (Services resolve before it starts)
        self._ports: dict[str, dict[int, int]] = {}
        self._running: dict[str, _Running] = {}
        self._waiting: dict[str, str] = {}  # uid -> why it has not started (logged when it changes)
        self._failed: set[str] = set()  # uids that could not start: never retried (as a kubelet would not)
        self._lock = threading.RLock()
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._watch_loop, name="local-pods-watch", daemon=True).start()
        threading.Thread(target=self._retry_loop, name="local-pods-retry", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            running = list(self._running.values())
            self._running.clear()
        for r in running:
            self._terminate(r)

    # watching -------------------------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        selector = f"{RUN_LOCALLY}=true"
        while not self._stop.is_set():
            try:
                listing = self._core.list_pod_for_all_namespaces(label_selector=selector)
                with self._lock:
                    seen = set()
                    for pod in listing.items:
                        view = self._observe(
                            self._core.api_client.sanitize_for_serialization(pod), deleted=False
                        )
                        if view is not None:
                            seen.add(view.uid)
                    for uid in set(self._pods) - seen:
                        self._forget(uid)
                stream = watch.Watch()
                for event in stream.stream(
                    self._core.list_pod_for_all_namespaces,
                    label_selector=selector,
                    resource_version=listing.metadata.resource_version,  # type: ignore[union-attr]
                    timeout_seconds=300,
                ):
                    if self._stop.is_set():
                        stream.stop()
                        return
                    raw = self._core.api_client.sanitize_for_serialization(event["object"])
                    with self._lock:
                        self._observe(raw, deleted=event["type"] == "DELETED")
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("local pods: watch failed (%s); relisting", exc.reason)
                    self._stop.wait(1.0)
            except Exception:  # keep the bridge alive; the next list brings the state back
                log.exception("local pods: watch failed; relisting")
                self._stop.wait(1.0)

    def _retry_loop(self) -> None:
        """Pods waiting for a Service backend, and processes that exited: checked twice a second."""
        while not self._stop.wait(RETRY_S):
            with self._lock:
                for uid in list(self._waiting):
                    pod = self._pods.get(uid)
                    if pod is not None:
                        self._reconcile(pod)
                exited = [
                    r for r in self._running.values() if not r.exit_reported and r.proc.poll() is not None
                ]
            for r in exited:
                self._report_exit(r)

    def _observe(self, raw: dict[str, Any], *, deleted: bool) -> LocalPod | None:
        if deleted or raw["metadata"].get("deletionTimestamp") is not None:
            self._forget(raw["metadata"]["uid"])
            return None
        try:
            pod = local_pod(raw)
        except CannotRunLocally as exc:
            log.warning(
                "pod %s/%s cannot run locally: %s", raw["metadata"]["namespace"], raw["metadata"]["name"], exc
            )
            return None
        if pod is None:
            return None
        self._pods[pod.uid] = pod
        if pod.uid not in self._ports:
            self._ports[pod.uid] = {port: free_port() for port in set(pod.container_ports.values())}
        self._reconcile(pod)
        return pod

    def _forget(self, uid: str) -> None:
        self._pods.pop(uid, None)
        self._ports.pop(uid, None)
        self._failed.discard(uid)
        self._waiting.pop(uid, None)
        running = self._running.pop(uid, None)
        if running is not None:
            threading.Thread(target=self._terminate, args=(running,), daemon=True).start()

    # starting ---------------------------------------------------------------------------------------------
    def _reconcile(self, pod: LocalPod) -> None:
        if pod.uid in self._running or pod.uid in self._failed or not pod.running:
            return
        try:
            argv, env, cwd = self._prepare(pod)
        except NotResolvable as exc:
            if self._waiting.get(pod.uid) != str(exc):
                log.info("pod %s/%s waits: %s", pod.namespace, pod.name, exc)
            self._waiting[pod.uid] = str(exc)
            return
        except CannotRunLocally as exc:
            self._waiting.pop(pod.uid, None)
            log.warning("pod %s/%s cannot run locally: %s", pod.namespace, pod.name, exc)
            self._fail_to_start(pod, f"cannot run locally: {exc}")
            return
        self._waiting.pop(pod.uid, None)
        self._launch(pod, argv, env, cwd)

    def _pod_dir(self, pod: LocalPod) -> Path:
        return self._state_dir / pod.namespace / pod.name / pod.uid

    def _prepare(self, pod: LocalPod) -> tuple[list[str], dict[str, str], Path]:
        require_command(pod)
        mounts = self._materialise_volumes(pod)
        launch = what_to_run(
            pod,
            mounts,
            self._ports[pod.uid],
            self._resolve_service,
            lambda name, optional: self._config_map(pod.namespace, name, optional=optional),
        )
        argv = [_executable(launch.argv[0]), *launch.argv[1:]]
        env = {**os.environ, "HOSTNAME": pod.name, **launch.env}
        cwd = Path(launch.workdir) if launch.workdir else self._pod_dir(pod) / "cwd"
        cwd.mkdir(parents=True, exist_ok=True)
        return argv, env, cwd

    def _config_map(self, namespace: str, name: str, *, optional: bool) -> dict[str, str] | None:
        try:
            return dict(self._core.read_namespaced_config_map(name, namespace).data or {})
        except ApiException as exc:
            if exc.status == 404:
                if optional:
                    return None
                raise NotResolvable(f"ConfigMap {namespace}/{name} does not exist (yet)") from None
            raise

    def _materialise_volumes(self, pod: LocalPod) -> dict[str, Path]:
        root = self._pod_dir(pod) / "volumes"
        by_name: dict[str, Path] = {}
        for volume in pod.volumes:
            path = root / volume["name"]
            if volume_kind(volume) == "configMap":
                source = volume["configMap"]
                data = self._config_map(pod.namespace, source["name"], optional=bool(source.get("optional")))
                path.mkdir(parents=True, exist_ok=True)
                for relative, text in config_map_files(source, data):
                    target = path / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text)
            else:
                path.mkdir(parents=True, exist_ok=True)
            by_name[volume["name"]] = path
        return mount_paths(pod, by_name)

    def _resolve_service(self, namespace: str, name: str, port: int | None) -> int:
        """The local port behind Service ``namespace/name`` port ``port`` (see local_pod_spec.py)."""
        serialize = self._core.api_client.sanitize_for_serialization
        try:
            service = serialize(self._core.read_namespaced_service(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                raise NotResolvable(f"Service {namespace}/{name} does not exist (yet)") from None
            raise
        target, selector = service_backend_port(service, port)
        pods = serialize(self._core.list_namespaced_pod(namespace, label_selector=selector).items)
        for uid, pod_name in ready_backends(pods):
            local = self._pods.get(uid)
            if local is not None:
                number = local.container_ports.get(target)
                if number is not None and number in self._ports.get(uid, {}):
                    return self._ports[uid][number]
                continue
            engine = self._engine_port(namespace, pod_name)
            if engine is not None:
                return engine
        raise NotResolvable(f"Service {namespace}/{name} port {port} has no Ready backend on {LOOPBACK} yet")

    def _launch(self, pod: LocalPod, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        log_file = self._pod_dir(pod) / "container.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.touch()
        ports = self._ports[pod.uid]
        log.info("starting local pod %s/%s: %s (ports %s)", pod.namespace, pod.name, " ".join(argv), ports)
        try:
            proc, threads = start_logged(argv, cwd=cwd, env=env, log_file=log_file)
        except OSError as exc:
            log.warning("pod %s/%s: cannot start %s: %s", pod.namespace, pod.name, argv[0], exc)
            self._fail_to_start(pod, f"cannot start {argv[0]}: {exc}")
            return
        running = _Running(pod, proc, ports)
        running.threads.extend(threads)
        self._running[pod.uid] = running
        self._rules.apply(logs_object(pod.namespace, pod.name, log_file, None))
        if ports:
            self._rules.apply(port_forward_object(pod.namespace, pod.name, ports))

    def _fail_to_start(self, pod: LocalPod, why: str) -> None:
        """Say why in the pod's log, and report the container as exited 127 (as a shell reports a command
        it cannot run), so whoever waits for the pod learns at once."""
        self._failed.add(pod.uid)
        log_file = self._pod_dir(pod) / "container.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as handle:
            handle.write(f"{cri_timestamp()} stderr F testbed: {why}\n")
        self._rules.apply(logs_object(pod.namespace, pod.name, log_file, None))
        self._patch_terminated(pod, 127)

    # stopping ---------------------------------------------------------------------------------------------
    def _terminate(self, running: _Running) -> None:
        proc = running.proc
        log.info("stopping local pod %s/%s (pid %d)", running.pod.namespace, running.pod.name, proc.pid)
        signal_and_wait(
            proc.pid,
            lambda: proc.poll() is None,
            group=True,
            grace=running.pod.grace_s,
            name=f"pod {running.pod.namespace}/{running.pod.name}",
        )
        for thread in running.threads:
            thread.join(timeout=5)

    def _report_exit(self, running: _Running) -> None:
        running.exit_reported = True
        pod, code = running.pod, running.proc.returncode
        log.info("local pod %s/%s exited with code %s", pod.namespace, pod.name, code)
        self._patch_terminated(pod, code)

    def _patch_terminated(self, pod: LocalPod, code: int) -> None:
        """Report the container as a kubelet does when it exits (local_pod_spec.terminated_status)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = terminated_status(pod, code, now)
        try:
            self._core.patch_namespaced_pod_status(pod.name, pod.namespace, {"status": status})
        except ApiException as exc:
            if exc.status != 404:
                log.warning("pod %s/%s: cannot report the exit: %s", pod.namespace, pod.name, exc.reason)


def _executable(name: str) -> str:
    if "/" in name:
        return name
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    return found or name


def start_logged(
    argv: list[str], *, cwd: Path, env: Mapping[str, str], log_file: Path
) -> tuple[subprocess.Popen[bytes], list[threading.Thread]]:
    """Start a container's process in its own session, its stdout and stderr copied into `log_file` in the
    CRI format by two threads (returned, to join once the process is gone). OSError if it cannot start."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    lock = threading.Lock()
    threads = [
        threading.Thread(target=copy_as_cri, args=(stream, name, log_file, lock), daemon=True)
        for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))
    ]
    for thread in threads:
        thread.start()
    return proc, threads


def copy_as_cri(stream: IO[bytes] | None, name: str, log_file: Path, lock: threading.Lock) -> None:
    if stream is None:
        return
    with stream, log_file.open("a", encoding="utf-8") as out:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with lock:
                out.write(f"{cri_timestamp()} {name} F {line}\n")
                out.flush()
