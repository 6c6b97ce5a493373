"""The published figures the model must reproduce (S1..S14 in docs/sources.md), as runnable
scenarios shared by the tests and `bench.py`.

S3 (Lambda, vLLM 0.5.4, chunked prefill on, 405B FP8 TP8 on one 8x H100 node, ShareGPT): per-token decode
time ~30 ms at 1-3 requests, ~35 at ~20, ~41-49 at ~80, ~50-60 at ~160, ~74 ms at ~256 running. Reproduced
as the median inter-token latency of a closed loop at that concurrency with ShareGPT-like lengths.

S1 (vLLM blog, Llama 3.1 launch, ~v0.5.3, 405B BF16 on 2x8 H100, 1024 in / 128 out, max throughput):
PP2xTP8 5.08 req/s with InfiniBand, 4.23 without; TP16 4.52 with, 0.64 without. Reproduced as all
requests sent at once to the V0 engine of that era: one scheduler per pipeline stage, no chunked prefill,
the model's full 131072-token context (so vLLM's profile run keeps a large activation reserve and the KV
cache, not max_num_seqs, bounds the batch), whole hidden states sent by every TP rank across the hop.
"""

from __future__ import annotations

from dataclasses import dataclass

from testbed.engine.hardware import ETHERNET, H100, INFINIBAND, Interconnect
from testbed.engine.model_specs import LLAMA_405B, LLAMA_405B_FP8
from testbed.engine.perf_model import PerfModel, SchedulerConfig, Topology
from testbed.engine.profiles import Profile
from testbed.engine.simulate import SimSummary, fixed_lengths, sharegpt_like_lengths, simulate

S3_PROFILE = Profile.for_version((0, 5, 4))
S1_PROFILE = Profile.for_version((0, 5, 3))

# (concurrency, published per-token decode ms)
S3_TPOT_MS = ((2, 30.0), (20, 35.0), (80, 45.0), (160, 55.0), (256, 74.0))
S1_REQ_PER_S = {
    ("pp2xtp8", "infiniband"): 5.08,
    ("tp16", "infiniband"): 4.52,
    ("pp2xtp8", "ethernet"): 4.23,
    ("tp16", "ethernet"): 0.64,
}

# Published figures that set a parameter of the model: each is a fit anchor, reproduced by construction,
# and must never be counted as validation (the tests check the two sets stay apart). Only this one is
# fitted; the other Ethernet constants are estimates (hardware.ETHERNET), and the engine overheads
# (profiles.py) and misc_per_layer_s (hardware.py) were set by hand with the published figures in view,
# so the checks below are not independent of those hand-set values either (docs/calibration.md).
FIT_ANCHORS: dict[str, str] = {
    "S1 tp16 ethernet 0.64 req/s": "hardware.ETHERNET.allreduce_s_per_byte",
}
S1_FIT_KEYS: frozenset[tuple[str, str]] = frozenset({("tp16", "ethernet")})
S1_VALIDATION_REQ_PER_S = {key: value for key, value in S1_REQ_PER_S.items() if key not in S1_FIT_KEYS}


def s3_model() -> PerfModel:
    sched = SchedulerConfig(
        max_num_seqs=256,
        enable_chunked_prefill=True,
        chunked_prefill_budget=S3_PROFILE.chunked_prefill_budget,
        max_model_len=8000,
        per_stage_schedulers=S3_PROFILE.per_stage_schedulers,
    )
    return PerfModel(LLAMA_405B_FP8, Topology(H100, tp=8, pp=1), sched, S3_PROFILE.overheads())


def s3_itl_ms(concurrency: int, seed: int = 1) -> float:
    """Median ITL of a closed loop at `concurrency`, skipping the first and last wave of requests."""
    n = max(4 * concurrency, 60)
    result = simulate(s3_model(), sharegpt_like_lengths(n, seed=seed), concurrency=concurrency)
    itl = result.summary(skip_first=concurrency, skip_last=concurrency).itl_median_s
    assert itl is not None
    return itl * 1e3


def s1_model(layout: str, interconnect: Interconnect) -> PerfModel:
    tp, pp = {"pp2xtp8": (8, 2), "tp16": (16, 1)}[layout]
    sched = SchedulerConfig(
        max_num_seqs=256,
        enable_chunked_prefill=False,
        per_stage_schedulers=S1_PROFILE.per_stage_schedulers,
    )
    return PerfModel(
        LLAMA_405B, Topology(H100, tp=tp, pp=pp, interconnect=interconnect), sched, S1_PROFILE.overheads()
    )


@dataclass(frozen=True)
class S1Point:
    layout: str
    interconnect: str
    summary: SimSummary


def s1_throughput(layout: str, interconnect_name: str, requests: int = 600) -> S1Point:
    net = {"infiniband": INFINIBAND, "ethernet": ETHERNET}[interconnect_name]
    result = simulate(s1_model(layout, net), fixed_lengths(requests, 1024, 128), record_itl=False)
    return S1Point(layout, interconnect_name, result.summary())
