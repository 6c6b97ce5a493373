"""What a pod labelled ``testbed.lws-vllm-suite.io/run-locally: "true"`` asks the bridge to run, read from
the pod's JSON. Pure functions: no threads, processes or API calls (the controller that watches the pods and
runs them is testbed/bridge/local_pods.py; it passes in the lookups that need the API server).

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
  comma-separated; the var is set to the local port.
- **Service names**: ``<svc>.<ns>.svc[.cluster.local][:port]`` in ``command``, ``args`` and ``env`` values
  becomes ``127.0.0.1[:local port]``. The local port is that of a Ready pod the Service selects: a local
  pod's port for the Service's targetPort, or, for an LWS leader, the port of the simulated engine the
  bridge runs for its group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from manifests.launch_command import expand_kubelet_vars

RUN_LOCALLY = "testbed.lws-vllm-suite.io/run-locally"
PORT_ENV = "testbed.lws-vllm-suite.io/port-env"
LOOPBACK = "127.0.0.1"
MAX_GRACE_S = 10.0

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
SERVICE_REF = re.compile(
    rf"(?<![\w.-])(?P<svc>{_LABEL})\.(?P<ns>{_LABEL})\.svc(?:\.cluster\.local)?(?::(?P<port>\d+))?"
)

# (namespace, Service, port or None) -> the local port behind it; NotResolvable while there is none
ResolveService = Callable[[str, str, int | None], int]
# (ConfigMap name, optional) -> its data; None for a missing optional one; NotResolvable for a missing other
ReadConfigMap = Callable[[str, bool], Mapping[str, str] | None]


class NotResolvable(Exception):
    """A reference the pod makes cannot be turned into a local address yet; the message says which."""


class CannotRunLocally(Exception):
    """The pod asks for something the testbed cannot do locally; it will not start."""


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


@dataclass(frozen=True)
class Launch:
    """The process a pod runs, before ``argv[0]`` is looked up and its directory made."""

    argv: list[str]
    env: dict[str, str]  # the container's env only; the process also inherits the bridge's
    workdir: str | None  # the container's workingDir with its mounts made local; None: a per-pod directory


def _ready(conditions: list[Mapping[str, Any]] | None) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions or [])


def local_pod(pod: Mapping[str, Any]) -> LocalPod | None:
    """The LocalPod view of a pod that asks to run locally; None for any other pod."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    if (meta.get("labels") or {}).get(RUN_LOCALLY) != "true" or not spec.get("containers"):
        return None
    grace = spec.get("terminationGracePeriodSeconds")
    return LocalPod(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        phase=status.get("phase") or "Pending",
        ready=_ready(status.get("conditions")),
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


# --- volumes -------------------------------------------------------------------------------------------


def require_command(pod: LocalPod) -> None:
    if not pod.container.get("command"):
        raise CannotRunLocally("the container has no command (the image's entrypoint is unknown here)")


def volume_kind(volume: Mapping[str, Any]) -> str:
    """The volume's kind as the bridge makes it: "configMap", or "empty" (emptyDir, and projected: the
    service account token, never fetched); CannotRunLocally for any other kind."""
    if "emptyDir" in volume or "projected" in volume:
        return "empty"
    if "configMap" in volume:
        return "configMap"
    kinds = sorted(set(volume) - {"name"})
    raise CannotRunLocally(f"volume {volume['name']!r} of kind {kinds} is not supported locally")


def config_map_files(source: Mapping[str, Any], data: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """(path in the volume, content) of a configMap volume: its ``items``, else every key; keys the
    ConfigMap does not hold (or a missing optional ConfigMap) give no file."""
    items = source.get("items") or [{"key": k, "path": k} for k in (data or {})]
    return [
        (entry["path"], data[entry["key"]]) for entry in items if data is not None and entry["key"] in data
    ]


def mount_paths(pod: LocalPod, volume_dirs: Mapping[str, Path]) -> dict[str, Path]:
    """mountPath -> its local directory (the volume's, with the mount's subPath)."""
    mounts = {}
    for mount in pod.container.get("volumeMounts") or []:
        if mount["name"] not in volume_dirs:
            raise CannotRunLocally(f"volumeMount {mount['name']!r} names no volume")
        mounts[mount["mountPath"]] = volume_dirs[mount["name"]] / mount.get("subPath", "")
    return mounts


# --- env, ports and the command ------------------------------------------------------------------------


def env_value(pod: LocalPod, item: Mapping[str, Any], config_map: ReadConfigMap) -> str | None:
    """One env entry's value as a kubelet gives it; None when it is left out (secrets are never read)."""
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
        data = config_map(ref["name"], bool(ref.get("optional")))
        return None if data is None else data.get(ref["key"])
    return None  # secretKeyRef and anything else: never read


def port_for(pod: LocalPod, ref: str, own: Mapping[int, int], resolve: ResolveService) -> int:
    """The local port a port-env reference names: ``PORT`` of this container, or ``SERVICE:PORT``."""
    service, sep, port_text = ref.rpartition(":")
    if not port_text.isdigit():
        raise CannotRunLocally(f"annotation {PORT_ENV}: {ref!r} does not end in a port number")
    if not sep:
        port = int(port_text)
        if port not in own:
            raise CannotRunLocally(f"annotation {PORT_ENV}: {port} is not a containerPort of this container")
        return own[port]
    return resolve(pod.namespace, service, int(port_text))


def what_to_run(
    pod: LocalPod,
    mounts: Mapping[str, Path],
    own_ports: Mapping[int, int],
    resolve: ResolveService,
    config_map: ReadConfigMap,
) -> Launch:
    """The command, env and working directory of the pod's container, every mount path and Service name
    made local; NotResolvable while a Service has no local backend, CannotRunLocally if it never will."""
    container = pod.container

    def local(text: str) -> str:
        return rewrite_services(rewrite_mounts(text, mounts), resolve)

    # The container's env, each value's $(VAR) expanded against the vars before it, as a kubelet does.
    pod_env: dict[str, str] = {}
    for item in container.get("env") or []:
        value = env_value(pod, item, config_map)
        if value is not None:
            pod_env[item["name"]] = local(expand_kubelet_vars(value, pod_env))
    for name, ref in pod.port_env:
        pod_env[name] = str(port_for(pod, ref, own_ports, resolve))
    words = [*container["command"], *(container.get("args") or [])]
    argv = [local(expand_kubelet_vars(str(word), pod_env)) for word in words]
    workdir = container.get("workingDir")
    return Launch(argv, pod_env, rewrite_mounts(workdir, mounts) if workdir else None)


# --- Services ------------------------------------------------------------------------------------------


def service_backend_port(service: Mapping[str, Any], port: int | None) -> tuple[str, str]:
    """(the targetPort, as a containerPort name or number, and the label selector) of a Service's port
    ``port`` (its first port when None); NotResolvable if it has no such port or no selector."""
    where = f"Service {service['metadata']['namespace']}/{service['metadata']['name']}"
    spec = service.get("spec")
    if spec is None:
        raise NotResolvable(f"{where} has no spec")
    entry = next((p for p in spec.get("ports") or [] if port is None or p.get("port") == port), None)
    if entry is None:
        raise NotResolvable(f"{where} has no port {port}")
    target = entry.get("targetPort")
    target = target if target is not None else entry.get("port")
    selector = spec.get("selector") or {}
    if not selector:
        raise NotResolvable(f"{where} has no selector")
    return str(target), ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def ready_backends(pods: list[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(uid, name) of the pods that can serve a Service: Running, Ready and not being deleted."""
    ready = []
    for raw in pods:
        meta, status = raw.get("metadata"), raw.get("status")
        if meta is None or status is None or meta.get("uid") is None or meta.get("name") is None:
            continue
        if meta.get("deletionTimestamp") is not None or status.get("phase") != "Running":
            continue
        if _ready(status.get("conditions")):
            ready.append((meta["uid"], meta["name"]))
    return ready


def terminated_status(pod: LocalPod, code: int, finished_at: str) -> dict[str, Any]:
    """What a kubelet reports when the container exits: terminated, with its exit code (and, for
    ``restartPolicy: Never``, the pod's final phase)."""
    reason = "Completed" if code == 0 else "Error"
    terminated = {"exitCode": code, "reason": reason, "finishedAt": finished_at}
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
    return status
