"""Named topologies: how one model replica (an LWS group) is split over GPUs, pods and nodes.

Every pod asks for a whole 8-GPU node, as in the vLLM docs' manifest, so nodes == group size.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

MODEL_405B = "meta-llama/Meta-Llama-3.1-405B-Instruct"
# One 8-GPU node cannot hold 405B in BF16 (about 810 GB of weights against 8 x 80 GB), so the
# one-node topology defaults to the 70B model of the same family: about 140 GB of weights, leaving most
# of the memory to the KV cache, and 8 KV heads split evenly over TP 8. Same tokenizer and chat template
# as the reference, so the reports compare like with like.
MODEL_70B = "meta-llama/Meta-Llama-3.1-70B-Instruct"
# The CPU topologies serve a tiny Llama (4 layers, 3.7 M parameters) that the embedded testbed makes
# locally (testbed/vllm_cpu/tiny_model.py); on a cluster of your own, point --model at any small model.
MODEL_TINY = "lws-suite/tiny-llama"


class Topology(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    tp: int
    pp: int
    size: int  # pods per LWS group (leader + workers)
    gpus_per_pod: int
    nodes: int  # nodes one group occupies
    default_model: str
    description: str
    device: Literal["gpu", "cpu"] = "gpu"
    default_profile: Literal["legacy", "current", "mp"] | None = None  # None: from the image
    default_image: str | None = None  # None: the profile's
    serve_args: tuple[str, ...] = ()  # model-specific vllm serve flags
    memory_per_pod: str = "8Gi"  # CPU topologies only
    replicas: int = 1  # LWS groups (model replicas); each group occupies `nodes` nodes

    @property
    def world_size(self) -> int:
        return self.tp * self.pp

    @property
    def ranks_per_pod(self) -> int:
        """GPUs per pod; one for vLLM's CPU build, whose platform reports one device per node."""
        return self.gpus_per_pod if self.device == "gpu" else 1

    @property
    def group_gpus(self) -> int:
        return self.size * self.gpus_per_pod

    @model_validator(mode="after")
    def _parallelism_fills_the_group(self) -> Topology:
        if self.world_size != self.size * self.ranks_per_pod:
            raise ValueError(
                f"topology {self.name}: TP {self.tp} x PP {self.pp} = {self.world_size}, but the group "
                f"has {self.size} pods x {self.ranks_per_pod} ranks = {self.size * self.ranks_per_pod}"
            )
        return self


TOPOLOGIES: dict[str, Topology] = {
    t.name: t
    for t in (
        Topology(
            name="tp8-pp2",
            tp=8,
            pp=2,
            size=2,
            gpus_per_pod=8,
            nodes=2,
            default_model=MODEL_405B,
            description="the reference (vLLM docs): TP within a node, PP across two nodes",
        ),
        Topology(
            name="tp8-pp1",
            tp=8,
            pp=1,
            size=1,
            gpus_per_pod=8,
            nodes=1,
            default_model=MODEL_70B,
            description="one node, no worker pod: the single-node baseline",
        ),
        Topology(
            name="tp4-pp4",
            tp=4,
            pp=4,
            size=2,
            gpus_per_pod=8,
            nodes=2,
            default_model=MODEL_405B,
            description="two nodes, four pipeline stages of TP 4 (two stages per node)",
        ),
        Topology(
            name="tp16-pp1",
            tp=16,
            pp=1,
            size=2,
            gpus_per_pod=8,
            nodes=2,
            default_model=MODEL_405B,
            description="two nodes, tensor parallel across the node boundary",
        ),
        Topology(
            name="tp8-pp2-r2",
            tp=8,
            pp=2,
            size=2,
            gpus_per_pod=8,
            nodes=2,
            default_model=MODEL_405B,
            replicas=2,
            description="the reference in two LWS groups (replicas: 2), four nodes: group isolation, rollouts",
        ),
        Topology(
            name="cpu-tp1-pp1",
            tp=1,
            pp=1,
            size=1,
            gpus_per_pod=0,
            nodes=1,
            default_model=MODEL_TINY,
            description="vLLM's CPU build, one pod per group, no worker: two real groups fit this 24 GB class of "
            "machine, for rollouts and group faults on the real engine",
            device="cpu",
            default_profile="mp",
            serve_args=("--max-model-len 512", "--dtype float32"),
        ),
        Topology(
            name="cpu-tp1-pp2",
            tp=1,
            pp=2,
            size=2,
            gpus_per_pod=0,
            nodes=2,
            default_model=MODEL_TINY,
            description="vLLM's CPU build, one rank per pod: pipeline parallel across two nodes (mp launch)",
            device="cpu",
            default_profile="mp",
            serve_args=("--max-model-len 512", "--dtype float32"),
        ),
        Topology(
            name="cpu-tp2-pp1",
            tp=2,
            pp=1,
            size=2,
            gpus_per_pod=0,
            nodes=2,
            default_model=MODEL_TINY,
            description="vLLM's CPU build, one rank per pod: tensor parallel across two nodes (mp launch)",
            device="cpu",
            default_profile="mp",
            serve_args=("--max-model-len 512", "--dtype float32"),
        ),
    )
}

DEFAULT_TOPOLOGY = "tp8-pp2"


class UnknownTopology(ValueError):
    pass


def get_topology(name: str) -> Topology:
    try:
        return TOPOLOGIES[name]
    except KeyError:
        raise UnknownTopology(f"unknown topology {name!r}; choose one of: {', '.join(TOPOLOGIES)}") from None
