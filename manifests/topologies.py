"""Named topologies: how one model replica (an LWS group) is split over GPUs, pods and nodes.

Every pod asks for a whole 8-GPU node, as in the vLLM docs' manifest, so nodes == group size.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

MODEL_405B = "meta-llama/Meta-Llama-3.1-405B-Instruct"
# One 8-GPU node cannot hold 405B in BF16 (about 810 GB of weights against 8 x 80 GB), so the
# one-node topology defaults to the 70B model of the same family: about 140 GB of weights, leaving most
# of the memory to the KV cache, and 8 KV heads split evenly over TP 8. Same tokenizer and chat template
# as the reference, so the reports compare like with like.
MODEL_70B = "meta-llama/Meta-Llama-3.1-70B-Instruct"


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

    @property
    def world_size(self) -> int:
        return self.tp * self.pp

    @property
    def group_gpus(self) -> int:
        return self.size * self.gpus_per_pod

    @model_validator(mode="after")
    def _parallelism_fills_the_group(self) -> Topology:
        if self.world_size != self.group_gpus:
            raise ValueError(
                f"topology {self.name}: TP {self.tp} x PP {self.pp} = {self.world_size}, but the group "
                f"has {self.size} pods x {self.gpus_per_pod} GPUs = {self.group_gpus}"
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
