"""`python -m testbed.engine.bench`: what the simulator says about the LWS topology, beside a roofline.

Prints, for Llama-3.1-405B BF16 as TP8 x PP2 on two 8x H100 nodes (InfiniBand, current vLLM):
1. TTFT, TPOT and throughput against concurrency (closed loop, 1024 in / 128 out), beside an independent
   back-of-envelope roofline that shares no code with the model (datasheet peaks, the parameter count,
   and round communication figures);
2. TTFT against prompt length at concurrency 1;
3. where one decode step's time goes, stage by stage and across the pipeline hop;
4. the capacity of one engine process at time-scale 0 (tokens/s streamed to a client in another process).
It ends with the checks a reader expects (throughput rises then saturates, TTFT grows with the prompt,
the hop costs something) and exits 1 if one fails.
"""

from __future__ import annotations

import argparse
import itertools
import sys

from testbed.engine.hardware import H100, INFINIBAND
from testbed.engine.model_specs import LLAMA_405B
from testbed.engine.perf_model import BatchShape, PerfModel, SchedulerConfig, Topology
from testbed.engine.profiles import CURRENT_VERSION, Profile
from testbed.engine.simulate import fixed_lengths, simulate

CONCURRENCY = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PROMPTS = (128, 512, 1024, 2048, 4096, 8192)
IN_TOKENS, OUT_TOKENS = 1024, 128


class Roofline:
    """Back of the envelope, on purpose independent of perf_model: H100 SXM datasheet (3.35 TB/s HBM,
    989 TFLOP/s dense BF16), 405.8e9 parameters in BF16 spread over 16 GPUs in 2 stages of 8, 126 layers,
    two all-reduces per layer at ~20 us each, ~50 us per pipeline hop. A lower bound on time."""

    HBM = 3.35e12
    FLOPS = 989e12
    PARAMS = 405.8e9
    GPUS, STAGES, LAYERS = 16, 2, 126
    AR_S, HOP_S = 20e-6, 50e-6
    KV_BYTES_PER_TOKEN = 126 * 8 * 128 * 2 * 2  # layers x kv heads x head dim x (K,V) x BF16

    def step_s(self, batch: int, context: int) -> float:
        """One decode step for `batch` sequences: every stage streams its weights and KV in turn."""
        weights_per_gpu = self.PARAMS * 2 / self.GPUS
        kv_per_gpu = batch * context * self.KV_BYTES_PER_TOKEN / self.GPUS
        memory = (weights_per_gpu + kv_per_gpu) / self.HBM
        compute = 2 * self.PARAMS / self.GPUS * batch / self.FLOPS
        per_stage = max(memory, compute) + (self.LAYERS // self.STAGES) * 2 * self.AR_S
        return self.STAGES * per_stage + self.HOP_S

    def ttft_s(self, prompt: int) -> float:
        compute = (
            2 * self.PARAMS * prompt / (self.GPUS * self.FLOPS) * self.STAGES
        )  # a prompt crosses both stages
        return max(compute, self.step_s(1, prompt))

    def throughput(self, concurrency: int) -> float:
        """Requests/s of a closed loop: each client waits TTFT + (out-1) x TPOT; capped by all GPUs' FLOPs."""
        per_request = self.ttft_s(IN_TOKENS) + (OUT_TOKENS - 1) * self.step_s(
            concurrency, IN_TOKENS + OUT_TOKENS // 2
        )
        cap = self.GPUS * self.FLOPS / (2 * self.PARAMS * (IN_TOKENS + OUT_TOKENS))
        return min(concurrency / per_request, cap)


def _model(pp_hop_inside_node: bool = False) -> PerfModel:
    profile = Profile.for_version(CURRENT_VERSION)
    gpus_per_node = 16 if pp_hop_inside_node else 8
    topo = Topology(H100, tp=8, pp=2, gpus_per_node=gpus_per_node, interconnect=INFINIBAND)
    sched = SchedulerConfig(
        max_num_seqs=256,
        enable_chunked_prefill=True,
        chunked_prefill_budget=profile.chunked_prefill_budget,
        max_model_len=16384,
        per_stage_schedulers=profile.per_stage_schedulers,
    )
    return PerfModel(LLAMA_405B, topo, sched, profile.overheads())


def _ms(x: float | None) -> str:
    return "   n/a" if x is None else f"{x * 1e3:8.1f}"


def run(capacity: bool, capacity_seconds: float) -> int:
    roof = Roofline()
    failures: list[str] = []
    print(
        "Llama-3.1-405B BF16, TP8 x PP2 on 2 x 8 H100 (InfiniBand), vLLM",
        Profile.for_version(CURRENT_VERSION).version_text,
    )
    print(
        f"\n1. closed loop, {IN_TOKENS} in / {OUT_TOKENS} out: model vs roofline (roofline = lower bound on time)"
    )
    print(
        f"{'conc':>5} {'TTFT ms':>9} {'roof':>8} {'TPOT ms':>9} {'roof':>8} {'req/s':>7} {'roof':>7} {'out tok/s':>10}"
    )
    throughputs = []
    for c in CONCURRENCY:
        n = max(3 * c, 24)
        s = simulate(_model(), fixed_lengths(n, IN_TOKENS, OUT_TOKENS), concurrency=c).summary(
            skip_first=c, skip_last=c
        )
        throughputs.append(s.request_throughput)
        print(
            f"{c:5d} {_ms(s.ttft_median_s)} {roof.ttft_s(IN_TOKENS) * 1e3:8.1f} {_ms(s.tpot_median_s)} "
            f"{roof.step_s(c, IN_TOKENS + OUT_TOKENS // 2) * 1e3:8.1f} {s.request_throughput:7.2f} {roof.throughput(c):7.2f} {s.output_throughput:10.0f}"
        )
        if s.tpot_median_s is not None and s.tpot_median_s < roof.step_s(c, IN_TOKENS) * 0.95:
            failures.append(f"TPOT at concurrency {c} beats the roofline")
    rising = all(b >= a * 0.98 for a, b in itertools.pairwise(throughputs))
    saturating = throughputs[-1] / throughputs[-2] < 1.5 and throughputs[1] / throughputs[0] > 1.5
    if not rising:
        failures.append(f"throughput does not rise with concurrency: {[round(t, 2) for t in throughputs]}")
    if not saturating:
        failures.append(f"throughput does not saturate: {[round(t, 2) for t in throughputs]}")

    print("\n2. TTFT against prompt length, one request at a time")
    print(f"{'prompt':>7} {'TTFT ms':>9} {'roof':>8}")
    ttfts = []
    for p in PROMPTS:
        s = simulate(_model(), fixed_lengths(3, p, 8), concurrency=1).summary()
        ttfts.append(s.ttft_median_s or 0.0)
        print(f"{p:7d} {_ms(s.ttft_median_s)} {roof.ttft_s(p) * 1e3:8.1f}")
    if ttfts != sorted(ttfts) or ttfts[-1] < 4 * ttfts[0]:
        failures.append(f"TTFT does not grow with the prompt: {ttfts}")

    print("\n3. one decode step (batch 1 and 64, 1024-token context): where the time goes")
    for batch in (1, 64):
        shape = BatchShape(decode_seqs=batch, decode_context_tokens=batch * 1024, sampled_seqs=batch)
        cost = _model().step_cost(shape)
        inside = _model(pp_hop_inside_node=True).step_cost(shape)
        print(
            f"  batch {batch:3d}: stage0 {cost.stages[0] * 1e3:.2f} ms + hop {cost.hops[0] * 1e6:.0f} us + stage1 "
            f"{cost.stages[1] * 1e3:.2f} ms + return {cost.back * 1e6:.0f} us + host {cost.host * 1e3:.2f} ms; "
            f"same hop inside one node: {inside.hops[0] * 1e6:.0f} us"
        )
        if not cost.hops[0] > inside.hops[0] > 0:
            failures.append("the pipeline hop across nodes does not cost more than one inside a node")

    if capacity:
        from testbed.engine.capacity import measure_capacity

        print(
            f"\n4. capacity: one engine process, time-scale 0, 64 streams of 256 tokens for {capacity_seconds:.0f} s"
        )
        res = measure_capacity(seconds=capacity_seconds)
        print(
            f"  {res.tokens_per_s:,.0f} tokens/s ({res.tokens:,} tokens, {res.requests} requests, {res.errors} errors)"
        )
        if res.errors or res.tokens_per_s < 20_000:
            failures.append(
                f"capacity {res.tokens_per_s:,.0f} tokens/s with {res.errors} errors (need >= 20,000 and none); first error: {res.first_error}"
            )

    print("\nchecks:", "all pass" if not failures else "")
    for f in failures:
        print("  FAIL:", f)
    return 1 if failures else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-capacity", action="store_true", help="skip the capacity measurement")
    p.add_argument("--capacity-seconds", type=float, default=3.0)
    a = p.parse_args()
    return run(capacity=not a.no_capacity, capacity_seconds=a.capacity_seconds)


if __name__ == "__main__":
    sys.exit(main())
