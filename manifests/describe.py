"""What a manifest deploys, read from its objects: parallelism, GPUs, model, image, port, routing.

Missing data is None, never a guess: a command we cannot read gives tp=None, not 1.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from manifests.launch_command import LaunchCommand, expand_kubelet_vars, parse_container
from manifests.manifest import Manifest
from manifests.vllm_releases import CURRENT_SCRIPT, LEGACY_SCRIPT

GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
DEFAULT_RESTART_POLICY = "RecreateGroupOnPodRestart"  # LWS default since v0.4.0
VLLM_DEFAULT_PORT = 8000

LaunchProfileSeen = Literal["legacy", "current", "mp", "custom"]


class PodTemplateInfo(BaseModel):
    """One pod template (leader or worker) and its vLLM container."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["leader", "worker"]
    labels: dict[str, str]
    container: str | None  # name of the container that runs vLLM / the Ray script
    image: str | None
    gpus: int  # sum over containers of GPU limits (requests where no limit)
    accelerators: dict[str, int] = {}  # every extended resource asked for (nvidia.com/gpu, amd.com/gpu, ...)
    launch: LaunchCommand | None


class ManifestInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lws_name: str
    namespace: str | None
    replicas: int
    size: int
    restart_policy: str
    tp: int | None
    pp: int | None
    gpus_per_pod: int  # the leader's
    worker_gpus_per_pod: int | None  # None when size == 1
    group_gpus: int
    model: str | None
    image: str | None  # the leader's
    worker_image: str | None
    port: int | None  # vLLM's --port on the leader
    container_port: int | None
    script_path: str | None
    ray_cluster_size: str | None  # as written, e.g. "$(LWS_GROUP_SIZE)" or "2"
    executor_backend: str | None  # --distributed-executor-backend as given
    launch_profile: LaunchProfileSeen | None
    service_name: str | None
    service_selector: dict[str, str] | None
    service_port: int | None
    service_target_port: int | str | None
    leader: PodTemplateInfo
    worker: PodTemplateInfo

    @property
    def world_size(self) -> int | None:
        return self.tp * self.pp if self.tp is not None and self.pp is not None else None

    @property
    def group_devices(self) -> int:
        """The ranks the group can hold: its GPUs, or, for pods that ask for none (vLLM's CPU build, whose
        platform reports one device per node), one per pod."""
        return self.group_gpus if self.group_gpus > 0 else self.size

    @property
    def devices_per_pod(self) -> int:
        return self.gpus_per_pod if self.group_gpus > 0 else 1


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def pod_gpus(pod_spec: dict[str, Any]) -> int:
    total = 0
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        for name in GPU_RESOURCES:
            value = limits.get(name, requests.get(name))
            total += _int(value) or 0
    return total


def is_extended_resource(name: str) -> bool:
    """An extended resource: a domain-qualified name outside kubernetes.io (nvidia.com/gpu, amd.com/gpu,
    gpu.intel.com/i915, habana.ai/gaudi, aws.amazon.com/neuron; https://kubernetes.io/docs/concepts/configuration/
    manage-resources-containers/#extended-resources), never cpu, memory, hugepages-* or ephemeral-storage."""
    domain, slash, _ = name.partition("/")
    return bool(slash) and not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def pod_accelerators(pod_spec: dict[str, Any]) -> dict[str, int]:
    """The extended resources a pod asks for, summed over its containers (limits, requests where no limit)."""
    total: dict[str, int] = {}
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        for name in {**requests, **limits}:
            amount = _int(limits.get(name, requests.get(name))) or 0
            if is_extended_resource(str(name)) and amount > 0:
                total[str(name)] = total.get(str(name), 0) + amount
    return total


def _vllm_container(pod_spec: dict[str, Any]) -> tuple[dict[str, Any] | None, LaunchCommand | None]:
    containers = pod_spec.get("containers") or []
    parsed = [(c, parse_container(c)) for c in containers]
    for container, launch in parsed:
        if launch.serve is not None or launch.script is not None:
            return container, launch
    return parsed[0] if parsed else (None, None)


def _template_info(role: Literal["leader", "worker"], template: dict[str, Any]) -> PodTemplateInfo:
    spec = template.get("spec") or {}
    container, launch = _vllm_container(spec)
    labels = {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}
    return PodTemplateInfo(
        role=role,
        labels=labels,
        container=(container or {}).get("name"),
        image=(container or {}).get("image"),
        gpus=pod_gpus(spec),
        accelerators=pod_accelerators(spec),
        launch=launch,
    )


def _launch_profile(leader: LaunchCommand | None, backend: str | None) -> LaunchProfileSeen | None:
    if leader is None or leader.serve is None:
        return None
    serve = leader.serve
    if backend == "mp" or (leader.script is None and serve.has("nnodes")):
        return "mp"
    script = leader.script.path if leader.script else None
    if script and script.endswith(LEGACY_SCRIPT) and backend is None:
        return "legacy"
    if script and script.endswith(CURRENT_SCRIPT) and backend == "ray":
        return "current"
    return "custom"


def describe(manifest: Manifest) -> ManifestInfo:
    lws = manifest.lws
    spec = lws.get("spec") or {}
    lwt = spec.get("leaderWorkerTemplate") or {}
    size = _int(lwt.get("size")) or 1
    worker_template = lwt.get("workerTemplate") or {}
    leader = _template_info("leader", lwt.get("leaderTemplate") or worker_template)
    worker = _template_info("worker", worker_template)

    # The kubelet expands these in `command` before the shell sees them.
    env = {"LWS_GROUP_SIZE": str(size)}
    serve = leader.launch.serve if leader.launch else None
    tp = pp = port = None
    backend = None
    model = None
    if serve is not None:
        tp = _int(expand_kubelet_vars(serve.value("tensor-parallel-size") or "1", env))
        pp = _int(expand_kubelet_vars(serve.value("pipeline-parallel-size") or "1", env))
        port = _int(serve.value("port") or VLLM_DEFAULT_PORT)
        backend = serve.value("distributed-executor-backend")
        model = serve.model
    script = leader.launch.script if leader.launch else None

    leader_spec = (lwt.get("leaderTemplate") or worker_template).get("spec") or {}
    container_port = None
    for container in leader_spec.get("containers") or []:
        if container.get("name") == leader.container:
            ports = container.get("ports") or []
            container_port = _int(ports[0].get("containerPort")) if ports else None

    service = manifest.service
    svc_spec = (service or {}).get("spec") or {}
    svc_ports = svc_spec.get("ports") or []
    selector = svc_spec.get("selector")
    worker_gpus = worker.gpus if size > 1 else None
    return ManifestInfo(
        lws_name=manifest.lws_name,
        namespace=(lws.get("metadata") or {}).get("namespace"),
        replicas=_int(spec.get("replicas", 1)) or 0,
        size=size,
        restart_policy=str(lwt.get("restartPolicy") or DEFAULT_RESTART_POLICY),
        tp=tp,
        pp=pp,
        gpus_per_pod=leader.gpus,
        worker_gpus_per_pod=worker_gpus,
        group_gpus=leader.gpus + (size - 1) * worker.gpus,
        model=model,
        image=leader.image,
        worker_image=worker.image if size > 1 else None,
        port=port,
        container_port=container_port,
        script_path=script.path if script else None,
        ray_cluster_size=script.args.get("ray-cluster-size") if script else None,
        executor_backend=backend,
        launch_profile=_launch_profile(leader.launch, backend),
        service_name=((service or {}).get("metadata") or {}).get("name"),
        service_selector={str(k): str(v) for k, v in selector.items()}
        if isinstance(selector, dict)
        else None,
        service_port=_int(svc_ports[0].get("port")) if svc_ports else None,
        service_target_port=(svc_ports[0].get("targetPort", svc_ports[0].get("port")) if svc_ports else None),
        leader=leader,
        worker=worker,
    )
