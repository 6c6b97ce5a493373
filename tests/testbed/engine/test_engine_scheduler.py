"""Continuous batching, KV-cache capacity and the pipeline, in simulated time (no wall clock)."""

from __future__ import annotations

import pytest

from testbed.engine.hardware import ETHERNET, H100, INFINIBAND
from testbed.engine.model_specs import LLAMA_8B, LLAMA_405B, OPT_125M
from testbed.engine.perf_model import BatchShape, EngineOverheads, PerfModel, SchedulerConfig, Topology
from testbed.engine.scheduler import EngineCore, SimRequest
from testbed.engine.simulate import fixed_lengths, sharegpt_like_lengths, simulate


def _model(**sched: object) -> PerfModel:
    return PerfModel(LLAMA_8B, Topology(H100, tp=1), SchedulerConfig(**sched), EngineOverheads())  # type: ignore[arg-type]


def _drive(core: EngineCore, requests: list[SimRequest]) -> list[tuple[int, int, int]]:
    """Run to completion; per batch: (tokens, sequences running, prefill tokens)."""
    for r in requests:
        core.add_request(r, 0.0)
    seen = []
    while core.step(lambda req, t: None):
        seen.append((core.last_batch_tokens, core.num_running, 0))
    return seen


def test_batches_respect_max_num_seqs_and_the_token_budget() -> None:
    core = EngineCore(_model(max_num_seqs=8, max_num_batched_tokens=512))
    reqs = [SimRequest(rid=i, prompt_tokens=300, output_tokens=20) for i in range(40)]
    batches = _drive(core, reqs)
    assert all(r.finished for r in reqs)
    assert max(tokens for tokens, _, _ in batches) <= 512
    assert max(running for _, running, _ in batches) <= 8
    assert sum(r.generated for r in reqs) == 40 * 20


def test_a_full_kv_cache_queues_and_preempts_but_every_request_finishes() -> None:
    small = _model(gpu_memory_utilization=0.225)  # ~16 GB of weights leave only a sliver of KV cache
    plan = small.memory_plan()
    assert plan.error is None and 0 < plan.kv_tokens < 20_000
    result = simulate(small, fixed_lengths(64, 1500, 600))
    assert len(result.records) == 64
    assert result.max_running < 64  # the cache, not max_num_seqs, bounded the batch
    assert result.preemptions > 0


def test_the_same_inputs_give_the_same_timings() -> None:
    lengths = sharegpt_like_lengths(50, seed=3)
    a = simulate(_model(), lengths, concurrency=8)
    b = simulate(_model(), lengths, concurrency=8)
    assert a.records == b.records


def test_throughput_rises_with_concurrency_then_saturates() -> None:
    perf = _model(max_num_seqs=64)
    tput = [
        simulate(perf, fixed_lengths(4 * c, 512, 128), concurrency=c).summary().output_throughput
        for c in (1, 4, 16, 64, 256)
    ]
    assert tput[1] > 2.5 * tput[0] and tput[2] > 2 * tput[1]
    assert tput[4] < 1.2 * tput[3]  # max_num_seqs=64: more clients only queue


def test_ttft_grows_with_the_prompt() -> None:
    perf = _model()
    ttft = [
        simulate(perf, fixed_lengths(2, p, 4), concurrency=1).summary().ttft_median_s or 0
        for p in (128, 1024, 8192)
    ]
    assert ttft[0] < ttft[1] < ttft[2]
    assert ttft[2] > 4 * ttft[1]  # compute bound: ~linear in tokens (plus attention)


def test_without_chunked_prefill_a_step_is_prefill_only_or_decode_only() -> None:
    perf = PerfModel(
        LLAMA_8B,
        Topology(H100),
        SchedulerConfig(enable_chunked_prefill=False, max_model_len=4096, per_stage_schedulers=True),
        EngineOverheads(),
    )
    core = EngineCore(perf)
    for i in range(20):
        core.add_request(SimRequest(rid=i, prompt_tokens=1000, output_tokens=5), 0.0)
    mixed = 0
    while core.next_event_time() is not None:
        batch = core._inflight[0][2]
        shape = batch.shape
        mixed += shape.decode_seqs > 0 and shape.prefill_tokens > 0
        assert shape.prefill_tokens <= 4096
        core.step(lambda r, t: None)
    assert mixed == 0


def test_a_pipeline_hop_between_nodes_costs_more_than_inside_one() -> None:
    def step(gpus_per_node: int, net: object = INFINIBAND) -> tuple[float, float]:
        perf = PerfModel(
            LLAMA_405B, Topology(H100, tp=8, pp=2, gpus_per_node=gpus_per_node, interconnect=net)
        )  # type: ignore[arg-type]
        cost = perf.step_cost(BatchShape(decode_seqs=1, decode_context_tokens=1000, sampled_seqs=1))
        return cost.gpu_latency, cost.hops[0]

    across, hop_across = step(8)
    inside, hop_inside = step(16)
    assert hop_across > hop_inside > 0
    assert across - inside == pytest.approx(
        (hop_across - hop_inside) + 45e-6, rel=0.01
    )  # + the return to the driver
    _eth, hop_eth = step(8, ETHERNET)
    assert hop_eth > hop_across


def test_pipeline_stages_work_on_two_batches_at_once() -> None:
    """PP2: stage 0 runs batch k+1 while stage 1 runs batch k. With one batch in flight the stages take
    turns, each idle half the time; decode being memory bound, the bigger single batch does not make up
    for it, so the same work takes clearly longer."""

    def finish_time(in_flight: int) -> float:
        perf = PerfModel(
            LLAMA_405B,
            Topology(H100, tp=8, pp=2),
            SchedulerConfig(max_num_seqs=64, max_num_batched_tokens=2048),
        )
        core = EngineCore(perf)
        core.inflight_limit = in_flight
        reqs = [SimRequest(rid=i, prompt_tokens=256, output_tokens=64) for i in range(64)]
        for r in reqs:
            core.add_request(r, 0.0)
        while core.step(lambda req, t: None):
            pass
        assert all(r.finished for r in reqs)
        return core.now

    assert finish_time(2) < 0.85 * finish_time(1)


def test_tp16_across_nodes_is_far_more_sensitive_to_the_fabric_than_pp() -> None:
    def latency(tp: int, pp: int, net: object) -> float:
        return PerfModel(LLAMA_405B, Topology(H100, tp=tp, pp=pp, interconnect=net)).decode_step_s(32, 1000)  # type: ignore[arg-type]

    tp16 = latency(16, 1, ETHERNET) / latency(16, 1, INFINIBAND)
    pp2 = latency(8, 2, ETHERNET) / latency(8, 2, INFINIBAND)
    assert tp16 > 2.0 and pp2 < 1.15


def test_memory_plan_refuses_a_model_that_does_not_fit_and_sizes_the_kv_cache() -> None:
    too_big = PerfModel(LLAMA_405B, Topology(H100, tp=8, pp=1)).memory_plan()
    assert too_big.error is not None and "CUDA out of memory" in too_big.error
    eight_b = PerfModel(LLAMA_8B, Topology(H100)).memory_plan()
    assert eight_b.error is None
    assert 300_000 < eight_b.kv_tokens < 600_000  # ~55 GB free / 128 KiB per token
    assert PerfModel(OPT_125M, Topology(H100)).memory_plan().kv_tokens > eight_b.kv_tokens
