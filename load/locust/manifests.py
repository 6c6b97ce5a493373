"""In-cluster Locust: a master Pod and its Service, a Deployment of workers, the locustfile in a ConfigMap.

The workers send load to the vLLM Service by its DNS name (``http://vllm-leader.<ns>.svc:8080``), so no
port-forward sits in the load path. The master runs Locust's web UI with ``--autostart``: the test starts
once ``workers`` workers have connected, stops after ``run_time``, and the master stays up (UI and the
results route ``/lws-suite/records`` of load/locust/locustfile.py) until the objects are deleted. The UI
listens on the pod's loopback only; reach it with ``kubectl port-forward svc/<name>-master 8089``.

- Master: a bare Pod with ``restartPolicy: Never``, so a crashed master fails instead of silently
  starting a second test. It binds Locust's master port on the pod IP (downward API).
- Workers: a Deployment of ``workers`` replicas; a restarted worker rejoins the running test.
- Every pod carries ``testbed.lws-vllm-suite.io/run-locally: "true"`` and names its port env vars in
  ``testbed.lws-vllm-suite.io/port-env``: on the embedded testbed the bridge runs these pods as local
  processes (testbed/bridge/local_pods.py). On a real cluster both are inert.

The image is a stock ``locustio/locust``; the locustfile imports only Locust and its helper modules,
all shipped in the ConfigMap (``files``; load/locust/incluster.py ``SHIPPED_FILES``).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

LOCUST_IMAGE = "docker.io/locustio/locust:2.47.0"
MASTER_PORT = 5557
WEB_PORT = 8089
LOCUSTFILE_DIR = "/mnt/locust"
RESULTS_DIR = "/results"
RUN_LOCALLY = "testbed.lws-vllm-suite.io/run-locally"
PORT_ENV = "testbed.lws-vllm-suite.io/port-env"
PART_OF = "lws-vllm-suite"

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_FILE_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class LocustSpec(BaseModel):
    """One in-cluster Locust run. ``locust_args`` go to the master after the fixed options: the
    locustfile's own options (``--model ...``) and any other Locust option."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str
    name: str = "locust"
    image: str = LOCUST_IMAGE
    target_url: str
    workers: int = Field(ge=1)
    users: int = Field(ge=1)
    spawn_rate: float = Field(gt=0)
    run_time: str
    stop_timeout: float = Field(default=300.0, ge=0)
    locust_args: tuple[str, ...] = ()
    files: dict[str, str]
    locustfile: str = "locustfile.py"
    master_resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    )
    worker_resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _DNS1035.match(value) or len(value) > 40:
            raise ValueError(f"name {value!r} must be a DNS-1035 label of at most 40 characters")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _DNS1123.match(value) or len(value) > 63:
            raise ValueError(f"namespace {value!r} must be a DNS-1123 label (lower-case, digits, '-')")
        return value

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _FILE_KEY.match(k)]
        if bad:
            raise ValueError(f"ConfigMap keys must be file names without '/': {bad}")
        return value

    @property
    def master_service(self) -> str:
        return f"{self.name}-master"


def _labels(spec: LocustSpec, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "locust",
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
    }


def _pod_labels(spec: LocustSpec, component: str) -> dict[str, str]:
    return {**_labels(spec, component), RUN_LOCALLY: "true"}


def _volumes(spec: LocustSpec) -> list[dict[str, Any]]:
    return [
        {"name": "locustfile", "configMap": {"name": f"{spec.name}-locustfile"}},
        {"name": "results", "emptyDir": {}},
    ]


def _mounts() -> list[dict[str, Any]]:
    return [
        {"name": "locustfile", "mountPath": LOCUSTFILE_DIR, "readOnly": True},
        {"name": "results", "mountPath": RESULTS_DIR},
    ]


def render(spec: LocustSpec) -> list[dict[str, Any]]:
    """The objects of one run, in the order to apply them: ConfigMap, Service, master Pod, workers."""
    if spec.locustfile not in spec.files:
        raise ValueError(f"files must hold the locustfile {spec.locustfile!r}; got {sorted(spec.files)}")
    return [_config_map(spec), _master_service(spec), _master_pod(spec), _worker_deployment(spec)]


def _locustfile_path(spec: LocustSpec) -> str:
    return f"{LOCUSTFILE_DIR}/{spec.locustfile}"


def _config_map(spec: LocustSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{spec.name}-locustfile",
            "namespace": spec.namespace,
            "labels": _labels(spec, "locustfile"),
        },
        "data": dict(spec.files),
    }


def _master_service(spec: LocustSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": spec.master_service,
            "namespace": spec.namespace,
            "labels": _labels(spec, "master"),
        },
        "spec": {
            "selector": {"app.kubernetes.io/instance": spec.name, "app.kubernetes.io/component": "master"},
            "ports": [
                {"name": "master", "port": MASTER_PORT, "targetPort": MASTER_PORT, "protocol": "TCP"},
                {"name": "web", "port": WEB_PORT, "targetPort": WEB_PORT, "protocol": "TCP"},
            ],
        },
    }


def _master_args(spec: LocustSpec) -> list[str]:
    return [
        "-f", _locustfile_path(spec), "--master", "--autostart",
        "--expect-workers", str(spec.workers),
        "--users", str(spec.users), "--spawn-rate", f"{spec.spawn_rate:g}", "--run-time", spec.run_time,
        "--stop-timeout", f"{spec.stop_timeout:g}",
        "--host", spec.target_url,
        "--raw-dir", RESULTS_DIR, "--records-to-master",
        *spec.locust_args,
    ]  # fmt: skip


def _master_pod(spec: LocustSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": spec.master_service,
            "namespace": spec.namespace,
            "labels": _pod_labels(spec, "master"),
            "annotations": {PORT_ENV: f"LOCUST_MASTER_BIND_PORT={MASTER_PORT},LOCUST_WEB_PORT={WEB_PORT}"},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,  # Locust never calls the Kubernetes API
            "containers": [
                {
                    "name": "locust",
                    "image": spec.image,
                    "command": ["locust"],
                    "args": _master_args(spec),
                    "env": [
                        {
                            "name": "LOCUST_MASTER_BIND_HOST",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        },
                        {"name": "LOCUST_MASTER_BIND_PORT", "value": str(MASTER_PORT)},
                        # The UI has no login: only `kubectl port-forward` (which dials the pod's loopback) reaches it.
                        {"name": "LOCUST_WEB_HOST", "value": "127.0.0.1"},
                        {"name": "LOCUST_WEB_PORT", "value": str(WEB_PORT)},
                    ],
                    "ports": [
                        {"name": "master", "containerPort": MASTER_PORT},
                        {"name": "web", "containerPort": WEB_PORT},
                    ],
                    "resources": spec.master_resources,
                    "volumeMounts": _mounts(),
                }
            ],
            "volumes": _volumes(spec),
        },
    }


def _worker_deployment(spec: LocustSpec) -> dict[str, Any]:
    master_dns = f"{spec.master_service}.{spec.namespace}.svc"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{spec.name}-worker",
            "namespace": spec.namespace,
            "labels": _labels(spec, "worker"),
        },
        "spec": {
            "replicas": spec.workers,
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/instance": spec.name,
                    "app.kubernetes.io/component": "worker",
                }
            },
            "template": {
                "metadata": {
                    "labels": _pod_labels(spec, "worker"),
                    "annotations": {PORT_ENV: f"LOCUST_MASTER_NODE_PORT={spec.master_service}:{MASTER_PORT}"},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "locust",
                            "image": spec.image,
                            "command": ["locust"],
                            "args": ["-f", _locustfile_path(spec), "--worker"],
                            "env": [
                                {"name": "LOCUST_MASTER_NODE_HOST", "value": master_dns},
                                {"name": "LOCUST_MASTER_NODE_PORT", "value": str(MASTER_PORT)},
                            ],
                            "resources": spec.worker_resources,
                            "volumeMounts": _mounts(),
                        }
                    ],
                    "volumes": _volumes(spec),
                },
            },
        },
    }
