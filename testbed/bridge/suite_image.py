"""The suite's own image on the testbed: a pod whose container image is `<registry>/lws-vllm-suite:<tag>`
(the Containerfile at the repository root) runs as a process from this checkout, as real-engine pods run the
installed vLLM. Pure: what to run, as whom, with which env and file system; testbed/bridge/suite_pods.py
runs it.

The image's configuration is the Containerfile's (tests/testbed/test_suite_image.py holds the two equal):
working directory the checkout (the image's /suite), user 65532 unless the pod says otherwise, `ENTRYPOINT
["nox", "-R"]` and its CMD, nox's environments made beforehand (`nox --install-only -s ...`, as the image
build does), no .git: `LWS_SUITE_REVISION` is the checkout's revision, as the build argument would be.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from manifests.launch_command import expand_kubelet_vars

# `registry.example.com/lws-vllm-suite:main`, `localhost/lws-vllm-suite:dev`, `lws-vllm-suite:v1`
IMAGE = re.compile(r"^(?:[^/]+/)*lws-vllm-suite(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?$")
# The same test as a KWOK stage key (jq), so that KWOK leaves these pods' completion to the bridge.
IMAGE_JQ = r'.spec.containers.[].image | select(test("^([^/]+/)*lws-vllm-suite(:[\\w.-]+)?(@sha256:[0-9a-f]{64})?$"))'
USER = 65532
ENTRYPOINT = ("nox", "-R")
CMD = ("-s", "conformance", "--", "--in-cluster")
SESSIONS = ("conformance", "benchmark", "report")  # the Containerfile's `nox --install-only -s ...`
IMAGE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "KUBECACHEDIR": "/tmp/kube-cache",
}
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class NotRunnable(Exception):
    """The pod asks for something the testbed cannot do for this image; the message says what."""


def is_suite_image(image: str) -> bool:
    return bool(IMAGE.match(image))


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    read_only_root: bool


def identity(pod: Mapping[str, Any], container: Mapping[str, Any]) -> Identity:
    """The user the container runs as (its securityContext over the pod's, else the image's USER), refused as
    the kubelet refuses it when `runAsNonRoot` meets user 0."""
    pod_sc = pod.get("spec", {}).get("securityContext") or {}
    sc = container.get("securityContext") or {}
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", USER))
    gid = sc.get(
        "runAsGroup", pod_sc.get("runAsGroup", uid if "runAsUser" in sc or "runAsUser" in pod_sc else USER)
    )
    if uid == 0 and sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
        raise NotRunnable("container has runAsNonRoot and would run as root (runAsUser 0)")
    return Identity(int(uid), int(gid), bool(sc.get("readOnlyRootFilesystem")))


def argv_of(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """command + args as a runtime composes them with the image's ENTRYPOINT and CMD, `$(VAR)` expanded."""
    command = container.get("command")
    args = container.get("args")
    if command:  # a command replaces ENTRYPOINT and CMD; args alone replace CMD
        return [expand_kubelet_vars(str(w), env) for w in [*command, *(args or [])]]
    words = [*ENTRYPOINT, *(args if args is not None else CMD)]
    return [expand_kubelet_vars(str(w), env) for w in words]


def volume_mounts(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(volume name, mountPath, read-only) of each mount; NotRunnable for a volume kind other than emptyDir
    (the ServiceAccount token is mounted by the sandbox itself, at its standard path)."""
    volumes = {v["name"]: v for v in pod.get("spec", {}).get("volumes") or []}
    mounts = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise NotRunnable(f"volumeMount {mount['name']!r} names no volume")
        if mount["mountPath"].rstrip("/") == SA_DIR:
            continue
        if "emptyDir" not in volume:
            kinds = sorted(set(volume) - {"name"})
            raise NotRunnable(f"volume {mount['name']!r} of kind {kinds}: only emptyDir is supported here")
        mounts.append((mount["name"], mount["mountPath"], bool(mount.get("readOnly"))))
    return mounts


def hosts_file(addresses: Mapping[tuple[str, str], str], namespace: str) -> str:
    """/etc/hosts of a pod in `namespace`: each Service's name as cluster DNS answers it (`<svc>.<ns>.svc`,
    `.svc.cluster.local`, `<svc>.<ns>`, and the bare name in the pod's own namespace) -> its address in the
    pod's network namespace, where testbed/bridge/service_proxy.py balances over its ready endpoints."""
    lines = ["127.0.0.1 localhost"]
    for (ns, svc), address in sorted(addresses.items()):
        names = [f"{svc}.{ns}.svc.cluster.local", f"{svc}.{ns}.svc", f"{svc}.{ns}"]
        if ns == namespace:
            names.append(svc)
        lines.append(f"{address} {' '.join(names)}")
    return "\n".join(lines) + "\n"


def service_address(n: int) -> str:
    """The n-th Service's address inside a suite pod's network namespace (its ClusterIP stand-in)."""
    return f"127.96.{n // 254 % 256}.{n % 254 + 1}"


def listeners(
    services: Sequence[Mapping[str, Any]],
    slices: Sequence[Mapping[str, Any]],
    addresses: Mapping[tuple[str, str], str],
    local_port: Any,
) -> list[dict[str, Any]]:
    """What the pod's Service proxy listens on: for every port of every Service with an address, the local
    ports of its ready endpoints (EndpointSlices' `ready`, as kube-proxy reads them). `local_port(namespace,
    pod, port)` is where the testbed serves that pod's port on the host's loopback, or None."""
    out = []
    for svc in services:
        meta, spec = svc["metadata"], svc.get("spec") or {}
        key = (meta["namespace"], meta["name"])
        if key not in addresses:
            continue
        mine = [s for s in slices if _slice_service(s) == key]
        for port in spec.get("ports") or []:
            if (port.get("protocol") or "TCP") != "TCP":
                continue
            backends = []
            for s in mine:
                target = next(
                    (
                        p.get("port")
                        for p in s.get("ports") or []
                        if p.get("name", "") == port.get("name", "")
                    ),
                    None,
                )
                if target is None:
                    continue
                for endpoint in s.get("endpoints") or []:
                    ref = endpoint.get("targetRef") or {}
                    if ref.get("kind") != "Pod" or (endpoint.get("conditions") or {}).get("ready") is False:
                        continue
                    local = local_port(key[0], ref.get("name", ""), int(target))
                    if local is not None:
                        backends.append(["127.0.0.1", int(local)])
            out.append({"address": addresses[key], "port": int(port["port"]), "backends": sorted(backends)})
    return out


def _slice_service(endpoint_slice: Mapping[str, Any]) -> tuple[str, str] | None:
    meta = endpoint_slice.get("metadata") or {}
    name = (meta.get("labels") or {}).get("kubernetes.io/service-name")
    return (meta.get("namespace", ""), name) if name else None
