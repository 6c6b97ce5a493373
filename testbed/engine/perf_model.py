"""Performance model of a vLLM topology: what one scheduler step costs, stage by stage, and how much KV
cache the GPUs hold. The batch scheduler (`scheduler.py`) turns these costs into token timings.

Topology: world = TP x PP ranks, rank r = pp_rank * TP + tp_rank, placed `gpus_per_node` to a node
(leader node first). Stage s holds layers [s*L/PP, (s+1)*L/PP) (vLLM's even split, remainder to the last).

One step runs a batch of T = D + P tokens: D decoding sequences (one token each, holding C context tokens
in total) and prefill chunks of P tokens (W = sum over chunks of chunk * (context before + chunk/2)).
On every GPU of stage s with L_s layers (costs per block from `shard_costs.py`):

    t_stage(s) = L_s * ( t_linear(T) + t_attn_decode(C * kv_bytes_per_token) + t_attn_prefill(W)
                         + t_misc + 2 * t_allreduce(T * hidden * 2 bytes) )
                 + [last stage] t_lm_head(sequences sampled)

    t_allreduce(S) = 0                                            TP = 1
                   = min(a_custom + S * b_custom [S <= 8 MB],      TP group inside one node (NVLink):
                         a_nccl + S * b_nccl)                      vLLM custom AR, else NCCL (C7, C1)
                   = a_net + S * b_net                             TP group spanning nodes (C2/C3; C4)

Between stage s and s+1 the hidden state and residual (S_hop = T * hidden * 2 bytes * 2) move to the
next stage: inside a node over NVLink (a_custom), across nodes

    t_hop = a_p2p + S_hop / node_bandwidth + a_custom    (each TP rank sends 1/TP of it, then an
                                                          all-gather on receive, C3 and section 3.3)

After the last stage the sampled token ids return to the driver (a_p2p across nodes, nothing inside one).
Each step also costs host time, outside the GPUs:

    t_host = h_step + h_seq * (sequences in the step) [+ a_control when the world spans nodes]

(scheduling, input preparation, sampling bookkeeping and output processing; per vLLM era, see
`profiles.py`: vLLM 0.5/0.6 spent tens of ms per step on the CPU for large batches, V1 overlaps it).

Pipelining: up to PP batches are in flight (`scheduler.py`), so stage s works on batch k+1 while stage
s+1 works on batch k: throughput follows the slowest stage, a token's latency the sum of all stages
and hops. Memory, per GPU (vLLM's profile run, simplified):

    KV bytes = gpu_memory_utilization * memory - weights / (TP * PP) - activations - 1.5 GiB reserve
    blocks   = KV bytes / (block_size * L_s * kv_bytes_per_token_per_layer)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

from testbed.engine.hardware import GIB, INFINIBAND, GpuSpec, Interconnect
from testbed.engine.model_specs import ModelSpec
from testbed.engine.shard_costs import ShardCosts

RESERVED_BYTES = 1.5 * GIB  # CUDA context, CUDA graphs, NCCL buffers, non-torch allocations


@dataclass(frozen=True)
class Topology:
    """Where the ranks are: TP x PP over nodes of `gpus_per_node` GPUs joined by `interconnect`."""

    gpu: GpuSpec
    tp: int = 1
    pp: int = 1
    gpus_per_node: int = 8
    interconnect: Interconnect = INFINIBAND

    @property
    def world_size(self) -> int:
        return self.tp * self.pp

    @property
    def nodes(self) -> int:
        return max(1, math.ceil(self.world_size / self.gpus_per_node))

    def node_of_rank(self, rank: int) -> int:
        return rank // self.gpus_per_node

    @property
    def tp_spans_nodes(self) -> bool:
        return self.tp > self.gpus_per_node

    def hop_crosses_nodes(self, stage: int) -> bool:
        """Does the hop from `stage` to `stage + 1` leave the node?"""
        last_rank = (stage + 1) * self.tp - 1
        return self.node_of_rank(last_rank) != self.node_of_rank(last_rank + 1)

    @property
    def last_stage_remote(self) -> bool:
        return self.node_of_rank((self.pp - 1) * self.tp) != 0


@dataclass(frozen=True)
class EngineOverheads:
    """What the vLLM engine of an era adds to the GPU work (see `profiles.py`).

    Host time per step is `step_s + per_seq_s * sequences`. `pp_hop_sliced`: each TP rank sends only 1/TP
    of the hidden state across the hop and the receiver all-gathers (vLLM's
    `send_tensor_dict(..., all_gather_group=tp)`); without it every rank sends the whole tensor, which
    multiplies the bytes on a shared node link by TP. That matters only where the node link is narrow
    (one Ethernet NIC per node); with a NIC per GPU (InfiniBand) each rank has its own link.
    """

    step_s: float = 2.0e-3
    per_seq_s: float = 25e-6
    overlapped: bool = False  # async scheduling: host work of step k+1 hides behind GPU step k
    pp_hop_sliced: bool = True


@dataclass(frozen=True)
class SchedulerConfig:
    """The vLLM engine arguments that shape batching and memory."""

    max_num_seqs: int = 256
    max_num_batched_tokens: int | None = None  # None: vLLM's default for the mode (see effective_...)
    enable_chunked_prefill: bool = True
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    block_size: int = 16
    per_stage_schedulers: bool = False  # vLLM V0: one scheduler ("virtual engine") per pipeline stage
    chunked_prefill_budget: int = 8192  # default token budget with chunked prefill (V1 8192; V0 512)

    def effective_max_num_batched_tokens(self, max_model_len: int) -> int:
        if self.max_num_batched_tokens is not None:
            return self.max_num_batched_tokens
        # With chunked prefill, the era's default budget; without it vLLM requires the budget to hold a
        # whole max-length prompt.
        if self.enable_chunked_prefill:
            return self.chunked_prefill_budget
        return max(max_model_len, 2048)


@dataclass(frozen=True)
class BatchShape:
    """What a step computes; the scheduler builds it, the cost model prices it."""

    decode_seqs: int = 0
    decode_context_tokens: int = 0
    prefill_tokens: int = 0
    prefill_weighted_tokens: float = 0.0
    prefill_seqs: int = 0
    sampled_seqs: int = 0

    @property
    def tokens(self) -> int:
        return self.decode_seqs + self.prefill_tokens

    @property
    def seqs(self) -> int:
        return self.decode_seqs + self.prefill_seqs


@dataclass(frozen=True)
class StepCost:
    """Seconds spent by each stage, each hop (len PP-1), the return to the driver, and the host."""

    stages: tuple[float, ...]
    hops: tuple[float, ...]
    back: float
    host: float

    @property
    def gpu_latency(self) -> float:
        return sum(self.stages) + sum(self.hops) + self.back


@dataclass(frozen=True)
class MemoryPlan:
    weight_bytes_per_gpu: float
    activation_bytes: float
    kv_cache_bytes_per_gpu: float
    kv_bytes_per_token_per_gpu: float
    num_gpu_blocks: int
    block_size: int
    error: str | None = None  # vLLM's complaint when the model does not fit

    @property
    def kv_tokens(self) -> int:
        return self.num_gpu_blocks * self.block_size


@dataclass
class PerfModel:
    """Step costs and memory for `model` on `topology`; all times in seconds (see module docstring)."""

    model: ModelSpec
    topology: Topology
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    host: EngineOverheads = field(default_factory=EngineOverheads)

    def __post_init__(self) -> None:
        t = self.topology
        self.shard = ShardCosts(t.gpu, self.model, t.tp)
        per = self.model.layers // t.pp
        self.stage_layers = tuple([per] * (t.pp - 1) + [self.model.layers - per * (t.pp - 1)])
        self._hidden_bytes = self.model.hidden_bytes_per_token()

    @cached_property
    def max_model_len(self) -> int:
        return self.scheduler.max_model_len or self.model.max_model_len

    @cached_property
    def max_num_batched_tokens(self) -> int:
        return self.scheduler.effective_max_num_batched_tokens(self.max_model_len)

    # --- communication -------------------------------------------------------------------------------
    def allreduce_s(self, payload_bytes: float) -> float:
        t, gpu = self.topology, self.topology.gpu
        if t.tp <= 1 or payload_bytes <= 0:
            return 0.0
        if t.tp_spans_nodes:
            net = t.interconnect
            return net.allreduce_latency_s + payload_bytes * net.allreduce_s_per_byte
        nccl = gpu.nccl_ar_latency_s + payload_bytes * gpu.nccl_ar_s_per_byte
        if payload_bytes <= gpu.custom_ar_max_bytes:
            return min(nccl, gpu.custom_ar_latency_s + payload_bytes * gpu.custom_ar_s_per_byte)
        return nccl

    def hop_s(self, stage: int, tokens: int) -> float:
        t, gpu = self.topology, self.topology.gpu
        payload = tokens * self._hidden_bytes * 2  # hidden state + residual
        if not t.hop_crosses_nodes(stage):
            return gpu.custom_ar_latency_s + payload * gpu.custom_ar_s_per_byte / max(1, t.tp)
        net = t.interconnect
        if self.host.pp_hop_sliced:
            return net.p2p_latency_s + payload / net.node_bytes_per_s + gpu.custom_ar_latency_s
        return net.p2p_latency_s + payload * t.tp / net.node_bytes_per_s

    # --- one step -----------------------------------------------------------------------------------
    def stage_s(self, stage: int, shape: BatchShape) -> float:
        sh, gpu = self.shard, self.topology.gpu
        tokens = shape.tokens
        per_layer = (
            sh.linear_s(tokens)
            + sh.decode_attention_for(shape.decode_seqs, shape.decode_context_tokens)
            + sh.prefill_attention_s(shape.prefill_weighted_tokens)
            + gpu.misc_per_layer_s
            + 2 * self.allreduce_s(tokens * self._hidden_bytes)
        )
        seconds = self.stage_layers[stage] * per_layer
        if stage == self.topology.pp - 1:
            seconds += sh.lm_head_s(shape.sampled_seqs)
        return seconds

    def host_s(self, shape: BatchShape) -> float:
        h = self.host
        seconds = h.step_s + h.per_seq_s * shape.seqs
        if self.topology.nodes > 1:
            seconds += self.topology.interconnect.control_latency_s
        return seconds

    def step_cost(self, shape: BatchShape) -> StepCost:
        t = self.topology
        stages = tuple(self.stage_s(s, shape) for s in range(t.pp))
        hops = tuple(self.hop_s(s, shape.tokens) for s in range(t.pp - 1))
        back = t.interconnect.p2p_latency_s if t.last_stage_remote else 0.0
        return StepCost(stages=stages, hops=hops, back=back, host=self.host_s(shape))

    def decode_step_s(self, batch: int, context_per_seq: int) -> float:
        """Latency of one decode-only step (a token of every sequence), host time included."""
        shape = BatchShape(
            decode_seqs=batch, decode_context_tokens=batch * context_per_seq, sampled_seqs=batch
        )
        cost = self.step_cost(shape)
        return cost.gpu_latency + (0.0 if self.host.overlapped else cost.host)

    # --- memory --------------------------------------------------------------------------------------
    def memory_plan(self) -> MemoryPlan:
        t, m = self.topology, self.model
        weights = m.weight_bytes() / t.world_size
        tokens = self.max_num_batched_tokens
        # Peak activation of vLLM's profile run (a dummy step of max_num_batched_tokens tokens): the MLP's
        # gate+up output and its activation (3 x ffn/TP) and three hidden-sized buffers (hidden state,
        # residual, normed copy), BF16; plus float32 logits for max_num_seqs sequences.
        activation = (
            tokens * 2 * (3 * m.ffn / t.tp + 3 * m.hidden) + self.scheduler.max_num_seqs * m.vocab * 4
        )
        budget = self.scheduler.gpu_memory_utilization * t.gpu.memory_bytes
        kv_per_token = max(self.stage_layers) * m.kv_bytes_per_token_per_layer(t.tp)
        available = budget - weights - activation - RESERVED_BYTES
        block = self.scheduler.block_size
        error = None
        if weights > budget:
            error = (
                f"CUDA out of memory: the weights need {weights / GIB:.2f} GiB per GPU but "
                f"gpu_memory_utilization={self.scheduler.gpu_memory_utilization} of {t.gpu.memory_bytes / GIB:.2f} GiB "
                f"leaves {budget / GIB:.2f} GiB"
            )
        elif available <= 0:
            error = (
                "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` "
                "when initializing the engine."
            )
        blocks = max(0, int(available // (block * kv_per_token))) if error is None else 0
        return MemoryPlan(
            weight_bytes_per_gpu=weights,
            activation_bytes=activation,
            kv_cache_bytes_per_gpu=max(0.0, available),
            kv_bytes_per_token_per_gpu=kv_per_token,
            num_gpu_blocks=blocks,
            block_size=block,
            error=error,
        )
