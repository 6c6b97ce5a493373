"""Checkers for test_engine_physical.py: what in a simulated start-up or /metrics exposition is not physical.

Each returns a list of readable problems, empty when every printed number is physical:
`startup_violations` for the start-up log lines of a plan, `metrics_violations` for a /metrics text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from testbed.engine.app import EngineSetup
from testbed.engine.hardware import GIB
from testbed.engine.model_specs import ModelSpec
from testbed.engine.startup_logs import StartupPlan, render

_NUM = r"(-?[0-9][0-9,]*(?:\.[0-9]+)?)"
# A number followed by a unit of time, memory or tokens: must never be negative, wherever it is printed.
_ANY_QUANTITY = re.compile(rf"{_NUM}\s*(seconds|secs|GiB|GB|tokens|reqs|x\b)")
_LOADING_WEIGHTS = re.compile(rf"Loading weights took {_NUM} seconds")
_MODEL_LOADING = re.compile(rf"Model loading took {_NUM} (GiB|GB)(?: memory)? and {_NUM} seconds")
_LEGACY_WEIGHTS = re.compile(rf"Loading model weights took {_NUM} GB")
_GRAPH = re.compile(rf"Graph capturing finished in {_NUM} secs(?:, took {_NUM} GiB)?")
_INIT_ENGINE = re.compile(rf"init engine \(profile, create kv cache, warmup model\) took {_NUM} seconds")
_KV_GIB = re.compile(rf"Available KV cache memory: {_NUM} GiB")
_KV_TOKENS = re.compile(rf"GPU KV cache size: {_NUM} tokens")
_CONCURRENCY = re.compile(rf"Maximum concurrency for {_NUM} tokens per request: {_NUM}x")
_BLOCKS = re.compile(rf"# GPU blocks: {_NUM}, # CPU blocks: {_NUM}")
_RANK = re.compile(r"rank (\d+) in world size (\d+) is assigned as DP rank 0, PP rank (\d+), TP rank (\d+)")
_CONFIG = re.compile(r"tensor_parallel_size=(\d+), pipeline_parallel_size=(\d+)")
_RAY_WAIT = re.compile(r"Wait for all ray workers to be active\. (\d+)/(\d+) is active")


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _half_unit(text: str) -> float:
    """Half of the last printed digit: the most a correctly rounded number can be off by."""
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    return 0.5 * 10.0**-decimals


def _expected_weight_bytes(spec: ModelSpec) -> tuple[float, float]:
    """Bounds on all weights, from the parameter count alone: every parameter at the checkpoint's precision
    (FP8: 1 byte), up to every parameter in BF16 (FP8 checkpoints keep embeddings and LM head in BF16)."""
    params = spec.total_params()
    return params * spec.weight_bytes_per_param, params * 2.0


def _world(setup: EngineSetup) -> int:
    return setup.startup.tp * setup.startup.pp


def _per_rank_weights(setup: EngineSetup) -> float:
    return setup.spec.weight_bytes() / _world(setup)


@dataclass
class _WeightLines:
    """What the weight-loading lines said, in rank order."""

    loading: list[float] = field(default_factory=list)  # "Loading weights took" (the loader), seconds
    model_loading: list[float] = field(default_factory=list)  # "Model loading took" (the runner), seconds
    count: int = 0  # lines that print the weights per rank


def startup_violations(setup: EngineSetup, plan: StartupPlan) -> list[str]:
    """What in this start-up is not physical; an empty list when every printed number is."""
    lines = [render(e, setup.profile, wall=0.0) for e in plan.events]
    bad = _timing_violations(plan) + _weight_bound_violations(setup.spec)
    weights = _WeightLines()
    for line in lines:
        bad += _negative_quantities(line)
        bad += _weight_line_violations(setup, line, weights)
        bad += _duration_line_violations(line)
        bad += _rank_line_violations(setup, line)
        bad += _kv_line_violations(setup, line)
    return bad + _weight_total_violations(setup, lines, weights)


def _timing_violations(plan: StartupPlan) -> list[str]:
    bad: list[str] = []
    times = [e.at_s for e in plan.events]
    if any(t < 0 for t in times):
        bad.append(f"an event before the container started: {min(times)}")
    if times != sorted(times):
        bad.append("events out of time order")
    last = max(times, default=0.0)
    for name, end in (("ready_at_s", plan.ready_at_s), ("exit_at_s", plan.exit_at_s)):
        if end is not None and end < last - 1e-9:
            bad.append(f"{name}={end} before the last log line at {last}")
    return bad


def _weight_bound_violations(spec: ModelSpec) -> list[str]:
    low, high = _expected_weight_bytes(spec)
    if low * 0.999 <= spec.weight_bytes() <= high * 1.001:
        return []
    return [
        f"{spec.name}: weight bytes {spec.weight_bytes():.4g} outside params bounds [{low:.4g}, {high:.4g}]"
    ]


def _negative_quantities(line: str) -> list[str]:
    return [f"negative quantity: {line!r}" for q in _ANY_QUANTITY.finditer(line) if _num(q.group(1)) < 0]


def _weights_off(setup: EngineSetup, gib: str) -> bool:
    """The printed GiB per rank is not the model's bytes over TP x PP (to its printed precision)."""
    per_rank = _per_rank_weights(setup)
    slack = (_half_unit(gib) + 1e-9) * GIB + 1e-3 * per_rank
    return abs(_num(gib) * GIB - per_rank) > slack


def _weight_line_violations(setup: EngineSetup, line: str, seen: _WeightLines) -> list[str]:
    """The weights per rank and the loading times of one line; counts them in `seen`."""
    bad: list[str] = []
    expected = _per_rank_weights(setup) / GIB
    if m := _LOADING_WEIGHTS.search(line):
        seen.loading.append(_num(m.group(1)))
    if m := _MODEL_LOADING.search(line):
        seen.count += 1
        gib, seconds = m.group(1), m.group(3)
        seen.model_loading.append(_num(seconds))
        if _weights_off(setup, gib):
            bad.append(f"weights per rank {gib} GiB, expected {expected:.4f}: {line!r}")
        if _num(seconds) <= 0:
            bad.append(f"model loading in no time: {line!r}")
    if m := _LEGACY_WEIGHTS.search(line):
        seen.count += 1
        gib = m.group(1)
        if _weights_off(setup, gib):
            bad.append(f"weights per rank {gib} GB, expected {expected:.4f}: {line!r}")
    return bad


def _duration_line_violations(line: str) -> list[str]:
    bad: list[str] = []
    if (m := _GRAPH.search(line)) and (
        _num(m.group(1)) <= 0 or (m.group(2) is not None and _num(m.group(2)) < 0)
    ):
        bad.append(f"graph capture: {line!r}")
    if (m := _INIT_ENGINE.search(line)) and _num(m.group(1)) <= 0:
        bad.append(f"engine init in no time: {line!r}")
    return bad


def _rank_line_violations(setup: EngineSetup, line: str) -> list[str]:
    """Rank, engine config and Ray lines against TP x PP."""
    inp, bad = setup.startup, []
    if m := _RANK.search(line):
        rank, size, pp_rank, tp_rank = (int(g) for g in m.groups())
        if size != _world(setup) or not (0 <= pp_rank < inp.pp and 0 <= tp_rank < inp.tp):
            bad.append(f"rank line does not match TP {inp.tp} x PP {inp.pp}: {line!r}")
        elif rank != pp_rank * inp.tp + tp_rank:
            bad.append(f"rank {rank} is not pp_rank * TP + tp_rank: {line!r}")
    if (m := _CONFIG.search(line)) and (int(m.group(1)), int(m.group(2))) != (inp.tp, inp.pp):
        bad.append(f"engine config does not say TP {inp.tp} x PP {inp.pp}: {line!r}")
    if (m := _RAY_WAIT.search(line)) and not 0 < int(m.group(1)) <= int(m.group(2)):
        bad.append(f"more Ray workers active than asked: {line!r}")
    return bad


def _kv_line_violations(setup: EngineSetup, line: str) -> list[str]:
    """KV cache size, tokens, concurrency and blocks against the memory plan."""
    inp, bad = setup.startup, []
    per_rank_weights = _per_rank_weights(setup)
    if m := _KV_GIB.search(line):
        kv = _num(m.group(1))
        budget = inp.memory.kv_cache_bytes_per_gpu  # what the memory plan left; it must be physical too
        usable = setup.options.gpu_memory_utilization * setup.perf.topology.gpu.memory_bytes
        if kv * GIB > usable - per_rank_weights + _half_unit(m.group(1)) * GIB:
            bad.append(f"KV cache {kv} GiB does not fit beside {per_rank_weights / GIB:.2f} GiB of weights")
        if abs(kv * GIB - budget) > _half_unit(m.group(1)) * GIB + 1:
            bad.append(f"KV cache line {kv} GiB is not the memory plan's {budget / GIB:.4f}")
    if m := _KV_TOKENS.search(line):
        tokens = _num(m.group(1))
        need = tokens * inp.memory.kv_bytes_per_token_per_gpu
        if need > inp.memory.kv_cache_bytes_per_gpu + 1:
            bad.append(f"{tokens:.0f} KV tokens need {need / GIB:.2f} GiB, more than the KV cache: {line!r}")
        if tokens % inp.memory.block_size:
            bad.append(f"KV tokens not a whole number of blocks: {line!r}")
    if m := _CONCURRENCY.search(line):
        max_len, conc = _num(m.group(1)), m.group(2)
        expected = inp.memory.kv_tokens / max_len
        if max_len != inp.max_model_len or abs(_num(conc) - expected) > _half_unit(conc) + 1e-9:
            bad.append(f"concurrency {conc}x, expected {expected:.2f}x: {line!r}")
    if m := _BLOCKS.search(line):
        gpu_blocks, cpu_blocks = _num(m.group(1)), _num(m.group(2))
        if gpu_blocks < 0 or cpu_blocks < 0 or gpu_blocks != inp.memory.num_gpu_blocks:
            bad.append(f"block counts: {line!r}")
    return bad


def _weight_total_violations(setup: EngineSetup, lines: list[str], seen: _WeightLines) -> list[str]:
    """Across the lines: a part is not longer than the whole, and every rank printed its weights."""
    bad: list[str] = []
    # vLLM's "Loading weights took" (the loader) is inside each rank's "Model loading took" (the model
    # runner), line for line in rank order.
    for i, (part, whole) in enumerate(zip(seen.loading, seen.model_loading, strict=False)):
        if part > whole:
            bad.append(f"rank {i}: loading weights ({part} s) longer than loading the model ({whole} s)")
    if seen.model_loading and len(seen.loading) not in (0, len(seen.model_loading)):
        bad.append(
            f"{len(seen.loading)} 'Loading weights' lines for {len(seen.model_loading)} 'Model loading' lines"
        )
    reached_weights = any("Starting to load model" in line and "Model loading" not in line for line in lines)
    world = _world(setup)
    if reached_weights and not setup.startup.dedup_ray_logs and seen.count != world:
        bad.append(f"{seen.count} weight-loading lines for a world of {world} ranks")
    return bad


def metrics_violations(text: str) -> list[str]:
    """What in this exposition is not physical: negative counts, sums or gauges, buckets that are not
    cumulative, a usage outside 0..1, or token and latency totals that contradict one another."""
    bad: list[str] = []
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        buckets: dict[str, list[tuple[float, float]]] = {}  # per series (its labels but le)
        for s in family.samples:
            labels = "".join(
                f",{k}={v}" for k, v in sorted(s.labels.items()) if k not in ("model_name", "engine", "le")
            )
            key = s.name + labels
            if math.isnan(s.value) or s.value < 0:
                bad.append(f"{key} = {s.value}")
            if s.name.endswith("_bucket"):
                buckets.setdefault(labels, []).append((float(s.labels["le"]), s.value))
            else:
                values[key] = s.value
        for labels, series in buckets.items():
            counts = [c for _, c in sorted(series)]
            name = family.name + labels
            if counts != sorted(counts):
                bad.append(f"{name}: buckets not cumulative {counts}")
            count = values.get(f"{family.name}_count{labels}")
            if counts[-1] != count:
                bad.append(f"{name}: +Inf bucket {counts[-1]} != count {count}")
    return bad + _metric_total_violations(values)


def _metric_total_violations(values: dict[str, float]) -> list[str]:
    """Usages within 0..1, and token and latency totals that agree with one another."""
    bad: list[str] = []
    for name in ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"):
        if name in values and not 0 <= values[name] <= 1:
            bad.append(f"{name} = {values[name]} outside 0..1")
    pairs = (
        ("vllm:prompt_tokens_total", "vllm:request_prompt_tokens_sum"),
        ("vllm:generation_tokens_total", "vllm:request_generation_tokens_sum"),
    )
    for total, per_request in pairs:
        if values.get(total) != values.get(per_request):
            bad.append(f"{total} = {values.get(total)} but {per_request} = {values.get(per_request)}")
    # each request waits, then gets its first token, then finishes: queue <= TTFT <= end-to-end, summed
    queue = values.get("vllm:request_queue_time_seconds_sum", 0.0)
    ttft = values.get("vllm:time_to_first_token_seconds_sum", 0.0)
    e2e = values.get("vllm:e2e_request_latency_seconds_sum", 0.0)
    if not queue <= ttft + 1e-9 <= e2e + 2e-9:
        bad.append(f"latency sums out of order: queue {queue}, TTFT {ttft}, e2e {e2e}")
    finished = sum(v for k, v in values.items() if k.startswith("vllm:request_success_total"))
    if finished != values.get("vllm:e2e_request_latency_seconds_count"):
        bad.append(
            f"{finished} finished requests but {values.get('vllm:e2e_request_latency_seconds_count')} e2e samples"
        )
    return bad
