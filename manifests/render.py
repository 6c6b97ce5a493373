"""Rendering a named topology into the LWS and its leader Service, starting from reference/lws.yaml.

Everything not named by the topology or an override keeps the reference's (the vLLM docs') value.
Secrets are referenced, never rendered: HF_TOKEN comes from a secretKeyRef.
"""

from __future__ import annotations

import copy
import re
import shlex
from functools import cache
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from manifests.load import load_variant
from manifests.manifest import NAME_LABEL
from manifests.profiles import LaunchProfile, ProfileName, resolve_launch
from manifests.topologies import DEFAULT_TOPOLOGY, Topology, get_topology

RestartPolicy = Literal["RecreateGroupOnPodRestart", "RecreateGroupAfterStart", "None", "Default"]
VLLM_PORT = 8080  # the docs' --port, containerPort, probe and Service port
MP_MASTER_PORT = 29500  # the mp launch's torch.distributed store on the leader
GROUP_KEY_LABEL = "leaderworkerset.sigs.k8s.io/group-key"

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Overrides(BaseModel):
    """What a run may change about a topology. None means: the topology's or the reference's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    image: str | None = None
    namespace: str | None = None
    profile: ProfileName | None = None
    replicas: int | None = Field(default=None, ge=1)  # None: the topology's
    lws_name: str = "vllm"
    restart_policy: RestartPolicy = "RecreateGroupOnPodRestart"
    extra_args: tuple[str, ...] = ()

    @field_validator("lws_name")
    @classmethod
    def _lws_name_is_dns1035(cls, value: str) -> str:
        if not _DNS1035.match(value) or len(value) > 63:
            raise ValueError(
                f"LWS name {value!r} must be a DNS-1035 label: lower-case letters, digits and '-', "
                "starting with a letter, at most 63 characters (and at most 51 for LWS; see lint)"
            )
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace_is_dns1123(cls, value: str | None) -> str | None:
        if value is not None and (not _DNS1123.match(value) or len(value) > 63):
            raise ValueError(f"namespace {value!r} must be a DNS-1123 label (lower-case, digits, '-')")
        return value


@cache
def _reference_objects() -> tuple[dict[str, Any], dict[str, Any]]:
    reference = load_variant("reference")
    service = reference.service
    assert service is not None, "reference/lws.yaml lost its Service"
    return reference.lws, service


def _mp_serve(topology: Topology, model: str, extra_args: tuple[str, ...], *, worker: bool) -> str:
    """vLLM's own multi-node launch, the same world on every pod; the leader is node 0 and serves."""
    words = [
        "vllm serve", shlex.quote(model), f"--port {VLLM_PORT}",
        f"--tensor-parallel-size {topology.tp}", f"--pipeline-parallel-size {topology.pp}",
        *topology.serve_args, "--distributed-executor-backend mp", "--nnodes $(LWS_GROUP_SIZE)",
        "--node-rank $(LWS_WORKER_INDEX)" if worker else "--node-rank 0",
        "--master-addr $(LWS_LEADER_ADDRESS)", f"--master-port {MP_MASTER_PORT}",
        *(shlex.quote(a) for a in extra_args),
    ]  # fmt: skip
    if worker:
        words.append("--headless")
    return " ".join(words)


def leader_command(
    profile: LaunchProfile, topology: Topology, model: str, extra_args: tuple[str, ...]
) -> str:
    if profile.executor == "mp":
        return _mp_serve(topology, model, extra_args, worker=False)
    serve = [
        "vllm serve",
        shlex.quote(model),
        f"--port {VLLM_PORT}",
        f"--tensor-parallel-size {topology.tp}",
        # The docs' underscore spelling, kept: vLLM's FlexibleArgumentParser accepts both.
        f"--pipeline_parallel_size {topology.pp}",
        *topology.serve_args,
    ]
    if profile.ray_backend_flag:
        serve.append("--distributed-executor-backend ray")
    serve.extend(shlex.quote(a) for a in extra_args)
    # `;` as in the docs: vllm serve runs even if the Ray wait timed out, and its error says why.
    return f"bash {profile.script_path} leader --ray_cluster_size=$(LWS_GROUP_SIZE); {' '.join(serve)}"


def worker_command(
    profile: LaunchProfile, topology: Topology, model: str, extra_args: tuple[str, ...] = ()
) -> str:
    if profile.executor == "mp":
        return _mp_serve(topology, model, extra_args, worker=True)
    return f"bash {profile.script_path} worker --ray_address=$(LWS_LEADER_ADDRESS)"


def _set_container(template: dict[str, Any], image: str, command: str, topology: Topology) -> None:
    container = template["spec"]["containers"][0]
    container["image"] = image
    container["command"] = ["sh", "-c", command]
    if topology.device == "gpu":
        container["resources"]["limits"]["nvidia.com/gpu"] = str(topology.gpus_per_pod)
        return
    # vLLM's CPU build: no GPUs, a CPU-sized pod, and one pod per node (the CPU platform runs one rank per
    # node, and the group's ranks must not share a node's memory bandwidth): anti-affinity within the group.
    container["resources"] = {
        "limits": {"memory": topology.memory_per_pod},
        "requests": {"cpu": "1", "memory": topology.memory_per_pod},
    }
    template["spec"]["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchExpressions": [{"key": NAME_LABEL, "operator": "Exists"}]},
                    "matchLabelKeys": [GROUP_KEY_LABEL],
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }


def render(
    topology: str | Topology = DEFAULT_TOPOLOGY, overrides: Overrides | None = None
) -> list[dict[str, Any]]:
    """The LWS and its leader Service for a topology: plain dicts, ready for to_yaml or a kube client."""
    topo = get_topology(topology) if isinstance(topology, str) else topology
    over = overrides or Overrides()
    profile, image = resolve_launch(over.profile or topo.default_profile, over.image or topo.default_image)
    model = over.model or topo.default_model
    lws_template, service_template = _reference_objects()
    lws = copy.deepcopy(lws_template)
    service = copy.deepcopy(service_template)

    lws["metadata"]["name"] = over.lws_name
    lws["spec"]["replicas"] = over.replicas or topo.replicas
    lwt = lws["spec"]["leaderWorkerTemplate"]
    lwt["size"] = topo.size
    lwt["restartPolicy"] = over.restart_policy
    _set_container(lwt["leaderTemplate"], image, leader_command(profile, topo, model, over.extra_args), topo)
    _set_container(lwt["workerTemplate"], image, worker_command(profile, topo, model, over.extra_args), topo)

    # One leader Service per LWS, named after it, so two deployments can share a namespace.
    service["metadata"]["name"] = f"{over.lws_name}-leader"
    service["spec"]["selector"][NAME_LABEL] = over.lws_name
    if over.namespace is not None:
        lws["metadata"]["namespace"] = over.namespace
        service["metadata"]["namespace"] = over.namespace
    return [lws, service]


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """Multi-document YAML, keys in the order written, long commands kept on one line."""
    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, width=10_000)
