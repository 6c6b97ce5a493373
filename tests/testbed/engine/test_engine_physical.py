"""Every number the simulated vLLM prints is physical: over every version profile, every model of the
table and a few TP x PP layouts, the start-up logs and the /metrics exposition show no negative duration,
size or count, the weights per rank are the model's bytes over TP x PP, the KV cache fits in what the
weights leave, and the parts of a duration are not longer than the whole.

The checkers are shown failing on injected bad values at the end of the file, so a green run means the
properties were checked, not that the checkers cannot fail.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence

import pytest
from engine_testkit import run, serving, setup_for
from prometheus_client.parser import text_string_to_metric_families

from testbed.engine import startup_logs
from testbed.engine.app import EngineSetup
from testbed.engine.hardware import GIB
from testbed.engine.metrics import EngineMetrics
from testbed.engine.model_specs import MODELS, ModelSpec
from testbed.engine.profiles import CHANGES, CURRENT_VERSION, LEGACY_VERSION, SCRIPT_ONLINE, Profile
from testbed.engine.startup_logs import LogEvent, StartupPlan, plan_startup, render

# Every distinct profile: features switch on at the versions in CHANGES, so one version below the first
# switch, every switch version, the legacy default and the current release cover them all.
VERSIONS = sorted(
    {(0, 5, 3), (0, 5, 4), LEGACY_VERSION, CURRENT_VERSION} | {ch.since for ch in CHANGES.values()}
)
LOG_FORMATS = ("auto", "legacy", "current")
# (name, tp, pp, extra flags). World > 8 spans two 8-GPU nodes over Ray, as the LWS deployment does.
LAYOUTS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("tp1", 1, 1, ()),
    ("tp2", 2, 1, ()),
    ("tp8", 8, 1, ()),
    ("tp4-pp2", 4, 2, ()),
    (
        "tp8-pp2",
        8,
        2,
        (
            "--distributed-executor-backend",
            "ray",
            "--ray-cluster-size",
            "2",
            "--node-ip",
            "10.244.1.5",
            "--node-ip",
            "10.244.2.7",
        ),
    ),
    (
        "tp16",
        16,
        1,
        (
            "--distributed-executor-backend",
            "ray",
            "--ray-cluster-size",
            "2",
            "--node-ip",
            "10.244.1.5",
            "--node-ip",
            "10.244.2.7",
        ),
    ),
)

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


def startup_violations(setup: EngineSetup, plan: StartupPlan) -> list[str]:
    """What in this start-up is not physical; an empty list when every printed number is."""
    inp, spec = setup.startup, setup.spec
    world = inp.tp * inp.pp
    bad: list[str] = []
    lines = [(e, render(e, setup.profile, wall=0.0)) for e in plan.events]

    times = [e.at_s for e in plan.events]
    if any(t < 0 for t in times):
        bad.append(f"an event before the container started: {min(times)}")
    if times != sorted(times):
        bad.append("events out of time order")
    last = max(times, default=0.0)
    for name, end in (("ready_at_s", plan.ready_at_s), ("exit_at_s", plan.exit_at_s)):
        if end is not None and end < last - 1e-9:
            bad.append(f"{name}={end} before the last log line at {last}")

    low, high = _expected_weight_bytes(spec)
    per_rank_weights = spec.weight_bytes() / world
    if not low * 0.999 <= spec.weight_bytes() <= high * 1.001:
        bad.append(
            f"{spec.name}: weight bytes {spec.weight_bytes():.4g} outside params bounds [{low:.4g}, {high:.4g}]"
        )

    def weights_off(gib: str) -> bool:
        """The printed GiB per rank is not the model's bytes over TP x PP (to its printed precision)."""
        slack = (_half_unit(gib) + 1e-9) * GIB + 1e-3 * per_rank_weights
        return abs(_num(gib) * GIB - per_rank_weights) > slack

    loading: list[float] = []
    model_loading: list[float] = []
    weight_lines = 0
    for _, line in lines:
        for q in _ANY_QUANTITY.finditer(line):
            if _num(q.group(1)) < 0:
                bad.append(f"negative quantity: {line!r}")
        if m := _LOADING_WEIGHTS.search(line):
            loading.append(_num(m.group(1)))
        if m := _MODEL_LOADING.search(line):
            weight_lines += 1
            gib, seconds = m.group(1), m.group(3)
            model_loading.append(_num(seconds))
            if weights_off(gib):
                bad.append(f"weights per rank {gib} GiB, expected {per_rank_weights / GIB:.4f}: {line!r}")
            if _num(seconds) <= 0:
                bad.append(f"model loading in no time: {line!r}")
        if m := _LEGACY_WEIGHTS.search(line):
            weight_lines += 1
            gib = m.group(1)
            if weights_off(gib):
                bad.append(f"weights per rank {gib} GB, expected {per_rank_weights / GIB:.4f}: {line!r}")
        if (m := _GRAPH.search(line)) and (
            _num(m.group(1)) <= 0 or (m.group(2) is not None and _num(m.group(2)) < 0)
        ):
            bad.append(f"graph capture: {line!r}")
        if (m := _INIT_ENGINE.search(line)) and _num(m.group(1)) <= 0:
            bad.append(f"engine init in no time: {line!r}")
        if m := _RANK.search(line):
            rank, size, pp_rank, tp_rank = (int(g) for g in m.groups())
            if size != world or not (0 <= pp_rank < inp.pp and 0 <= tp_rank < inp.tp):
                bad.append(f"rank line does not match TP {inp.tp} x PP {inp.pp}: {line!r}")
            elif rank != pp_rank * inp.tp + tp_rank:
                bad.append(f"rank {rank} is not pp_rank * TP + tp_rank: {line!r}")
        if (m := _CONFIG.search(line)) and (int(m.group(1)), int(m.group(2))) != (inp.tp, inp.pp):
            bad.append(f"engine config does not say TP {inp.tp} x PP {inp.pp}: {line!r}")
        if (m := _RAY_WAIT.search(line)) and not 0 < int(m.group(1)) <= int(m.group(2)):
            bad.append(f"more Ray workers active than asked: {line!r}")
        if m := _KV_GIB.search(line):
            kv = _num(m.group(1))
            budget = inp.memory.kv_cache_bytes_per_gpu  # what the memory plan left; it must be physical too
            usable = setup.options.gpu_memory_utilization * setup.perf.topology.gpu.memory_bytes
            if kv * GIB > usable - per_rank_weights + _half_unit(m.group(1)) * GIB:
                bad.append(
                    f"KV cache {kv} GiB does not fit beside {per_rank_weights / GIB:.2f} GiB of weights"
                )
            if abs(kv * GIB - budget) > _half_unit(m.group(1)) * GIB + 1:
                bad.append(f"KV cache line {kv} GiB is not the memory plan's {budget / GIB:.4f}")
        if m := _KV_TOKENS.search(line):
            tokens = _num(m.group(1))
            need = tokens * inp.memory.kv_bytes_per_token_per_gpu
            if need > inp.memory.kv_cache_bytes_per_gpu + 1:
                bad.append(
                    f"{tokens:.0f} KV tokens need {need / GIB:.2f} GiB, more than the KV cache: {line!r}"
                )
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
    # A part is not longer than the whole: vLLM's "Loading weights took" (the loader) is inside each rank's
    # "Model loading took" (the model runner), line for line in rank order.
    for i, (part, whole) in enumerate(zip(loading, model_loading, strict=False)):
        if part > whole:
            bad.append(f"rank {i}: loading weights ({part} s) longer than loading the model ({whole} s)")
    if model_loading and len(loading) not in (0, len(model_loading)):
        bad.append(f"{len(loading)} 'Loading weights' lines for {len(model_loading)} 'Model loading' lines")
    reached_weights = any(
        "Starting to load model" in line and "Model loading" not in line for _, line in lines
    )
    if reached_weights and not inp.dedup_ray_logs and weight_lines != world:
        bad.append(f"{weight_lines} weight-loading lines for a world of {world} ranks")
    return bad


def _argv(
    model: str, version: tuple[int, int, int], log_format: str, tp: int, pp: int, extra: Sequence[str]
) -> list[str]:
    argv = [
        model,
        "--tensor-parallel-size",
        str(tp),
        "--pipeline-parallel-size",
        str(pp),
        "--profile",
        ".".join(map(str, version)),
        "--log-format",
        log_format,
        *extra,
    ]
    if tp * pp > 8:  # the multi-node helper of the image's era (a missing one is part of what is checked)
        argv += ["--launch-script", Profile.for_version(version).multi_node_script or SCRIPT_ONLINE]
    return argv


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: "v" + ".".join(map(str, v)))
@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_number_the_start_up_logs_print_is_physical(version: tuple[int, int, int], model: str) -> None:
    problems: list[str] = []
    checked = 0
    for (name, tp, pp, extra), log_format in itertools.product(LAYOUTS, LOG_FORMATS):
        setup = setup_for(*_argv(model, version, log_format, tp, pp, extra))
        plan = plan_startup(setup.startup)
        problems += [f"{name}/{log_format}: {p}" for p in startup_violations(setup, plan)]
        checked += 1
    assert checked == len(LAYOUTS) * len(LOG_FORMATS)
    assert not problems, "\n".join(problems[:20])


def test_the_layouts_reach_both_serving_and_the_memory_failure() -> None:
    """The sweep is worth its name only if it covers ready start-ups with all their lines, on one node and
    across two, and the out-of-memory exit (whose lines must be physical too)."""
    outcomes = set()
    for model, (name, tp, pp, extra) in itertools.product(sorted(MODELS), LAYOUTS):
        plan = plan_startup(setup_for(*_argv(model, CURRENT_VERSION, "auto", tp, pp, extra)).startup)
        outcomes.add((name, plan.failed, "CUDA out of memory" in (plan.failure or "")))
    assert ("tp1", False, False) in outcomes and ("tp8-pp2", False, False) in outcomes
    assert ("tp16", False, False) in outcomes and ("tp1", True, True) in outcomes


# --- /metrics ------------------------------------------------------------------------------------------


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


async def _traffic(argv: Sequence[str]) -> str:
    async with serving(*argv, "--time-scale", "0") as (client, _):
        for prompt, max_tokens in (("one two three", 12), ("a " * 300, 5), ("x", 1)):
            await client.post(
                "/v1/completions", json={"prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True}
            )
        return await (await client.get("/metrics")).text()


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: "v" + ".".join(map(str, v)))
@pytest.mark.parametrize(
    ("model", "tp", "pp"), [("facebook/opt-125m", 1, 1), ("meta-llama/Llama-3.1-70B-Instruct", 4, 2)]
)
def test_every_number_the_metrics_expose_is_physical(
    version: tuple[int, int, int], model: str, tp: int, pp: int
) -> None:
    text = run(_traffic([model, "-tp", str(tp), "-pp", str(pp), "--profile", ".".join(map(str, version))]))
    assert "vllm:e2e_request_latency_seconds_count" in text
    assert not metrics_violations(text)


# --- the checkers fail on bad values --------------------------------------------------------------------


def _opt_setup() -> EngineSetup:
    return setup_for("facebook/opt-125m", "--profile", "current")


def test_the_start_up_checker_flags_a_negative_loading_time() -> None:
    """The bug the sweep was written for: `Loading weights took -2.07 seconds` (opt-125m, default flags)."""
    setup = _opt_setup()
    plan = plan_startup(setup.startup)
    assert not startup_violations(setup, plan)
    bad = LogEvent(
        at_s=plan.events[-1].at_s,
        pod=0,
        message="Loading weights took -2.07 seconds",
        level="INFO",
        source="default_loader.py:262",
    )
    broken = StartupPlan(events=(*plan.events, bad), ready_at_s=plan.ready_at_s)
    assert any("negative quantity" in p for p in startup_violations(setup, broken))


def test_the_start_up_checker_flags_an_injected_negative_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A generator made to print a negative duration (the graph capture) is caught by the sweep's checker."""
    monkeypatch.setattr(startup_logs.random.Random, "randint", lambda self, a, b: -a if a == 8 else a)
    setup = _opt_setup()
    problems = startup_violations(setup, plan_startup(setup.startup))
    assert any("Graph capturing finished in -8 secs" in p for p in problems), problems


def test_the_start_up_checker_flags_weights_that_do_not_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights per rank printed as if the model were not split over TP x PP."""
    setup = setup_for("meta-llama/Llama-3.1-70B-Instruct", "-tp", "4", "-pp", "2", "--profile", "current")
    real = Profile.weights_line
    monkeypatch.setattr(Profile, "weights_line", lambda self, gib, seconds: real(self, gib * 8, seconds))
    problems = startup_violations(setup, plan_startup(setup.startup))
    assert sum("weights per rank" in p for p in problems) == 8, problems


def test_the_start_up_checker_flags_a_part_longer_than_its_whole() -> None:
    setup = _opt_setup()
    plan = plan_startup(setup.startup)
    swapped = tuple(
        LogEvent(e.at_s, e.pod, "Loading weights took 9999.00 seconds", e.level, e.source, e.prefix)
        if "Loading weights took" in e.message
        else e
        for e in plan.events
    )
    problems = startup_violations(setup, StartupPlan(events=swapped, ready_at_s=plan.ready_at_s))
    assert any("longer than loading the model" in p for p in problems), problems


def test_the_metrics_checker_flags_injected_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    text = run(_traffic(["facebook/opt-125m", "--profile", "current"]))
    assert not metrics_violations(text)
    real = EngineMetrics.on_first_token
    monkeypatch.setattr(
        EngineMetrics, "on_first_token", lambda self, p, ttft, queue: real(self, p, ttft, queue - 5.0)
    )
    problems = metrics_violations(run(_traffic(["facebook/opt-125m", "--profile", "current"])))
    assert any("vllm:request_queue_time_seconds_sum" in p for p in problems), problems
    usage = text.replace(
        next(line for line in text.splitlines() if line.startswith("vllm:kv_cache_usage_perc{")),
        'vllm:kv_cache_usage_perc{model_name="facebook/opt-125m",engine="0"} 1.5',
    )
    assert any("outside 0..1" in p for p in metrics_violations(usage))
