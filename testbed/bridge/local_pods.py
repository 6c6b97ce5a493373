"""Pods labelled ``testbed.lws-vllm-suite.io/run-locally: "true"`` run their container as a local process.

The testbed has no container runtime: KWOK only pretends pods run. For a pod that carries the label (the
in-cluster Locust master and workers, load/locust_manifests.py), the bridge does what a kubelet would, on
127.0.0.1 and nowhere else:

- **Process**: the first container's ``command`` + ``args`` (the image's entrypoint is unknown here, so
  ``command`` is required), ``$(VAR)`` expanded from the container's ``env`` as a kubelet does, in its
  ``workingDir`` (else a fresh per-pod directory), with this process's environment plus the container's
  ``env``. ``command[0]`` is looked up on PATH, then next to this Python.
- **Volumes**: ``configMap`` volumes are written to a per-pod directory; ``emptyDir`` and ``projected`` (the
  service account token, never fetched) are empty ones; every
  mount path that appears in ``command``, ``args``, ``env`` values or ``workingDir`` is replaced by its
  local directory. Other volume kinds make the pod fail to start.
- **Env**: literal values; ``fieldRef`` to ``metadata.name``, ``metadata.namespace``, ``metadata.uid``,
  ``spec.nodeName`` and ``status.podIP`` (which is 127.0.0.1: the pod's processes live on loopback);
  ``configMapKeyRef``. Secrets are never read (``secretKeyRef`` is left out, as the bridge does for engines).
- **Ports**: each ``containerPort`` gets a free 127.0.0.1 port. A process learns it through the env vars the
  pod names in the annotation ``testbed.lws-vllm-suite.io/port-env``: ``NAME=PORT`` (this container's
  port PORT) or ``NAME=SERVICE:PORT`` (the port a Service in the pod's namespace forwards PORT to),
  comma-separated; the var is set to the local port. KWOK ``PortForward`` rules point every containerPort
  at its local port, so ``kubectl port-forward pod/... or svc/...`` reaches the process.
- **Service names**: ``<svc>.<ns>.svc[.cluster.local][:port]`` in ``command``, ``args`` and ``env`` values
  becomes ``127.0.0.1[:local port]``. The local port is that of a Ready pod the Service selects: a local
  pod's port for the Service's targetPort, or, for an LWS leader, the port of the simulated engine the
  bridge runs for its group. Until every name resolves the pod waits (checked twice a second).
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
import re
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

from manifests.launch_command import expand_kubelet_vars
from plumbing.ports import free_port
from testbed.bridge.kwok_rules import KwokRules, logs_object, port_forward_object
from testbed.engine.logsink import cri_timestamp
from testbed.processes import signal_and_wait

RUN_LOCALLY = "testbed.lws-vllm-suite.io/run-locally"
PORT_ENV = "testbed.lws-vllm-suite.io/port-env"
LOOPBACK = "127.0.0.1"
MAX_GRACE_S = 10.0
RETRY_S = 0.5

log = logging.getLogger("bridge.local-pods")

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
SERVICE_REF = re.compile(
    rf"(?<![\w.-])(?P<svc>{_LABEL})\.(?P<ns>{_LABEL})\.svc(?:\.cluster\.local)?(?::(?P<port>\d+))?"
)


class NotResolvable(Exception):
    """A reference the pod makes cannot be turned into a local address yet; the message says which."""


class CannotRunLocally(Exception):
    """The pod asks for something the testbed cannot do locally; it will not start."""


# --- the pure part: what to run ---------------------------------------------------------------------


@dataclass(frozen=True)
class LocalPod:
    namespace: str
    name: str
    uid: str
    phase: str
    ready: bool
    deleting: bool
    restart_policy: str
    grace_s: float
    node_name: str | None
    container: dict[str, Any]
    volumes: tuple[dict[str, Any], ...]
    port_env: tuple[tuple[str, str], ...]

    @property
    def running(self) -> bool:
        return self.phase == "Running" and not self.deleting

    @property
    def container_ports(self) -> dict[str, int]:
        """containerPort by name (and by its number as a string), for targetPort lookups."""
        ports: dict[str, int] = {}
        for p in self.container.get("ports") or []:
            ports[str(p["containerPort"])] = int(p["containerPort"])
            if p.get("name"):
                ports[p["name"]] = int(p["containerPort"])
        return ports


def local_pod(pod: Mapping[str, Any]) -> LocalPod | None:
    """The LocalPod view of a pod that asks to run locally; None for any other pod."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    if (meta.get("labels") or {}).get(RUN_LOCALLY) != "true" or not spec.get("containers"):
        return None
    conditions = status.get("conditions") or []
    grace = spec.get("terminationGracePeriodSeconds")
    return LocalPod(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        phase=status.get("phase") or "Pending",
        ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
        deleting=meta.get("deletionTimestamp") is not None,
        restart_policy=spec.get("restartPolicy") or "Always",
        grace_s=min(float(grace if grace is not None else 30), MAX_GRACE_S),
        node_name=spec.get("nodeName"),
        container=spec["containers"][0],
        volumes=tuple(spec.get("volumes") or ()),
        port_env=parse_port_env((meta.get("annotations") or {}).get(PORT_ENV, "")),
    )


def parse_port_env(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, ref = part.partition("=")
        if not sep or not name or not ref:
            raise CannotRunLocally(
                f"annotation {PORT_ENV}: expected NAME=PORT or NAME=SERVICE:PORT, got {part!r}"
            )
        pairs.append((name.strip(), ref.strip()))
    return tuple(pairs)


def rewrite_services(text: str, resolve: Callable[[str, str, int | None], int]) -> str:
    """Service DNS names (``<svc>.<ns>.svc``, with ``.cluster.local`` or not) -> 127.0.0.1, with the local
    port when the reference names a port. Bare Service names (same namespace) are not rewritten."""

    def one(match: re.Match[str]) -> str:
        port = match.group("port")
        if port is None:
            return LOOPBACK
        return f"{LOOPBACK}:{resolve(match.group('ns'), match.group('svc'), int(port))}"

    return SERVICE_REF.sub(one, text)


def rewrite_mounts(text: str, mounts: Mapping[str, Path]) -> str:
    """Each mount path used as a path (followed by '/', the end, or a non-path character) -> its local dir."""
    for mount_path in sorted(mounts, key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w.-]){re.escape(mount_path.rstrip('/'))}(?=/|$|[^\w.-])")
        local = str(mounts[mount_path])
        text = pattern.sub(lambda _m: local, text)  # noqa: B023 - used at once, inside this iteration
    return text


# --- the controller -----------------------------------------------------------------------------------


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
        container = pod.container
        if not container.get("command"):
            raise CannotRunLocally("the container has no command (the image's entrypoint is unknown here)")
        mounts = self._materialise_volumes(pod)

        def local(text: str) -> str:
            return rewrite_services(rewrite_mounts(text, mounts), self._resolve_service)

        # The container's env, each value's $(VAR) expanded against the vars before it, as a kubelet does.
        pod_env: dict[str, str] = {}
        for item in container.get("env") or []:
            value = self._env_value(pod, item)
            if value is not None:
                pod_env[item["name"]] = local(expand_kubelet_vars(value, pod_env))
        own = self._ports[pod.uid]
        for name, ref in pod.port_env:
            pod_env[name] = str(self._port_for(pod, ref, own))
        words = [*container["command"], *(container.get("args") or [])]
        argv = [local(expand_kubelet_vars(str(word), pod_env)) for word in words]
        argv[0] = _executable(argv[0])
        env = {**os.environ, "HOSTNAME": pod.name, **pod_env}
        workdir = container.get("workingDir")
        cwd = Path(rewrite_mounts(workdir, mounts)) if workdir else self._pod_dir(pod) / "cwd"
        cwd.mkdir(parents=True, exist_ok=True)
        return argv, env, cwd

    def _port_for(self, pod: LocalPod, ref: str, own: Mapping[int, int]) -> int:
        service, sep, port_text = ref.rpartition(":")
        if not port_text.isdigit():
            raise CannotRunLocally(f"annotation {PORT_ENV}: {ref!r} does not end in a port number")
        if not sep:
            port = int(port_text)
            if port not in own:
                raise CannotRunLocally(
                    f"annotation {PORT_ENV}: {port} is not a containerPort of this container"
                )
            return own[port]
        return self._resolve_service(pod.namespace, service, int(port_text))

    def _env_value(self, pod: LocalPod, item: Mapping[str, Any]) -> str | None:
        if "value" in item:
            return str(item["value"])
        source = item.get("valueFrom") or {}
        if "fieldRef" in source:
            fields = {
                "metadata.name": pod.name,
                "metadata.namespace": pod.namespace,
                "metadata.uid": pod.uid,
                "spec.nodeName": pod.node_name or "",
                "status.podIP": LOOPBACK,
            }
            path = source["fieldRef"].get("fieldPath", "")
            if path not in fields:
                raise CannotRunLocally(f"env {item['name']}: fieldRef {path!r} is not supported locally")
            return fields[path]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = self._config_map(pod.namespace, ref["name"], optional=bool(ref.get("optional")))
            return None if data is None else data.get(ref["key"])
        return None  # secretKeyRef and anything else: never read

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
            if "emptyDir" in volume or "projected" in volume:  # projected (a token): empty, never fetched
                path.mkdir(parents=True, exist_ok=True)
            elif "configMap" in volume:
                source = volume["configMap"]
                data = self._config_map(pod.namespace, source["name"], optional=bool(source.get("optional")))
                path.mkdir(parents=True, exist_ok=True)
                items = source.get("items") or [{"key": k, "path": k} for k in (data or {})]
                for entry in items:
                    if data is not None and entry["key"] in data:
                        target = path / entry["path"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(data[entry["key"]])
            else:
                kinds = sorted(set(volume) - {"name"})
                raise CannotRunLocally(f"volume {volume['name']!r} of kind {kinds} is not supported locally")
            by_name[volume["name"]] = path
        mounts = {}
        for mount in pod.container.get("volumeMounts") or []:
            if mount["name"] not in by_name:
                raise CannotRunLocally(f"volumeMount {mount['name']!r} names no volume")
            local = by_name[mount["name"]] / mount.get("subPath", "")
            mounts[mount["mountPath"]] = local
        return mounts

    def _resolve_service(self, namespace: str, name: str, port: int | None) -> int:
        """The local port behind Service ``namespace/name`` port ``port`` (see the module doc)."""
        try:
            service = self._core.read_namespaced_service(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise NotResolvable(f"Service {namespace}/{name} does not exist (yet)") from None
            raise
        spec = service.spec
        if spec is None:
            raise NotResolvable(f"Service {namespace}/{name} has no spec")
        ports = spec.ports or []
        entry = next((p for p in ports if port is None or p.port == port), None)
        if entry is None:
            raise NotResolvable(f"Service {namespace}/{name} has no port {port}")
        target = entry.target_port if entry.target_port is not None else entry.port
        selector = spec.selector or {}
        if not selector:
            raise NotResolvable(f"Service {namespace}/{name} has no selector")
        pods = self._core.list_namespaced_pod(
            namespace, label_selector=",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        ).items
        for raw in pods:
            meta, status = raw.metadata, raw.status
            if meta is None or status is None or meta.uid is None or meta.name is None:
                continue
            ready = any(c.type == "Ready" and c.status == "True" for c in (status.conditions or []))
            if meta.deletion_timestamp is not None or status.phase != "Running" or not ready:
                continue
            local = self._pods.get(meta.uid)
            if local is not None:
                number = local.container_ports.get(str(target))
                if number is not None and number in self._ports.get(meta.uid, {}):
                    return self._ports[meta.uid][number]
                continue
            engine = self._engine_port(namespace, meta.name)
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
        """What a kubelet reports when the container exits: terminated, with its exit code."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "finishedAt": now}
        status: dict[str, Any] = {
            "containerStatuses": [
                {
                    "name": pod.container["name"],
                    "ready": False,
                    "started": False,
                    "state": {"running": None, "terminated": terminated},
                }
            ],
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "ContainersReady", "status": "False"},
            ],
        }
        if pod.restart_policy == "Never":
            status["phase"] = "Succeeded" if code == 0 else "Failed"
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
