"""vLLM's metric families, registered as the profile's vLLM version has them (`register_vllm_families`).

Same names, HELP texts, labels, buckets and `_created` series as vllm/v1/metrics/loggers.py. Which
families exist depends on the profile: `vllm:gpu_cache_usage_perc` and `vllm:time_per_output_token_seconds`
before 0.12, `vllm:kv_cache_usage_perc` from 0.9.2, `vllm:inter_token_latency_seconds` from 0.10, the rest
of the V1 set as seen in 0.32.0 (`profiles.py`). Token-count histograms use vLLM's 1-2-5 buckets up to
max_model_len.
Labels: `model_name` on every vLLM series, and `engine="0"` on V1 (as vLLM); `vllm:cache_config_info` has
the cache config's fields instead, `vllm:admission_rejections` no engine.
Families the simulator has nothing to report for are registered and stay at zero: MFU estimates,
prefix/multi-modal/external cache hits, admission rejections, per-step token counts
(`vllm:iteration_tokens_total`); the series it does update come back as a `VllmSeries`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from testbed.engine.metric_buckets import (
    E2E_BUCKETS,
    ITERATION_TOKENS_BUCKETS,
    ITL_BUCKETS,
    NUM_PREEMPTIONS_BUCKETS,
    PARAMS_N_BUCKETS,
    TTFT_BUCKETS,
    token_buckets,
)
from testbed.engine.metric_labels import (
    ADMISSION_REASONS,
    CACHE_CONFIG_V032,
    CACHE_HIT_SOURCES,
    FINISH_REASONS,
    FINISH_REASONS_V032,
    PROMPT_SOURCES,
    SLEEP_STATES,
)
from testbed.engine.profiles import Profile


@dataclass(frozen=True)
class Gauges:
    """Set from the engine's state when /metrics is read."""

    running: Gauge
    waiting: Gauge
    waiting_by_reason: Gauge | None  # 0.32's "capacity" series
    kv_usage: tuple[Gauge, ...]  # vllm:kv_cache_usage_perc and/or vllm:gpu_cache_usage_perc


@dataclass(frozen=True)
class TokenCounters:
    """Fed from the engine's plain integers when /metrics is read."""

    preemptions: Counter
    prompt: Counter
    generation: Counter
    prefix_queries: Counter | None  # 0.32: every prompt token is a prefix-cache query
    prompt_by_source: Counter | None  # 0.32: the "local_compute" source
    prefix_hits: Counter | None = None  # 0.32: the prompt tokens the prefix cache held (prefix_cache.py)
    prompt_cached: Counter | None = None  # 0.32: the "local_cache_hit" source


@dataclass(frozen=True)
class RequestHistograms:
    """Observed once per request (tokens) or per token (inter-token latencies)."""

    prompt_tokens: Histogram
    generation_tokens: Histogram
    ttft: Histogram
    e2e: Histogram
    queue: Histogram
    itl: Histogram | None  # from 0.10
    tpot: Histogram | None  # from 0.10, per request
    tpot_legacy: Histogram | None  # before 0.12, per token


@dataclass(frozen=True)
class V032Histograms:
    """0.32's per-request histograms beyond the older set."""

    max_generation_tokens: Histogram
    params_n: Histogram
    params_max_tokens: Histogram
    inference: Histogram
    prefill: Histogram
    decode: Histogram
    preemptions: Histogram
    prefill_kv: Histogram


@dataclass(frozen=True)
class VllmSeries:
    """The series of one engine's registry that the simulator updates."""

    gauges: Gauges
    counters: TokenCounters
    success: dict[str, Counter]  # by finished_reason
    requests: RequestHistograms
    v032: V032Histograms | None  # None before 0.32


class _Families:
    """Registers families on one registry with the labels every vLLM series has (`model_name`, `engine`)."""

    def __init__(self, reg: CollectorRegistry, model_name: str, *, v1: bool) -> None:
        self.reg = reg
        self.model_name = model_name
        self.names = ["model_name", "engine"] if v1 else ["model_name"]
        self.values = [model_name, "0"] if v1 else [model_name]

    def counter(self, name: str, doc: str, *extra: str) -> Counter:
        return Counter(name, doc, self.names + list(extra), registry=self.reg)

    def gauge(self, name: str, doc: str, *extra: str) -> Gauge:
        return Gauge(name, doc, self.names + list(extra), registry=self.reg)

    def histogram(self, name: str, doc: str, buckets: Sequence[float]) -> Histogram:
        """The one series of a histogram family."""
        return Histogram(name, doc, self.names, buckets=buckets, registry=self.reg).labels(*self.values)


def register_vllm_families(
    reg: CollectorRegistry,
    profile: Profile,
    model_name: str,
    *,
    max_model_len: int | None,
    cache_info: Mapping[str, object],
) -> VllmSeries:
    """Register on `reg` the vLLM families of `profile`, in the order /metrics lists them; return the
    series the engine updates."""
    f = _Families(reg, model_name, v1=profile.has("v1_engine"))
    full = profile.has("metrics_v032")
    tokens = token_buckets(max_model_len)
    if full:
        _register_mfu_counters(f)
    gauges = _register_gauges(f, profile, full)
    prefix_queries, prefix_hits = _register_cache_hit_counters(f) if full else (None, None)
    counters = _register_token_counters(f, full, prefix_queries, prefix_hits)
    success = _register_request_success(f, full)
    prompt_tokens = f.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tokens)
    generation_tokens = f.histogram(
        "vllm:request_generation_tokens", "Number of generation tokens processed.", tokens
    )
    params = _register_request_param_histograms(f, tokens) if full else None
    requests = _register_latency_histograms(f, profile, prompt_tokens, generation_tokens)
    v032 = None
    if params is not None:
        v032 = V032Histograms(*params, *_register_phase_histograms(f, tokens))
        _register_cache_config_info(f, cache_info)
    return VllmSeries(gauges, counters, success, requests, v032)


def _register_mfu_counters(f: _Families) -> None:
    mfu = "(for Model Flops Utilization calculations)."
    for what, doc in (
        ("flops", "Estimated number of floating point operations per GPU"),
        ("read_bytes", "Estimated number of bytes read from memory per GPU"),
        ("write_bytes", "Estimated number of bytes written to memory per GPU"),
    ):
        f.counter(f"vllm:estimated_{what}_per_gpu_total", f"{doc} {mfu}").labels(*f.values)


def _register_gauges(f: _Families, profile: Profile, full: bool) -> Gauges:
    running = f.gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
    waiting = f.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
    waiting_by_reason = None
    if full:
        by_reason = f.gauge(
            "vllm:num_requests_waiting_by_reason",
            "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling "
            "capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked "
            "status). Sum of all reasons equals vllm:num_requests_waiting.",
            "reason",
        )
        waiting_by_reason = by_reason.labels(*f.values, "capacity")
        by_reason.labels(*f.values, "deferred")
        sleep = f.gauge(
            "vllm:engine_sleep_state",
            "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
            "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
            "sleep_state",
        )
        for state in SLEEP_STATES:
            sleep.labels(*f.values, state).set(1 if state == "awake" else 0)
    kv: list[Gauge] = []
    if profile.has("kv_cache_usage_metric"):
        kv.append(f.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."))
    if not profile.has("no_gpu_cache_metric"):
        kv.append(f.gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage."))
    return Gauges(
        running.labels(*f.values),
        waiting.labels(*f.values),
        waiting_by_reason,
        tuple(g.labels(*f.values) for g in kv),
    )


def _register_cache_hit_counters(f: _Families) -> tuple[Counter, Counter]:
    """0.32's cache counters; returns vllm:prefix_cache_queries and _hits, the ones the simulator feeds."""
    queries = f.counter(
        "vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens."
    ).labels(*f.values)
    hits = f.counter(
        "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."
    ).labels(*f.values)
    ext = "from KV connector cross-instance cache sharing, in terms of number of"
    for name, doc in (
        ("vllm:external_prefix_cache_queries", f"External prefix cache queries {ext} queried tokens."),
        ("vllm:external_prefix_cache_hits", f"External prefix cache hits {ext} cached tokens."),
        ("vllm:mm_cache_queries", "Multi-modal cache queries, in terms of number of queried items."),
        ("vllm:mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items."),
    ):
        f.counter(name, doc).labels(*f.values)
    return queries, hits


def _register_token_counters(
    f: _Families, full: bool, prefix_queries: Counter | None, prefix_hits: Counter | None
) -> TokenCounters:
    preemptions = f.counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.")
    prompt = f.counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
    by_source = _register_prompt_source_counters(f) if full else None
    generation = f.counter("vllm:generation_tokens", "Number of generation tokens processed.")
    return TokenCounters(
        preemptions.labels(*f.values),
        prompt.labels(*f.values),
        generation.labels(*f.values),
        prefix_queries,
        by_source[0] if by_source else None,
        prefix_hits,
        by_source[1] if by_source else None,
    )


def _register_prompt_source_counters(f: _Families) -> tuple[Counter, Counter]:
    """0.32's prompt tokens by source; returns the "local_compute" and "local_cache_hit" series, the ones
    the simulator feeds."""
    by_source = f.counter("vllm:prompt_tokens_by_source", "Number of prompt tokens by source.", "source")
    for source in PROMPT_SOURCES:
        by_source.labels(*f.values, source)
    f.counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).").labels(
        *f.values
    )
    cached = f.counter(
        "vllm:prompt_tokens_cached_by_source",
        "Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host "
        "(offloaded to DRAM), disk, p2p (transferred from another vLLM instance) or "
        "external_unspecified. Counted at admission; sums to vllm:prefix_cache_hits + "
        "vllm:external_prefix_cache_hits.",
        "source",
    )
    for source in CACHE_HIT_SOURCES:
        cached.labels(*f.values, source)
    return by_source.labels(*f.values, "local_compute"), by_source.labels(*f.values, "local_cache_hit")


def _register_request_success(f: _Families, full: bool) -> dict[str, Counter]:
    success = f.counter(
        "vllm:request_success", "Count of successfully processed requests.", "finished_reason"
    )
    by_reason = {
        reason: success.labels(*f.values, reason)
        for reason in (FINISH_REASONS_V032 if full else FINISH_REASONS)
    }
    if full:
        rejections = Counter(
            "vllm:admission_rejections",
            "Number of admission attempts rejected by a queue limit, by reason.",
            ["model_name", "reason"],
            registry=f.reg,
        )
        for reason in ADMISSION_REASONS:
            rejections.labels(f.model_name, reason)
    return by_reason


def _register_request_param_histograms(
    f: _Families, tokens: Sequence[float]
) -> tuple[Histogram, Histogram, Histogram]:
    """0.32's per-step and request-parameter histograms: (max generation tokens, n, max_tokens)."""
    f.histogram(
        "vllm:iteration_tokens_total",
        "Histogram of number of tokens per engine_step.",
        ITERATION_TOKENS_BUCKETS,
    )
    max_gen = f.histogram(
        "vllm:request_max_num_generation_tokens",
        "Histogram of maximum number of requested generation tokens.",
        tokens,
    )
    params_n = f.histogram("vllm:request_params_n", "Histogram of the n request parameter.", PARAMS_N_BUCKETS)
    params_max_tokens = f.histogram(
        "vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", tokens
    )
    return max_gen, params_n, params_max_tokens


def _register_latency_histograms(
    f: _Families, profile: Profile, prompt_tokens: Histogram, generation_tokens: Histogram
) -> RequestHistograms:
    ttft = f.histogram(
        "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS
    )
    itl = tpot = tpot_legacy = None
    if profile.has("inter_token_latency_metric"):
        itl = f.histogram(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS
        )
        tpot = f.histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            ITL_BUCKETS,
        )
    if not profile.has("no_gpu_cache_metric"):
        tpot_legacy = f.histogram(
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds.",
            ITL_BUCKETS,
        )
    e2e = f.histogram(
        "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", E2E_BUCKETS
    )
    queue = f.histogram(
        "vllm:request_queue_time_seconds",
        "Histogram of time spent in WAITING phase for request.",
        E2E_BUCKETS,
    )
    return RequestHistograms(prompt_tokens, generation_tokens, ttft, e2e, queue, itl, tpot, tpot_legacy)


def _register_phase_histograms(
    f: _Families, tokens: Sequence[float]
) -> tuple[Histogram, Histogram, Histogram, Histogram, Histogram]:
    """0.32's request-phase histograms: (inference, prefill, decode, preemptions, prefill KV tokens)."""
    phases = [
        f.histogram(
            f"vllm:request_{name}_time_seconds",
            f"Histogram of time spent in {phase} phase for request.",
            E2E_BUCKETS,
        )
        for name, phase in (("inference", "RUNNING"), ("prefill", "PREFILL"), ("decode", "DECODE"))
    ]
    preemptions = f.histogram(
        "vllm:request_num_preemptions",
        "Histogram of the number of times a request was preempted.",
        NUM_PREEMPTIONS_BUCKETS,
    )
    prefill_kv = f.histogram(
        "vllm:request_prefill_kv_computed_tokens",
        "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
        tokens,
    )
    return phases[0], phases[1], phases[2], preemptions, prefill_kv


def _register_cache_config_info(f: _Families, cache_info: Mapping[str, object]) -> None:
    info = {**CACHE_CONFIG_V032, **{k: str(v) for k, v in cache_info.items()}, "engine": "0"}
    Gauge(
        "vllm:cache_config_info",
        "Information of the LLMEngine CacheConfig",
        list(info),
        registry=f.reg,
    ).labels(**info).set(1)
